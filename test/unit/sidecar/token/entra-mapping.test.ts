/**
 * Pure pieces of the Entra backend: scope and authority rules, the error mapping table (AADSTS code → status,
 * hint, metrics outcome), Retry-After parsing, and credential material → msal credential settings.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { AuthError, ServerError } from '@azure/msal-node';
import { UnsecuredJWT } from 'jose';
import { authorityFor, resourceToScope } from '../../../../sidecar/token/authority.ts';
import { mapUpstreamFailure, type UpstreamObservation } from '../../../../sidecar/token/entra-errors.ts';
import { observingNetworkClient, observations, parseRetryAfter, UpstreamHttpError, UpstreamTransportError } from '../../../../sidecar/token/network-client.ts';
import { buildClientCredential, credentialExpirySeconds } from '../../../../sidecar/token/client-credential.ts';
import { CredentialUnavailableError, UpstreamRejectedError, UpstreamUnavailableError } from '../../../../sidecar/errors.ts';
import { createClientCertificate } from '../../../authority/pki.ts';

describe('resourceToScope', () => {
  const cases = [
    { resource: 'https://management.azure.com/', want: 'https://management.azure.com//.default' },
    { resource: 'https://management.azure.com', want: 'https://management.azure.com/.default' },
    { resource: 'api://my-app', want: 'api://my-app/.default' },
    { resource: '00000003-0000-0000-c000-000000000000', want: '00000003-0000-0000-c000-000000000000/.default' },
    { resource: 'https://vault.azure.net/.default', want: 'https://vault.azure.net/.default' },
  ];
  for (const tc of cases) it(`${tc.resource} → ${tc.want}`, () => assert.equal(resourceToScope(tc.resource), tc.want));
});

describe('authorityFor', () => {
  const cases = [
    { host: 'https://login.microsoftonline.com', want: { authority: 'https://login.microsoftonline.com/t1', knownAuthorities: [] } },
    { host: 'https://login.microsoftonline.us/', want: { authority: 'https://login.microsoftonline.us/t1', knownAuthorities: [] } },
    { host: 'https://login.chinacloudapi.cn', want: { authority: 'https://login.chinacloudapi.cn/t1', knownAuthorities: [] } },
    { host: 'https://127.0.0.1:8443', want: { authority: 'https://127.0.0.1:8443/t1', knownAuthorities: ['127.0.0.1:8443'] } },
    { host: 'https://login.example.org/prefix/', want: { authority: 'https://login.example.org/prefix/t1', knownAuthorities: ['login.example.org'] } },
  ];
  for (const tc of cases) it(tc.host, () => assert.deepEqual(authorityFor(tc.host, 't1'), tc.want));
  it('refuses plain http (msal and the Azure SDKs do too)', () => assert.throws(() => authorityFor('http://127.0.0.1:8080', 't1'), /https/));
});

describe('parseRetryAfter', () => {
  const now = Date.UTC(2026, 0, 1, 12, 0, 0);
  const cases = [
    { value: undefined, want: undefined },
    { value: '', want: undefined },
    { value: '30', want: 30 },
    { value: ' 5 ', want: 5 },
    { value: new Date(now + 90_000).toUTCString(), want: 90 },
    { value: new Date(now - 90_000).toUTCString(), want: 0 },
    { value: 'soon', want: undefined },
  ];
  for (const tc of cases) it(JSON.stringify(tc.value), () => assert.equal(parseRetryAfter(tc.value, now), tc.want));
});

describe('mapUpstreamFailure', () => {
  const ctx = { identity: 'payments', tenantId: 'tenant-1', clientId: 'client-1' };
  const server = (error: string, code: number, description: string, status = 400): ServerError =>
    new ServerError(error, '', `Error(s): ${code} - Timestamp: x - Description: AADSTS${code}: ${description}`, undefined, String(code), status);
  const cases: ReadonlyArray<{
    name: string;
    error: unknown;
    observation?: UpstreamObservation;
    status: number;
    message: RegExp;
    outcome: string;
    retryAfter?: number;
  }> = [
    { name: 'invalid secret', error: server('invalid_client', 7000215, 'Invalid client secret provided.', 401), status: 400, message: /^AADSTS7000215: invalid client secret for app client-1/, outcome: 'invalid_client' },
    { name: 'expired secret', error: server('invalid_client', 7000222, 'The provided client secret keys are expired.', 401), status: 400, message: /^AADSTS7000222: .*has expired/, outcome: 'invalid_client' },
    { name: 'expired certificate', error: server('invalid_client', 700027, 'Client assertion failed signature validation. [Reason - The key used is expired.]', 401), status: 400, message: /certificate of identity "payments" has expired/, outcome: 'invalid_client' },
    { name: 'unknown certificate', error: server('invalid_client', 700027, '[Reason - The key was not found.]', 401), status: 400, message: /not registered on app client-1/, outcome: 'invalid_client' },
    { name: 'app not found', error: server('unauthorized_client', 700016, 'Application not found'), status: 400, message: /^AADSTS700016: app client-1 was not found in tenant tenant-1/, outcome: 'unauthorized_client' },
    { name: 'missing federated credential', error: server('invalid_client', 700213, 'No matching federated identity record found'), status: 400, message: /^AADSTS700213: no federated credential/, outcome: 'invalid_client' },
    { name: 'federated (70021, invalid_grant)', error: server('invalid_grant', 70021, 'No matching federated identity record found'), status: 400, message: /^AADSTS70021: /, outcome: 'invalid_grant' },
    { name: 'invalid scope', error: server('invalid_scope', 1002012, 'scope not valid'), status: 400, message: /requested scope/, outcome: 'invalid_request' },
    { name: 'unknown AADSTS code still carries the code', error: server('invalid_request', 9999999, 'Something new'), status: 400, message: /^AADSTS9999999: Entra ID rejected the credential of identity "payments"/, outcome: 'invalid_request' },
    {
      name: 'wrong tenant seen only by discovery',
      error: new AuthError('endpoints_resolution_error', '', 'Endpoints cannot be resolved'),
      observation: { http: { status: 400, retryAfterSeconds: undefined, body: { error: 'invalid_request', errorCodes: [90002], description: "AADSTS90002: Tenant 'x' not found." } } },
      status: 400,
      message: /^AADSTS90002: tenant tenant-1 was not found/,
      outcome: 'invalid_request',
    },
    {
      name: '503 with Retry-After',
      error: new UpstreamHttpError(503),
      observation: { http: { status: 503, retryAfterSeconds: 12, body: { error: 'temporarily_unavailable', errorCodes: [90033] } } },
      status: 503,
      message: /answered HTTP 503 \(AADSTS90033\)/,
      outcome: 'server_error',
      retryAfter: 12,
    },
    {
      name: '429 keeps Retry-After',
      error: new UpstreamHttpError(429),
      observation: { http: { status: 429, retryAfterSeconds: 60, body: undefined } },
      status: 503,
      message: /throttled/,
      outcome: 'throttled',
      retryAfter: 60,
    },
    { name: 'connection refused', error: new UpstreamTransportError('ECONNREFUSED'), observation: { transport: { code: 'ECONNREFUSED' } }, status: 503, message: /unreachable \(ECONNREFUSED\)/, outcome: 'network_error' },
    { name: 'discovery unreachable', error: new AuthError('endpoints_resolution_error', ''), observation: { transport: { code: 'ENOTFOUND' } }, status: 503, message: /unreachable \(ENOTFOUND\)/, outcome: 'network_error' },
    { name: 'credential problem raised by our callback passes through', error: new CredentialUnavailableError('token file missing'), status: 400, message: /token file missing/, outcome: 'invalid_client' },
    { name: 'anything else is a retryable 503', error: new Error('boom'), status: 503, message: /failed; retry later/, outcome: 'other' },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const mapped = mapUpstreamFailure(tc.error, tc.observation ?? {}, ctx);
      assert.equal(mapped.error.httpStatus, tc.status);
      assert.match(mapped.error.message, tc.message);
      assert.equal(mapped.outcome, tc.outcome);
      assert.equal(mapped.error.retryAfterSeconds, tc.retryAfter);
      if (tc.status === 400 && !(tc.error instanceof CredentialUnavailableError)) assert.ok(mapped.error instanceof UpstreamRejectedError);
      if (tc.status === 503) assert.ok(mapped.error instanceof UpstreamUnavailableError);
    });
  }
});

describe('observingNetworkClient', () => {
  const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => ({
    sendGetRequestAsync: async <T>() => ({ status, body: body as T, headers }),
    sendPostRequestAsync: async <T>() => ({ status, body: body as T, headers }),
  });

  it('passes 2xx through and records nothing', async () => {
    const slot: UpstreamObservation = {};
    const client = observingNetworkClient(answer(200, { access_token: 'x' }), () => 0);
    const res = await observations.run(slot, () => client.sendPostRequestAsync('https://h/t/oauth2/v2.0/token'));
    assert.equal(res.status, 200);
    assert.deepEqual(slot, {});
  });

  it('records a 4xx OAuth error and lets msal parse it', async () => {
    const slot: UpstreamObservation = {};
    const client = observingNetworkClient(answer(401, { error: 'invalid_client', error_codes: [7000215], error_description: 'AADSTS7000215: x' }), () => 0);
    const res = await observations.run(slot, () => client.sendPostRequestAsync('https://h/t/oauth2/v2.0/token'));
    assert.equal(res.status, 401);
    assert.equal(slot.http?.body?.errorCodes?.[0], 7000215);
  });

  it('turns a token-endpoint 5xx into an error msal rethrows, with Retry-After recorded', async () => {
    const slot: UpstreamObservation = {};
    const client = observingNetworkClient(answer(503, '<html>busy</html>', { 'retry-after': '9' }), () => 0);
    await assert.rejects(observations.run(slot, () => client.sendPostRequestAsync('https://h/t/oauth2/v2.0/token')), UpstreamHttpError);
    assert.equal(slot.http?.retryAfterSeconds, 9);
  });

  it('records transport errors by code', async () => {
    const slot: UpstreamObservation = {};
    const failing = {
      sendGetRequestAsync: async () => Promise.reject(Object.assign(new Error('reset'), { code: 'ECONNRESET' })),
      sendPostRequestAsync: async () => Promise.reject(Object.assign(new Error('reset'), { code: 'ECONNRESET' })),
    };
    const client = observingNetworkClient(failing, () => 0);
    await assert.rejects(observations.run(slot, () => client.sendGetRequestAsync('https://h/t/v2.0/.well-known/openid-configuration')), UpstreamTransportError);
    assert.equal(slot.transport?.code, 'ECONNRESET');
  });
});

describe('buildClientCredential', () => {
  it('secret: passes the secret to msal', () => {
    assert.deepEqual(buildClientCredential({ kind: 'secret', clientSecret: 'x' }, async () => ''), { clientSecret: 'x' });
  });

  it('certificate: SHA-256 thumbprint, PKCS#8 key, PEM chain as x5c; expiry = notAfter', async () => {
    const cert = await createClientCertificate();
    const built = buildClientCredential({ kind: 'certificate', certificatePem: cert.certPem, privateKeyPem: cert.keyPem }, async () => '');
    assert.ok('clientCertificate' in built);
    assert.equal(built.clientCertificate.thumbprintSha256, cert.thumbprintSha256);
    assert.match(built.clientCertificate.privateKey, /^-----BEGIN PRIVATE KEY-----/);
    assert.equal(built.clientCertificate.x5c, cert.certPem);
    assert.equal(credentialExpirySeconds({ kind: 'certificate', certificatePem: cert.certPem, privateKeyPem: cert.keyPem }), Math.floor(cert.notAfter.getTime() / 1000));
    assert.equal(credentialExpirySeconds({ kind: 'secret', clientSecret: 'x' }), undefined);
  });

  const bad: ReadonlyArray<{ name: string; material: () => Promise<Parameters<typeof buildClientCredential>[0]>; message: RegExp }> = [
    {
      name: 'key of another certificate',
      material: async () => ({ kind: 'certificate', certificatePem: (await createClientCertificate()).certPem, privateKeyPem: (await createClientCertificate()).keyPem }),
      message: /does not belong to the certificate/,
    },
    {
      name: 'EC key',
      material: async () => ({
        kind: 'certificate',
        certificatePem: (await createClientCertificate()).certPem,
        privateKeyPem: createPrivateKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' })).export({ type: 'pkcs8', format: 'pem' }).toString(),
      }),
      message: /RSA certificates only/,
    },
    { name: 'garbage PEM', material: async () => ({ kind: 'certificate', certificatePem: '-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----', privateKeyPem: 'x' }), message: /not valid PEM/ },
    { name: 'dev', material: async () => ({ kind: 'dev' }), message: /dev issuer/ },
  ];
  for (const tc of bad) {
    it(`refuses ${tc.name} with a clear CredentialUnavailableError`, async () => {
      const material = await tc.material();
      assert.throws(() => buildClientCredential(material, async () => ''), (e: unknown) => e instanceof CredentialUnavailableError && tc.message.test(e.message));
    });
  }

  it('federated: re-reads the token file on every call, refuses an empty one or one for another audience', async () => {
    const jwt = (aud: string, sub: string) => new UnsecuredJWT({}).setAudience([aud]).setSubject(sub).encode();
    const contents = [`${jwt('api://AzureADTokenExchange', 'one')}\n`, jwt('api://AzureADTokenExchange', 'two'), '  ', jwt('https://kubernetes.default.svc', 'three'), 'not-a-jwt'];
    const reads: string[] = [];
    const built = buildClientCredential({ kind: 'federated', tokenFile: '/var/run/secrets/azure/tokens/azure-identity-token', audience: 'api://AzureADTokenExchange' }, async (p) => {
      reads.push(p);
      return contents[reads.length - 1] ?? '';
    });
    assert.ok('clientAssertion' in built);
    const config = { clientId: 'c', tokenEndpoint: 'https://h/t/oauth2/v2.0/token' };
    assert.equal(await built.clientAssertion(config), jwt('api://AzureADTokenExchange', 'one'));
    assert.equal(await built.clientAssertion(config), jwt('api://AzureADTokenExchange', 'two'));
    await assert.rejects(built.clientAssertion(config), /is empty/);
    await assert.rejects(built.clientAssertion(config), (e: unknown) => e instanceof CredentialUnavailableError && /audience \["https:\/\/kubernetes.default.svc"\].*expects "api:\/\/AzureADTokenExchange"/.test(e.message));
    await assert.rejects(built.clientAssertion(config), /does not hold a JWT/);
    assert.equal(reads.length, 5);
  });
});
