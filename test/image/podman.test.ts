/**
 * The image for real, with podman (no Docker engine and no registry here): scripts/provision.d/41-podman.sh
 * builds a local Node 24 base image, the Dockerfile is built against it through its NODE_IMAGE build argument
 * (npm works from the npm cache: the build has no network), and both entry points run in containers with a
 * read-only root filesystem and no network: the sidecar serves a token (asked from inside its own network
 * namespace, as an app sharing it would), the webhook answers an AdmissionReview over TLS, and SIGTERM stops
 * the sidecar cleanly (exec-form ENTRYPOINT).
 *
 * The flags are the ones this sandbox needs (runc, cgroupfs, no network, nofile/nproc limits it may lower).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { DEFAULT_TOKEN_PORT, DEFAULT_WEBHOOK_HEALTH_PORT, DEFAULT_WEBHOOK_PORT, PATHS, WEBHOOK_PATHS } from '../../sidecar/contract.ts';
import { cacheDir } from '../helpers/helm.ts';
import { REPO_ROOT } from '../helpers/sidecar.ts';
import { ENTRY_FILES, makeServingCertificate } from '../helpers/build-context.ts';
import { optedInPod } from '../helpers/programs.ts';

const PODMAN = ['--runtime', 'runc', '--cgroup-manager', 'cgroupfs'];
const LIMITS = ['--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];
const IMAGE = 'localhost/mi-anywhere:test';
const suffix = randomBytes(4).toString('hex');

function podman(args: readonly string[], timeoutMs = 600_000): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('podman', [...PODMAN, ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw new Error(`podman ${args[0]}: ${result.error.message}`);
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function podmanOk(args: readonly string[], timeoutMs?: number): string {
  const result = podman(args, timeoutMs);
  assert.equal(result.status, 0, `podman ${args.join(' ')}\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** Runs a Node script inside a running container (its network namespace, its user). */
function nodeIn(container: string, script: string): string {
  return podmanOk(['exec', container, 'node', '--input-type=module', '-e', script]).trim();
}

/** Polls a condition inside a container until it holds (bounded; the machine is shared and may be slow). */
async function waitFor(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    assert.ok(performance.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function npmCacheDir(): string {
  const result = spawnSync('npm', ['config', 'get', 'cache'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : join(homedir(), '.npm');
}

describe('container image (podman)', () => {
  let work: string;
  let baseImage: string;
  const containers: string[] = [];

  before(() => {
    const version = spawnSync('podman', ['--version'], { encoding: 'utf8' });
    assert.equal(version.status, 0, 'podman is not installed: run scripts/provision.d/41-podman.sh (npm test provisions it)');
    const tagFile = join(cacheDir(), 'podman', 'base-image.ok');
    const errorFile = join(cacheDir(), 'podman', 'base-image.error');
    if (existsSync(errorFile)) assert.fail(`scripts/provision.d/41-podman.sh failed:\n${readFileSync(errorFile, 'utf8')}`);
    assert.ok(existsSync(tagFile), `no local Node 24 base image (${tagFile}): run scripts/provision.d/41-podman.sh`);
    baseImage = readFileSync(tagFile, 'utf8').trim();
    work = mkdtempSync(join(tmpdir(), 'mi-anywhere-podman-'));
    chmodSync(work, 0o755);
    // The build has no network: npm installs from the npm cache. Make sure it holds every package of the
    // current lockfile (a dependency added since the last `npm ci` on this machine would be missing).
    for (const file of ['package.json', 'package-lock.json']) cpSync(join(REPO_ROOT, file), join(work, file));
    const fill = spawnSync('npm', ['ci', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: work, encoding: 'utf8' });
    assert.equal(fill.status, 0, `filling the npm cache: ${fill.stderr}`);
    rmSync(join(work, 'node_modules'), { recursive: true, force: true });
    writeFileSync(join(work, 'npmrc'), 'offline=true\nfund=false\naudit=false\nupdate-notifier=false\n');
  });

  after(() => {
    for (const name of containers) podman(['rm', '--force', '--time', '0', name]);
    // Layers of earlier builds of the test tag (the current ones stay as the build cache for the next run).
    podman(['image', 'prune', '--force']);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('builds the Dockerfile against the local base image', () => {
    const revision = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).stdout.trim() || 'unknown';
    podmanOk([
      'build', ...LIMITS,
      '--build-arg', `NODE_IMAGE=${baseImage}`,
      '--build-arg', `REVISION=${revision}`,
      '--volume', `${npmCacheDir()}:/root/.npm`,
      '--volume', `${join(work, 'npmrc')}:/root/.npmrc:ro`,
      '--tag', IMAGE,
      '--file', join(REPO_ROOT, 'Dockerfile'),
      REPO_ROOT,
    ], 1_200_000);
    const config = JSON.parse(podmanOk(['image', 'inspect', IMAGE]))[0].Config as { User: string; Entrypoint: string[]; Cmd: string[]; Labels: Record<string, string> };
    assert.equal(config.User, '65532:65532');
    assert.deepEqual(config.Entrypoint, ['node']);
    assert.deepEqual(config.Cmd, [ENTRY_FILES.sidecar]);
    // The REVISION build argument: a commit id, or 'unknown' (the Dockerfile's default) for a checkout without git
    // history (an exported tree, or a CI copy git refuses as another user's). podman 4.3's layer cache does not key
    // LABEL steps on build-arg values, so after a cached build the label is the value of whichever build created
    // the layer — either form, whatever this build passed.
    assert.match(config.Labels['org.opencontainers.image.revision'] ?? '', /^([0-9a-f]{40}|unknown)$/);
    assert.equal(config.Labels['org.opencontainers.image.title'], 'mi-anywhere');
  });

  it('holds the bundled programs only (no node_modules, no sources) and runs Node 24', () => {
    const script = "import { existsSync } from 'node:fs'; process.stdout.write(JSON.stringify({ node: process.version, modules: existsSync('node_modules'), src: existsSync('sidecar'), bundle: existsSync('dist/sidecar/main.js'), notices: existsSync('dist/THIRD-PARTY-NOTICES.md'), license: existsSync('dist/LICENSE') }))";
    const out = JSON.parse(podmanOk(['run', '--rm', ...LIMITS, '--read-only', IMAGE, '--input-type=module', '-e', script])) as Record<string, unknown>;
    assert.match(String(out['node']), /^v24\./);
    assert.deepEqual(
      { modules: out['modules'], src: out['src'], bundle: out['bundle'], notices: out['notices'], license: out['license'] },
      { modules: false, src: false, bundle: true, notices: true, license: true },
    );
  });

  it('the sidecar container serves a token, as uid 65532 on a read-only root filesystem, and stops cleanly on SIGTERM', async () => {
    const name = `mi-anywhere-sidecar-${suffix}`;
    containers.push(name);
    podmanOk(['run', '--detach', '--name', name, ...LIMITS, '--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', IMAGE, ENTRY_FILES.sidecar, '--dev']);
    const tokenUrl = `http://127.0.0.1:${DEFAULT_TOKEN_PORT}${PATHS.imds}?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net`;
    const script = `const r = await fetch(${JSON.stringify(tokenUrl)}, { headers: { Metadata: 'true' } }).catch(() => undefined);
      if (!r) { process.stdout.write('{}'); process.exit(0); }
      const b = await r.json();
      const claims = b.access_token ? JSON.parse(Buffer.from(b.access_token.split('.')[1], 'base64url').toString()) : {};
      process.stdout.write(JSON.stringify({ status: r.status, aud: claims.aud, uid: process.getuid() }));`;
    let answer: Record<string, unknown> = {};
    await waitFor('the sidecar token listener', () => {
      answer = JSON.parse(nodeIn(name, script)) as Record<string, unknown>;
      // Before its identities are loaded the sidecar answers 503 (not ready); wait for the real answer.
      return answer['status'] !== undefined && answer['status'] !== 503;
    });
    assert.deepEqual(answer, { status: 200, aud: 'https://vault.azure.net', uid: 65532 });
    podmanOk(['stop', '--time', '20', name]);
    const exitCode = podmanOk(['inspect', '--format', '{{.State.ExitCode}}', name]).trim();
    assert.equal(exitCode, '0', podman(['logs', name]).stdout);
  });

  it('the webhook container answers an AdmissionReview over TLS with the sidecar patch', async () => {
    const tlsDir = join(work, 'tls');
    spawnSync('mkdir', ['-p', tlsDir]);
    const tls = makeServingCertificate(tlsDir);
    for (const file of [tls.certFile, tls.keyFile]) chmodSync(file, 0o644);
    chmodSync(tlsDir, 0o755);
    const name = `mi-anywhere-webhook-${suffix}`;
    containers.push(name);
    podmanOk([
      'run', '--detach', '--name', name, ...LIMITS, '--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
      '--volume', `${tlsDir}:/etc/mi-anywhere/tls:ro`,
      '--env', 'MI_ANYWHERE_WEBHOOK_CERT_MODE=files',
      '--env', 'MI_ANYWHERE_WEBHOOK_NATIVE_SIDECAR=always',
      '--env', `MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE=${IMAGE}`,
      IMAGE, ENTRY_FILES.webhook,
    ]);
    const readyUrl = `http://127.0.0.1:${DEFAULT_WEBHOOK_HEALTH_PORT}${WEBHOOK_PATHS.readiness}`;
    await waitFor('the webhook to be ready', () => nodeIn(name, `const r = await fetch(${JSON.stringify(readyUrl)}).catch(() => undefined); process.stdout.write(String(r?.status ?? 0));`) === '200');
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: `uid-${suffix}`, kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'team-a', operation: 'CREATE', object: optedInPod('my-identity') },
    };
    const script = `import { request } from 'node:https'; import { readFileSync } from 'node:fs';
      const body = ${JSON.stringify(JSON.stringify(review))};
      const req = request({ host: '127.0.0.1', port: ${DEFAULT_WEBHOOK_PORT}, path: ${JSON.stringify(WEBHOOK_PATHS.mutate)}, method: 'POST', ca: readFileSync('/etc/mi-anywhere/tls/tls.crt'), headers: { 'content-type': 'application/json' } }, (res) => {
        let t = ''; res.on('data', (c) => (t += c)); res.on('end', () => process.stdout.write(t));
      });
      req.end(body);`;
    const response = (JSON.parse(nodeIn(name, script)) as { response: { uid: string; allowed: boolean; patch?: string } }).response;
    assert.equal(response.uid, `uid-${suffix}`);
    assert.equal(response.allowed, true);
    const patch = Buffer.from(response.patch ?? '', 'base64').toString('utf8');
    assert.match(patch, /"name":"mi-anywhere"/);
    assert.ok(patch.includes(IMAGE), 'the injected sidecar uses the configured image');
  });
  it('examples/compose/compose.dev.yaml as containers: the sample app, sharing the sidecar network namespace, gets a token', async () => {
    const composeDir = join(REPO_ROOT, 'examples', 'compose');
    const compose = parse(readFileSync(join(composeDir, 'compose.dev.yaml'), 'utf8')) as {
      services: Record<string, { command?: string[]; environment?: Record<string, string>; user?: string; healthcheck?: { test: string[] } }>;
    };
    const sidecarService = compose.services['mi-anywhere'];
    const appService = compose.services['app'];
    assert.ok(sidecarService && appService);
    // The sample app's image, from its own Dockerfile, against the same local base (npm from the cache).
    const appWork = join(work, 'app');
    spawnSync('mkdir', ['-p', appWork]);
    for (const file of ['package.json', 'package-lock.json']) cpSync(join(composeDir, 'app', file), join(appWork, file));
    const fill = spawnSync('npm', ['ci', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: appWork, encoding: 'utf8' });
    assert.equal(fill.status, 0, `filling the npm cache for the sample app: ${fill.stderr}`);
    const appImage = 'localhost/mi-anywhere-sample-app:test';
    podmanOk([
      'build', ...LIMITS,
      '--build-arg', `NODE_IMAGE=${baseImage}`,
      '--volume', `${npmCacheDir()}:/root/.npm`,
      '--volume', `${join(work, 'npmrc')}:/root/.npmrc:ro`,
      '--tag', appImage,
      join(composeDir, 'app'),
    ], 1_200_000);

    const env = (vars: Record<string, string> | undefined): string[] => Object.entries(vars ?? {}).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
    const hardening = ['--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges'];
    const sidecar = `mi-anywhere-compose-${suffix}`;
    containers.push(sidecar);
    podmanOk(['run', '--detach', '--name', sidecar, ...LIMITS, ...hardening, '--user', sidecarService.user ?? '', ...env(sidecarService.environment), IMAGE, ...(sidecarService.command ?? [])]);
    // The compose healthcheck itself gates the app (depends_on: condition: service_healthy).
    const [, ...probe] = sidecarService.healthcheck?.test ?? [];
    await waitFor('the sidecar healthcheck', () => podman(['exec', sidecar, ...probe]).status === 0);
    const app = podman([
      'run', '--rm', '--network', `container:${sidecar}`, '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024',
      ...hardening, '--user', appService.user ?? '', ...env(appService.environment), appImage,
    ]);
    assert.equal(app.status, 0, `${app.stdout}\n${app.stderr}\n${podman(['logs', sidecar]).stdout}`);
    const printed = JSON.parse(app.stdout) as { claims: Record<string, unknown> };
    assert.equal(printed.claims['aud'], 'https://management.azure.com');
    assert.match(String(printed.claims['iss']), /^http:\/\/127\.0\.0\.1:50342\//);
  });
});
