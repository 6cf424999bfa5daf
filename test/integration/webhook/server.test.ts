/**
 * The HTTPS admission listener on port 0 with a test CA: real TLS, real sockets, exact answers for the edge
 * cases (bad JSON, wrong content type, empty and oversized bodies, missing uid, wrong path/method), TLS version
 * policy, certificate swap without restart, and the health/metrics listeners.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { Server } from 'node:http';
import { request, type Server as HttpsServer } from 'node:https';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { handleReview } from '../../../webhook/admission/handler.ts';
import { renewCertificates, type StoredCertificates } from '../../../webhook/cert/authority.ts';
import { ADMISSION_HEADERS_TIMEOUT_MS, createAdmissionServer, createHealthServer, createMetricsServer, MAX_REVIEW_BYTES, type AdmissionServer } from '../../../webhook/http/server.ts';
import { connectionsCheckingInterval } from '../../../common/http-server.ts';
import { createLogger } from '../../../webhook/log.ts';
import { createWebhookMetrics } from '../../../webhook/metrics.ts';
import { FIXTURE_SECRET, fixtureDeps, listFixtures } from '../../helpers/admission-fixtures.ts';

const NAMES = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };
const POLICY = { certValidityDays: 2, certRenewBeforeDays: 1, caValidityDays: 3, caRenewBeforeDays: 1 };

type Json = any;

interface Answer {
  status: number;
  body: Json;
  fingerprint: string;
}

function listen(server: Server | HttpsServer): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function close(server: Server | HttpsServer): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    (server as Server).closeAllConnections();
  });
}

describe('admission HTTPS server', () => {
  let pki: StoredCertificates;
  let second: StoredCertificates;
  let admission: AdmissionServer;
  let strict: AdmissionServer;
  let port: number;
  let strictPort: number;
  let logs = '';
  const register = new Registry();
  const metrics = createWebhookMetrics({ register, version: 'test' });

  const send = (options: { path?: string; method?: string; contentType?: string | undefined; body?: string | Buffer; chunked?: boolean; to?: number; maxVersion?: 'TLSv1.2' | 'TLSv1.3'; ca?: string }): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = {};
      if (options.contentType !== undefined) headers['content-type'] = options.contentType;
      if (options.body !== undefined && !options.chunked) headers['content-length'] = Buffer.byteLength(options.body);
      const req = request(
        {
          host: '127.0.0.1',
          port: options.to ?? port,
          path: options.path ?? '/mutate',
          method: options.method ?? 'POST',
          headers,
          ca: options.ca ?? pki.caBundle,
          maxVersion: options.maxVersion ?? 'TLSv1.3',
          agent: false,
        },
        (res) => {
          const cert = (res.socket as TLSSocket).getPeerCertificate();
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text), fingerprint: cert.fingerprint256 });
          });
        },
      );
      req.on('error', reject);
      if (options.body !== undefined && options.chunked) {
        // Stream in pieces without a content-length, so only the running byte count can stop it.
        const body = Buffer.isBuffer(options.body) ? options.body : Buffer.from(options.body);
        for (let i = 0; i < body.length; i += 1 << 20) req.write(body.subarray(i, i + (1 << 20)));
        req.end();
      } else req.end(options.body);
    });

  before(async () => {
    pki = await renewCertificates({ action: 'renew-ca', reason: 'test' }, { names: NAMES, policy: POLICY, now: Date.now() });
    second = await renewCertificates({ action: 'renew-serving', reason: 'test' }, { stored: pki, names: NAMES, policy: POLICY, now: Date.now() });
    const logger = createLogger({ level: 'debug', destination: new Writable({ write(chunk, _e, cb) { logs += String(chunk); cb(); } }) });
    const common = {
      handle: (body: unknown) => handleReview(body, fixtureDeps('label-minimal')),
      logger,
      metrics,
      nowSeconds: () => performance.now() / 1000,
      requestTimeoutSeconds: 30,
    };
    admission = createAdmissionServer({ ...common, certificate: { cert: pki.cert, key: pki.key }, minVersion: 'TLSv1.2' });
    strict = createAdmissionServer({ ...common, certificate: { cert: pki.cert, key: pki.key }, minVersion: 'TLSv1.3' });
    port = await listen(admission.server);
    strictPort = await listen(strict.server);
  });
  after(async () => {
    await close(admission.server);
    await close(strict.server);
  });

  it('answers a pod creation with a patch and the uid', async () => {
    const fixture = listFixtures().fixtures.find((f) => f.name === 'label-minimal');
    assert.ok(fixture);
    const review = fixture.review();
    const answer = await send({ contentType: 'application/json', body: JSON.stringify(review) });
    assert.equal(answer.status, 200);
    assert.equal(answer.body.response.uid, review.request.uid);
    assert.equal(answer.body.response.allowed, true);
    assert.equal(answer.body.response.patchType, 'JSONPatch');
  });

  const errorCases: Array<{ name: string; request: Parameters<typeof send>[0]; status: number; want: object }> = [
    { name: 'malformed JSON', request: { contentType: 'application/json', body: '{"apiVersion":' }, status: 200, want: { uid: '', allowed: false, status: { code: 400, message: 'body is not valid JSON' } } },
    { name: 'empty body', request: { contentType: 'application/json', body: '' }, status: 200, want: { uid: '', allowed: false, status: { code: 400, message: 'body is not valid JSON' } } },
    { name: 'wrong content type', request: { contentType: 'text/plain', body: '{}' }, status: 200, want: { uid: '', allowed: false, status: { code: 415, message: 'content type "text/plain" is not supported; expected application/json' } } },
    { name: 'no content type', request: { contentType: undefined, body: '{}' }, status: 200, want: { uid: '', allowed: false, status: { code: 415, message: 'content type "" is not supported; expected application/json' } } },
    {
      name: 'missing uid',
      request: { contentType: 'application/json; charset=utf-8', body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: { kind: 'Pod' }, operation: 'CREATE' } }) },
      status: 200,
      want: { uid: '', allowed: false, status: { code: 400, message: 'request.uid is missing' } },
    },
    {
      name: 'v1beta1 review keeps its uid',
      request: { contentType: 'application/json', body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'old-1' } }) },
      status: 200,
      want: { uid: 'old-1', allowed: false, status: { code: 400, message: 'apiVersion must be admission.k8s.io/v1, got "admission.k8s.io/v1beta1"' } },
    },
    { name: 'oversized (declared length)', request: { contentType: 'application/json', body: Buffer.alloc(MAX_REVIEW_BYTES + 1, 0x20) }, status: 200, want: { uid: '', allowed: false, status: { code: 413, message: `request body exceeds ${MAX_REVIEW_BYTES} bytes` } } },
    { name: 'oversized (chunked)', request: { contentType: 'application/json', body: Buffer.alloc(MAX_REVIEW_BYTES + 1, 0x20), chunked: true }, status: 200, want: { uid: '', allowed: false, status: { code: 413, message: `request body exceeds ${MAX_REVIEW_BYTES} bytes` } } },
    { name: 'wrong path', request: { path: '/validate', contentType: 'application/json', body: '{}' }, status: 404, want: { uid: '', allowed: false, status: { code: 404, message: 'no admission endpoint at "/validate"; use /mutate' } } },
    { name: 'GET', request: { method: 'GET' }, status: 405, want: { uid: '', allowed: false, status: { code: 405, message: 'method GET not allowed; the API server POSTs AdmissionReviews' } } },
  ];
  for (const tc of errorCases) {
    it(`answers ${tc.name} with an AdmissionReview`, async () => {
      const answer = await send(tc.request);
      assert.equal(answer.status, tc.status);
      assert.deepEqual(answer.body, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: tc.want });
    });
  }

  it('a body just under the limit is read (and judged on its content)', async () => {
    const padding = ' '.repeat(MAX_REVIEW_BYTES - 200);
    const answer = await send({ contentType: 'application/json', body: `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"big"}}${padding}` });
    assert.equal(answer.body.response.uid, 'big');
    assert.equal(answer.body.response.status.code, 400);
  });

  it('TLS 1.3 by default: a TLS 1.2-only client is refused; 1.2 works where configured', async () => {
    await assert.rejects(send({ to: strictPort, maxVersion: 'TLSv1.2', contentType: 'application/json', body: '{}' }), /protocol version|handshake|alert/i);
    const ok = await send({ to: port, maxVersion: 'TLSv1.2', contentType: 'application/json', body: '{}' });
    assert.equal(ok.status, 200);
  });

  it('swaps the certificate for new connections without a restart', async () => {
    const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;
    assert.equal((await send({ contentType: 'application/json', body: '{}' })).fingerprint, fingerprint(pki.cert));
    admission.updateCertificate({ cert: second.cert, key: second.key });
    assert.equal((await send({ contentType: 'application/json', body: '{}' })).fingerprint, fingerprint(second.cert));
    assert.notEqual(fingerprint(second.cert), fingerprint(pki.cert));
  });

  it('counted every answer; logged facts but never the per-pod secret or the body', async () => {
    const text = await register.metrics();
    assert.match(text, /^mi_anywhere_webhook_admission_requests_total\{outcome="mutated"\} [1-9]/m);
    assert.match(text, /^mi_anywhere_webhook_admission_requests_total\{outcome="error"\} [1-9]/m);
    assert.match(logs, /"outcome":"mutated"/);
    assert.match(logs, /"namespace":"apps","name":"label-minimal","operation":"CREATE"/);
    assert.ok(!logs.includes(FIXTURE_SECRET), 'the per-pod identity header never reaches a log line');
    assert.ok(!logs.includes('registry.example/app'), 'no request body in the log');
  });
});

describe('a handler bug', () => {
  it('becomes an errored review with the uid, not a crash or a bare 500', async () => {
    const pki = await renewCertificates({ action: 'renew-ca', reason: 'test' }, { names: NAMES, policy: POLICY, now: Date.now() });
    let logs = '';
    const server = createAdmissionServer({
      certificate: { cert: pki.cert, key: pki.key },
      minVersion: 'TLSv1.3',
      handle: () => {
        throw new TypeError('boom: a bug');
      },
      logger: createLogger({ level: 'info', destination: new Writable({ write(chunk, _e, cb) { logs += String(chunk); cb(); } }) }),
      metrics: createWebhookMetrics({ register: new Registry(), version: 'test' }),
      nowSeconds: () => performance.now() / 1000,
      requestTimeoutSeconds: 30,
    });
    const port = await listen(server.server);
    try {
      const answer = await new Promise<{ status: number; body: Json }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', ca: pki.caBundle, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'bug-1' } }));
      });
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.body.response, { uid: 'bug-1', allowed: false, status: { code: 500, message: 'internal error in the mi-anywhere webhook' } });
      assert.match(logs, /boom: a bug/, 'the full error is logged');
    } finally {
      await close(server.server);
    }
  });
});

describe('health and metrics listeners', () => {
  it('/healthz always, /readyz only when ready, /metrics in the registry content type', async () => {
    let ready = false;
    const health = createHealthServer(() => ready);
    const register = new Registry();
    createWebhookMetrics({ register, version: 'test' });
    const metricsServer = createMetricsServer(register, createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) }));
    const healthPort = await listen(health);
    const metricsPort = await listen(metricsServer);
    try {
      assert.equal((await fetch(`http://127.0.0.1:${healthPort}/healthz`)).status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status, 503);
      ready = true;
      assert.equal((await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${healthPort}/metrics`)).status, 404, 'metrics are not on the health port');
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), register.contentType);
      assert.match(await res.text(), /mi_anywhere_build_info/);
    } finally {
      await close(health);
      await close(metricsServer);
    }
  });
});

describe('the admission listener against slow or hostile clients', () => {
  let pki: StoredCertificates;
  let admission: AdmissionServer;
  let port: number;
  before(async () => {
    pki = await renewCertificates({ action: 'renew-ca', reason: 'test' }, { names: NAMES, policy: POLICY, now: Date.now() });
    admission = createAdmissionServer({
      certificate: { cert: pki.cert, key: pki.key },
      minVersion: 'TLSv1.3',
      handle: (body: unknown) => handleReview(body, fixtureDeps('label-minimal')),
      logger: createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) }),
      metrics: createWebhookMetrics({ register: new Registry(), version: 'test' }),
      nowSeconds: () => performance.now() / 1000,
      requestTimeoutSeconds: 1,
      // Injected small: the production value is ADMISSION_HEADERS_TIMEOUT_MS (10 s).
      headersTimeoutMs: 300,
    });
    port = await listen(admission.server);
  });
  after(() => close(admission.server));

  // The bound is the failure mode: Node checks timeouts every 30 s by default, so without the derived check interval
  // the connection would still be open when the test gives up.
  it('headers that never finish are cut after the header timeout', { timeout: 15_000 }, async () => {
    await new Promise<void>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ca: pki.caBundle, servername: 'localhost' }, () => socket.write('POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Ty'));
      socket.on('close', () => resolve());
      socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? undefined : reject(error)));
    });
  });

  it('the production header timeout is 10 s and checked at least every second', () => {
    assert.equal(ADMISSION_HEADERS_TIMEOUT_MS, 10_000);
    assert.ok(connectionsCheckingInterval({ headersTimeoutMs: ADMISSION_HEADERS_TIMEOUT_MS, requestTimeoutMs: 30_000 }) <= 1_000);
  });

  const deep = (depth: number): string => `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"deep-1","kind":{"kind":"Pod"},"operation":"CREATE","object":{"kind":"Pod","metadata":{"name":"p","annotations":${'['.repeat(depth)}${']'.repeat(depth)}}}}}`;
  for (const depth of [1_000, 100_000]) {
    it(`JSON nested ${depth} deep: an AdmissionReview echoing the uid, never an HTTP 500`, async () => {
      const answer = await new Promise<{ status: number; body: Json }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', ca: pki.caBundle, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.end(deep(depth));
      });
      assert.equal(answer.status, 200);
      assert.equal(answer.body.kind, 'AdmissionReview');
      assert.equal(answer.body.response.uid, 'deep-1');
    });
  }
});
