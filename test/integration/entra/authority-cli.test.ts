/**
 * The test authority as a process (what the compatibility, metrics and benchmark suites use): start the CLI, steer
 * it through `/_test/*`, and let an unmodified `@azure/identity` in a child process (trusting the CA only through
 * NODE_EXTRA_CA_CERTS) get tokens with a client secret and with a workload-identity federated token, and see the
 * injected faults.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { node24, REPO_ROOT } from '../../helpers/sidecar.ts';
import type { CallRecord } from '../../authority/authority.ts';

interface CliInfo {
  url: string;
  tenantId: string;
  caFile: string;
  apps: Array<{ clientId: string; tenantId: string }>;
  serviceAccountIssuer: { issuer: string; jwksUri: string };
}

function admin<T>(info: CliInfo, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, info.url), { method, ca: readFileSync(info.caFile, 'utf8'), headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') as T }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Runs @azure/identity in a child Node process that trusts the authority's CA via NODE_EXTRA_CA_CERTS only. */
function runIdentityClient(info: CliInfo, env: Record<string, string>, script: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(node24(), ['--input-type=module', '-e', script], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', NODE_EXTRA_CA_CERTS: info.caFile, AZURE_AUTHORITY_HOST: info.url, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const SECRET_CLIENT = `
import { ClientSecretCredential } from '@azure/identity';
const cred = new ClientSecretCredential(process.env.TENANT, process.env.CLIENT, process.env.SECRET, { disableInstanceDiscovery: true });
try { const t = await cred.getToken('https://management.azure.com/.default'); console.log(JSON.stringify({ ok: true, token: t.token })); }
catch (e) { console.log(JSON.stringify({ ok: false, message: e.message })); }
`;

const WORKLOAD_CLIENT = `
import { WorkloadIdentityCredential } from '@azure/identity';
const cred = new WorkloadIdentityCredential({ tenantId: process.env.TENANT, clientId: process.env.CLIENT, tokenFilePath: process.env.TOKEN_FILE, disableInstanceDiscovery: true });
try { const t = await cred.getToken('https://vault.azure.net/.default'); console.log(JSON.stringify({ ok: true, token: t.token })); }
catch (e) { console.log(JSON.stringify({ ok: false, message: e.message })); }
`;

describe('test authority CLI', () => {
  let child: ChildProcess;
  let info: CliInfo;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mi-anywhere-authority-cli-'));
    const config = join(dir, 'apps.json');
    writeFileSync(config, JSON.stringify({ apps: [{ secrets: ['from-config-file'] }] }));
    child = spawn(node24(), ['test/authority/main.ts', '--service-account-issuer', '--config', config], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout! });
    info = await new Promise<CliInfo>((resolve, reject) => {
      lines.once('line', (line) => resolve(JSON.parse(line) as CliInfo));
      child.once('exit', (code) => reject(new Error(`authority CLI exited early with ${code}`)));
    });
  });

  after(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('prints where it listens and registers the apps of --config', () => {
    assert.match(info.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(info.apps.length, 1);
    assert.ok(readFileSync(info.caFile, 'utf8').includes('BEGIN CERTIFICATE'));
  });

  it('issues a token to @azure/identity ClientSecretCredential in a child process', async () => {
    const app = info.apps[0]!;
    const ok = await runIdentityClient(info, { TENANT: app.tenantId, CLIENT: app.clientId, SECRET: 'from-config-file' }, SECRET_CLIENT);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).ok, true, ok.stdout);
    const bad = await runIdentityClient(info, { TENANT: app.tenantId, CLIENT: app.clientId, SECRET: 'wrong' }, SECRET_CLIENT);
    const answer = JSON.parse(bad.stdout) as { ok: boolean; message: string };
    assert.equal(answer.ok, false);
    assert.match(answer.message, /AADSTS7000215/);
  });

  it('exchanges a minted service-account token with @azure/identity WorkloadIdentityCredential', async () => {
    const subject = 'system:serviceaccount:ns:cli';
    const registered = await admin<{ clientId: string; tenantId: string }>(info, 'POST', '/_test/apps', {
      federatedCredentials: [{ issuer: info.serviceAccountIssuer.issuer, subject, jwksUri: info.serviceAccountIssuer.jwksUri }],
    });
    assert.equal(registered.status, 201);
    const minted = (await (await fetch(new URL('/_test/mint', info.serviceAccountIssuer.issuer), { method: 'POST', body: JSON.stringify({ subject }) })).json()) as { token: string };
    const tokenFile = join(dir, 'sa-token');
    writeFileSync(tokenFile, minted.token);
    const run = await runIdentityClient(info, { TENANT: registered.body.tenantId, CLIENT: registered.body.clientId, TOKEN_FILE: tokenFile }, WORKLOAD_CLIENT);
    assert.equal(JSON.parse(run.stdout).ok, true, run.stdout + run.stderr);
  });

  it('injects faults and counts calls through /_test', async () => {
    const app = info.apps[0]!;
    assert.equal((await admin(info, 'DELETE', '/_test/calls')).status, 200);
    await admin(info, 'PUT', '/_test/fault', { status: 503, retryAfterSeconds: 1, times: 100 });
    const failed = await runIdentityClient(info, { TENANT: app.tenantId, CLIENT: app.clientId, SECRET: 'from-config-file' }, SECRET_CLIENT);
    assert.equal(JSON.parse(failed.stdout).ok, false);
    await admin(info, 'DELETE', '/_test/fault');
    const calls = (await admin<CallRecord[]>(info, 'GET', '/_test/calls')).body.filter((c) => c.endpoint === 'token');
    assert.ok(calls.length >= 1);
    assert.ok(calls.every((c) => c.status === 503 && c.fault === 'status-503'));
  });
});
