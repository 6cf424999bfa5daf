/**
 * What the image's runtime stage holds, reproduced without a container engine: a clean directory with only the
 * build stage's dist/ (the bundles are self-contained: no node_modules anywhere above it), everything read-only
 * and owned by root; then both bundled programs start from it as the image's numeric user (65532) with Node 24:
 * the sidecar serves a dev token, and in entra mode tokens for a client-secret and a PKCS#12 identity from the
 * test authority (the lazily loaded chunks: Entra backend, PKCS#12 reader); the webhook answers an
 * AdmissionReview with a patch.
 */
import assert from 'node:assert/strict';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { node24, startSidecar, type SpawnedSidecar } from '../helpers/sidecar.ts';
import { buildInCopy, ENTRY_FILES, makeServingCertificate, run } from '../helpers/build-context.ts';
import { writeSecretDir } from '../helpers/kube-secret-dir.ts';
import { startTestAuthority } from '../authority/authority.ts';
import { createClientCertificate, toPfx } from '../authority/pki.ts';
import { PATHS } from '../../sidecar/contract.ts';
import { freePort } from '../helpers/ports.ts';
import { asImageUser, IMAGE_UID, imdsToken, optedInPod, processUid, reviewPod, startCompiledSidecar, startCompiledWebhook, type RunningWebhook } from '../helpers/programs.ts';
import { loopbackWebhookListeners } from '../helpers/webhook-env.ts';

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

describe('the runtime stage without an engine', () => {
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

  it('holds dist/ only: the bundles, their chunks, the module type and the licences', () => {
    assert.deepEqual(readdirSync(appDir), ['dist']);
    assert.deepEqual(readdirSync(join(appDir, 'dist')).sort(), ['LICENSE', 'THIRD-PARTY-NOTICES.md', 'package.json', 'sidecar', 'warm-compile-cache.js', 'webhook']);
    // No node_modules between the app directory and the root, either: nothing could resolve a package.
    for (let dir = appDir; dir !== dirname(dir); dir = dirname(dir)) assert.equal(existsSync(join(dir, 'node_modules')), false, dir);
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

  it('the bundled sidecar in entra mode gets tokens for a client-secret and a PKCS#12 identity from the test authority', async () => {
    // The CA file where the image's user can read it (the authority's own temporary directory is private).
    const authority = await startTestAuthority({ caFile: join(root, 'authority-ca.pem') });
    const identities = join(root, 'identities');
    let entra: SpawnedSidecar | undefined;
    try {
      const cert = await createClientCertificate({ commonName: 'pfx-app' });
      const secretApp = authority.registerApp({ secrets: ['s3cret-value'] });
      const pfxApp = authority.registerApp({ certificates: [cert.certPem] });
      writeSecretDir(identities, 'secret-app', { tenantId: secretApp.tenantId, clientId: secretApp.clientId, clientSecret: 's3cret-value' });
      writeSecretDir(identities, 'pfx-app', { tenantId: pfxApp.tenantId, clientId: pfxApp.clientId, 'certificate.pfx': toPfx(cert, { password: 'pw' }), 'certificate.pfx.password': 'pw' });
      makeReadOnly(identities);
      const [command = node24(), ...args] = [...asImageUser(), node24(), ENTRY_FILES.sidecar];
      entra = await startSidecar({
        command: [command, ...args],
        cwd: appDir,
        env: {
          HOME: '/nonexistent',
          MI_ANYWHERE_MODE: 'entra',
          MI_ANYWHERE_IDENTITY_DIR: identities,
          MI_ANYWHERE_DEFAULT_IDENTITY: 'secret-app',
          MI_ANYWHERE_AUTHORITY_HOST: authority.url,
          NODE_EXTRA_CA_CERTS: authority.caFile,
        },
      });
      for (const app of [secretApp, pfxApp]) {
        const url = `${entra.tokenUrl}${PATHS.imds}?api-version=2018-02-01&resource=${encodeURIComponent('https://vault.azure.net')}&client_id=${app.clientId}`;
        const response = await fetch(url, { headers: { Metadata: 'true' } });
        assert.equal(response.status, 200, `${app.clientId}: ${await response.clone().text()}\n${entra.logs()}`);
        assert.ok(((await response.json()) as { access_token?: string }).access_token);
        assert.ok(authority.calls({ endpoint: 'token', clientId: app.clientId, status: 200 }).length >= 1);
      }
    } finally {
      await entra?.stop();
      await authority.stop();
    }
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
        ...loopbackWebhookListeners({ port, healthPort, metricsPort }),
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
