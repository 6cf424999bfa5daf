/**
 * The msal-node token source against the test authority, in process (the CA reaches msal through the injected
 * network client, nothing process-wide): every credential kind, every mapped failure (status, AADSTS code, hint,
 * Retry-After, metrics outcome), and the cache in front of it riding out a real upstream outage.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestAuthority, type TestAuthority } from '../../authority/authority.ts';
import { createClientCertificate, type ClientCertificate } from '../../authority/pki.ts';
import { startServiceAccountIssuer, type ServiceAccountIssuer } from '../../authority/service-account-issuer.ts';
import { EntraTokenSource } from '../../../sidecar/token/entra-source.ts';
import { createHttpsNetworkClient } from '../../../sidecar/token/network-client.ts';
import { createEntraBackend } from '../../../sidecar/token/entra-backend.ts';
import type { CredentialMaterial, LoadedIdentity } from '../../../sidecar/identity/identity.ts';
import { credentialKindOf, fingerprint } from '../../../sidecar/identity/load.ts';
import { CredentialUnavailableError, SidecarError, UpstreamRejectedError, UpstreamUnavailableError } from '../../../sidecar/errors.ts';
import type { UpstreamOutcome } from '../../../sidecar/metrics.ts';

const RESOURCE = 'https://management.azure.com/';

function identity(name: string, app: { clientId: string; tenantId: string }, material: CredentialMaterial): LoadedIdentity {
  const kind = credentialKindOf(material);
  return {
    descriptor: { name, tenantId: app.tenantId, clientId: app.clientId, credentialKind: kind, isDefault: false },
    material,
    credentialFingerprint: fingerprint(material),
  };
}

describe('EntraTokenSource against the test authority', () => {
  let authority: TestAuthority;
  let issuer: ServiceAccountIssuer;
  let dir: string;
  let cert: ClientCertificate;
  let expiredCert: ClientCertificate;
  const outcomes: Array<[string, UpstreamOutcome]> = [];
  let source: EntraTokenSource;

  before(async () => {
    authority = await startTestAuthority();
    issuer = await startServiceAccountIssuer();
    dir = mkdtempSync(join(tmpdir(), 'mi-anywhere-entra-source-'));
    cert = await createClientCertificate();
    expiredCert = await createClientCertificate({ notBefore: new Date(Date.now() - 400 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    source = new EntraTokenSource({
      authorityHost: authority.url,
      networkClient: createHttpsNetworkClient({ ca: authority.caPem }),
      readFile: (p) => readFile(p, 'utf8'),
      nowMs: Date.now,
      onUpstream: (name, outcome) => outcomes.push([name, outcome]),
    });
  });

  after(async () => {
    await authority?.stop();
    await issuer?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('maps a resource to <resource>/.default and returns the token with its real expiry', async () => {
    const app = authority.registerApp({ secrets: ['s'] });
    const token = await source.getToken({ identity: identity('ok', app, { kind: 'secret', clientSecret: 's' }), resource: RESOURCE });
    assert.equal(token.resource, RESOURCE);
    assert.equal(token.clientId, app.clientId);
    assert.equal(authority.calls({ endpoint: 'token', clientId: app.clientId })[0]?.scope, `${RESOURCE}/.default`);
    const exp = JSON.parse(Buffer.from(token.accessToken.split('.')[1]!, 'base64url').toString()).exp as number;
    assert.ok(token.expiresOnSeconds <= exp, 'never later than the JWT exp');
    assert.ok(exp - token.expiresOnSeconds <= 5);
    assert.deepEqual(outcomes.at(-1), ['ok', 'success']);
  });

  it('accepts a PKCS#1 key (cert-manager default) for a certificate identity', async () => {
    const app = authority.registerApp({ certificates: [cert.certPem] });
    const { createPrivateKey } = await import('node:crypto');
    const pkcs1 = createPrivateKey(cert.keyPem).export({ type: 'pkcs1', format: 'pem' }).toString();
    await source.getToken({ identity: identity('pkcs1', app, { kind: 'certificate', certificatePem: cert.certPem, privateKeyPem: pkcs1 }), resource: RESOURCE });
    assert.equal(authority.calls({ endpoint: 'token', clientId: app.clientId, status: 200 })[0]?.credentialType, 'certificate');
  });

  interface RejectCase {
    readonly name: string;
    readonly setup: () => Promise<LoadedIdentity>;
    readonly status: number;
    readonly aadsts: string | undefined;
    readonly hint: RegExp;
    readonly outcome: UpstreamOutcome;
    readonly type?: new (...args: never[]) => SidecarError;
  }
  const cases: readonly RejectCase[] = [
    {
      name: 'invalid client secret',
      setup: async () => identity('s', authority.registerApp({ secrets: ['right'] }), { kind: 'secret', clientSecret: 'wrong' }),
      status: 400,
      aadsts: 'AADSTS7000215',
      hint: /invalid client secret/,
      outcome: 'invalid_client',
    },
    {
      name: 'expired certificate',
      setup: async () => identity('c', authority.registerApp({ certificates: [expiredCert.certPem] }), { kind: 'certificate', certificatePem: expiredCert.certPem, privateKeyPem: expiredCert.keyPem }),
      status: 400,
      aadsts: 'AADSTS700027',
      hint: /has expired/,
      outcome: 'invalid_client',
    },
    {
      name: 'certificate not registered on the app',
      setup: async () => identity('c2', authority.registerApp({ certificates: [expiredCert.certPem] }), { kind: 'certificate', certificatePem: cert.certPem, privateKeyPem: cert.keyPem }),
      status: 400,
      aadsts: 'AADSTS700027',
      hint: /not registered on app/,
      outcome: 'invalid_client',
    },
    {
      name: 'wrong tenant',
      setup: async () => identity('t', { clientId: authority.registerApp({ secrets: ['s'] }).clientId, tenantId: '0badbad0-0000-4000-8000-000000000000' }, { kind: 'secret', clientSecret: 's' }),
      status: 400,
      aadsts: 'AADSTS90002',
      hint: /tenant 0badbad0-0000-4000-8000-000000000000 was not found/,
      outcome: 'invalid_request',
    },
    {
      name: 'application not found',
      setup: async () => identity('a', { clientId: '0badbad0-1111-4000-8000-000000000000', tenantId: authority.tenantId }, { kind: 'secret', clientSecret: 's' }),
      status: 400,
      aadsts: 'AADSTS700016',
      hint: /was not found in tenant/,
      outcome: 'unauthorized_client',
    },
    {
      name: 'federated token from an untrusted issuer',
      setup: async () => {
        const app = authority.registerApp({ federatedCredentials: [{ issuer: 'https://other-cluster.example', subject: 'system:serviceaccount:default:app', jwksUri: issuer.jwksUri }] });
        const file = join(dir, 'untrusted');
        writeFileSync(file, await issuer.mint());
        return identity('f1', app, { kind: 'federated', tokenFile: file, audience: 'api://AzureADTokenExchange' });
      },
      status: 400,
      aadsts: 'AADSTS700211',
      hint: /issuer/,
      outcome: 'invalid_client',
    },
    {
      name: 'forged federated token (signature does not verify)',
      setup: async () => {
        const app = authority.registerApp({ federatedCredentials: [{ issuer: issuer.issuer, subject: 'system:serviceaccount:default:app', jwksUri: issuer.jwksUri }] });
        const file = join(dir, 'forged');
        writeFileSync(file, await issuer.mint({ forged: true }));
        return identity('f2', app, { kind: 'federated', tokenFile: file, audience: 'api://AzureADTokenExchange' });
      },
      status: 400,
      aadsts: 'AADSTS50013',
      hint: /signature validation/,
      outcome: 'invalid_client',
    },
    {
      name: 'federated token with the wrong audience',
      setup: async () => {
        const app = authority.registerApp({ federatedCredentials: [{ issuer: issuer.issuer, subject: 'system:serviceaccount:default:app', jwksUri: issuer.jwksUri }] });
        const file = join(dir, 'audience');
        writeFileSync(file, await issuer.mint({ audience: 'https://kubernetes.default.svc' }));
        // The identity is configured for the token's audience, but Entra's credential expects the default one.
        return identity('f3', app, { kind: 'federated', tokenFile: file, audience: 'https://kubernetes.default.svc' });
      },
      status: 400,
      aadsts: 'AADSTS700212',
      hint: /audience/,
      outcome: 'invalid_client',
    },
    {
      name: 'expired federated token',
      setup: async () => {
        const app = authority.registerApp({ federatedCredentials: [{ issuer: issuer.issuer, subject: 'system:serviceaccount:default:app', jwksUri: issuer.jwksUri }] });
        const file = join(dir, 'expired');
        writeFileSync(file, await issuer.mint({ lifetimeSeconds: -600 }));
        return identity('f4', app, { kind: 'federated', tokenFile: file, audience: 'api://AzureADTokenExchange' });
      },
      status: 400,
      aadsts: 'AADSTS700024',
      hint: /validity window/,
      outcome: 'invalid_client',
    },
    {
      name: 'projected token for another audience than the identity expects (caught before the exchange)',
      setup: async () => {
        const file = join(dir, 'local-audience');
        writeFileSync(file, await issuer.mint({ audience: 'https://kubernetes.default.svc' }));
        return identity('f6', authority.registerApp({}), { kind: 'federated', tokenFile: file, audience: 'api://AzureADTokenExchange' });
      },
      status: 400,
      aadsts: undefined,
      hint: /project the token with that audience/,
      outcome: 'invalid_client',
      type: CredentialUnavailableError,
    },
    {
      name: 'federated token file missing',
      setup: async () => identity('f5', authority.registerApp({}), { kind: 'federated', tokenFile: join(dir, 'does-not-exist'), audience: 'api://AzureADTokenExchange' }),
      status: 400,
      aadsts: undefined,
      hint: /not readable/,
      outcome: 'invalid_client',
      type: CredentialUnavailableError,
    },
  ];
  for (const tc of cases) {
    it(`maps ${tc.name} to ${tc.status}${tc.aadsts ? ` ${tc.aadsts}` : ''}`, async () => {
      const id = await tc.setup();
      const error = await source.getToken({ identity: id, resource: RESOURCE }).then(
        () => assert.fail('expected a rejection'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof (tc.type ?? UpstreamRejectedError), String(error));
      assert.equal(error.httpStatus, tc.status);
      if (tc.aadsts) assert.ok(error.message.startsWith(`${tc.aadsts}: `), error.message);
      assert.match(error.message, tc.hint);
      assert.deepEqual(outcomes.at(-1), [id.descriptor.name, tc.outcome]);
    });
  }

  const unavailable = [
    { name: '503 with Retry-After', fault: { status: 503, retryAfterSeconds: 7 }, retryAfter: 7, outcome: 'server_error' },
    { name: '500 without Retry-After', fault: { status: 500 }, retryAfter: undefined, outcome: 'server_error' },
    { name: '429 throttling', fault: { status: 429, retryAfterSeconds: 30 }, retryAfter: 30, outcome: 'throttled' },
    { name: 'connection reset on the token endpoint', fault: { reset: true }, retryAfter: undefined, outcome: 'network_error' },
    { name: 'full outage (every endpoint resets)', fault: { reset: true, scope: 'all' as const }, retryAfter: undefined, outcome: 'network_error' },
  ] as const;
  for (const tc of unavailable) {
    it(`maps ${tc.name} to 503${tc.retryAfter ? ` + Retry-After ${tc.retryAfter}` : ''}, and recovers right after`, async (t) => {
      t.after(() => authority.setFault(undefined));
      const app = authority.registerApp({ secrets: ['s'] });
      const id = identity(`u-${tc.outcome}`, app, { kind: 'secret', clientSecret: 's' });
      authority.setFault(tc.fault);
      const error = await source.getToken({ identity: id, resource: RESOURCE }).then(
        () => assert.fail('expected a rejection'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof UpstreamUnavailableError, String(error));
      assert.equal(error.httpStatus, 503);
      assert.equal(error.retryAfterSeconds, tc.retryAfter);
      assert.deepEqual(outcomes.at(-1), [id.descriptor.name, tc.outcome]);
      authority.setFault(undefined);
      // msal's own 60-second throttling memory must not block the next attempt: the sidecar owns backoff.
      await source.getToken({ identity: id, resource: RESOURCE });
    });
  }

  it('serves cached tokens through an upstream outage and picks up a fresh token after it', async (t) => {
    t.after(() => authority.setFault(undefined));
    const app = authority.registerApp({ secrets: ['s'] });
    const backend = createEntraBackend({
      authorityHost: authority.url,
      networkClient: createHttpsNetworkClient({ ca: authority.caPem }),
      readFile: (p) => readFile(p, 'utf8'),
      nowMs: Date.now,
    });
    t.after(() => backend.close());
    const id = identity('cached', app, { kind: 'secret', clientSecret: 's' });
    const first = await backend.source.getToken({ identity: id, resource: RESOURCE });
    authority.setFault({ reset: true, scope: 'all' });
    const during = await Promise.all(Array.from({ length: 50 }, () => backend.source.getToken({ identity: id, resource: RESOURCE })));
    assert.ok(during.every((tok) => tok.accessToken === first.accessToken));
    authority.setFault(undefined);
    // A credential change (rotation) invalidates the entry: the next request goes upstream with the new identity.
    const rotatedApp = { ...id, credentialFingerprint: 'rotated' };
    backend.applyChanges([{ name: 'cached', previous: id, next: rotatedApp, credentialChanged: true }]);
    const afterRotation = await backend.source.getToken({ identity: rotatedApp, resource: RESOURCE });
    assert.notEqual(afterRotation.accessToken, first.accessToken);
    assert.equal(authority.calls({ endpoint: 'token', clientId: app.clientId, status: 200 }).length, 2);
  });

  it('never writes the secret into an error', async () => {
    const app = authority.registerApp({ secrets: ['right'] });
    const secret = 'super-secret-value-that-must-not-leak';
    const error = await source.getToken({ identity: identity('leak', app, { kind: 'secret', clientSecret: secret }), resource: RESOURCE }).catch((e: unknown) => e);
    assert.ok(error instanceof SidecarError);
    assert.ok(!JSON.stringify({ m: error.message, s: String(error.stack) }).includes(secret));
    assert.ok(!readFileSync(authority.caFile, 'utf8').includes(secret));
  });
});
