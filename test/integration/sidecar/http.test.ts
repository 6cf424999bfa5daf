/**
 * The real HTTP app on port-0 servers (in-process, fixed clock, dev issuer): every dialect end to end over sockets,
 * exact error bodies, limits, proxy handling, health, metrics and the per-request log line.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify, decodeJwt } from 'jose';
import { UpstreamUnavailableError } from '../../../sidecar/errors.ts';
import { DEV_IDENTITIES } from '../../../sidecar/token/dev-issuer.ts';
import { sendRaw, startInProcessSidecar, type InProcessSidecar } from '../../helpers/sidecar.ts';

const send = sendRaw;

const RES = 'https://vault.azure.net';
const ENC = encodeURIComponent(RES);
const USER = DEV_IDENTITIES.user;
const SYSTEM = DEV_IDENTITIES.system;
const IMDS = '/metadata/identity/oauth2/token';

describe('sidecar HTTP (in-process)', () => {
  let sc: InProcessSidecar;
  before(async () => {
    sc = await startInProcessSidecar();
  });
  after(() => sc.stop());

  const md = { Metadata: 'true' };
  const ih = (): Record<string, string> => ({ 'X-IDENTITY-HEADER': sc.identityHeader });

  describe('success in every dialect, every selector', () => {
    const cases: { name: string; method?: string; target: () => string; headers: () => Record<string, string>; body?: string; clientId: string }[] = [
      { name: 'IMDS system', target: () => `${IMDS}?api-version=2018-02-01&resource=${ENC}`, headers: () => md, clientId: SYSTEM.clientId },
      { name: 'IMDS client_id', target: () => `${IMDS}?api-version=2018-02-01&resource=${ENC}&client_id=${USER.clientId}`, headers: () => md, clientId: USER.clientId },
      { name: 'IMDS object_id', target: () => `${IMDS}?api-version=2018-02-01&resource=${ENC}&object_id=${USER.objectId}`, headers: () => md, clientId: USER.clientId },
      { name: 'IMDS msi_res_id', target: () => `${IMDS}?api-version=2018-02-01&resource=${ENC}&msi_res_id=${encodeURIComponent(USER.resourceId)}`, headers: () => md, clientId: USER.clientId },
      { name: 'IMDS mi_res_id (lower-cased id)', target: () => `${IMDS}?api-version=2018-02-01&resource=${ENC}&mi_res_id=${encodeURIComponent(USER.resourceId.toLowerCase())}`, headers: () => md, clientId: USER.clientId },
      { name: 'IMDS msi-res-id', target: () => `${IMDS}?api-version=2018-02-01&resource=${ENC}&msi-res-id=${encodeURIComponent(USER.resourceId)}`, headers: () => md, clientId: USER.clientId },
      { name: 'IMDS trailing slash + upper case (msal-node)', target: () => `/METADATA/identity/oauth2/token/?api-version=2018-02-01&resource=${ENC}`, headers: () => md, clientId: SYSTEM.clientId },
      { name: 'IMDS doubled slash (MSAL4J)', target: () => `//metadata/identity/oauth2/token?api-version=2018-02-01&resource=${ENC}`, headers: () => md, clientId: SYSTEM.clientId },
      { name: 'IMDS absolute form via HTTP_PROXY', target: () => `http://169.254.169.254${IMDS}?api-version=2018-02-01&resource=${RES}`, headers: () => md, clientId: SYSTEM.clientId },
      { name: 'App Service system', target: () => `/msi/token?api-version=2019-08-01&resource=${ENC}`, headers: ih, clientId: SYSTEM.clientId },
      { name: 'App Service client_id', target: () => `/msi/token?api-version=2019-08-01&resource=${ENC}&client_id=${USER.clientId}`, headers: ih, clientId: USER.clientId },
      { name: 'App Service object_id', target: () => `/msi/token?api-version=2019-08-01&resource=${ENC}&object_id=${USER.objectId}`, headers: ih, clientId: USER.clientId },
      { name: 'App Service principal_id', target: () => `/msi/token?api-version=2019-08-01&resource=${ENC}&principal_id=${USER.objectId}`, headers: ih, clientId: USER.clientId },
      { name: 'App Service mi_res_id', target: () => `/msi/token?api-version=2019-08-01&resource=${ENC}&mi_res_id=${encodeURIComponent(USER.resourceId)}`, headers: ih, clientId: USER.clientId },
      { name: 'App Service msi_res_id + Metadata', target: () => `/msi/token?api-version=2019-08-01&resource=${ENC}&msi_res_id=${encodeURIComponent(USER.resourceId)}`, headers: () => ({ ...ih(), ...md }), clientId: USER.clientId },
      { name: 'Azure ML GET', target: () => `/oauth2/token?api-version=2017-09-01&resource=${ENC}&clientid=${USER.clientId}`, headers: () => ({ secret: sc.identityHeader }), clientId: USER.clientId },
      { name: 'Azure ML GET DEFAULT clientid', target: () => `/oauth2/token?api-version=2017-09-01&resource=${ENC}&clientid=DEFAULT`, headers: () => ({ secret: sc.identityHeader }), clientId: SYSTEM.clientId },
      { name: 'az App Service 2017 "/?resource=<raw>"', target: () => `/oauth2/token/?resource=${RES}&api-version=2017-09-01`, headers: () => ({ secret: sc.identityHeader }), clientId: SYSTEM.clientId },
      { name: 'MSAL4J Cloud Shell GET', target: () => `/oauth2/token?resource=${ENC}`, headers: () => md, clientId: SYSTEM.clientId },
      { name: 'Cloud Shell POST', method: 'POST', target: () => '/oauth2/token', headers: () => ({ ...md, 'Content-Type': 'application/x-www-form-urlencoded' }), body: `resource=${ENC}`, clientId: SYSTEM.clientId },
      { name: 'Cloud Shell POST client_id (az 2.45)', method: 'POST', target: () => '/oauth2/token', headers: () => md, body: `resource=${ENC}&client_id=${USER.clientId}`, clientId: USER.clientId },
    ];
    for (const tc of cases) {
      it(tc.name, async () => {
        const r = await send(sc.tokenUrl, { method: tc.method, target: tc.target(), headers: tc.headers(), body: tc.body });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
        const body = r.json();
        const now = sc.clock.nowMs() / 1000;
        assert.deepEqual(Object.keys(body).sort(), ['access_token', 'client_id', 'expires_in', 'expires_on', 'ext_expires_in', 'not_before', 'resource', 'token_type']);
        assert.equal(body['client_id'], tc.clientId);
        assert.equal(body['resource'], RES);
        assert.equal(body['token_type'], 'Bearer');
        assert.equal(body['expires_in'], String(24 * 3600));
        assert.equal(body['expires_on'], String(now + 24 * 3600));
        const claims = decodeJwt(String(body['access_token']));
        assert.equal(claims.aud, RES);
        assert.equal(claims.appid, tc.clientId);
        assert.equal(claims.exp, Number(body['expires_on']));
      });
    }
  });

  describe('Azure Arc challenge', () => {
    const target = (extra = ''): string => `/arc/metadata/identity/oauth2/token?api-version=2020-06-01&resource=${ENC}${extra}`;
    for (const sel of [
      { key: '', value: '' },
      { key: 'client_id', value: USER.clientId.toUpperCase() },
      { key: 'object_id', value: USER.objectId },
      { key: 'msi_res_id', value: USER.resourceId },
    ]) {
      it(`401 challenge, then a token for the key${sel.key ? ` (echo ${sel.key})` : ''}`, async () => {
        const extra = sel.key ? `&${sel.key}=${encodeURIComponent(sel.value)}` : '';
        const first = await send(sc.tokenUrl, { target: target(extra), headers: md });
        assert.equal(first.status, 401);
        const header = String(first.headers['www-authenticate']);
        const match = /^Basic realm=\/var\/opt\/azcmagent\/tokens\/([A-Za-z0-9_-]+\.key)$/.exec(header);
        assert.ok(match, header);
        const file = sc.arcFs.files?.get(`/sidecar/arc/${match[1]}`);
        assert.ok(file);
        assert.equal(file.mode, 0o640);
        const second = await send(sc.tokenUrl, { target: target(extra), headers: { ...md, Authorization: `Basic ${file.data}` } });
        assert.equal(second.status, 200, second.body);
        const body = second.json();
        if (sel.key) assert.equal(body[sel.key], sel.value);
        assert.equal(decodeJwt(String(body['access_token'])).appid, sel.key ? USER.clientId : SYSTEM.clientId);
        assert.equal(sc.arcFs.files?.has(`/sidecar/arc/${match[1]}`), false, 'key file deleted after use');
        const replay = await send(sc.tokenUrl, { target: target(extra), headers: { ...md, Authorization: `Basic ${file.data}` } });
        assert.equal(replay.status, 401);
        assert.equal(replay.json()['error'], 'unauthorized_client');
      });
    }
    it('unknown identity fails before any key file is written', async () => {
      const before = sc.arcFs.files?.size;
      const r = await send(sc.tokenUrl, { target: target('&client_id=99999999-9999-4999-8999-999999999999'), headers: md });
      assert.equal(r.status, 400);
      assert.deepEqual(r.json(), { error: 'invalid_request', error_description: 'Identity not found: no identity has client id 99999999-9999-4999-8999-999999999999' });
      assert.equal(sc.arcFs.files?.size, before);
    });
  });

  describe('exact error bodies', () => {
    const unknown = '99999999-9999-4999-8999-999999999999';
    const cases: { name: string; method?: string; target: string; headers: () => Record<string, string>; body?: string; status: number; want: (reqId: string) => unknown; extraHeaders?: Record<string, string> }[] = [
      { name: 'IMDS missing Metadata', target: `${IMDS}?api-version=2018-02-01&resource=${ENC}`, headers: () => ({}), status: 400, want: () => ({ error: 'invalid_request', error_description: 'Required metadata header not specified' }) },
      { name: 'IMDS probe without query and Metadata (JS/Go DefaultAzureCredential)', target: IMDS, headers: () => ({}), status: 400, want: () => ({ error: 'invalid_request', error_description: 'Required metadata header not specified' }) },
      { name: 'IMDS X-Forwarded-For', target: `${IMDS}?api-version=2018-02-01&resource=${ENC}`, headers: () => ({ ...md, 'X-Forwarded-For': '10.1.1.1' }), status: 400, want: () => ({ error: 'invalid_request', error_description: 'Requests carrying X-Forwarded-For are refused: the identity endpoint must be called directly, not through a proxy' }) },
      { name: 'IMDS bad api-version', target: `${IMDS}?api-version=2017-01-01&resource=${ENC}`, headers: () => md, status: 400, want: () => ({ error: 'invalid_request', error_description: 'Bad request. api-version "2017-01-01" is not supported; use 2018-02-01 or later' }) },
      { name: 'IMDS unknown identity', target: `${IMDS}?api-version=2018-02-01&resource=${ENC}&client_id=${unknown}`, headers: () => md, status: 400, want: () => ({ error: 'invalid_request', error_description: `Identity not found: no identity has client id ${unknown}` }) },
      { name: 'IMDS duplicate selectors', target: `${IMDS}?api-version=2018-02-01&resource=${ENC}&client_id=a&client_id=b`, headers: () => md, status: 400, want: () => ({ error: 'invalid_request', error_description: 'Duplicate query parameter: client_id' }) },
      { name: 'IMDS POST', method: 'POST', target: `${IMDS}?api-version=2018-02-01&resource=${ENC}`, headers: () => md, status: 405, want: () => ({ error: 'invalid_request', error_description: 'Method POST is not allowed here; use GET' }), extraHeaders: { allow: 'GET' } },
      { name: 'App Service missing header', target: `/msi/token?api-version=2019-08-01&resource=${ENC}`, headers: () => ({}), status: 401, want: (id) => ({ statusCode: 401, message: 'Required header X-IDENTITY-HEADER is missing', correlationId: id, error: 'unauthorized_client', error_description: 'Required header X-IDENTITY-HEADER is missing' }) },
      { name: 'App Service wrong secret', target: `/msi/token?api-version=2019-08-01&resource=${ENC}`, headers: () => ({ 'X-IDENTITY-HEADER': 'wrong' }), status: 401, want: (id) => ({ statusCode: 401, message: 'X-IDENTITY-HEADER does not match IDENTITY_HEADER', correlationId: id, error: 'unauthorized_client', error_description: 'X-IDENTITY-HEADER does not match IDENTITY_HEADER' }) },
      { name: 'App Service unknown identity', target: `/msi/token?api-version=2019-08-01&resource=${ENC}&object_id=${unknown}`, headers: ih, status: 400, want: (id) => ({ statusCode: 400, message: `Identity not found: no identity has object id ${unknown}`, correlationId: id, error: 'invalid_request', error_description: `Identity not found: no identity has object id ${unknown}` }) },
      { name: 'Azure ML wrong secret', target: `/oauth2/token?api-version=2017-09-01&resource=${ENC}`, headers: () => ({ secret: 'nope' }), status: 401, want: (id) => ({ statusCode: 401, message: 'Header secret does not match MSI_SECRET', correlationId: id, error: 'unauthorized_client', error_description: 'Header secret does not match MSI_SECRET' }) },
      { name: 'Cloud Shell unknown identity', method: 'POST', target: '/oauth2/token', headers: () => md, body: `resource=${ENC}&msi_res_id=%2Fsubscriptions%2Fnone`, status: 400, want: () => ({ error: { code: 'invalid_request', message: 'Identity not found: no identity has resource id /subscriptions/none' } }) },
      { name: 'Cloud Shell missing Metadata', method: 'POST', target: '/oauth2/token', headers: () => ({}), body: `resource=${ENC}`, status: 400, want: () => ({ error: { code: 'invalid_request', message: 'Required metadata header not specified' } }) },
      { name: 'unknown path', target: '/metadata/instance?api-version=2021-02-01', headers: () => md, status: 404, want: () => ({ error: 'invalid_request', error_description: 'No such endpoint' }) },
      { name: 'absolute form to another host', target: 'http://example.com/', headers: () => ({}), status: 403, want: () => ({ error: 'access_denied', error_description: 'This is an identity endpoint, not a proxy: only http://169.254.169.254/metadata/identity/oauth2/token is answered in absolute form' }) },
      { name: 'URL too long', target: `${IMDS}?api-version=2018-02-01&resource=${'a'.repeat(9000)}`, headers: () => md, status: 414, want: () => ({ error: 'invalid_request', error_description: 'Request URL exceeds 8192 bytes' }) },
      { name: 'headers too large (App Service shape)', target: `/msi/token?api-version=2019-08-01&resource=${ENC}`, headers: () => ({ ...ih(), 'X-Filler': 'f'.repeat(17000) }), status: 431, want: (id) => ({ statusCode: 431, message: 'Request headers exceed 16384 bytes', correlationId: id, error: 'invalid_request', error_description: 'Request headers exceed 16384 bytes' }) },
      { name: 'headers beyond the parser limit (IMDS shape)', target: `/msi/token?api-version=2019-08-01&resource=${ENC}`, headers: () => ({ ...ih(), 'X-Filler': 'f'.repeat(40000) }), status: 431, want: () => ({ error: 'invalid_request', error_description: 'Request headers exceed 16384 bytes' }) },
      { name: 'body too large (Cloud Shell shape)', method: 'POST', target: '/oauth2/token', headers: () => md, body: `resource=${'a'.repeat(9000)}`, status: 413, want: () => ({ error: { code: 'invalid_request', message: 'Request body exceeds 8192 bytes' } }) },
    ];
    for (const tc of cases) {
      it(tc.name, async () => {
        const r = await send(sc.tokenUrl, { method: tc.method, target: tc.target, headers: tc.headers(), body: tc.body });
        assert.equal(r.status, tc.status, r.body);
        assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
        const reqId = String(r.headers['x-mi-anywhere-request-id']);
        assert.deepEqual(r.json(), tc.want(reqId));
        for (const [k, v] of Object.entries(tc.extraHeaders ?? {})) assert.equal(r.headers[k], v);
      });
    }
    it('CONNECT is refused with 405 (the sidecar is not a proxy)', async () => {
      const url = new URL(sc.tokenUrl);
      const text = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(url.port), url.hostname, () => socket.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'));
        let data = '';
        socket.setEncoding('utf8');
        socket.on('data', (c: string) => (data += c));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
      assert.match(text, /^HTTP\/1\.1 405 Method Not Allowed\r\n/);
      assert.match(text, /\r\nallow: GET, POST\r\n/);
      assert.ok(text.endsWith('{"error":"invalid_request","error_description":"Method CONNECT is not allowed here; use GET or POST"}'), text);
    });
  });

  describe('dev issuer documents', () => {
    it('discovery and JWKS verify an issued token', async () => {
      const discovery = await send(sc.tokenUrl, { target: '/dev-issuer/.well-known/openid-configuration' });
      assert.equal(discovery.status, 200);
      const doc = discovery.json();
      assert.equal(doc['issuer'], `${sc.tokenUrl}/dev-issuer`);
      const jwks = await send(sc.tokenUrl, { target: new URL(String(doc['jwks_uri'])).pathname });
      const token = await send(sc.tokenUrl, { target: `${IMDS}?api-version=2018-02-01&resource=api%3A%2F%2Fmy-api`, headers: md });
      const { payload } = await jwtVerify(String(token.json()['access_token']), createLocalJWKSet(JSON.parse(jwks.body)), {
        issuer: String(doc['issuer']),
        audience: 'api://my-api',
        currentDate: new Date(sc.clock.nowMs()),
      });
      assert.equal(payload.tid, '11111111-1111-4111-8111-111111111111');
    });
  });

  describe('health, metrics and logs', () => {
    it('/healthz and /readyz', async () => {
      assert.deepEqual((await send(sc.healthUrl, { target: '/healthz' })).json(), { status: 'ok' });
      const ready = await send(sc.healthUrl, { target: '/readyz' });
      assert.equal(ready.status, 200);
      assert.deepEqual(ready.json(), { status: 'ready' });
      assert.equal((await send(sc.healthUrl, { target: '/metadata/identity/oauth2/token' })).status, 404, 'no tokens on the health listener');
      const post = await send(sc.healthUrl, { method: 'POST', target: '/healthz' });
      assert.equal(post.status, 405);
      assert.equal(post.headers['allow'], 'GET, HEAD');
      assert.equal((await send(sc.metricsUrl, { target: '/healthz' })).status, 404, 'metrics listener serves only /metrics');
      assert.equal((await send(sc.tokenUrl, { target: '/healthz' })).status, 404, 'no health on the token listener');
    });
    it('/metrics counts token requests by dialect and code', async () => {
      const m = await send(sc.metricsUrl, { target: '/metrics' });
      assert.equal(m.status, 200);
      assert.match(m.body, /mi_anywhere_token_requests_total\{dialect="imds",identity="dev-system",audience="https:\/\/vault.azure.net",code="ok"\} \d+/);
      assert.match(m.body, /mi_anywhere_token_requests_total\{dialect="app-service",identity="\(none\)",audience="other",code="SIDECAR_ERR_UNAUTHORIZED"\} \d+/);
      assert.match(m.body, /mi_anywhere_token_requests_total\{dialect="arc",identity="dev-user",audience="https:\/\/vault.azure.net",code="challenge"\} \d+/);
      assert.match(m.body, /mi_anywhere_token_request_duration_seconds_bucket\{le="0.0001",dialect="cloud-shell"\}/);
    });
    it('one log line per token request, none for health, never a token or secret', async () => {
      const before = sc.logs().split('\n').filter((l) => l.includes('"msg":"token request"')).length;
      const r = await send(sc.tokenUrl, { target: `/msi/token?api-version=2019-08-01&resource=${ENC}`, headers: ih() });
      await send(sc.healthUrl, { target: '/readyz' });
      const lines = sc.logs().split('\n').filter((l) => l.includes('"msg":"token request"'));
      assert.equal(lines.length, before + 1);
      const line = JSON.parse(lines.at(-1) ?? '{}') as Record<string, unknown>;
      assert.equal(line['dialect'], 'app-service');
      assert.equal(line['identity'], 'dev-system');
      assert.equal(line['audience'], 'https://vault.azure.net');
      assert.equal(line['status'], 200);
      assert.equal(typeof line['durationMs'], 'number');
      assert.equal(line['reqId'], r.headers['x-mi-anywhere-request-id']);
      const token = String(r.json()['access_token']);
      assert.ok(!sc.logs().includes(token.split('.')[2] ?? 'x'), 'token signature in logs');
      assert.ok(!sc.logs().includes(sc.identityHeader), 'identity header in logs');
    });
  });
});

describe('sidecar HTTP: failures of the token source and the rate limit', () => {
  it('upstream unavailable → 503 + Retry-After in the dialect shape; unexpected errors → generic 500', async () => {
    let fail: Error = new UpstreamUnavailableError('Entra ID did not answer', { retryAfterSeconds: 7 });
    const sc = await startInProcessSidecar({ tokenSource: { getToken: async () => Promise.reject(fail) } });
    try {
      const r = await send(sc.tokenUrl, { target: `/msi/token?api-version=2019-08-01&resource=${ENC}`, headers: { 'X-IDENTITY-HEADER': sc.identityHeader } });
      assert.equal(r.status, 503);
      assert.equal(r.headers['retry-after'], '7');
      assert.equal(r.json()['message'], 'Entra ID did not answer');
      fail = new Error('database password is hunter2');
      const r2 = await send(sc.tokenUrl, { target: `${IMDS}?api-version=2018-02-01&resource=${ENC}`, headers: { Metadata: 'true' } });
      assert.equal(r2.status, 500);
      assert.deepEqual(r2.json(), { error: 'server_error', error_description: 'Internal error in the identity sidecar' });
      assert.match(sc.logs(), /unexpected error while serving a token request/);
    } finally {
      await sc.stop();
    }
  });

  it('rate limit: 429 with Retry-After, then served again in the next second', async () => {
    const sc = await startInProcessSidecar({ rateLimitPerSecond: 2 });
    try {
      const go = () => send(sc.tokenUrl, { target: `${IMDS}?api-version=2018-02-01&resource=${ENC}`, headers: { Metadata: 'true' } });
      assert.equal((await go()).status, 200);
      assert.equal((await go()).status, 200);
      const limited = await go();
      assert.equal(limited.status, 429);
      assert.equal(limited.headers['retry-after'], '1');
      sc.clock.advance(1000);
      assert.equal((await go()).status, 200);
      assert.match(await (await fetch(`${sc.metricsUrl}/metrics`)).text(), /mi_anywhere_token_requests_rate_limited_total\{dialect="imds"\} 1/);
    } finally {
      await sc.stop();
    }
  });

  it('Arc without a key directory answers a clear 400', async () => {
    const sc = await startInProcessSidecar({ arcEnabled: false });
    try {
      const r = await send(sc.tokenUrl, { target: `/arc/metadata/identity/oauth2/token?api-version=2020-06-01&resource=${ENC}`, headers: { Metadata: 'true' } });
      assert.equal(r.status, 400);
      assert.deepEqual(r.json(), { error: 'invalid_request', error_description: 'The Azure Arc endpoint is disabled: the sidecar was started without MI_ANYWHERE_ARC_KEY_DIR' });
    } finally {
      await sc.stop();
    }
  });

  it('not ready without a default identity; requests without selector get Identity not found', async () => {
    const sc = await startInProcessSidecar({ identities: [] });
    try {
      const ready = await send(sc.healthUrl, { target: '/readyz' });
      assert.equal(ready.status, 503);
      assert.deepEqual(ready.json(), { status: 'not ready', reasons: ['the default identity is not loaded'] });
      const r = await send(sc.tokenUrl, { target: `${IMDS}?api-version=2018-02-01&resource=${ENC}`, headers: { Metadata: 'true' } });
      assert.deepEqual(r.json(), { error: 'invalid_request', error_description: 'Identity not found: no default identity is configured for requests without a selector (set MI_ANYWHERE_DEFAULT_IDENTITY)' });
    } finally {
      await sc.stop();
    }
  });
});

describe('sidecar HTTP: graceful stop', () => {
  it('an in-flight token request completes while the listeners close', async () => {
    let release: () => void = () => undefined;
    let entered: () => void = () => undefined;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const sc = await startInProcessSidecar({
      tokenSource: {
        getToken: (r) =>
          new Promise((resolve) => {
            release = () => resolve({ accessToken: 'a.b.c', expiresOnSeconds: 4_000_000_000, notBeforeSeconds: 0, resource: r.resource, clientId: r.identity.descriptor.clientId });
            entered();
          }),
      },
    });
    const pending = send(sc.tokenUrl, { target: `${IMDS}?api-version=2018-02-01&resource=${ENC}`, headers: { Metadata: 'true' } });
    await inside;
    const stopping = sc.stop();
    release();
    const r = await pending;
    await stopping;
    assert.equal(r.status, 200);
    assert.equal(r.json()['access_token'], 'a.b.c');
    await assert.rejects(send(sc.tokenUrl, { target: '/healthz' }), /ECONNREFUSED/);
  });
});

describe('sidecar HTTP: stop after the grace period', () => {
  it('a request that never finishes is cut off and stop() still resolves', async () => {
    let entered: () => void = () => undefined;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const sc = await startInProcessSidecar({
      tokenSource: {
        getToken: (r) =>
          new Promise((_resolve, reject) => {
            entered();
            // Never resolves on its own; the abort signal fires when the connection is cut.
            r.signal?.addEventListener('abort', () => reject(new Error('aborted')));
          }),
      },
    });
    const pending = send(sc.tokenUrl, { target: `${IMDS}?api-version=2018-02-01&resource=${ENC}`, headers: { Metadata: 'true' } });
    await inside;
    await sc.stop();
    await assert.rejects(pending, /socket hang up|ECONNRESET/);
  });
});
