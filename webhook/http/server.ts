/**
 * The webhook's listeners: the HTTPS admission endpoint (TLS with a replaceable certificate, body limit,
 * content-type check, timeouts) and the plain-HTTP health and metrics endpoints on their own ports.
 *
 * Every request to the admission listener is answered with an AdmissionReview (HS-7): malformed JSON,
 * wrong content type, an oversized body or a missing uid all produce an errored review carrying the reason,
 * never a crash, a dropped connection or a bare 500. The verdict itself comes from the pure handler.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { SecureVersion } from 'node:tls';
import type { Registry } from 'prom-client';
import { WEBHOOK_PATHS } from '../../sidecar/contract.ts';
import type { HandleResult } from '../admission/handler.ts';
import { errored, salvageUid } from '../admission/review.ts';
import type { AdmissionReviewResponse } from '../admission/types.ts';
import { BadReviewError, InternalError, PayloadTooLargeError, UnsupportedMediaTypeError, WebhookError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { WebhookMetrics } from '../metrics.ts';

/**
 * 7 MiB, as controller-runtime's admission/http.go (`maxRequestSize`): etcd's default request limit is 1.5 MiB per
 * object and an AdmissionReview can carry the object twice (object + oldObject) plus overhead; 7 MiB leaves room
 * for large pods without letting a client make us buffer arbitrary amounts.
 */
export const MAX_REVIEW_BYTES = 7 * 1024 * 1024;

export interface Certificate {
  /** PEM chain. */
  readonly cert: string;
  /** PEM private key (never logged). */
  readonly key: string;
}

export interface AdmissionServerOptions {
  readonly certificate: Certificate;
  readonly minVersion: SecureVersion;
  /** Pure decision for one parsed body (admission/handler.ts bound to its dependencies). */
  readonly handle: (body: unknown) => HandleResult;
  readonly logger: Logger;
  readonly metrics: WebhookMetrics;
  /** Monotonic seconds, for the duration histogram. */
  readonly nowSeconds: () => number;
  readonly requestTimeoutSeconds: number;
  readonly maxBodyBytes?: number;
}

export interface AdmissionServer {
  readonly server: HttpsServer;
  /** Swaps the serving certificate for new connections; existing connections keep theirs. */
  updateCertificate(certificate: Certificate): void;
}

/** One request in flight: where to answer and when it started (monotonic seconds). */
interface Exchange {
  readonly res: ServerResponse;
  readonly started: number;
}

interface SendOptions {
  /** HTTP status of the response carrying the review (200 unless the path or method is wrong). */
  readonly httpStatus?: number;
  /** Close the connection after answering (the rest of an oversized body is not read). */
  readonly close?: boolean;
}

function send(res: ServerResponse, httpStatus: number, review: AdmissionReviewResponse, close = false): void {
  const body = JSON.stringify(review);
  res.writeHead(httpStatus, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(body);
}

/** Reads the whole body up to `limit` bytes; resolves undefined when the limit was exceeded. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // Stop buffering; the rest is discarded while the answer is sent and the connection closed.
        req.removeAllListeners('data');
        req.resume();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function isJson(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.split(';')[0]?.trim().toLowerCase() === 'application/json';
}

/** An errored review for a handler that threw (uid salvaged from the body when possible). */
function handleFailure(body: unknown): HandleResult {
  const uid = salvageUid(body);
  const error = new InternalError();
  return { review: errored(uid, error), outcome: 'error', reason: error.code, uid, namespace: undefined, name: undefined, operation: undefined, patch: [], error: undefined };
}

export function createAdmissionServer(options: AdmissionServerOptions): AdmissionServer {
  const limit = options.maxBodyBytes ?? MAX_REVIEW_BYTES;
  const tlsOptions = { minVersion: options.minVersion };
  const server = createHttpsServer({ ...tlsOptions, cert: options.certificate.cert, key: options.certificate.key });
  // The API server holds a request at most timeoutSeconds (<= 30 s); headers arrive at once from it.
  server.requestTimeout = options.requestTimeoutSeconds * 1000;
  server.headersTimeout = Math.min(10_000, server.requestTimeout);
  // Go's HTTP client (the API server) keeps idle connections for 90 s; staying open 60 s saves TLS handshakes.
  server.keepAliveTimeout = 60_000;

  /** Writes the answer, then records it (metric + one log line). */
  const finish = (exchange: Exchange, result: Pick<HandleResult, 'outcome' | 'review'> & Partial<HandleResult>, how: SendOptions = {}): void => {
    send(exchange.res, how.httpStatus ?? 200, result.review, how.close ?? false);
    options.metrics.admission(result.outcome, options.nowSeconds() - exchange.started);
    const fields = {
      uid: result.uid ?? result.review.response.uid,
      namespace: result.namespace,
      name: result.name,
      operation: result.operation,
      outcome: result.outcome,
      reason: result.reason,
      status: result.review.response.status?.code,
    };
    if (result.error !== undefined) options.logger.error({ ...fields, err: result.error }, 'admission failed unexpectedly');
    else options.logger.info(fields, 'admission');
    if (result.patch !== undefined && result.patch.length > 0) {
      // Paths only: values include the per-pod identity header.
      options.logger.debug({ uid: fields.uid, patch: result.patch.map((op) => `${op.op} ${op.path}`) }, 'patch');
    }
  };

  const fail = (exchange: Exchange, error: WebhookError, how: SendOptions = {}): void => {
    finish(exchange, { review: errored('', error), outcome: 'error', reason: error.message }, how);
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const exchange: Exchange = { res, started: options.nowSeconds() };
    const path = (req.url ?? '').split('?')[0];
    if (path !== WEBHOOK_PATHS.mutate) {
      fail(exchange, new WebhookError({ code: 'WEBHOOK_ERR_BAD_REVIEW', httpStatus: 404, message: `no admission endpoint at ${JSON.stringify(path)}; use ${WEBHOOK_PATHS.mutate}` }), { httpStatus: 404 });
      return;
    }
    if (req.method !== 'POST') {
      fail(exchange, new WebhookError({ code: 'WEBHOOK_ERR_BAD_REVIEW', httpStatus: 405, message: `method ${req.method ?? ''} not allowed; the API server POSTs AdmissionReviews` }), { httpStatus: 405 });
      return;
    }
    if (!isJson(req.headers['content-type'])) {
      req.resume();
      fail(exchange, new UnsupportedMediaTypeError(req.headers['content-type']));
      return;
    }
    readBody(req, limit).then(
      (body) => {
        if (body === undefined) {
          fail(exchange, new PayloadTooLargeError(limit), { close: true });
          return;
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(body.toString('utf8'));
        } catch {
          fail(exchange, new BadReviewError('body is not valid JSON'));
          return;
        }
        let result: HandleResult;
        try {
          result = options.handle(parsed);
        } catch (error) {
          // handleReview never throws by design; this guard keeps a future bug from becoming a crash or a bare 500.
          result = { ...handleFailure(parsed), error };
        }
        finish(exchange, result);
      },
      (error: unknown) => {
        options.logger.warn({ err: error }, 'reading an admission request failed');
        res.destroy();
      },
    );
  });
  server.on('tlsClientError', (error) => options.logger.debug({ err: error }, 'TLS handshake failed'));

  return {
    server,
    updateCertificate(certificate: Certificate): void {
      server.setSecureContext({ ...tlsOptions, cert: certificate.cert, key: certificate.key });
    },
  };
}

/** `/healthz` (alive: the process answers) and `/readyz` (ready: a certificate is loaded and listening). */
export function createHealthServer(ready: () => boolean): HttpServer {
  return createHttpServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === WEBHOOK_PATHS.liveness) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    } else if (path === WEBHOOK_PATHS.readiness) {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready' : 'not ready');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
}

/** `/metrics` in the registry's own content type, on its own port. */
export function createMetricsServer(register: Registry, logger: Logger): HttpServer {
  return createHttpServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== WEBHOOK_PATHS.metrics) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    register.metrics().then(
      (text) => res.writeHead(200, { 'content-type': register.contentType }).end(text),
      (error: unknown) => {
        logger.error({ err: error }, 'collecting metrics failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable');
      },
    );
  });
}
