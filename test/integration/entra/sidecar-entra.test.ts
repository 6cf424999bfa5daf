/**
 * Entra mode end to end: the real sidecar process (`node sidecar/main.ts`) with identities in a kubelet-shaped
 * Secret directory, talking over HTTPS to the test authority (trusted through NODE_EXTRA_CA_CERTS, as a user would
 * trust a corporate proxy CA). Proves: each backend gets a token; wrong secret / wrong certificate / unmatched
 * federated token give the mapped 400 with AADSTS code and hint on the real endpoint; 500 concurrent cold requests
 * cause one upstream call; a Secret rotated mid-load (real `..data` symlink swap) causes zero failed requests and
 * the new credential is used; the federated token file is re-read on every exchange.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { startTestAuthority, type RegisteredApp, type TestAuthority } from '../../authority/authority.ts';
import { createClientCertificate, toPfx } from '../../authority/pki.ts';
import { startServiceAccountIssuer, type ServiceAccountIssuer } from '../../authority/service-account-issuer.ts';
import { node24, REPO_ROOT, startSidecar, type SpawnedSidecar } from '../../helpers/sidecar.ts';
import { spawn } from 'node:child_process';
import { rotateSecretDir, writeSecretDir } from '../../helpers/kube-secret-dir.ts';

const ARM = 'https://management.azure.com/';
const SA_SUBJECT = 'system:serviceaccount:apps:payments';
const SA_SUBJECT_ROTATED = 'system:serviceaccount:apps:payments-v2';

interface TokenAnswer {
  status: number;
  body: Record<string, string>;
}

async function imdsToken(sidecar: SpawnedSidecar, resource: string, clientId?: string): Promise<TokenAnswer> {
  const url = new URL('/metadata/identity/oauth2/token', sidecar.tokenUrl);
  url.searchParams.set('api-version', '2018-02-01');
  url.searchParams.set('resource', resource);
  if (clientId) url.searchParams.set('client_id', clientId);
  const res = await fetch(url, { headers: { Metadata: 'true' } });
  return { status: res.status, body: (await res.json()) as Record<string, string> };
}

/** Waits for a condition that depends on another process (no timing assertion: it only bounds the wait). */
async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`timed out waiting for: ${what}`);
}

describe('entra mode against the test authority', () => {
  let authority: TestAuthority;
  let issuer: ServiceAccountIssuer;
  let sidecar: SpawnedSidecar;
  let root: string;
  let tokenFile: string;
  const apps: Record<string, RegisteredApp> = {};

  before(async () => {
    authority = await startTestAuthority();
    issuer = await startServiceAccountIssuer();
    root = mkdtempSync(join(tmpdir(), 'mi-anywhere-entra-'));
    const identities = join(root, 'identities');
    tokenFile = join(root, 'sa-token');
    writeFileSync(tokenFile, await issuer.mint({ subject: SA_SUBJECT }));

    const goodCert = await createClientCertificate({ commonName: 'cert-app' });
    const strayCert = await createClientCertificate({ commonName: 'not registered' });
    apps.secret = authority.registerApp({ secrets: [{ id: 'old', value: 'old-secret-value' }, { id: 'new', value: 'new-secret-value' }] });
    apps.cert = authority.registerApp({ certificates: [goodCert.certPem] });
    const pfxCert = await createClientCertificate({ commonName: 'pfx-app' });
    apps.pfx = authority.registerApp({ certificates: [pfxCert.certPem] });
    const pfxPasswordCert = await createClientCertificate({ commonName: 'pfx-password-app' });
    apps.pfxPassword = authority.registerApp({ certificates: [pfxPasswordCert.certPem] });
    apps.fed = authority.registerApp({
      federatedCredentials: [
        { issuer: issuer.issuer, subject: SA_SUBJECT, jwksUri: issuer.jwksUri },
        { issuer: issuer.issuer, subject: SA_SUBJECT_ROTATED, jwksUri: issuer.jwksUri },
      ],
    });
    apps.badSecret = authority.registerApp({ secrets: ['the-right-one'] });
    apps.badCert = authority.registerApp({ certificates: [goodCert.certPem] });
    apps.badFed = authority.registerApp({ federatedCredentials: [{ issuer: issuer.issuer, subject: 'system:serviceaccount:other:app', jwksUri: issuer.jwksUri }] });

    const base = (app: RegisteredApp) => ({ tenantId: app.tenantId, clientId: app.clientId });
    writeSecretDir(identities, 'secret-app', { ...base(apps.secret), clientSecret: 'old-secret-value' });
    writeSecretDir(identities, 'cert-app', { ...base(apps.cert), 'tls.crt': goodCert.certPem, 'tls.key': goodCert.keyPem });
    writeSecretDir(identities, 'pfx-app', { ...base(apps.pfx), 'certificate.pfx': toPfx(pfxCert, { algorithm: '3des' }) });
    writeSecretDir(identities, 'pfx-password-app', {
      ...base(apps.pfxPassword),
      'certificate.pfx': toPfx(pfxPasswordCert, { password: 'pfx-passphrase-1' }),
      'certificate.pfx.password': 'pfx-passphrase-1\n',
    });
    writeSecretDir(identities, 'fed-app', base(apps.fed));
    writeSecretDir(identities, 'bad-secret', { ...base(apps.badSecret), clientSecret: 'a-wrong-one' });
    writeSecretDir(identities, 'bad-cert', { ...base(apps.badCert), 'tls.crt': strayCert.certPem, 'tls.key': strayCert.keyPem });
    writeSecretDir(identities, 'bad-fed', base(apps.badFed));

    sidecar = await startSidecar({
      args: [],
      env: {
        MI_ANYWHERE_MODE: 'entra',
        MI_ANYWHERE_IDENTITY_DIR: identities,
        MI_ANYWHERE_DEFAULT_IDENTITY: 'secret-app',
        MI_ANYWHERE_AUTHORITY_HOST: authority.url,
        MI_ANYWHERE_FEDERATED_TOKEN_FILE: tokenFile,
        NODE_EXTRA_CA_CERTS: authority.caFile,
      },
    });
  });

  after(async () => {
    await sidecar?.stop();
    await issuer?.stop();
    await authority?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('becomes ready once the default identity obtained a token', async () => {
    await eventually('readiness', async () => (await fetch(new URL('/readyz', sidecar.healthUrl))).status === 200);
    assert.ok(authority.calls({ endpoint: 'token', clientId: apps.secret!.clientId, status: 200 }).length >= 1);
  });

  const backends = [
    { name: 'client secret', app: 'secret', credentialType: 'secret' },
    { name: 'certificate', app: 'cert', credentialType: 'certificate' },
    { name: 'PKCS#12 certificate (certificate.pfx)', app: 'pfx', credentialType: 'certificate' },
    { name: 'password-protected PKCS#12 certificate (certificate.pfx + certificate.pfx.password)', app: 'pfxPassword', credentialType: 'certificate' },
    { name: 'federated service-account token', app: 'fed', credentialType: 'federated' },
  ] as const;
  for (const tc of backends) {
    it(`gets a real token with a ${tc.name}`, async () => {
      const app = apps[tc.app]!;
      const resource = `https://vault.azure.net/${tc.app}`;
      const answer = await imdsToken(sidecar, resource, app.clientId);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(answer.body.resource, resource);
      assert.equal(answer.body.client_id, app.clientId);
      const claims = decodeJwt(answer.body.access_token!);
      assert.equal(claims.aud, resource, 'scope was <resource>/.default and the authority stripped it back');
      assert.equal(claims.appid, app.clientId);
      assert.equal(claims.tid, app.tenantId);
      assert.equal(claims.iss, authority.issuer(app.tenantId));
      assert.equal(Number(answer.body.expires_on), claims.exp);
      const calls = authority.calls({ endpoint: 'token', clientId: app.clientId, scope: `${resource}/.default`, status: 200 });
      assert.equal(calls.length, 1);
      assert.equal(calls[0]!.credentialType, tc.credentialType);
    });
  }

  const rejections = [
    { name: 'wrong client secret', app: 'badSecret', aadsts: 'AADSTS7000215', hint: /secret's value \(not its ID\)/ },
    { name: 'certificate not registered on the app', app: 'badCert', aadsts: 'AADSTS700027', hint: /not registered on app/ },
    { name: 'federated token without a matching federated credential', app: 'badFed', aadsts: 'AADSTS700213', hint: /no federated credential/ },
  ] as const;
  for (const tc of rejections) {
    it(`answers 400 with ${tc.aadsts} and a hint for a ${tc.name}`, async () => {
      const answer = await imdsToken(sidecar, ARM, apps[tc.app]!.clientId);
      assert.equal(answer.status, 400);
      assert.ok(answer.body.error_description?.startsWith(`${tc.aadsts}: `), answer.body.error_description);
      assert.match(answer.body.error_description!, tc.hint);
      assert.ok(!answer.body.error_description!.includes('a-wrong-one'), 'never echoes the secret');
    });
  }

  it('turns 500 concurrent cold requests into exactly one upstream call', async () => {
    const resource = 'https://storage.azure.com/';
    const scope = `${resource}/.default`;
    const answers = await Promise.all(Array.from({ length: 500 }, () => imdsToken(sidecar, resource)));
    assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([200]));
    assert.equal(new Set(answers.map((a) => a.body.access_token)).size, 1);
    assert.equal(authority.tokenCalls(apps.secret!.clientId, scope), 1);
  });

  it('re-reads the federated token file on every exchange', async () => {
    writeFileSync(tokenFile, await issuer.mint({ subject: SA_SUBJECT_ROTATED }));
    const answer = await imdsToken(sidecar, 'https://database.windows.net/', apps.fed!.clientId);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const last = authority.calls({ endpoint: 'token', clientId: apps.fed!.clientId }).at(-1);
    assert.equal(last?.credentialId, `${issuer.issuer}|${SA_SUBJECT_ROTATED}`);
  });

  it('rotates a Secret mid-load with zero failed requests, and then uses the new credential', async () => {
    const failures: string[] = [];
    let served = 0;
    let stop = false;
    const worker = async (): Promise<void> => {
      while (!stop) {
        const answer = await imdsToken(sidecar, ARM);
        if (answer.status === 200) served++;
        else failures.push(`${answer.status} ${JSON.stringify(answer.body)}`);
      }
    };
    const workers = Array.from({ length: 8 }, () => worker());
    await eventually('load running', () => served > 50);
    rotateSecretDir(join(root, 'identities'), 'secret-app', { tenantId: apps.secret!.tenantId, clientId: apps.secret!.clientId, clientSecret: 'new-secret-value' });
    await eventually('the authority sees the new secret', () => authority.calls({ clientId: apps.secret!.clientId, credentialId: 'secret:new', status: 200 }).length > 0);
    // The old secret is now revoked in Entra, as an operator finishing a rotation would do.
    authority.updateApp(apps.secret!.clientId, { secrets: [{ id: 'new', value: 'new-secret-value' }] });
    const after = served;
    await eventually('load continues after rotation', () => served > after + 50);
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(failures, []);
    // A resource never asked before must now be fetched with the new secret.
    const fresh = await imdsToken(sidecar, 'https://graph.microsoft.com/');
    assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
    assert.equal(authority.calls({ endpoint: 'token', clientId: apps.secret!.clientId }).at(-1)?.credentialId, 'secret:new');
  });

  /** Runs an unmodified @azure/identity app (ManagedIdentityCredential) with only one profile's environment. */
  function runApp(profile: 'app-service' | 'pod-identity' | 'msi-secret', clientId?: string): Promise<{ ok: boolean; token?: string; error?: string }> {
    // In entra mode a configured header secret is printed as a reference to its variable, not as the value.
    const printed = Object.entries(sidecar.profiles.get(profile) ?? {}).map(([k, v]) => [k, v.startsWith('$') ? sidecar.identityHeader : v]);
    const env = { PATH: process.env.PATH ?? '', ...Object.fromEntries(printed) };
    const client = join(REPO_ROOT, 'test', 'helpers', 'mi-client.ts');
    return new Promise((resolve) => {
      const child = spawn(node24(), [client, 'https://management.azure.com/.default', ...(clientId ? [clientId] : [])], { env, cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.on('close', () => resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { ok: boolean; token?: string; error?: string }));
    });
  }

  for (const profile of ['app-service', 'pod-identity', 'msi-secret'] as const) {
    it(`serves an unmodified @azure/identity app through the ${profile} profile with real Entra tokens`, async () => {
      const system = await runApp(profile);
      assert.equal(system.ok, true, system.error);
      assert.equal(decodeJwt(system.token!).appid, apps.secret!.clientId);
      if (profile !== 'msi-secret') {
        const user = await runApp(profile, apps.cert!.clientId);
        assert.equal(user.ok, true, user.error);
        assert.equal(decodeJwt(user.token!).appid, apps.cert!.clientId);
        const rejected = await runApp(profile, apps.badSecret!.clientId);
        assert.equal(rejected.ok, false);
        assert.match(rejected.error!, /AADSTS7000215/);
      }
    });
  }

  it('keeps serving the last good identity when a Secret update is broken, and logs why', async () => {
    const before = await imdsToken(sidecar, 'https://vault.azure.net/cert', apps.cert!.clientId);
    assert.equal(before.status, 200);
    rotateSecretDir(join(root, 'identities'), 'cert-app', { tenantId: apps.cert!.tenantId, clientId: apps.cert!.clientId, 'tls.crt': 'garbage', 'tls.key': 'garbage' });
    await eventually('the broken update is reported', () => sidecar.logs().includes('identity update rejected'));
    const during = await imdsToken(sidecar, 'https://vault.azure.net/cert-again', apps.cert!.clientId);
    assert.equal(during.status, 200, JSON.stringify(during.body));
    assert.match(sidecar.logs(), /cert-app.*tls\.crt is not a PEM certificate/);
  });

  it('writes JSON log lines with one `level` key and no msal WARN line per upstream call', async () => {
    const lines = sidecar.logs().split('\n').filter((l) => l.startsWith('{'));
    assert.ok(lines.length > 0);
    for (const line of lines) assert.equal(line.match(/"level":/g)?.length, 1, line);
    assert.ok(!lines.some((l) => /No client info in response/.test(l)), 'msal\'s per-call client_info warning is dropped');
  });

  it('never logs a secret, a key or a token', async () => {
    const logs = sidecar.logs();
    assert.ok(!/PRIVATE KEY-----(\\n|\s)*MI/.test(logs), 'no PEM key material in the logs');
    for (const secret of ['old-secret-value', 'new-secret-value', 'a-wrong-one']) {
      assert.ok(!logs.includes(secret), `${secret} in: ${logs.split('\n').filter((l) => l.includes(secret)).join('\n').slice(0, 2000)}`);
    }
    assert.ok(!/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/.test(logs), 'no JWT in the logs');
  });

  it('exports the certificate expiry and the cache for metrics', async () => {
    const text = await (await fetch(new URL('/metrics', sidecar.metricsUrl))).text();
    assert.match(text, /mi_anywhere_credential_expiry_timestamp_seconds\{identity="cert-app",kind="certificate"\} \d{10}/);
    assert.match(text, /mi_anywhere_token_cache_entries [1-9]/);
  });
});
