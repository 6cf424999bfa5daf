/**
 * The test authority's own contract, spoken to directly over HTTPS (no msal): discovery documents, token
 * verification, every AADSTS answer with Entra's error fields, fault injection and the call log. The backends'
 * tests rely on all of this, so it is pinned here.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, randomUUID } from 'node:crypto';
import { request } from 'node:https';
import { SignJWT, createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { CLIENT_ASSERTION_TYPE, startTestAuthority, type RegisteredApp, type TestAuthority } from '../../authority/authority.ts';
import { createClientCertificate, type ClientCertificate } from '../../authority/pki.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

function call(authority: TestAuthority, method: 'GET' | 'POST', path: string, form?: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = form ? new URLSearchParams(form).toString() : undefined;
    const req = request(new URL(path, authority.url), { method, ca: authority.caPem, headers: body ? { 'content-type': 'application/x-www-form-urlencoded' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function certificateAssertion(
  authority: TestAuthority,
  app: RegisteredApp,
  cert: ClientCertificate,
  overrides: { aud?: string; iss?: string; exp?: number; header?: 'x5t' | 'x5t#S256'; alg?: 'PS256' | 'RS256' } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const header = overrides.header ?? 'x5t#S256';
  const thumb = Buffer.from(header === 'x5t' ? cert.thumbprintSha1 : cert.thumbprintSha256, 'hex').toString('base64url');
  const alg = overrides.alg ?? 'PS256';
  return new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg, typ: 'JWT', [header]: thumb })
    .setAudience(overrides.aud ?? `${authority.url}/${app.tenantId}/oauth2/v2.0/token`)
    .setIssuer(overrides.iss ?? app.clientId)
    .setSubject(overrides.iss ?? app.clientId)
    .setNotBefore(now - 60)
    .setExpirationTime(overrides.exp ?? now + 600)
    .sign(createPrivateKey(cert.keyPem));
}

describe('test authority', () => {
  let authority: TestAuthority;
  let app: RegisteredApp;
  let cert: ClientCertificate;
  let other: ClientCertificate;
  const tokenPath = (tenant = authority.tenantId): string => `/${tenant}/oauth2/v2.0/token`;
  const scope = 'https://vault.azure.net/.default';

  before(async () => {
    authority = await startTestAuthority({ tokenLifetimeSeconds: 1234 });
    cert = await createClientCertificate();
    other = await createClientCertificate();
    app = authority.registerApp({ secrets: [{ id: 'main', value: 'pa55' }], certificates: [cert.certPem] });
  });
  after(() => authority?.stop());

  it('publishes instance discovery, OIDC discovery and keys that verify its tokens', async () => {
    const instance = await call(authority, 'GET', `/common/discovery/instance?api-version=1.1&authorization_endpoint=${encodeURIComponent(`${authority.url}/${app.tenantId}/oauth2/v2.0/authorize`)}`);
    assert.equal(instance.status, 200);
    assert.equal(instance.body.tenant_discovery_endpoint, `${authority.url}/${app.tenantId}/v2.0/.well-known/openid-configuration`);
    const oidc = await call(authority, 'GET', `/${app.tenantId}/v2.0/.well-known/openid-configuration`);
    assert.equal(oidc.body.token_endpoint, `${authority.url}${tokenPath()}`);
    assert.equal(oidc.body.issuer, authority.issuer());
    const keys = await call(authority, 'GET', new URL(oidc.body.jwks_uri as string).pathname);
    const token = await call(authority, 'POST', tokenPath(), { grant_type: 'client_credentials', client_id: app.clientId, client_secret: 'pa55', scope });
    assert.equal(token.status, 200);
    assert.equal(token.body.token_type, 'Bearer');
    assert.equal(token.body.expires_in, 1234);
    const { payload, protectedHeader } = await jwtVerify(token.body.access_token as string, createLocalJWKSet(keys.body as unknown as JSONWebKeySet), {
      issuer: authority.issuer(),
      audience: 'https://vault.azure.net',
    });
    assert.equal(protectedHeader.alg, 'RS256');
    assert.equal(payload.appid, app.clientId);
    assert.equal(payload.azp, app.clientId);
    assert.equal(payload.oid, app.objectId);
    assert.equal(payload.tid, app.tenantId);
    assert.equal(payload.exp! - payload.iat!, 1234);
    assert.equal(payload.nbf, payload.iat);
  });

  it('accepts certificate assertions signed PS256 with x5t#S256 (msal-node) and RS256 with x5t (older clients)', async () => {
    for (const variant of [{ header: 'x5t#S256', alg: 'PS256' }, { header: 'x5t', alg: 'RS256' }] as const) {
      const answer = await call(authority, 'POST', tokenPath(), {
        grant_type: 'client_credentials',
        client_id: app.clientId,
        scope,
        client_assertion_type: CLIENT_ASSERTION_TYPE,
        client_assertion: await certificateAssertion(authority, app, cert, variant),
      });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
    }
    assert.equal(authority.calls({ endpoint: 'token', credentialType: 'certificate', status: 200 }).at(-1)?.credentialId, cert.thumbprintSha256);
  });

  const failures: ReadonlyArray<{ name: string; form: () => Promise<Record<string, string>>; tenant?: string; status: number; error: string; code: number }> = [
    { name: 'wrong grant type', form: async () => ({ grant_type: 'password', client_id: app.clientId, scope }), status: 400, error: 'unsupported_grant_type', code: 70003 },
    { name: 'missing client_id', form: async () => ({ grant_type: 'client_credentials', scope, client_secret: 'pa55' }), status: 400, error: 'invalid_request', code: 900144 },
    { name: 'scope without /.default', form: async () => ({ grant_type: 'client_credentials', client_id: app.clientId, client_secret: 'pa55', scope: 'https://vault.azure.net' }), status: 400, error: 'invalid_scope', code: 1002012 },
    { name: 'two scopes', form: async () => ({ grant_type: 'client_credentials', client_id: app.clientId, client_secret: 'pa55', scope: `${scope} https://graph.microsoft.com/.default` }), status: 400, error: 'invalid_scope', code: 1002012 },
    { name: 'unknown tenant', tenant: '0badbad0-2222-4000-8000-000000000000', form: async () => ({ grant_type: 'client_credentials', client_id: app.clientId, client_secret: 'pa55', scope }), status: 400, error: 'invalid_request', code: 90002 },
    { name: 'unknown app', form: async () => ({ grant_type: 'client_credentials', client_id: randomUUID(), client_secret: 'pa55', scope }), status: 400, error: 'unauthorized_client', code: 700016 },
    { name: 'wrong secret', form: async () => ({ grant_type: 'client_credentials', client_id: app.clientId, client_secret: 'nope', scope }), status: 401, error: 'invalid_client', code: 7000215 },
    { name: 'no credential', form: async () => ({ grant_type: 'client_credentials', client_id: app.clientId, scope }), status: 401, error: 'invalid_client', code: 7000218 },
    {
      name: 'assertion signed by an unregistered certificate',
      form: async () => ({ grant_type: 'client_credentials', client_id: app.clientId, scope, client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: await certificateAssertion(authority, app, other) }),
      status: 401,
      error: 'invalid_client',
      code: 700027,
    },
    {
      name: 'assertion for another audience',
      form: async () => ({ grant_type: 'client_credentials', client_id: app.clientId, scope, client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: await certificateAssertion(authority, app, cert, { aud: 'https://elsewhere.example/token' }) }),
      status: 401,
      error: 'invalid_client',
      code: 700027,
    },
    {
      name: 'expired assertion',
      form: async () => ({ grant_type: 'client_credentials', client_id: app.clientId, scope, client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: await certificateAssertion(authority, app, cert, { exp: Math.floor(Date.now() / 1000) - 3600 }) }),
      status: 401,
      error: 'invalid_client',
      code: 700024,
    },
    {
      name: 'assertion with the wrong assertion type',
      form: async () => ({ grant_type: 'client_credentials', client_id: app.clientId, scope, client_assertion_type: 'urn:other', client_assertion: await certificateAssertion(authority, app, cert) }),
      status: 400,
      error: 'invalid_request',
      code: 700023,
    },
  ];
  for (const tc of failures) {
    it(`answers ${tc.name} with ${tc.status} ${tc.error} AADSTS${tc.code} in Entra's error shape`, async () => {
      const answer = await call(authority, 'POST', tokenPath(tc.tenant), await tc.form());
      assert.equal(answer.status, tc.status);
      assert.equal(answer.body.error, tc.error);
      assert.deepEqual(answer.body.error_codes, [tc.code]);
      assert.match(answer.body.error_description as string, new RegExp(`^AADSTS${tc.code}: .+ Trace ID: [0-9a-f-]{36} Correlation ID: [0-9a-f-]{36} Timestamp: \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ$`));
      for (const field of ['timestamp', 'trace_id', 'correlation_id', 'error_uri']) assert.equal(typeof answer.body[field], 'string', field);
      assert.equal(authority.calls({ endpoint: 'token' }).at(-1)?.aadsts, `AADSTS${tc.code}`);
    });
  }

  it('injects 429 and 5xx with Retry-After for a number of requests, then answers normally', async () => {
    const form = { grant_type: 'client_credentials', client_id: app.clientId, client_secret: 'pa55', scope };
    authority.setFault({ status: 429, retryAfterSeconds: 17, times: 2 });
    const throttled = await call(authority, 'POST', tokenPath(), form);
    assert.equal(throttled.status, 429);
    assert.equal(throttled.headers['retry-after'], '17');
    assert.equal(throttled.body.error, 'temporarily_unavailable');
    assert.equal((await call(authority, 'POST', tokenPath(), form)).status, 429);
    assert.equal((await call(authority, 'POST', tokenPath(), form)).status, 200);
    authority.setFault({ status: 502 });
    assert.equal((await call(authority, 'POST', tokenPath(), form)).status, 502);
    assert.equal((await call(authority, 'GET', `/${app.tenantId}/v2.0/.well-known/openid-configuration`)).status, 200, 'token-scoped faults leave discovery alone');
    authority.setFault(undefined);
  });

  it('resets connections (one client only, or every endpoint for an outage)', async () => {
    const form = { grant_type: 'client_credentials', client_id: app.clientId, client_secret: 'pa55', scope };
    authority.setFault({ reset: true, clientId: app.clientId });
    await assert.rejects(call(authority, 'POST', tokenPath(), form), /ECONNRESET|socket hang up/);
    assert.equal((await call(authority, 'POST', tokenPath(), { ...form, client_id: randomUUID() })).status, 400, 'other clients are unaffected');
    authority.setFault({ reset: true, scope: 'all' });
    await assert.rejects(call(authority, 'GET', `/${app.tenantId}/v2.0/.well-known/openid-configuration`), /ECONNRESET|socket hang up/);
    authority.setFault(undefined);
    assert.equal(authority.calls({ endpoint: 'openid-configuration', status: 0 }).at(-1)?.fault, 'reset');
  });

  it('counts token calls per client and scope', async () => {
    authority.resetCalls();
    const form = { grant_type: 'client_credentials', client_id: app.clientId, client_secret: 'pa55' };
    await call(authority, 'POST', tokenPath(), { ...form, scope });
    await call(authority, 'POST', tokenPath(), { ...form, scope });
    await call(authority, 'POST', tokenPath(), { ...form, scope: 'https://graph.microsoft.com/.default' });
    assert.equal(authority.tokenCalls(app.clientId), 3);
    assert.equal(authority.tokenCalls(app.clientId, scope), 2);
    assert.equal(authority.calls({ credentialId: 'secret:main' }).length, 3);
  });
});
