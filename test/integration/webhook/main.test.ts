/**
 * The webhook program itself (`node webhook/main.ts`) in files mode: configuration errors exit 2 before
 * listening; readiness follows the certificate; a certificate rewritten on disk is served without a restart (and
 * the expiry metric follows); an unreachable API server makes `nativeSidecar: auto` fall back to the regular
 * container form; SIGTERM exits 0. (Self-managed mode runs against a real API server in test/e2e.)
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { SIDECAR_CONTAINER_NAME } from '../../../sidecar/contract.ts';
import { renewCertificates, type StoredCertificates } from '../../../webhook/cert/authority.ts';
import { applyPatch, decodePatch, listFixtures } from '../../helpers/admission-fixtures.ts';
import { collectChildOutput } from '../../helpers/collected-logs.ts';
import { freePort } from '../../helpers/ports.ts';
import { loopbackWebhookListeners } from '../../helpers/webhook-env.ts';

const REPO_ROOT = join(import.meta.dirname, '..', '..', '..');
const NAMES = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };
const POLICY = { certValidityDays: 2, certRenewBeforeDays: 1, caValidityDays: 3, caRenewBeforeDays: 1 };

async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

type Json = any;

function post(port: number, ca: string, body: string): Promise<{ fingerprint: string; json: Json }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ fingerprint, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function run(env: Record<string, string>): { child: ChildProcess; output: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'webhook', 'main.ts')], { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  collectChildOutput(child, 'webhook');
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (output += c));
  // 'close', not 'exit': the output is then fully read (assertions look at the last log lines).
  const exit = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, output: () => output, exit };
}

describe('webhook program (files mode)', () => {
  let dir: string;
  let a: StoredCertificates;
  let b: StoredCertificates;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mi-anywhere-webhook-main-'));
    a = await renewCertificates({ action: 'renew-ca', reason: 'a' }, { names: NAMES, policy: POLICY, now: Date.now() });
    b = await renewCertificates({ action: 'renew-serving', reason: 'b' }, { stored: a, names: NAMES, policy: { ...POLICY, certValidityDays: 1 }, now: Date.now() });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 2 and lists every configuration problem before listening', async () => {
    const { exit, output } = run({ MI_ANYWHERE_WEBHOOK_PORT: 'x', MI_ANYWHERE_WEBHOOK_CERT_MODE: 'self-managed' });
    assert.equal(await exit, 2);
    assert.match(output(), /MI_ANYWHERE_WEBHOOK_PORT: must be a number: a plain decimal integer \(got "x"\)/);
    assert.match(output(), /MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE is required/);
    assert.match(output(), /MI_ANYWHERE_WEBHOOK_NAMESPACE is required/);
  });

  it('a port in use: exit 1 with one line naming the address and the variables to change, no stack trace', async () => {
    writeFileSync(join(dir, 'busy.crt'), a.cert);
    writeFileSync(join(dir, 'busy.key'), a.key);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = String((blocker.address() as { port: number }).port);
    try {
      const { exit, output } = run({
        MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'example.com/mi-anywhere:1',
        MI_ANYWHERE_WEBHOOK_NATIVE_SIDECAR: 'always',
        MI_ANYWHERE_WEBHOOK_TLS_CERT_FILE: join(dir, 'busy.crt'),
        MI_ANYWHERE_WEBHOOK_TLS_KEY_FILE: join(dir, 'busy.key'),
        ...loopbackWebhookListeners({ port: Number(port), healthPort: 0, metricsPort: 0 }),
      });
      assert.equal(await exit, 1);
      assert.match(output(), new RegExp(`mi-anywhere webhook: cannot start: cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\); another process uses it — set MI_ANYWHERE_WEBHOOK_PORT`));
      assert.doesNotMatch(output(), /\n\s+at /, 'no stack trace');
    } finally {
      blocker.close();
    }
  });

  it('serves, reloads a rewritten certificate, falls back to regular sidecars, and stops on SIGTERM', async () => {
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    writeFileSync(certFile, a.cert);
    writeFileSync(keyFile, a.key);
    const kubeconfig = join(dir, 'kubeconfig');
    // An API server that is not there: version discovery fails, so "auto" must choose the regular form.
    writeFileSync(kubeconfig, JSON.stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'c', cluster: { server: `https://127.0.0.1:${await freePort()}` } }], users: [{ name: 'u', user: { token: 't' } }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], 'current-context': 'x' }));
    const [port, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    const { child, output, exit } = run({
      MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'img:1',
      ...loopbackWebhookListeners({ port, healthPort, metricsPort }),
      MI_ANYWHERE_WEBHOOK_TLS_CERT_FILE: certFile,
      MI_ANYWHERE_WEBHOOK_TLS_KEY_FILE: keyFile,
      MI_ANYWHERE_WEBHOOK_TLS_RELOAD_INTERVAL_SECONDS: '1',
      MI_ANYWHERE_WEBHOOK_KUBECONFIG: kubeconfig,
      MI_ANYWHERE_WEBHOOK_NATIVE_SIDECAR: 'auto',
    });
    try {
      await eventually(`readiness (output:\n${output()})`, async () => ((await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status === 200 ? true : undefined));
      const fixture = listFixtures().fixtures.find((f) => f.name === 'label-minimal');
      assert.ok(fixture);
      const review = fixture.review();
      const first = await post(port, a.caBundle, JSON.stringify(review));
      assert.equal(first.fingerprint, new X509Certificate(a.cert).fingerprint256);
      const mutated = applyPatch(review.request.object, decodePatch(first.json.response.patch)) as Json;
      assert.deepEqual(mutated.spec.containers.map((c: { name: string }) => c.name), [SIDECAR_CONTAINER_NAME, 'app'], 'regular sidecar placed first');
      assert.equal(mutated.spec.initContainers, undefined);
      assert.match(output(), /could not read the API server version; injecting regular sidecar containers/);

      writeFileSync(keyFile, b.key);
      writeFileSync(certFile, b.cert);
      const want = new X509Certificate(b.cert).fingerprint256;
      await eventually('the rewritten certificate being served', async () => ((await post(port, a.caBundle, '{}')).fingerprint === want ? true : undefined));
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.ok(metrics.includes(`mi_anywhere_webhook_certificate_expiry_timestamp_seconds ${Math.floor(Date.parse(new X509Certificate(b.cert).validTo) / 1000)}`));
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exit, 0);
    assert.match(output(), /"msg":"shutting down"/);
  });
});
