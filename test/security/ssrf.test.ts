/**
 * SSRF and request-validation defences of the token listener, tested as an attacker would: raw bytes over node:net
 * (so nothing is normalised by an HTTP client) and fetch, against the real program (`node sidecar/main.ts --dev`)
 * and the in-process listener. What real IMDS enforces (docs/protocols.md §9) plus what a local endpoint needs:
 * `Metadata: true` required, `X-Forwarded-For`/`Forwarded` refused, CONNECT refused, absolute-form targets other
 * than the IMDS token URL refused (and never fetched: a victim listener counts connections), bounded URL, header
 * and body sizes, strict methods, malformed requests answered in the IMDS error shape, and error bodies that never
 * echo a secret.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PATHS } from '../../sidecar/contract.ts';
import { DEFAULT_LIMITS } from '../../sidecar/config.ts';
import { startInProcessSidecar, startSidecar, type RunningSidecar } from '../helpers/sidecar.ts';
import type { Dialect } from '../../sidecar/protocol/dialect.ts';
import { portOf, rawRequest, startVictim, type RawResponse, type Victim } from '../helpers/raw-http.ts';
import { isDialectError } from '../helpers/shapes.ts';

const IMDS_QUERY = 'api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net';
const IMDS = `${PATHS.imds}?${IMDS_QUERY}`;

function req(lines: readonly string[], body = ''): string {
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

function assertDialectError(res: RawResponse, status: number, code: string | undefined, dialect: Dialect): void {
  assert.equal(res.status, status, res.raw.slice(0, 400));
  if (code !== undefined) assert.equal(res.headers['x-mi-anywhere-error'], code);
  assert.match(res.headers['content-type'] ?? '', /^application\/json/);
  const body = JSON.parse(res.body) as Record<string, unknown>;
  assert.ok(isDialectError(dialect, body, status), `not the ${dialect} error shape: ${res.body}`);
}

interface Case {
  readonly name: string;
  readonly request: (ctx: { victimPort: number; header: string }) => string;
  readonly status: number;
  readonly code?: string;
  /** Check the error shape (false for HEAD, which has no body). */
  readonly shape?: boolean;
  /** Dialect whose error shape the answer must have; default IMDS (also used for unrouted requests). */
  readonly dialect?: Dialect;
}

const H = 'Host: 127.0.0.1';
const CLOSE = 'Connection: close';

const cases: readonly Case[] = [
  { name: 'IMDS without Metadata: true', request: () => req([`GET ${IMDS} HTTP/1.1`, H, CLOSE]), status: 400, code: 'SIDECAR_ERR_METADATA_HEADER' },
  { name: 'IMDS with Metadata: false', request: () => req([`GET ${IMDS} HTTP/1.1`, H, 'Metadata: false', CLOSE]), status: 400, code: 'SIDECAR_ERR_METADATA_HEADER' },
  { name: 'IMDS with X-Forwarded-For (a reverse proxy relaying an SSRF)', request: () => req([`GET ${IMDS} HTTP/1.1`, H, 'Metadata: true', 'X-Forwarded-For: 203.0.113.7', CLOSE]), status: 400, code: 'SIDECAR_ERR_FORWARDED' },
  { name: 'IMDS with an empty X-Forwarded-For', request: () => req([`GET ${IMDS} HTTP/1.1`, H, 'Metadata: true', 'X-Forwarded-For: ', CLOSE]), status: 400, code: 'SIDECAR_ERR_FORWARDED' },
  { name: 'IMDS with Forwarded (RFC 7239)', request: () => req([`GET ${IMDS} HTTP/1.1`, H, 'Metadata: true', 'Forwarded: for=203.0.113.7', CLOSE]), status: 400, code: 'SIDECAR_ERR_FORWARDED' },
  { name: 'App Service with X-Forwarded-For even with the right header', request: (c) => req([`GET ${PATHS.appService}?api-version=2019-08-01&resource=x HTTP/1.1`, H, `X-IDENTITY-HEADER: ${c.header}`, 'X-Forwarded-For: 10.0.0.1', CLOSE]), status: 400, code: 'SIDECAR_ERR_FORWARDED', dialect: 'app-service' },
  { name: 'CONNECT to an internal service', request: (c) => req([`CONNECT 127.0.0.1:${c.victimPort} HTTP/1.1`, `Host: 127.0.0.1:${c.victimPort}`]), status: 405, code: 'SIDECAR_ERR_METHOD' },
  { name: 'CONNECT to Entra ID', request: () => req(['CONNECT login.microsoftonline.com:443 HTTP/1.1', 'Host: login.microsoftonline.com:443']), status: 405, code: 'SIDECAR_ERR_METHOD' },
  { name: 'absolute-form request for an internal service', request: (c) => req([`GET http://127.0.0.1:${c.victimPort}/admin HTTP/1.1`, `Host: 127.0.0.1:${c.victimPort}`, 'Metadata: true', CLOSE]), status: 403, code: 'SIDECAR_ERR_NOT_A_PROXY' },
  { name: 'absolute-form request for another host with the IMDS path', request: (c) => req([`GET http://127.0.0.1:${c.victimPort}${IMDS} HTTP/1.1`, 'Host: x', 'Metadata: true', CLOSE]), status: 403, code: 'SIDECAR_ERR_NOT_A_PROXY' },
  { name: 'absolute-form https to the IMDS address', request: () => req([`GET https://169.254.169.254${IMDS} HTTP/1.1`, 'Host: 169.254.169.254', 'Metadata: true', CLOSE]), status: 403, code: 'SIDECAR_ERR_NOT_A_PROXY' },
  { name: 'absolute-form to the IMDS address on another port', request: () => req([`GET http://169.254.169.254:8080${IMDS} HTTP/1.1`, 'Host: 169.254.169.254', 'Metadata: true', CLOSE]), status: 403, code: 'SIDECAR_ERR_NOT_A_PROXY' },
  { name: 'absolute-form with user-info', request: () => req([`GET http://user:pw@169.254.169.254${IMDS} HTTP/1.1`, 'Host: 169.254.169.254', 'Metadata: true', CLOSE]), status: 403, code: 'SIDECAR_ERR_NOT_A_PROXY' },
  { name: 'absolute-form to a non-token IMDS path (instance metadata)', request: () => req(['GET http://169.254.169.254/metadata/instance?api-version=2021-02-01 HTTP/1.1', 'Host: 169.254.169.254', 'Metadata: true', CLOSE]), status: 404, code: 'SIDECAR_ERR_NOT_FOUND' },
  // Absolute form is the IMDS token URL only: the other dialects' paths on the IMDS address are no token endpoint
  // there, whatever secret the request carries (the Host, Origin and proxy-header guards never ran for them).
  { name: 'absolute-form to the App Service path with its secret', request: (c) => req([`GET http://169.254.169.254${PATHS.appService}?api-version=2019-08-01&resource=x HTTP/1.1`, 'Host: 169.254.169.254', `X-IDENTITY-HEADER: ${c.header}`, CLOSE]), status: 404, code: 'SIDECAR_ERR_NOT_FOUND' },
  { name: 'absolute-form to the MSI_ENDPOINT path with its secret', request: (c) => req([`GET http://169.254.169.254${PATHS.msiEndpoint}?resource=x HTTP/1.1`, 'Host: 169.254.169.254', `Secret: ${c.header}`, CLOSE]), status: 404, code: 'SIDECAR_ERR_NOT_FOUND' },
  { name: 'absolute-form Cloud Shell POST', request: () => req([`POST http://169.254.169.254${PATHS.msiEndpoint} HTTP/1.1`, 'Host: 169.254.169.254', 'Metadata: true', 'Content-Type: application/x-www-form-urlencoded', 'Content-Length: 10', CLOSE, '', 'resource=x']), status: 404, code: 'SIDECAR_ERR_NOT_FOUND' },
  { name: 'absolute-form to the Arc path', request: () => req([`GET http://169.254.169.254${PATHS.arc}?api-version=2020-06-01&resource=x HTTP/1.1`, 'Host: 169.254.169.254', 'Metadata: true', CLOSE]), status: 404, code: 'SIDECAR_ERR_NOT_FOUND' },
  { name: 'absolute-form to the dev issuer', request: () => req([`GET http://169.254.169.254${PATHS.devIssuer}/jwks HTTP/1.1`, 'Host: 169.254.169.254', CLOSE]), status: 404, code: 'SIDECAR_ERR_NOT_FOUND' },
  { name: 'absolute-form gopher scheme', request: () => req(['GET gopher://127.0.0.1:25/ HTTP/1.1', H, CLOSE]), status: 403, code: 'SIDECAR_ERR_NOT_A_PROXY' },
  { name: 'asterisk-form target', request: () => req(['OPTIONS * HTTP/1.1', H, CLOSE]), status: 404, code: 'SIDECAR_ERR_NOT_FOUND' },
  { name: 'path traversal out of the token path', request: () => req(['GET /metadata/identity/oauth2/../../../etc/passwd HTTP/1.1', H, 'Metadata: true', CLOSE]), status: 404, code: 'SIDECAR_ERR_NOT_FOUND' },
  { name: 'percent-encoded traversal', request: () => req(['GET /metadata/identity/%2e%2e/%2e%2e/etc/passwd HTTP/1.1', H, 'Metadata: true', CLOSE]), status: 404, code: 'SIDECAR_ERR_NOT_FOUND' },
  ...(['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND'] as const).map((method) => ({
    name: `${method} on the IMDS token path`,
    request: () => req([`${method} ${IMDS} HTTP/1.1`, H, 'Metadata: true', 'Content-Length: 0', CLOSE]),
    status: 405,
    code: 'SIDECAR_ERR_METHOD',
  })),
  { name: 'HEAD on the IMDS token path (no body, still refused)', request: () => req([`HEAD ${IMDS} HTTP/1.1`, H, 'Metadata: true', CLOSE]), status: 405, code: 'SIDECAR_ERR_METHOD', shape: false },
  { name: 'duplicate resource parameter', request: () => req([`GET ${IMDS}&resource=https://evil HTTP/1.1`, H, 'Metadata: true', CLOSE]), status: 400, code: 'SIDECAR_ERR_BAD_REQUEST' },
  { name: 'request target over the URL limit', request: () => req([`GET ${IMDS}&x=${'a'.repeat(DEFAULT_LIMITS.maxUrlBytes)} HTTP/1.1`, H, 'Metadata: true', CLOSE]), status: 414, code: 'SIDECAR_ERR_URI_TOO_LONG' },
  { name: 'headers over our limit (below the parser limit)', request: () => req([`GET ${IMDS} HTTP/1.1`, H, 'Metadata: true', `X-Pad: ${'a'.repeat(DEFAULT_LIMITS.maxHeaderBytes + 100)}`, CLOSE]), status: 431, code: 'SIDECAR_ERR_HEADERS_TOO_LARGE' },
  { name: 'headers over the parser limit', request: () => req([`GET ${IMDS} HTTP/1.1`, H, 'Metadata: true', ...Array.from({ length: 8 }, (_, i) => `X-Pad-${i}: ${'a'.repeat(DEFAULT_LIMITS.maxHeaderBytes / 2)}`)]), status: 431, code: 'SIDECAR_ERR_HEADERS_TOO_LARGE' },
  { name: 'Cloud Shell body over the limit (declared)', request: () => req([`POST ${PATHS.msiEndpoint} HTTP/1.1`, H, 'Metadata: true', 'Content-Type: application/x-www-form-urlencoded', `Content-Length: ${DEFAULT_LIMITS.maxBodyBytes + 1}`], 'resource=' + 'a'.repeat(DEFAULT_LIMITS.maxBodyBytes)), status: 413, code: 'SIDECAR_ERR_TOO_LARGE', dialect: 'cloud-shell' },
  {
    name: 'Cloud Shell body over the limit (chunked, undeclared)',
    request: () => {
      const chunk = 'a'.repeat(4096);
      const chunks = Array.from({ length: 4 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join('');
      return req([`POST ${PATHS.msiEndpoint} HTTP/1.1`, H, 'Metadata: true', 'Transfer-Encoding: chunked'], `${chunks}0\r\n\r\n`);
    },
    status: 413,
    code: 'SIDECAR_ERR_TOO_LARGE',
    dialect: 'cloud-shell',
  },
  { name: 'request smuggling: Content-Length and Transfer-Encoding together', request: () => req([`POST ${PATHS.msiEndpoint} HTTP/1.1`, H, 'Metadata: true', 'Content-Length: 4', 'Transfer-Encoding: chunked'], '0\r\n\r\nGET /x HTTP/1.1\r\n\r\n'), status: 400 },
  { name: 'two Content-Length headers', request: () => req([`POST ${PATHS.msiEndpoint} HTTP/1.1`, H, 'Metadata: true', 'Content-Length: 1', 'Content-Length: 2'], 'ab'), status: 400 },
  { name: 'garbage request line', request: () => '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n', status: 400 },
  { name: 'NUL byte in the request target', request: () => req([`GET ${PATHS.imds}\x00?${IMDS_QUERY} HTTP/1.1`, H, 'Metadata: true']), status: 400 },
  { name: 'header without a colon', request: () => req([`GET ${IMDS} HTTP/1.1`, H, 'Metadata true']), status: 400 },
  { name: 'HTTP/1.1 without Host, no Metadata (answered in shape, not by the parser)', request: () => req([`GET ${IMDS} HTTP/1.1`, CLOSE]), status: 400, code: 'SIDECAR_ERR_METADATA_HEADER' },
  { name: 'HTTP/1.0 without Host, no Metadata', request: () => req([`GET ${IMDS} HTTP/1.0`]), status: 400, code: 'SIDECAR_ERR_METADATA_HEADER' },
  { name: 'HTTP/2 preface on an HTTP/1.1 listener', request: () => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', status: 400 },
];

function targets(): Array<{ name: string; start: () => Promise<RunningSidecar> }> {
  return [
    { name: 'the real program', start: () => startSidecar() },
    { name: 'the in-process listener', start: () => startInProcessSidecar() },
  ];
}

for (const target of targets()) {
  describe(`attacker requests over raw sockets against ${target.name}`, () => {
    let sidecar: RunningSidecar;
    let victim: Victim;
    let port: number;
    before(async () => {
      victim = await startVictim();
      sidecar = await target.start();
      port = portOf(sidecar.tokenUrl);
    });
    after(async () => {
      await sidecar?.stop();
      await victim?.stop();
    });

    for (const tc of cases) {
      it(`${tc.name} -> ${tc.status}`, async () => {
        const res = await rawRequest(port, tc.request({ victimPort: victim.port, header: sidecar.identityHeader }));
        if (tc.shape === false) {
          assert.equal(res.status, tc.status, res.raw.slice(0, 400));
          assert.equal(res.headers['x-mi-anywhere-error'], tc.code);
        } else assertDialectError(res, tc.status, tc.code, tc.dialect ?? 'imds');
        assert.ok(!res.raw.includes(sidecar.identityHeader), 'no answer echoes the endpoint secret');
        assert.equal(victim.connections(), 0, 'the sidecar never connected anywhere on the client\'s behalf');
      });
    }

    it('answers the IMDS token URL in absolute form locally (HTTP_PROXY users), without connecting anywhere', async () => {
      const res = await rawRequest(port, req([`GET http://169.254.169.254${IMDS} HTTP/1.1`, 'Host: 169.254.169.254', 'Metadata: true', CLOSE]));
      assert.equal(res.status, 200, res.raw.slice(0, 300));
      const body = JSON.parse(res.body) as Record<string, string>;
      assert.equal(body['resource'], 'https://vault.azure.net');
      assert.equal(victim.connections(), 0);
    });

    it('still serves after every attack above (no crash, no wedged listener)', async () => {
      const res = await fetch(`${sidecar.tokenUrl}${IMDS}`, { headers: { Metadata: 'true' } });
      assert.equal(res.status, 200);
      await res.json();
      const health = await fetch(`${sidecar.healthUrl}/healthz`);
      assert.equal(health.status, 200);
      await health.text();
    });

    it('wrong secrets are refused without echoing what was expected or what was sent', async () => {
      const sent = 'attacker-guess-0123456789abcdef';
      for (const [path, headers] of [
        [`${PATHS.appService}?api-version=2019-08-01&resource=x`, { 'X-IDENTITY-HEADER': sent }],
        [`${PATHS.msiEndpoint}?api-version=2017-09-01&resource=x`, { secret: sent }],
      ] as const) {
        const res = await fetch(`${sidecar.tokenUrl}${path}`, { headers });
        const text = await res.text();
        assert.equal(res.status, 401, text);
        assert.ok(!text.includes(sidecar.identityHeader) && !text.includes(sent), text);
      }
    });
  });
}
