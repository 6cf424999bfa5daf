/**
 * The developer identity end to end, as README describes it: the real Azure CLI (provisioned for the compatibility
 * matrix, scripts/provision.d/20-python.sh) logs in with a service principal against the test authority, registered
 * as a custom cloud (its endpoints from a small ARM stand-in, test/authority/arm.ts); then the documented command
 * (`npm run developer-identity`) serves that login, and @azure/identity's ManagedIdentityCredential and
 * DefaultAzureCredential — in their own process, with nothing but the env file the command wrote — get tokens for
 * it through the sidecar. The CLI's configuration lives in a temporary AZURE_CONFIG_DIR (never the user's).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { startTestAuthority, type RegisteredApp, type TestAuthority } from '../authority/authority.ts';
import { startArmStandIn, type ArmStandIn } from '../authority/arm.ts';
import { node24, REPO_ROOT } from '../helpers/sidecar.ts';
import { createTestLog, registerSecret } from '../helpers/collected-logs.ts';

const CACHE = process.env.MI_ANYWHERE_CACHE ?? join(homedir(), '.cache', 'mi-anywhere');
const AZ_BIN = join(CACHE, 'python', 'venv', 'bin');
const SP_SECRET = 'developer-sp-secret-value-1';

/** Runs the SDK client with exactly the variables of the env file (plus PATH/HOME). */
function sdkToken(envFile: string, scope: string, kind: 'managed' | 'default'): Promise<{ ok: boolean; token?: string; message?: string }> {
  const appEnv = Object.fromEntries(
    readFileSync(envFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  // DefaultAzureCredential would try the Azure CLI itself if managed identity failed: keep az off its PATH, so a
  // token can only have come through the sidecar.
  const env = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: mkdtempSync(join(tmpdir(), 'mi-anywhere-app-home-')), ...appEnv };
  return new Promise((resolve, reject) => {
    const child = spawn(node24(), [join(REPO_ROOT, 'test', 'e2e', 'clients', 'sdk-token.ts'), scope, kind], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.resume();
    child.once('error', reject);
    child.once('close', () => {
      rmSync(env.HOME, { recursive: true, force: true });
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as { ok: boolean; token?: string; message?: string });
      } catch {
        reject(new Error(`SDK client printed no result: ${out}`));
      }
    });
  });
}

/** A request with a Host header of the test's choosing (fetch does not let a caller set Host). */
function rawRequest(port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('developer identity: az login -> npm run developer-identity -> SDK in another process', () => {
  let authority: TestAuthority;
  let arm: ArmStandIn;
  let app: RegisteredApp;
  let work: string;
  let azEnv: NodeJS.ProcessEnv;
  let command: ChildProcess | undefined;
  let output: () => string = () => '';
  let envFile: string;

  /** Runs the command as a developer would and resolves once it wrote the env file. */
  async function launch(args: string[], logName: string): Promise<{ command: ChildProcess; output: () => string }> {
    const testLog = createTestLog(logName);
    const child = spawn(node24(), [join(REPO_ROOT, 'scripts', 'developer-identity.ts'), ...args], {
      cwd: REPO_ROOT,
      env: { ...azEnv, NODE_EXTRA_CA_CERTS: join(work, 'ca-bundle.pem') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: string): void => {
        text += chunk;
        testLog.write(chunk);
        if (text.includes('developer-identity: wrote')) resolve();
      };
      child.stdout.setEncoding('utf8').on('data', onData);
      child.stderr.setEncoding('utf8').on('data', onData);
      child.once('exit', (code) => reject(new Error(`developer-identity exited (${code}) before serving:\n${text}`)));
    });
    return { command: child, output: () => text };
  }

  async function stop(child: ChildProcess | undefined): Promise<void> {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  before(async () => {
    assert.ok(
      existsSync(join(AZ_BIN, 'az')),
      `the Azure CLI is not provisioned at ${join(AZ_BIN, 'az')}: run bash scripts/provision.sh (step 20-python)`,
    );
    authority = await startTestAuthority();
    arm = await startArmStandIn(authority);
    app = authority.registerApp({ secrets: [SP_SECRET] });
    registerSecret('developer identity service principal secret', SP_SECRET);
    work = mkdtempSync(join(tmpdir(), 'mi-anywhere-developer-test-'));
    writeFileSync(join(work, 'ca-bundle.pem'), authority.caPem + arm.caPem);
    azEnv = {
      PATH: `${AZ_BIN}:/usr/local/bin:/usr/bin:/bin`,
      HOME: work,
      AZURE_CONFIG_DIR: join(work, 'azure'),
      AZURE_CORE_COLLECT_TELEMETRY: 'false',
      AZURE_CORE_NO_COLOR: 'true',
      AZURE_CORE_ONLY_SHOW_ERRORS: 'true',
      // The test authority is not a host msal-python knows: no instance discovery at login.microsoftonline.com.
      AZURE_CORE_INSTANCE_DISCOVERY: 'false',
      REQUESTS_CA_BUNDLE: join(work, 'ca-bundle.pem'),
    };
    const az = (...args: string[]) => promisify(execFile)('az', args, { env: azEnv, timeout: 120_000 });
    await az('cloud', 'register', '--name', 'MiAnywhereTest', '--endpoint-resource-manager', arm.url);
    await az('cloud', 'set', '--name', 'MiAnywhereTest');
    await az('login', '--service-principal', '--username', app.clientId, '--password', SP_SECRET, '--tenant', app.tenantId);

    envFile = join(work, 'mi-anywhere.env');
    const launched = await launch(['--app-env', envFile, '--host-name', '127.0.0.1', '--address', '127.0.0.1', '--port', '0'], 'developer-identity');
    command = launched.command;
    output = launched.output;
  });

  after(async () => {
    await stop(command);
    await arm?.stop();
    await authority?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('az logged in through the custom cloud: the ARM stand-in listed subscriptions with an authority-issued token', () => {
    assert.ok(arm.calls().some((c) => c.path === '/subscriptions' && c.status === 200));
  });

  it('wrote an env file for the app containers: the App Service endpoint and the secret, readable by the user only', () => {
    const text = readFileSync(envFile, 'utf8');
    assert.match(text, /^IDENTITY_ENDPOINT=http:\/\/127\.0\.0\.1:\d+\/msi\/token$/m);
    assert.match(text, /^IDENTITY_HEADER=[0-9a-f]{48}$/m);
    assert.equal(statSync(envFile).mode & 0o077, 0);
  });

  for (const kind of ['managed', 'default'] as const) {
    it(`${kind === 'managed' ? 'ManagedIdentityCredential' : 'DefaultAzureCredential'} gets a token of the az login's identity`, async () => {
      const resource = `https://vault.azure.net/${kind}`;
      const answer = await sdkToken(envFile, `${resource}/.default`, kind);
      assert.equal(answer.ok, true, answer.message);
      const claims = decodeJwt(answer.token!);
      assert.equal(claims.appid, app.clientId, 'the token belongs to the service principal az logged in with');
      assert.equal(claims.aud, resource);
      // az fetched it with the stored service-principal secret (the sidecar has no credential of its own).
      const calls = authority.calls({ endpoint: 'token', clientId: app.clientId, status: 200 }).filter((c) => c.scope === `${resource}/.default`);
      assert.equal(calls.length, 1);
      assert.equal(calls[0]!.credentialType, 'secret');
    });
  }

  it('is served on every dialect like any other identity (on this loopback listener)', async () => {
    const env = Object.fromEntries(readFileSync(envFile, 'utf8').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    const base = new URL(env.IDENTITY_ENDPOINT!).origin;
    const resource = 'https://storage.azure.com/';
    const requests: Array<[string, string, RequestInit]> = [
      ['IMDS', `${base}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${resource}`, { headers: { Metadata: 'true' } }],
      ['App Service 2019', `${base}/msi/token?api-version=2019-08-01&resource=${resource}`, { headers: { 'X-IDENTITY-HEADER': env.IDENTITY_HEADER! } }],
      ['Azure ML (MSI_SECRET)', `${base}/oauth2/token?api-version=2017-09-01&resource=${resource}`, { headers: { secret: env.IDENTITY_HEADER! } }],
      ['Cloud Shell', `${base}/oauth2/token`, { method: 'POST', headers: { Metadata: 'true', 'content-type': 'application/x-www-form-urlencoded' }, body: `resource=${resource}` }],
    ];
    for (const [dialect, url, init] of requests) {
      const res = await fetch(url, init);
      const body = (await res.json()) as Record<string, string>;
      assert.equal(res.status, 200, `${dialect}: ${JSON.stringify(body)}`);
      assert.equal(decodeJwt(body.access_token!).appid, app.clientId, dialect);
    }
  });

  it('logs no token and no secret', () => {
    assert.ok(!output().includes(SP_SECRET));
    assert.ok(!/eyJ[\w-]{10,}\.[\w-]{10,}\./.test(output()));
  });

  it('bound to 0.0.0.0 as by default: App Service with the secret is served by --host-name, IMDS, Cloud Shell and Arc are refused, and so is an unknown Host', async () => {
    const wideEnvFile = join(work, 'wide.env');
    const hostName = 'host.docker.internal';
    const wide = await launch(['--app-env', wideEnvFile, '--host-name', hostName, '--port', '0'], 'developer-identity-wide');
    try {
      const env = Object.fromEntries(readFileSync(wideEnvFile, 'utf8').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      const endpoint = new URL(env.IDENTITY_ENDPOINT!);
      assert.equal(endpoint.hostname, hostName);
      const port = Number(endpoint.port);
      const resource = 'https://storage.azure.com/';
      // The containers' name for the host does not resolve here: connect to loopback and send it as Host.
      const ask = (path: string, headers: Record<string, string>, method = 'GET', body?: string) => rawRequest(port, method, path, { host: `${hostName}:${port}`, ...headers }, body);
      const served = await ask(`/msi/token?api-version=2019-08-01&resource=${resource}`, { 'X-IDENTITY-HEADER': env.IDENTITY_HEADER! });
      assert.equal(served.status, 200, served.body);
      assert.equal(decodeJwt((JSON.parse(served.body) as { access_token: string }).access_token).appid, app.clientId);
      const refused: Array<[string, Promise<{ status: number; body: string }>]> = [
        ['IMDS', ask(`/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${resource}`, { Metadata: 'true' })],
        ['Azure Arc', ask(`/metadata/identity/oauth2/token?api-version=2020-06-01&resource=${resource}`, { Metadata: 'true' })],
        ['Cloud Shell', ask('/oauth2/token', { Metadata: 'true', 'content-type': 'application/x-www-form-urlencoded' }, 'POST', `resource=${resource}`)],
      ];
      for (const [dialect, answer] of refused) {
        const { status, body } = await answer;
        assert.equal(status, 400, `${dialect}: ${body}`);
        assert.match(body, /serves only requests carrying the shared secret/, dialect);
      }
      const rebound = await rawRequest(port, 'GET', `/msi/token?api-version=2019-08-01&resource=${resource}`, { host: `evil.example:${port}`, 'X-IDENTITY-HEADER': env.IDENTITY_HEADER! });
      assert.equal(rebound.status, 403, rebound.body);
      assert.match(rebound.body, /is not a name of this sidecar/);
      assert.ok(!wide.output().includes(env.IDENTITY_HEADER!), 'the secret is written to the env file only');
    } finally {
      await stop(wide.command);
    }
  });
});
