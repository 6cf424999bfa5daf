/**
 * Dependencies (docs/security.md §8): the lockfile pins every package (lockfileVersion 3, exact version and sha512 integrity for
 * every entry, in sync with package.json, installed with `npm ci`), and CI runs `npm audit` at high severity through
 * scripts/audit.ts, which fails on high/critical advisories and reports — without failing — when the advisory
 * endpoint cannot be reached (as on this project's build machines: 405 for POST /-/npm/v1/security/advisories/bulk).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { classifyAudit, report } from '../../scripts/audit.ts';

const ROOT = join(import.meta.dirname, '..', '..');

interface LockEntry {
  version?: string;
  integrity?: string;
  link?: boolean;
  dev?: boolean;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

/** `^1.2.3` / `~1.2.3` / `1.2.3` against an exact version (the only range forms package.json may use). */
function satisfies(version: string, range: string): boolean {
  const m = /^([\^~]?)(\d+)\.(\d+)\.(\d+)$/.exec(range);
  const v = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!m || !v) return false;
  const [want, have] = [m.slice(2).map(Number), v.slice(1).map(Number)] as [number[], number[]];
  const cmp = (a: number[], b: number[]): number => a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]!;
  if (cmp(have, want) < 0) return false;
  if (m[1] === '') return cmp(have, want) === 0;
  if (m[1] === '~') return have[0] === want[0] && have[1] === want[1];
  return want[0]! > 0 ? have[0] === want[0] : want[1]! > 0 ? have[0] === 0 && have[1] === want[1] : cmp(have, want) === 0;
}

describe('the lockfile pins every dependency', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { lockfileVersion: number; packages: Record<string, LockEntry> };

  it('package-lock.json exists with lockfileVersion 3', () => assert.equal(lock.lockfileVersion, 3));

  it('every installed package has an exact version and a sha512 integrity', () => {
    const entries = Object.entries(lock.packages).filter(([path]) => path !== '');
    assert.ok(entries.length > 50, `only ${entries.length} packages locked`);
    const unpinned = entries.filter(([, e]) => e.link !== true && (!/^\d+\.\d+\.\d+(-[\w.]+)?$/.test(e.version ?? '') || !/^sha512-[A-Za-z0-9+/]{86}==$/.test(e.integrity ?? '')));
    assert.deepEqual(unpinned.map(([p]) => p), []);
    assert.deepEqual(entries.filter(([, e]) => e.link === true).map(([p]) => p), [], 'no linked (unpinned, local) packages');
  });

  it('is in sync with package.json, and every direct dependency is locked within its range', () => {
    const root = lock.packages[''] ?? {};
    assert.deepEqual(root.dependencies, pkg.dependencies);
    assert.deepEqual(root.devDependencies, pkg.devDependencies);
    for (const [name, range] of Object.entries({ ...pkg.dependencies, ...pkg.devDependencies })) {
      const locked = lock.packages[`node_modules/${name}`];
      assert.ok(locked?.version !== undefined, `${name} is not locked`);
      assert.ok(satisfies(locked.version, range), `${name}@${locked.version} does not satisfy ${range} (or the range is not ^x.y.z / ~x.y.z / x.y.z)`);
    }
    assert.equal(pkg.devDependencies['fast-check'] !== undefined, true, 'fast-check is a devDependency');
  });

  it('CI installs exactly the lockfile (npm ci) and runs the high-severity audit', () => {
    const ci = readFileSync(join(ROOT, '.ci', 'run'), 'utf8');
    assert.match(ci, /^npm ci\b/m);
    assert.doesNotMatch(ci, /^npm install\b/m);
    assert.match(ci, /^npm run audit:high$/m);
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    assert.equal(scripts['audit:high'], 'node scripts/audit.ts');
  });
});

describe('npm audit in CI (scripts/audit.ts)', () => {
  const unreachable405 = readFileSync(join(ROOT, 'test', 'fixtures', 'audit', 'unreachable-405.stdout.json'), 'utf8');
  const clean = JSON.stringify({ auditReportVersion: 2, vulnerabilities: {}, metadata: { vulnerabilities: { info: 0, low: 0, moderate: 0, high: 0, critical: 0, total: 0 } } });
  const moderateOnly = JSON.stringify({ auditReportVersion: 2, vulnerabilities: { x: { severity: 'moderate', via: [] } }, metadata: { vulnerabilities: { info: 0, low: 0, moderate: 1, high: 0, critical: 0, total: 1 } } });
  const findings = JSON.stringify({
    auditReportVersion: 2,
    vulnerabilities: {
      'bad-lib': { severity: 'critical', via: [{ title: 'Prototype pollution', url: 'https://github.com/advisories/GHSA-xxxx', severity: 'critical' }] },
      'uses-bad-lib': { severity: 'high', via: ['bad-lib'] },
      fine: { severity: 'low', via: [] },
    },
    metadata: { vulnerabilities: { info: 0, low: 1, moderate: 0, high: 1, critical: 1, total: 3 } },
  });
  const cases = [
    { name: 'the advisory endpoint answers 405 (this build machine)', run: { exitCode: 1, stdout: unreachable405, stderr: 'npm warn audit 405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk\nnpm error audit endpoint returned an error' }, kind: 'unreachable', exit: 0 },
    { name: 'no network (ENOTFOUND)', run: { exitCode: 1, stdout: '', stderr: 'npm error code ENOTFOUND\nnpm error request to https://registry.npmjs.org/-/npm/v1/security/advisories/bulk failed' }, kind: 'unreachable', exit: 0 },
    { name: 'no high or critical advisories', run: { exitCode: 0, stdout: clean, stderr: '' }, kind: 'clean', exit: 0 },
    { name: 'moderate advisories only', run: { exitCode: 0, stdout: moderateOnly, stderr: '' }, kind: 'clean', exit: 0 },
    { name: 'high and critical advisories', run: { exitCode: 1, stdout: findings, stderr: '' }, kind: 'findings', exit: 1 },
    { name: 'npm crashed without a report', run: { exitCode: 1, stdout: 'not json', stderr: 'TypeError: cannot read properties of undefined' }, kind: 'error', exit: 2 },
  ] as const;
  for (const tc of cases) {
    it(`${tc.name} -> ${tc.kind}, exit ${tc.exit}`, () => {
      const outcome = classifyAudit(tc.run);
      assert.equal(outcome.kind, tc.kind, JSON.stringify(outcome));
      assert.equal(report(outcome, false).exitCode, tc.exit);
    });
  }

  it('lists the blocking advisories by package, severity and title', () => {
    const { lines } = report(classifyAudit({ exitCode: 1, stdout: findings, stderr: '' }), false);
    assert.equal(lines[0], 'npm audit: 2 package(s) with high or critical advisories:');
    assert.ok(lines.some((l) => l.includes('bad-lib (critical): Prototype pollution https://github.com/advisories/GHSA-xxxx')));
    assert.ok(lines.some((l) => l.includes('uses-bad-lib (high): via bad-lib')));
    assert.ok(!lines.some((l) => l.includes('fine')));
  });

  it('an unreachable endpoint is reported loudly and fails only where the audit is required', () => {
    const outcome = classifyAudit(cases[0].run);
    assert.match(report(outcome, false).lines[0] ?? '', /^npm audit: NOT CHECKED — the advisory endpoint could not be reached \(405 Method Not Allowed/);
    assert.equal(report(outcome, true).exitCode, 3);
  });

  it('the real run on this machine ends with an exit code that matches what it printed', () => {
    const run = spawnSync(process.execPath, [join(ROOT, 'scripts', 'audit.ts')], { cwd: ROOT, encoding: 'utf8', timeout: 150_000, env: { ...process.env, MI_ANYWHERE_AUDIT_REQUIRED: '' } });
    const first = run.stdout.split('\n')[0] ?? '';
    if (first.startsWith('npm audit: NOT CHECKED')) assert.equal(run.status, 0, run.stdout);
    else if (first.startsWith('npm audit: no high or critical advisories')) assert.equal(run.status, 0, run.stdout);
    else assert.fail(`npm audit found blocking advisories or failed (exit ${run.status}):\n${run.stdout}${run.stderr}`);
  });
});
