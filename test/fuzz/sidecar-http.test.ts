/**
 * Fuzzing the sidecar's HTTP surface (docs/security.md §4.2) with fast-check, over raw sockets against the real listener code
 * (in-process sidecar on port 0; the attacker suite in test/security covers the spawned program too):
 * - well-framed requests with random methods, path variants and junk paths, query strings (known and random
 *   names, encoded, raw and broken percent-escapes, duplicates), headers (right and wrong secrets, Metadata
 *   variants, proxy headers, random names and obs-text values) and form bodies (forms, random text, random bytes);
 * - malformed requests: valid requests with random byte edits, truncation and splicing, half-closed.
 * Properties: an answer always comes (no hang, no crash), never a 5xx, and the body is a token, a dev-issuer
 * document, or an error in one of the dialects' shapes. Bounded runs and time; the seed is printed and
 * `FC_SEED=<seed>` replays a run.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PATHS } from '../../sidecar/contract.ts';
import { startInProcessSidecar, type InProcessSidecar } from '../helpers/sidecar.ts';
import { portOf, rawRequest, type RawResponse } from '../helpers/raw-http.ts';
import { isAnyErrorShape, isTokenBody } from '../helpers/shapes.ts';
import { fuzzParameters, seedNote } from '../helpers/pod-arbitraries.ts';

/** Percent-encodes what cannot appear raw in a request line (controls, space, non-ASCII) and nothing else. */
function lineSafe(text: string): string {
  return Array.from(Buffer.from(text, 'utf8'))
    .map((b) => (b > 0x20 && b < 0x7f ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`))
    .join('');
}

const paths = fc.oneof(
  { arbitrary: fc.constantFrom(PATHS.imds, PATHS.appService, PATHS.msiEndpoint, PATHS.arc), weight: 6 },
  {
    arbitrary: fc.constantFrom(
      '/',
      '/metadata',
      `${PATHS.imds}/`,
      `/${PATHS.imds}`,
      PATHS.imds.toUpperCase(),
      `${PATHS.imds}//`,
      '/metadata/identity/oauth2/token/../token',
      `${PATHS.devIssuer}/.well-known/openid-configuration`,
      `${PATHS.devIssuer}/jwks`,
      'http://169.254.169.254/metadata/identity/oauth2/token',
      'http://127.0.0.1:1/x',
      '*',
    ),
    weight: 2,
  },
  { arbitrary: fc.string({ maxLength: 40 }).map((s) => `/${lineSafe(s)}`), weight: 1 },
);

const paramName = fc.oneof(
  fc.constantFrom('api-version', 'resource', 'client_id', 'object_id', 'msi_res_id', 'mi_res_id', 'msi-res-id', 'principal_id', 'clientid'),
  fc.string({ minLength: 1, maxLength: 10 }),
);
const paramValue = fc.oneof(
  fc.constantFrom('2018-02-01', '2019-08-01', '2017-09-01', '2020-06-01', '2019-11-01', '1999-01-01', 'latest', '2018-02-01-preview'),
  fc.constantFrom('https://vault.azure.net', 'https://management.azure.com/', 'api://x/.default', '00000000-0000-0000-0000-000000000000', 'DEFAULT'),
  fc.string({ maxLength: 30 }),
  fc.string({ maxLength: 10, unit: 'binary' }),
  fc.constantFrom('%', '%zz', '%E0%A4%A', '+', '%00', '\u2028'),
);
const query = fc
  .array(fc.tuple(paramName, paramValue, fc.constantFrom('encode', 'raw')), { maxLength: 6 })
  .map((pairs) => pairs.map(([n, v, how]) => (how === 'encode' ? `${encodeURIComponent(n)}=${encodeURIComponent(v)}` : `${lineSafe(n)}=${lineSafe(v)}`)).join('&'));

const headerValue = fc.oneof(
  fc.stringMatching(/^[\x21-\x7e][\x20-\x7e]{0,40}$/),
  fc.uint8Array({ minLength: 1, maxLength: 20 }).map((bytes) => Buffer.from(bytes.map((b) => (b < 0x21 ? 0x41 : b === 0x7f ? 0x42 : b))).toString('latin1')),
);

function headersArb(secret: string): fc.Arbitrary<Array<[string, string]>> {
  const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 2 });
  return fc
    .record({
      metadata: opt(fc.oneof(fc.constantFrom('true', 'True', 'TRUE', 'false', ' true '), headerValue)),
      identityHeader: opt(fc.oneof(fc.constant(secret), headerValue)),
      msiSecret: opt(fc.oneof(fc.constant(secret), headerValue)),
      authorization: opt(fc.oneof(headerValue.map((v) => `Basic ${v}`), headerValue)),
      forwarded: fc.option(fc.constantFrom(['X-Forwarded-For', '10.0.0.1'] as const, ['Forwarded', 'for=1.2.3.4'] as const), { nil: undefined, freq: 6 }),
      contentType: opt(fc.oneof(fc.constantFrom('application/x-www-form-urlencoded', 'application/json', 'text/plain; charset=latin1', 'multipart/form-data; boundary=x'), headerValue)),
      extra: fc.array(fc.tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,15}$/), headerValue), { maxLength: 3 }),
    })
    .map((h) => {
      const list: Array<[string, string]> = [];
      if (h.metadata !== undefined) list.push(['Metadata', h.metadata]);
      if (h.identityHeader !== undefined) list.push(['X-IDENTITY-HEADER', h.identityHeader]);
      if (h.msiSecret !== undefined) list.push(['secret', h.msiSecret]);
      if (h.authorization !== undefined) list.push(['Authorization', h.authorization]);
      if (h.forwarded !== undefined) list.push([...h.forwarded]);
      if (h.contentType !== undefined) list.push(['Content-Type', h.contentType]);
      for (const [n, v] of h.extra) if (!/^(content-length|transfer-encoding|host|connection)$/i.test(n)) list.push([n, v]);
      return list;
    });
}

const bodyArb = fc.oneof(
  fc.tuple(paramValue, fc.option(fc.tuple(paramName, paramValue), { nil: undefined })).map(([r, sel]) => Buffer.from(`resource=${encodeURIComponent(r)}${sel ? `&${encodeURIComponent(sel[0])}=${encodeURIComponent(sel[1])}` : ''}`)),
  fc.string({ maxLength: 200 }).map((s) => Buffer.from(s, 'utf8')),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  fc.constant(Buffer.alloc(0)),
);

const methodArb = fc.oneof(
  { arbitrary: fc.constantFrom('GET', 'POST'), weight: 6 },
  { arbitrary: fc.constantFrom('PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'TRACE'), weight: 2 },
  { arbitrary: fc.stringMatching(/^[A-Z]{1,10}$/), weight: 1 },
);

interface Built {
  readonly method: string;
  readonly bytes: Buffer;
}

/** Requests each dialect accepts (random resources and harmless extra headers), so the token path is fuzzed too. */
function validArb(secret: string): fc.Arbitrary<Parts> {
  const resource = fc.oneof(fc.constantFrom('https://vault.azure.net', 'https://management.azure.com/', 'api://app/.default'), fc.webUrl());
  const extra = fc.array(fc.tuple(fc.stringMatching(/^X-[A-Za-z0-9-]{1,10}$/), fc.stringMatching(/^[\x21-\x7e]{1,20}$/)), { maxLength: 2 });
  return fc.tuple(fc.constantFrom('imds', 'app-service', 'msi-get', 'cloud-shell'), resource, extra).map(([dialect, r, more]) => {
    const res = encodeURIComponent(r);
    switch (dialect) {
      case 'imds':
        return { method: 'GET', path: PATHS.imds, query: `api-version=2018-02-01&resource=${res}`, headers: [['Metadata', 'true'], ...more], body: Buffer.alloc(0) };
      case 'app-service':
        return { method: 'GET', path: PATHS.appService, query: `api-version=2019-08-01&resource=${res}`, headers: [['X-IDENTITY-HEADER', secret], ...more], body: Buffer.alloc(0) };
      case 'msi-get':
        return { method: 'GET', path: PATHS.msiEndpoint, query: `api-version=2017-09-01&resource=${res}`, headers: [['secret', secret], ...more], body: Buffer.alloc(0) };
      default:
        return { method: 'POST', path: PATHS.msiEndpoint, query: '', headers: [['Metadata', 'true'], ['Content-Type', 'application/x-www-form-urlencoded'], ...more], body: Buffer.from(`resource=${res}`) };
    }
  });
}

interface Parts {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
}

function requestArb(secret: string): fc.Arbitrary<Built> {
  const random: fc.Arbitrary<Parts> = fc.record({ method: methodArb, path: paths, query, headers: headersArb(secret), body: bodyArb });
  return fc.oneof({ arbitrary: validArb(secret), weight: 1 }, { arbitrary: random, weight: 3 }).map((r) => {
    const target = r.query === '' ? r.path : `${r.path}?${r.query}`;
    const withBody = r.method !== 'GET' && r.method !== 'HEAD';
    const head = [`${r.method} ${target} HTTP/1.1`, 'Host: 127.0.0.1', ...r.headers.map(([n, v]) => `${n}: ${v}`)];
    if (withBody) head.push(`Content-Length: ${r.body.length}`);
    head.push('Connection: close');
    const bytes = Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n', 'latin1'), withBody ? r.body : Buffer.alloc(0)]);
    return { method: r.method, bytes };
  });
}

/** The properties every answer must have. Returns what kind of answer it was (for coverage accounting). */
function checkAnswer(res: RawResponse, method: string): 'token' | 'error' | 'document' | 'empty' {
  assert.ok(res.status > 0, `no answer (closed by server: ${res.closedByServer}): ${JSON.stringify(res.raw.slice(0, 200))}`);
  assert.ok(res.status < 500, `5xx from bad input: ${res.raw.slice(0, 400)}`);
  if (method === 'HEAD' || res.body === '') {
    assert.ok(method === 'HEAD', `empty body for ${method}: ${res.raw.slice(0, 300)}`);
    return 'empty';
  }
  assert.match(res.headers['content-type'] ?? '', /^application\/json/, res.raw.slice(0, 300));
  const body = JSON.parse(res.body) as Record<string, unknown>;
  if (res.status === 200) {
    if (isTokenBody(body)) return 'token';
    assert.ok('issuer' in body || 'keys' in body, `200 that is neither a token nor a dev-issuer document: ${res.body.slice(0, 200)}`);
    return 'document';
  }
  assert.ok(isAnyErrorShape(body, res.status), `not a dialect error shape (${res.status}): ${res.body}`);
  return 'error';
}

describe('fuzz: the sidecar HTTP surface', () => {
  let sidecar: InProcessSidecar;
  let port: number;
  before(async () => {
    sidecar = await startInProcessSidecar();
    port = portOf(sidecar.tokenUrl);
  });
  after(async () => sidecar?.stop());

  it('well-framed random requests: always an answer, never a 5xx, always a token or a dialect error shape', async (t) => {
    const parameters = fuzzParameters<[Built]>(400, 30_000);
    const seen = { token: 0, error: 0, document: 0, empty: 0 };
    await fc.assert(
      fc.asyncProperty(requestArb(sidecar.identityHeader), async (r) => {
        const res = await rawRequest(port, r.bytes, 5_000);
        seen[checkAnswer(res, r.method)] += 1;
      }),
      parameters,
    );
    t.diagnostic(`${JSON.stringify(seen)}; ${seedNote(parameters)}`);
    assert.ok(seen.token > 0 && seen.error > 0, `generators must reach both tokens and errors: ${JSON.stringify(seen)} (${seedNote(parameters)})`);
  });

  it('malformed requests (random byte edits, truncation, splicing): an answer or a close, never a hang or a 5xx', async (t) => {
    const edit = fc.oneof(
      fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), byte: fc.constant(0) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(), byte: fc.constant(0) }),
      fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), byte: fc.nat() }),
    );
    const parameters = fuzzParameters<[Built, Array<{ kind: string; at: number; byte: number }>]>(250, 30_000);
    let answered = 0;
    let closed = 0;
    await fc.assert(
      fc.asyncProperty(requestArb(sidecar.identityHeader), fc.array(edit, { minLength: 1, maxLength: 4 }), async (r, edits) => {
        let bytes = Buffer.from(r.bytes);
        for (const e of edits) {
          const at = bytes.length === 0 ? 0 : e.at % bytes.length;
          if (e.kind === 'replace' && bytes.length > 0) bytes[at] = e.byte;
          else if (e.kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([e.byte]), bytes.subarray(at)]);
          else if (e.kind === 'delete') bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
          else if (e.kind === 'truncate') bytes = bytes.subarray(0, at);
          else if (e.kind === 'splice') bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(e.byte % Math.max(1, bytes.length))]);
        }
        const res = await rawRequest(port, bytes, 5_000, true);
        if (res.status === 0) {
          assert.ok(res.closedByServer, `no answer and no close within 5 s (hang): ${JSON.stringify(bytes.toString('latin1').slice(0, 200))}`);
          closed += 1;
          return;
        }
        assert.ok(res.status < 500, `5xx from malformed input: ${res.raw.slice(0, 300)}`);
        if (res.body !== '') {
          const body = JSON.parse(res.body) as Record<string, unknown>;
          assert.ok(res.status === 200 ? isTokenBody(body) || 'issuer' in body || 'keys' in body : isAnyErrorShape(body, res.status), res.body);
        }
        answered += 1;
      }),
      parameters,
    );
    t.diagnostic(`${answered} answered, ${closed} closed without an answer; ${seedNote(parameters)}`);
    assert.ok(answered > 0);
  });

  it('still serves afterwards and never logged an internal error', async () => {
    const res = await fetch(`${sidecar.tokenUrl}${PATHS.imds}?api-version=2018-02-01&resource=https://vault.azure.net`, { headers: { Metadata: 'true' } });
    assert.equal(res.status, 200);
    await res.json();
    assert.doesNotMatch(sidecar.logs(), /unexpected error while serving a token request/);
    assert.doesNotMatch(sidecar.logs(), /"level":"(error|fatal)"/);
  });
});
