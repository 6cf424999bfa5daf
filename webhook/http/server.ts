/**
 * The webhook's listeners: express applications for the HTTPS admission endpoint (body limit, content-type check)
 * and the plain-HTTP health and metrics endpoints on their own ports. Server-level concerns stay on the node:https
 * / node:http servers: TLS and certificate swapping, timeouts (`common/http-server.ts`, shared by both programs).
 *
 * Every request to the admission listener is answered with an AdmissionReview (CONTRIBUTING.md, "Typed errors,
 * mapped in one place"): malformed JSON, wrong content type, an oversized body or a missing uid all produce an
 * errored review carrying the reason, never a crash, a dropped connection or a bare 500. The verdict itself comes
 * from the pure handler.
 */
import { createServer as createHttpServer, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { SecureVersion } from 'node:tls';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import { WEBHOOK_PATHS } from '../../sidecar/contract.ts';
import { timeoutOptions, type ServerTimeouts } from '../../common/http-server.ts';
import type { HandleResult } from '../admission/handler.ts';
import { errored, salvageUid } from '../admission/review.ts';
import type { AdmissionReviewResponse } from '../admission/types.ts';
import { BadReviewError, InternalError, PayloadTooLargeError, UnsupportedMediaTypeError, WebhookError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { WebhookMetrics } from '../metrics.ts';

/**
 * 7 MiB, as controller-runtime's `maxRequestSize`
 * (https://github.com/kubernetes-sigs/controller-runtime/blob/main/pkg/webhook/admission/http.go): etcd's default
 * request limit is 1.5 MiB per object and an AdmissionReview can carry the object twice (object + oldObject) plus
 * overhead; 7 MiB leaves room for large pods without letting a client make us buffer arbitrary amounts.
 */
export const MAX_REVIEW_BYTES = 7 * 1024 * 1024;

/** Headers arrive at once from the API server; a client slower than this is cut (docs/security.md). */
export const ADMISSION_HEADERS_TIMEOUT_MS = 10_000;

/** Health and metrics listeners: kubelet and Prometheus send small requests at once. */
const PROBE_TIMEOUTS: ServerTimeouts = { headersTimeoutMs: 10_000, requestTimeoutMs: 15_000, keepAliveTimeoutMs: 65_000 };

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
  /** Header timeout (default {@link ADMISSION_HEADERS_TIMEOUT_MS}; tests inject small values). */
  readonly headersTimeoutMs?: number;
  readonly maxBodyBytes?: number;
}

interface SendOptions {
  /** HTTP status of the response carrying the review (200 unless the path or method is wrong). */
  readonly httpStatus?: number;
  /** Close the connection after answering (the rest of an oversized body is not read). */
  readonly close?: boolean;
}

export interface AdmissionServer {
  readonly server: HttpsServer;
  /** Swaps the serving certificate for new connections; existing connections keep theirs. */
  updateCertificate(certificate: Certificate): void;
}

/** What one admission request became, for the metric and the log line (kept on `res.locals`). */
interface Exchange {
  /** Monotonic seconds at arrival. */
  readonly started: number;
  /** The uid read from the body, once it parsed (echoed by every later failure). */
  uid: string;
}

function send(res: ServerResponse, httpStatus: number, review: AdmissionReviewResponse, close = false): void {
  if (res.headersSent) return;
  const body = JSON.stringify(review);
  res.writeHead(httpStatus, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(body);
}

function isJson(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.split(';')[0]?.trim().toLowerCase() === 'application/json';
}

/** An errored review for a handler that threw (uid salvaged from the body when possible). */
function handleFailure(body: unknown, error: unknown): HandleResult {
  const uid = salvageUid(body);
  const internal = new InternalError();
  return { review: errored(uid, internal), outcome: 'error', reason: internal.code, uid, namespace: undefined, name: undefined, operation: undefined, patch: [], error };
}

/** A webhook error with an HTTP status of its own (wrong path or method: the review rides on a 404/405). */
function routingError(httpStatus: 404 | 405, message: string): WebhookError {
  return new WebhookError({ code: 'WEBHOOK_ERR_BAD_REVIEW', httpStatus, message });
}

/**
 * Errors of express's body reader as the webhook's own: 413 stays "too large"; anything else it refuses is an
 * unreadable review (400), never a 500.
 */
function fromBodyParserError(error: unknown, limit: number): WebhookError {
  if (error instanceof WebhookError) return error;
  const e = error as { type?: unknown; status?: unknown };
  if (e?.type === 'entity.too.large') return new PayloadTooLargeError(limit);
  if (typeof e?.type === 'string' && typeof e.status === 'number' && e.status < 500) return new BadReviewError('the request body could not be read');
  return new InternalError({ cause: error });
}

const exchangeOf = (res: Response): Exchange => res.locals['exchange'] as Exchange;

/**
 * The admission application: `POST /mutate` with a JSON body of at most `limit` bytes, read by express.raw and
 * parsed here (an empty body is "not valid JSON", not `{}`), decided by the pure handler. Every other path,
 * method, content type, size or parse failure becomes an errored AdmissionReview through one error middleware.
 */
function createAdmissionApp(options: AdmissionServerOptions, limit: number): Express {
  /** Writes the answer, then records it (metric + one log line). */
  const finish = (res: Response, result: Pick<HandleResult, 'outcome' | 'review'> & Partial<HandleResult>, how: SendOptions = {}): void => {
    send(res, how.httpStatus ?? 200, result.review, how.close ?? false);
    options.metrics.admission(result.outcome, options.nowSeconds() - exchangeOf(res).started);
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

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', false);
  app.use((_req, res, next) => {
    res.locals['exchange'] = { started: options.nowSeconds(), uid: '' } satisfies Exchange;
    next();
  });
  app.post(
    WEBHOOK_PATHS.mutate,
    (req, _res, next) => {
      if (!isJson(req.headers['content-type'])) throw new UnsupportedMediaTypeError(req.headers['content-type']);
      // Refused at once, unread (body-parser would read a declared-oversized body first).
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > limit) throw new PayloadTooLargeError(limit);
      next();
    },
    express.raw({ type: () => true, limit, inflate: false }),
    (req, res) => {
      const raw = (req as { body?: unknown }).body;
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.isBuffer(raw) ? raw.toString('utf8') : '');
      } catch {
        throw new BadReviewError('body is not valid JSON');
      }
      exchangeOf(res).uid = salvageUid(parsed);
      let result: HandleResult;
      try {
        result = options.handle(parsed);
      } catch (error) {
        // handleReview never throws by design; this guard keeps a future bug from becoming a crash or a bare 500.
        result = handleFailure(parsed, error);
      }
      finish(res, result);
    },
  );
  app.all(WEBHOOK_PATHS.mutate, (req) => {
    throw routingError(405, `method ${req.method} not allowed; the API server POSTs AdmissionReviews`);
  });
  app.use((req) => {
    const path = (req.originalUrl ?? '').split('?')[0] ?? '';
    throw routingError(404, `no admission endpoint at ${JSON.stringify(path)}; use ${WEBHOOK_PATHS.mutate}`);
  });
  // The single place a failure becomes an answer: always an AdmissionReview, echoing the uid once it was read.
  app.use((thrown: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(thrown);
      return;
    }
    const error = fromBodyParserError(thrown, limit);
    const httpStatus = error.httpStatus === 404 || error.httpStatus === 405 ? error.httpStatus : 200;
    const uid = exchangeOf(res).uid;
    const unexpected = error instanceof InternalError ? { error: thrown } : {};
    finish(res, { review: errored(uid, error), outcome: 'error', reason: unexpected.error === undefined ? error.message : error.code, ...unexpected }, {
      httpStatus,
      close: error instanceof PayloadTooLargeError,
    });
  });
  return app;
}

export function createAdmissionServer(options: AdmissionServerOptions): AdmissionServer {
  const limit = options.maxBodyBytes ?? MAX_REVIEW_BYTES;
  const tlsOptions = { minVersion: options.minVersion };
  const requestTimeoutMs = options.requestTimeoutSeconds * 1000;
  // The API server holds a request at most timeoutSeconds (<= 30 s); headers arrive at once from it.
  const headersTimeoutMs = Math.min(options.headersTimeoutMs ?? ADMISSION_HEADERS_TIMEOUT_MS, requestTimeoutMs);
  const server = createHttpsServer(
    {
      ...tlsOptions,
      cert: options.certificate.cert,
      key: options.certificate.key,
      // Go's HTTP client (the API server) keeps idle connections for 90 s; staying open 60 s saves TLS handshakes.
      ...timeoutOptions({ headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs: 60_000 }),
    },
    createAdmissionApp(options, limit),
  );
  server.on('tlsClientError', (error) => options.logger.debug({ err: error }, 'TLS handshake failed'));
  // Malformed requests and timed-out clients (header or request timeout): nothing useful can be answered mid-request.
  // Without this listener Node tries a bare 4xx and, on a TLS socket, the connection is left open.
  server.on('clientError', (error: Error & { code?: string }, socket: Duplex) => {
    options.logger.debug({ err: error.code ?? error.message }, 'admission connection cut');
    socket.destroy();
  });

  return {
    server,
    updateCertificate(certificate: Certificate): void {
      server.setSecureContext({ ...tlsOptions, cert: certificate.cert, key: certificate.key });
    },
  };
}

/** `/healthz` (alive: the process answers) and `/readyz` (ready: a certificate is loaded and listening). */
export function createHealthServer(ready: () => boolean): HttpServer {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.get(WEBHOOK_PATHS.liveness, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
  app.get(WEBHOOK_PATHS.readiness, (_req, res) => {
    const ok = ready();
    res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready' : 'not ready');
  });
  app.use((_req, res) => {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  });
  return createHttpServer({ ...timeoutOptions(PROBE_TIMEOUTS) }, app);
}

/** `/metrics` in the registry's own content type, on its own port. */
export function createMetricsServer(register: Registry, logger: Logger): HttpServer {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.get(WEBHOOK_PATHS.metrics, async (_req, res) => {
    try {
      const text = await register.metrics();
      res.writeHead(200, { 'content-type': register.contentType }).end(text);
    } catch (error) {
      logger.error({ err: error }, 'collecting metrics failed');
      res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable');
    }
  });
  app.use((_req, res) => {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  });
  return createHttpServer({ ...timeoutOptions(PROBE_TIMEOUTS) }, app);
}
