/**
 * The sidecar as a process: start-up output, --probe, graceful SIGTERM, configuration failures, dev mode with an
 * identity directory, and the Arc challenge against a real key directory.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { node24, REPO_ROOT, startSidecar } from '../../helpers/sidecar.ts';

const MAIN = join(REPO_ROOT, 'sidecar', 'main.ts');
const ENC = encodeURIComponent('https://vault.azure.net');

/** Runs the program to completion (for start-up failures and --probe). */
function run(args: readonly string[], env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MI_ANYWHERE_')));
  const r = spawnSync(node24(), [MAIN, ...args], { env: { ...inherited, ...env }, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Like {@link run}, without blocking the event loop (needed when the test itself holds a socket open). */
function runAsync(args: readonly string[], env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MI_ANYWHERE_')));
  const child = spawn(node24(), [MAIN, ...args], { env: { ...inherited, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
}

const temp = mkdtempSync(join(tmpdir(), 'mi-anywhere-process-'));
after(() => rmSync(temp, { recursive: true, force: true }));

describe('sidecar process', () => {
  it('dev mode: announces itself at warn level, logs one listening line per listener, prints the env block, probes ready, stops cleanly on SIGTERM', async () => {
    const sc = await startSidecar();
    let stopped = false;
    try {
      const lines = sc.logs().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(lines.some((l) => l['level'] === 'warn' && /DEV MODE/.test(String(l['msg']))));
      const loaded = lines.filter((l) => l['msg'] === 'identity loaded');
      assert.deepEqual(loaded.map((l) => [l['identity'], l['clientId'], l['credentialKind'], l['isDefault']]), [
        ['dev-system', '22222222-2222-4222-8222-222222222222', 'dev', true],
        ['dev-user', '44444444-4444-4444-8444-444444444444', 'dev', false],
      ]);
      const listening = lines.filter((l) => l['msg'] === 'listening');
      assert.deepEqual(listening.map((l) => l['listener']), ['token', 'health', 'metrics']);
      for (const l of listening) assert.equal(typeof l['port'], 'number');
      const appService = sc.profiles.get('app-service');
      assert.deepEqual(appService, { IDENTITY_ENDPOINT: `${sc.tokenUrl}/msi/token`, IDENTITY_HEADER: sc.identityHeader });
      assert.deepEqual(sc.profiles.get('pod-identity'), { AZURE_POD_IDENTITY_AUTHORITY_HOST: sc.tokenUrl });
      assert.deepEqual(sc.profiles.get('msi-secret'), {
        MSI_ENDPOINT: `${sc.tokenUrl}/oauth2/token`,
        MSI_SECRET: sc.identityHeader,
        DEFAULT_IDENTITY_CLIENT_ID: '22222222-2222-4222-8222-222222222222',
      });
      assert.equal(sc.profiles.has('arc'), false, 'no arc profile without a key directory');

      const healthPort = new URL(sc.healthUrl).port;
      const probe = run(['--probe'], { MI_ANYWHERE_HEALTH_ADDRESS: '127.0.0.1', MI_ANYWHERE_HEALTH_PORT: healthPort, MI_ANYWHERE_MODE: 'dev' });
      assert.equal(probe.status, 0, probe.stderr);

      await sc.stop();
      stopped = true;
      assert.equal(sc.exitCode(), 0);
      assert.match(sc.logs(), /"msg":"stopped"/);
    } finally {
      if (!stopped) await sc.stop();
    }
  });

  it('--probe fails when nothing is ready', () => {
    const closedPort = '1';
    const probe = run(['--probe'], { MI_ANYWHERE_HEALTH_ADDRESS: '127.0.0.1', MI_ANYWHERE_HEALTH_PORT: closedPort, MI_ANYWHERE_MODE: 'dev' });
    assert.equal(probe.status, 1);
    assert.match(probe.stderr, /^not ready: /);
  });

  it('configuration problems: exit 2 before listening, every problem listed', () => {
    const r = run([], { MI_ANYWHERE_TOKEN_PORT: 'x', MI_ANYWHERE_LOG_LEVEL: 'loud', MI_ANYWHERE_TOKEN_ADDRESS: '10.0.0.1' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /Invalid configuration \(4 problems\)/);
    assert.match(r.stderr, /not a loopback address/);
    assert.match(r.stderr, /MI_ANYWHERE_IDENTITY_DIR is required in entra mode/);
    assert.match(r.stderr, /MI_ANYWHERE_TOKEN_PORT: must be a number/);
    assert.match(r.stderr, /MI_ANYWHERE_LOG_LEVEL: must be one of/);
    assert.equal(r.stdout, '', 'nothing listened or logged');
  });

  it('a port in use: exit 1 naming the address and the variables to change', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = String((blocker.address() as AddressInfo).port);
    try {
      const r = await runAsync(['--dev'], { MI_ANYWHERE_TOKEN_PORT: port, MI_ANYWHERE_HEALTH_PORT: '0', MI_ANYWHERE_METRICS_PORT: '0', MI_ANYWHERE_HEALTH_ADDRESS: '127.0.0.1', MI_ANYWHERE_METRICS_ADDRESS: '127.0.0.1' });
      assert.equal(r.status, 1);
      assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\); another process uses it — set MI_ANYWHERE_TOKEN_PORT`));
    } finally {
      blocker.close();
    }
  });

  it('entra mode without an identity directory says how to get dev mode', () => {
    const r = run([], {});
    assert.equal(r.status, 2);
    assert.match(r.stderr, /MI_ANYWHERE_IDENTITY_DIR is required in entra mode \(or start with --dev/);
  });

  it('a non-loopback token address is refused with the reason', () => {
    const r = run(['--dev'], { MI_ANYWHERE_TOKEN_ADDRESS: '0.0.0.0' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /not a loopback address: anyone who can reach it could obtain tokens/);
  });

  it('dev mode refuses an identity directory holding credentials', () => {
    const dir = join(temp, 'with-credentials');
    mkdirSync(join(dir, 'real'), { recursive: true });
    writeFileSync(join(dir, 'real', 'tenantId'), '72f988bf-86f1-41af-91ab-2d7cd011db47');
    writeFileSync(join(dir, 'real', 'clientId'), 'a1b2c3d4-0000-4000-8000-000000000001');
    writeFileSync(join(dir, 'real', 'clientSecret'), 'do-not-print-me');
    const r = run(['--dev'], { MI_ANYWHERE_IDENTITY_DIR: dir, MI_ANYWHERE_TOKEN_PORT: '0', MI_ANYWHERE_HEALTH_PORT: '0', MI_ANYWHERE_METRICS_PORT: '0' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /identity "real": .*clientSecret is a credential file, but dev mode never uses real credentials/);
    assert.ok(!`${r.stdout}${r.stderr}`.includes('do-not-print-me'));
    assert.ok(!r.stdout.includes('"msg":"listening"'));
  });

  it('dev mode serves extra credential-free identities from a directory', async () => {
    const dir = join(temp, 'dev-extra');
    mkdirSync(join(dir, 'orders'), { recursive: true });
    writeFileSync(join(dir, 'orders', 'tenantId'), '11111111-1111-4111-8111-111111111111\n');
    writeFileSync(join(dir, 'orders', 'clientId'), '66666666-6666-4666-8666-666666666666\n');
    const sc = await startSidecar({ env: { MI_ANYWHERE_IDENTITY_DIR: dir } });
    try {
      const r = await fetch(`${sc.tokenUrl}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${ENC}&client_id=66666666-6666-4666-8666-666666666666`, { headers: { Metadata: 'true' } });
      assert.equal(r.status, 200);
      const body = (await r.json()) as { access_token: string };
      assert.equal(decodeJwt(body.access_token).appid, '66666666-6666-4666-8666-666666666666');
      // The built-in default identity is still the default.
      const sys = await fetch(`${sc.tokenUrl}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${ENC}`, { headers: { Metadata: 'true' } });
      assert.equal(((await sys.json()) as { client_id: string }).client_id, '22222222-2222-4222-8222-222222222222');
    } finally {
      await sc.stop();
    }
  });

  it('Arc: key file in MI_ANYWHERE_ARC_KEY_DIR with mode 0640, realm under /var/opt/azcmagent/tokens, deleted after use', async () => {
    const keyDir = join(temp, 'arc-keys');
    mkdirSync(keyDir, { recursive: true });
    writeFileSync(join(keyDir, 'mi-anywhere-left-by-a-crash.key'), 'stale');
    writeFileSync(join(keyDir, 'the-apps-own.key'), 'not ours');
    const sc = await startSidecar({ env: { MI_ANYWHERE_ARC_KEY_DIR: keyDir } });
    try {
      assert.deepEqual(sc.profiles.get('arc'), { IDENTITY_ENDPOINT: `${sc.tokenUrl}/arc/metadata/identity/oauth2/token`, IMDS_ENDPOINT: sc.tokenUrl });
      const url = `${sc.tokenUrl}/arc/metadata/identity/oauth2/token?api-version=2020-06-01&resource=${ENC}`;
      const first = await fetch(url, { headers: { Metadata: 'true' } });
      assert.equal(first.status, 401);
      await first.body?.cancel();
      const realm = first.headers.get('www-authenticate') ?? '';
      const match = /^Basic realm=\/var\/opt\/azcmagent\/tokens\/(mi-anywhere-[0-9a-f-]+\.key)$/.exec(realm);
      assert.ok(match, realm);
      const file = join(keyDir, match[1] ?? '');
      assert.equal(statSync(file).mode & 0o777, 0o640);
      const key = readFileSync(file, 'utf8');
      assert.ok(key.length > 0 && key.length <= 4096 && !key.endsWith('\n'));
      const second = await fetch(url, { headers: { Metadata: 'true', Authorization: `Basic ${key}` } });
      assert.equal(second.status, 200);
      assert.equal(((await second.json()) as { client_id: string }).client_id, '22222222-2222-4222-8222-222222222222');
      assert.equal(existsSync(file), false);
      assert.equal(existsSync(join(keyDir, 'mi-anywhere-left-by-a-crash.key')), false, 'stale key files removed at start');
      assert.equal(existsSync(join(keyDir, 'the-apps-own.key')), true, 'files the sidecar did not write are left alone');
    } finally {
      await sc.stop();
    }
  });
});
