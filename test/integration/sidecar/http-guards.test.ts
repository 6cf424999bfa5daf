/**
 * The middleware in front of the dialect routers (sidecar/http/guards.ts, app.ts), on the real listener code:
 * - DNS rebinding: a `Host` that is not a name of this sidecar, or a browser's `Origin` / `Sec-Fetch-Site`, is
 *   refused in each dialect's own error shape; loopback names, configured names (MI_ANYWHERE_ALLOWED_HOSTS) and the
 *   IMDS address in proxy form are answered;
 * - every proxy-hop header is refused alike;
 * - a token listener bound beyond loopback serves only the secret-carrying dialects, and only for a known Host;
 * - the rate limit is spent by valid requests only;
 * - slow clients are cut by the header and request timeouts (small injected values; the check interval follows
 *   them, so the cut comes within a fraction of the timeout, not after Node's 30 s check interval).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { DEFAULT_TIMEOUTS } from '../../../sidecar/config.ts';
import { PATHS, SIDECAR_ENV } from '../../../sidecar/contract.ts';
import { PROXY_HEADERS, createHostPolicy, hostName } from '../../../sidecar/http/guards.ts';
import { connectionsCheckingInterval } from '../../../common/http-server.ts';
import type { Dialect } from '../../../sidecar/protocol/dialect.ts';
import { sendRaw, startInProcessSidecar, startSidecar, type InProcessSidecar, type RawAnswer } from '../../helpers/sidecar.ts';
import { portOf, rawRequest } from '../../helpers/raw-http.ts';
import { isDialectError } from '../../helpers/shapes.ts';

const R = 'resource=https%3A%2F%2Fvault.azure.net';

interface DialectRequest {
  readonly name: string;
  readonly dialect: Dialect;
  readonly method: string;
  readonly target: string;
  readonly headers: (secret: string) => Record<string, string>;
  readonly body?: string;
  /** Status when the request is allowed (Arc answers its first leg with the 401 challenge). */
  readonly okStatus: number;
}

const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };
const REQUESTS: readonly DialectRequest[] = [
  { name: 'IMDS', dialect: 'imds', method: 'GET', target: `${PATHS.imds}?api-version=2018-02-01&${R}`, headers: () => ({ Metadata: 'true' }), okStatus: 200 },
  { name: 'App Service', dialect: 'app-service', method: 'GET', target: `${PATHS.appService}?api-version=2019-08-01&${R}`, headers: (s) => ({ 'X-IDENTITY-HEADER': s }), okStatus: 200 },
  { name: 'MSI_ENDPOINT GET with secret', dialect: 'msi-endpoint', method: 'GET', target: `${PATHS.msiEndpoint}?api-version=2017-09-01&${R}`, headers: (s) => ({ secret: s }), okStatus: 200 },
  { name: 'MSI_ENDPOINT GET with Metadata, no secret', dialect: 'msi-endpoint', method: 'GET', target: `${PATHS.msiEndpoint}?${R}`, headers: () => ({ Metadata: 'true' }), okStatus: 200 },
  { name: 'Cloud Shell POST', dialect: 'cloud-shell', method: 'POST', target: PATHS.msiEndpoint, headers: () => ({ Metadata: 'true', ...FORM }), body: R, okStatus: 200 },
  { name: 'Cloud Shell POST with secret', dialect: 'cloud-shell', method: 'POST', target: PATHS.msiEndpoint, headers: (s) => ({ Metadata: 'true', secret: s, ...FORM }), body: R, okStatus: 200 },
  { name: 'Azure Arc', dialect: 'arc', method: 'GET', target: `${PATHS.arc}?api-version=2020-06-01&${R}`, headers: () => ({ Metadata: 'true' }), okStatus: 401 },
];

function assertRefused(res: RawAnswer, status: number, code: string, dialect: Dialect): void {
  assert.equal(res.status, status, res.body);
  assert.equal(res.headers['x-mi-anywhere-error'], code, res.body);
  assert.ok(isDialectError(dialect, res.json(), status), `not the ${dialect} error shape: ${res.body}`);
  assert.ok(!res.body.includes('access_token'));
}

describe('Host allow-list (pure)', () => {
  const policy = createHostPolicy({ names: ['Sidecar', 'api.example.test'], allowMissing: true });
  const table: ReadonlyArray<[host: string | undefined, absolute: boolean, allowed: boolean]> = [
    ['127.0.0.1', false, true],
    ['127.0.0.1:50342', false, true],
    ['127.8.9.10:1', false, true],
    ['localhost:50342', false, true],
    ['LOCALHOST', false, true],
    ['app.localhost', false, true],
    ['[::1]:50342', false, true],
    ['sidecar:50342', false, true],
    ['api.example.test.', false, true],
    [undefined, false, true],
    ['evil.example', false, false],
    ['evil.example:50342', false, false],
    ['127.0.0.1.evil.example', false, false],
    ['localhost.evil.example', false, false],
    ['sidecar.evil.example', false, false],
    ['169.254.169.254', false, false],
    ['169.254.169.254', true, true],
    ['evil.example', true, false],
    ['127.0.0.1:notaport', false, false],
    ['[::1', false, false],
  ];
  for (const [host, absolute, allowed] of table) {
    it(`${JSON.stringify(host)}${absolute ? ' (absolute form)' : ''} -> ${allowed ? 'answered' : 'refused'}`, () => {
      assert.equal(policy.allows(host, absolute), allowed);
    });
  }
  it('a listener reachable beyond loopback requires a Host', () => {
    assert.equal(createHostPolicy({ names: [], allowMissing: false }).allows(undefined, false), false);
  });
  it('host names are compared without port and brackets', () => {
    assert.equal(hostName('[::1]:80'), '::1');
    assert.equal(hostName('Example.Test:8080'), 'example.test');
  });
});

describe('DNS rebinding and browsers are refused in every dialect', () => {
  let sidecar: InProcessSidecar;
  let port: number;
  before(async () => {
    sidecar = await startInProcessSidecar({ allowedHosts: ['sidecar'] });
    port = portOf(sidecar.tokenUrl);
  });
  after(() => sidecar?.stop());
  const send = (r: DialectRequest, extra: Record<string, string>): Promise<RawAnswer> =>
    sendRaw(sidecar.tokenUrl, { method: r.method, target: r.target, headers: { ...r.headers(sidecar.identityHeader), ...extra }, body: r.body });

  for (const r of REQUESTS) {
    it(`${r.name}: Host evil.example (a page whose name now resolves to 127.0.0.1) -> 403 in the ${r.dialect} shape`, async () => {
      assertRefused(await send(r, { Host: `evil.example:${port}` }), 403, 'SIDECAR_ERR_HOST_NOT_ALLOWED', r.dialect);
    });
    it(`${r.name}: a browser Origin -> 403 in the ${r.dialect} shape`, async () => {
      assertRefused(await send(r, { Origin: 'http://evil.example' }), 403, 'SIDECAR_ERR_HOST_NOT_ALLOWED', r.dialect);
    });
    it(`${r.name}: Sec-Fetch-Site (sent by browsers only) -> 403`, async () => {
      assertRefused(await send(r, { 'Sec-Fetch-Site': 'same-origin' }), 403, 'SIDECAR_ERR_HOST_NOT_ALLOWED', r.dialect);
    });
    it(`${r.name}: loopback and configured names are answered`, async () => {
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'sidecar', `SIDECAR:${port}`]) {
        const res = await send(r, { Host: host });
        assert.equal(res.status, r.okStatus, `${host}: ${res.body}`);
      }
    });
  }

  it('169.254.169.254 is answered in proxy form only', async () => {
    const origin = await sendRaw(sidecar.tokenUrl, { target: `${PATHS.imds}?api-version=2018-02-01&${R}`, headers: { Metadata: 'true', Host: '169.254.169.254' } });
    assertRefused(origin, 403, 'SIDECAR_ERR_HOST_NOT_ALLOWED', 'imds');
    const proxy = await rawRequest(port, `GET http://169.254.169.254${PATHS.imds}?api-version=2018-02-01&${R} HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\nConnection: close\r\n\r\n`);
    assert.equal(proxy.status, 200, proxy.raw.slice(0, 300));
  });

  it('the refusals are counted and logged like every other failure', async () => {
    const metrics = await (await fetch(`${sidecar.metricsUrl}/metrics`)).text();
    assert.match(metrics, /mi_anywhere_token_requests_total\{[^}]*code="SIDECAR_ERR_HOST_NOT_ALLOWED"[^}]*\} [1-9]/);
    assert.match(sidecar.logs(), /"errorCode":"SIDECAR_ERR_HOST_NOT_ALLOWED"/);
  });
});

describe('proxy-hop headers are refused alike', () => {
  let sidecar: InProcessSidecar;
  before(async () => {
    sidecar = await startInProcessSidecar();
  });
  after(() => sidecar?.stop());
  for (const name of PROXY_HEADERS) {
    for (const r of [REQUESTS[0]!, REQUESTS[1]!, REQUESTS[4]!]) {
      it(`${r.name} with ${name} -> 400 SIDECAR_ERR_FORWARDED naming it`, async () => {
        const res = await sendRaw(sidecar.tokenUrl, { method: r.method, target: r.target, headers: { ...r.headers(sidecar.identityHeader), [name]: '203.0.113.7' }, body: r.body });
        assertRefused(res, 400, 'SIDECAR_ERR_FORWARDED', r.dialect);
        assert.match(res.body, new RegExp(name, 'i'));
      });
    }
  }
});

describe('a token listener reachable beyond loopback serves only requests carrying the secret', () => {
  let sidecar: InProcessSidecar;
  let port: number;
  before(async () => {
    sidecar = await startInProcessSidecar({ remote: true, allowedHosts: ['sidecar.example.test'] });
    port = portOf(sidecar.tokenUrl);
  });
  after(() => sidecar?.stop());
  const secretCarrying = new Set(['App Service', 'MSI_ENDPOINT GET with secret', 'Cloud Shell POST with secret']);
  for (const r of REQUESTS) {
    const served = secretCarrying.has(r.name);
    it(`${r.name} -> ${served ? 'served' : '400 SIDECAR_ERR_DIALECT_DISABLED, saying which variables to use'}`, async () => {
      const res = await sendRaw(sidecar.tokenUrl, { method: r.method, target: r.target, headers: { ...r.headers(sidecar.identityHeader), Host: 'sidecar.example.test' }, body: r.body });
      if (served) {
        assert.equal(res.status, 200, res.body);
        return;
      }
      assertRefused(res, 400, 'SIDECAR_ERR_DIALECT_DISABLED', r.dialect);
      assert.match(res.body, /reachable beyond loopback.*IDENTITY_HEADER.*MSI_SECRET/);
    });
  }
  it('an unknown Host is refused even with the secret', async () => {
    const r = REQUESTS[1]!;
    const res = await sendRaw(sidecar.tokenUrl, { target: r.target, headers: { ...r.headers(sidecar.identityHeader), Host: 'evil.example' } });
    assertRefused(res, 403, 'SIDECAR_ERR_HOST_NOT_ALLOWED', 'app-service');
  });
  it('a request without Host is refused', async () => {
    const res = await rawRequest(port, `GET ${REQUESTS[1]!.target} HTTP/1.0\r\nX-IDENTITY-HEADER: ${sidecar.identityHeader}\r\n\r\n`);
    assert.equal(res.status, 403, res.raw.slice(0, 300));
    assert.equal(res.headers['x-mi-anywhere-error'], 'SIDECAR_ERR_HOST_NOT_ALLOWED');
  });
});

describe('the rate limit is spent by valid requests only', () => {
  it('a flood of invalid requests does not lock out a valid caller', async () => {
    const sidecar = await startInProcessSidecar({ rateLimitPerSecond: 1 });
    try {
      const bad: ReadonlyArray<[string, Record<string, string>]> = [
        [`${PATHS.imds}?api-version=2018-02-01&${R}`, {}],
        [`${PATHS.imds}?api-version=1999-01-01&${R}`, { Metadata: 'true' }],
        [`${PATHS.imds}?api-version=2018-02-01&${R}&client_id=00000000-0000-0000-0000-000000000000`, { Metadata: 'true' }],
        [`${PATHS.appService}?api-version=2019-08-01&${R}`, { 'X-IDENTITY-HEADER': 'wrong-guess-0123456789' }],
        [`${PATHS.arc}?api-version=2020-06-01&${R}`, { Metadata: 'true', Authorization: 'Basic not-a-key' }],
      ];
      for (let round = 0; round < 10; round++) {
        for (const [target, headers] of bad) {
          const res = await sendRaw(sidecar.tokenUrl, { target, headers });
          assert.ok(res.status >= 400 && res.status < 500 && res.status !== 429, `${target}: ${res.status}`);
        }
      }
      const good = await sendRaw(sidecar.tokenUrl, { target: REQUESTS[0]!.target, headers: { Metadata: 'true' } });
      assert.equal(good.status, 200, good.body);
      const next = await sendRaw(sidecar.tokenUrl, { target: REQUESTS[0]!.target, headers: { Metadata: 'true' } });
      assert.equal(next.status, 429, 'the limit still holds for valid requests');
    } finally {
      await sidecar.stop();
    }
  });
});

/** Resolves once the server closes the connection; `bytes` is what the slow client sent before stalling. */
function stallAndWaitForClose(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(bytes));
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('close', () => resolve(received));
    socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? undefined : reject(error)));
  });
}

describe('slow clients are cut by the documented timeouts', () => {
  it('Node checks the timeouts often enough for them to fire on time (at most every second, ten times per timeout)', () => {
    assert.equal(connectionsCheckingInterval(DEFAULT_TIMEOUTS), 1_000);
    assert.equal(connectionsCheckingInterval({ headersTimeoutMs: 300, requestTimeoutMs: 600 }), 30);
    assert.ok(connectionsCheckingInterval(DEFAULT_TIMEOUTS) * 10 <= DEFAULT_TIMEOUTS.headersTimeoutMs);
  });

  const timeouts = { headersTimeoutMs: 300, requestTimeoutMs: 600, keepAliveTimeoutMs: 5_000, shutdownGraceMs: 1_000 };
  // The bound is the test's failure mode: with Node's default 30 s check interval the cut would not come in time.
  it('headers that never finish are cut after the header timeout', { timeout: 15_000 }, async () => {
    const sidecar = await startInProcessSidecar({ timeouts });
    try {
      const received = await stallAndWaitForClose(portOf(sidecar.tokenUrl), `GET ${PATHS.imds} HTTP/1.1\r\nHost: 127.0.0.1\r\nMetadata: tr`);
      assert.equal(received, '', 'no answer is sent mid-request');
    } finally {
      await sidecar.stop();
    }
  });
  it('a body that never finishes is cut after the request timeout', { timeout: 15_000 }, async () => {
    const sidecar = await startInProcessSidecar({ timeouts });
    try {
      await stallAndWaitForClose(
        portOf(sidecar.tokenUrl),
        `POST ${PATHS.msiEndpoint} HTTP/1.1\r\nHost: 127.0.0.1\r\nMetadata: true\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nresource=`,
      );
    } finally {
      await sidecar.stop();
    }
  });
});

describe('the real program', () => {
  it('answers the names in MI_ANYWHERE_ALLOWED_HOSTS and the advertised host, refuses others', async () => {
    const sidecar = await startSidecar({ env: { [SIDECAR_ENV.allowedHosts]: 'mi-anywhere,Sidecar.Compose', [SIDECAR_ENV.advertiseUrl]: 'http://advertised.example.test:50342' } });
    try {
      const call = (host: string) => sendRaw(sidecar.tokenUrl, { target: REQUESTS[0]!.target, headers: { Metadata: 'true', Host: host } });
      for (const host of ['mi-anywhere', 'sidecar.compose:50342', 'advertised.example.test:50342', 'localhost']) assert.equal((await call(host)).status, 200, host);
      assertRefused(await call('evil.example'), 403, 'SIDECAR_ERR_HOST_NOT_ALLOWED', 'imds');
    } finally {
      await sidecar.stop();
    }
  });

  it('bound to 0.0.0.0 (with consent), serves App Service but refuses IMDS', async () => {
    const sidecar = await startSidecar({ env: { [SIDECAR_ENV.tokenAddress]: '0.0.0.0', [SIDECAR_ENV.allowNonLoopback]: 'true' } });
    try {
      const imds = await sendRaw(sidecar.tokenUrl, { target: REQUESTS[0]!.target, headers: { Metadata: 'true' } });
      assertRefused(imds, 400, 'SIDECAR_ERR_DIALECT_DISABLED', 'imds');
      const appService = await sendRaw(sidecar.tokenUrl, { target: REQUESTS[1]!.target, headers: { 'X-IDENTITY-HEADER': sidecar.identityHeader } });
      assert.equal(appService.status, 200, appService.body);
    } finally {
      await sidecar.stop();
    }
  });
});
