/**
 * The HTTP edge of the sidecar: request listeners for the token, health and metrics listeners, built from injected
 * dependencies (`createSidecarApp`). It routes, enforces size limits and the rate limit, calls the pure dialect
 * parsers, resolves the identity, asks the token source, renders, logs one line per token request and records
 * metrics. Every failure goes through one place ({@link SidecarApp.token}'s catch → `renderError`).
 *
 * node:http rather than Express: the token listener must see absolute-form targets and CONNECT (proxy users,
 * observed-clients.md §1.3) and normalise paths itself (protocols.md §6); a router would add nothing here.
 *
 * No process.*, no listening: main.ts owns sockets and signals; tests call these listeners on port-0 servers.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Registry } from 'prom-client';
import type { Limits } from '../config.ts';
import { PATHS } from '../contract.ts';
import {
  DialectDisabledError,
  HeadersTooLargeError,
  IdentityNotFoundError,
  InternalError,
  MethodNotAllowedError,
  NotAProxyError,
  NotFoundError,
  PayloadTooLargeError,
  RateLimitedError,
  UnauthorizedError,
  UriTooLongError,
  toSidecarError,
  BadRequestError,
  type SidecarError,
} from '../errors.ts';
import { findIdentity, type IdentitySelector, type LoadedIdentity } from '../identity/identity.ts';
import type { Logger } from '../log.ts';
import { NO_IDENTITY, TOKEN_CODE_CHALLENGE, TOKEN_CODE_OK, audienceOf, type Dialect, type SidecarMetrics } from '../metrics.ts';
import { parseAppServiceRequest } from '../protocol/app-service.ts';
import { parseArcRequest, renderArcChallenge } from '../protocol/arc.ts';
import { JSON_CONTENT_TYPE, renderJsonOk, type RenderedResponse, type RequestLike, type SelectorEcho, type TokenRequest } from '../protocol/common.ts';
import { parseImdsRequest } from '../protocol/imds.ts';
import { parseMsiEndpointRequest } from '../protocol/msi-endpoint.ts';
import { renderError, renderToken } from '../protocol/render.ts';
import { routeTarget } from '../protocol/route.ts';
import type { DevIssuer } from '../token/dev-issuer.ts';
import type { TokenSource } from '../token/token-source.ts';
import type { ArcKeyStore } from './arc-keys.ts';
import type { Readiness } from './readiness.ts';
import { createTokenBucket } from './rate-limit.ts';

/** Response header with the request id of the log line (and `correlationId` of App Service error bodies). */
export const REQUEST_ID_HEADER = 'x-mi-anywhere-request-id';

export interface SidecarAppDeps {
  /** Current identities (a getter: the rotation watcher replaces the list while serving). */
  readonly identities: () => readonly LoadedIdentity[];
  readonly tokenSource: TokenSource;
  /** Value apps send as `X-IDENTITY-HEADER` (App Service) and `secret` (MSI_ENDPOINT + MSI_SECRET). */
  readonly identityHeader: string;
  readonly limits: Limits;
  /** Token requests per second before 429; 0 = unlimited. */
  readonly rateLimitPerSecond: number;
  /** Current time in milliseconds. */
  readonly nowMs: () => number;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics;
  /** Registry the metrics were created on (served by the metrics listener). */
  readonly register: Registry;
  readonly readiness: Readiness;
  /** Arc challenge key files; undefined when `MI_ANYWHERE_ARC_KEY_DIR` is not set (Arc requests then fail clearly). */
  readonly arcKeys?: ArcKeyStore | undefined;
  /** OIDC documents of the dev issuer (dev mode only). */
  readonly devIssuer?: Pick<DevIssuer, 'discovery' | 'jwks'> | undefined;
  readonly newRequestId?: () => string;
}

export interface SidecarApp {
  /** `request` listener of the token listener. */
  readonly token: (req: IncomingMessage, res: ServerResponse) => void;
  /** `request` listener of the health listener (`/healthz`, `/readyz`). */
  readonly health: (req: IncomingMessage, res: ServerResponse) => void;
  /** `request` listener of the metrics listener (`/metrics`). */
  readonly metrics: (req: IncomingMessage, res: ServerResponse) => void;
  /** `connect` listener of the token listener: CONNECT is refused (the sidecar is not a proxy). */
  readonly connect: (req: IncomingMessage, socket: Duplex) => void;
  /** `clientError` listener: malformed or oversized requests the HTTP parser rejected, answered in IMDS shape. */
  readonly clientError: (error: Error & { code?: string }, socket: Duplex) => void;
}

/** What a handled token request produced, for the log line and metrics. */
interface Outcome {
  dialect: Dialect;
  identity: string;
  resource: string;
  response: RenderedResponse;
  error?: SidecarError;
  /** The answer is the Azure Arc 401 challenge: the protocol's first leg, counted apart from failures. */
  challenge?: boolean;
}

function headerBytes(req: IncomingMessage): number {
  let total = 0;
  for (const part of req.rawHeaders) total += Buffer.byteLength(part) + 2;
  return total;
}

async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new PayloadTooLargeError('Request body', limit);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw new PayloadTooLargeError('Request body', limit);
      chunks.push(chunk);
    }
  } catch (error) {
    // A client that closes before sending its whole body is the client's problem, not an internal error (found by
    // test/fuzz/sidecar-http.test.ts: truncated Cloud Shell bodies were logged as "unexpected error").
    if ((error as { code?: unknown }).code === 'ECONNRESET') throw new BadRequestError('The client closed the connection before sending the whole request body');
    throw error;
  }
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, response: RenderedResponse, closeConnection = false): void {
  if (res.headersSent) return;
  const headers: Record<string, string | number> = { ...response.headers, 'content-length': Buffer.byteLength(response.body) };
  if (closeConnection) headers['connection'] = 'close';
  res.writeHead(response.status, headers);
  res.end(response.body);
}

function describeSelector(selector: IdentitySelector): string {
  switch (selector.kind) {
    case 'system':
      return 'no default identity is configured for requests without a selector (set MI_ANYWHERE_DEFAULT_IDENTITY)';
    case 'clientId':
      return `no identity has client id ${selector.value}`;
    case 'objectId':
      return `no identity has object id ${selector.value}`;
    case 'resourceId':
      return `no identity has resource id ${selector.value}`;
  }
}

export function createSidecarApp(deps: SidecarAppDeps): SidecarApp {
  const { limits, logger, metrics } = deps;
  // The per-request access line below is built from fixed, non-secret keys, so no redaction path can ever match it;
  // running pino's redaction on it anyway cost ~10 µs of the ~36 µs of CPU a cached token request takes
  // (docs/performance.md, bench/compare.ts). Every other line (config, errors, upstream failures) stays redacted.
  const accessLog = logger.child({}, { redact: [] });
  const newRequestId = deps.newRequestId ?? randomUUID;
  const bucket = createTokenBucket({ ratePerSecond: deps.rateLimitPerSecond });

  function resolveIdentity(selector: IdentitySelector): LoadedIdentity {
    const identity = findIdentity(deps.identities(), selector);
    if (identity === undefined) throw new IdentityNotFoundError(describeSelector(selector));
    return identity;
  }

  async function issue(request: TokenRequest, identity: LoadedIdentity, signal: AbortSignal, echo?: SelectorEcho): Promise<RenderedResponse> {
    const token = await deps.tokenSource.getToken({ identity, resource: request.resource, signal });
    if (identity.descriptor.isDefault) deps.readiness.tokenObtained();
    return renderToken(request.dialect, token, deps.nowMs() / 1000, echo);
  }

  /** Handles one routed token request; throws SidecarErrors for the single catch in {@link handleToken}. */
  async function serveToken(req: IncomingMessage, outcome: Outcome, query: string, signal: AbortSignal): Promise<RenderedResponse> {
    if (headerBytes(req) > limits.maxHeaderBytes) throw new HeadersTooLargeError(limits.maxHeaderBytes);
    const taken = bucket.take(deps.nowMs());
    if (!taken.allowed) {
      metrics.rateLimited(outcome.dialect);
      throw new RateLimitedError(taken.retryAfterSeconds);
    }
    let body: string | undefined;
    if (outcome.dialect === 'cloud-shell') body = await readBody(req, limits.maxBodyBytes);
    else req.resume();
    const like: RequestLike = { method: req.method ?? 'GET', query, headers: req.headers, body };
    const ctx = { identityHeader: deps.identityHeader, secret: deps.identityHeader };
    switch (outcome.dialect) {
      case 'imds': {
        const request = parseImdsRequest(like);
        outcome.resource = request.resource;
        const identity = resolveIdentity(request.selector);
        outcome.identity = identity.descriptor.name;
        return issue(request, identity, signal);
      }
      case 'app-service':
      case 'msi-endpoint':
      case 'cloud-shell': {
        const request = outcome.dialect === 'app-service' ? parseAppServiceRequest(like, ctx) : parseMsiEndpointRequest(like, ctx);
        outcome.resource = request.resource;
        const identity = resolveIdentity(request.selector);
        outcome.identity = identity.descriptor.name;
        return issue(request, identity, signal);
      }
      case 'arc': {
        const request = parseArcRequest(like);
        outcome.resource = request.resource;
        if (deps.arcKeys === undefined) {
          throw new DialectDisabledError('The Azure Arc endpoint is disabled: the sidecar was started without MI_ANYWHERE_ARC_KEY_DIR');
        }
        // Unknown identities fail before a key file is written.
        const identity = resolveIdentity(request.selector);
        outcome.identity = identity.descriptor.name;
        if (request.presentedKey === undefined) {
          outcome.challenge = true;
          return renderArcChallenge(await deps.arcKeys.issue());
        }
        if (!(await deps.arcKeys.redeem(request.presentedKey))) {
          throw new UnauthorizedError('Authorization does not match a current key file; repeat the request without Authorization for a new challenge');
        }
        return issue(request, identity, signal, request.echo);
      }
      case 'unknown':
        throw new NotFoundError();
    }
  }

  function serveDevDocument(req: IncomingMessage, kind: 'dev-discovery' | 'dev-jwks'): RenderedResponse {
    if (deps.devIssuer === undefined) throw new NotFoundError();
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new MethodNotAllowedError(req.method ?? '', ['GET']);
    const doc = kind === 'dev-discovery' ? deps.devIssuer.discovery() : deps.devIssuer.jwks();
    // Public documents: a resource emulator may cache them (keys live as long as the process).
    return { ...renderJsonOk(doc), headers: { 'content-type': JSON_CONTENT_TYPE, 'cache-control': 'public, max-age=300' } };
  }

  async function handleToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const startedMs = deps.nowMs();
    const reqId = newRequestId();
    const outcome: Outcome = { dialect: 'unknown', identity: NO_IDENTITY, resource: '', response: { status: 500, headers: {}, body: '' } };
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    let closeConnection = false;
    let logged = true;
    try {
      const target = req.url ?? '/';
      if (Buffer.byteLength(target) > limits.maxUrlBytes) throw new UriTooLongError(limits.maxUrlBytes);
      const { route, query } = routeTarget(target);
      switch (route.kind) {
        case 'not-found':
          throw new NotFoundError();
        case 'not-a-proxy':
          throw new NotAProxyError();
        case 'dev-discovery':
        case 'dev-jwks':
          logged = false;
          outcome.response = serveDevDocument(req, route.kind);
          break;
        case 'token':
          outcome.dialect = route.dialect === 'msi-endpoint' && req.method === 'POST' ? 'cloud-shell' : route.dialect;
          outcome.response = await serveToken(req, outcome, query, abort.signal);
          break;
      }
    } catch (thrown) {
      const error = toSidecarError(thrown);
      outcome.error = error;
      if (error instanceof InternalError) logger.error({ reqId, err: error.cause }, 'unexpected error while serving a token request');
      // The body may be unread (oversized, or a request we refused early): do not reuse the connection.
      closeConnection = error instanceof PayloadTooLargeError || error instanceof HeadersTooLargeError || error instanceof UriTooLongError;
      outcome.response = renderError(outcome.dialect, error, reqId);
    }
    res.setHeader(REQUEST_ID_HEADER, reqId);
    send(res, outcome.response, closeConnection);
    if (!logged) return;
    const durationMs = deps.nowMs() - startedMs;
    const status = outcome.response.status;
    // One line per token request (HS-8): never the token, never a header secret; the resource only as its audience.
    accessLog.info(
      {
        reqId,
        dialect: outcome.dialect,
        identity: outcome.identity,
        audience: outcome.resource === '' ? undefined : audienceOf(outcome.resource),
        status,
        durationMs,
        errorCode: outcome.error?.code,
        error: outcome.error && outcome.error.expose ? outcome.error.message : undefined,
      },
      'token request',
    );
    // `code` (docs/metrics.md): ok | challenge | the SidecarError code, so dashboards tell an unknown identity from a
    // rejected credential (both 400) and the Arc challenge from a wrong key (both 401).
    const code = outcome.error ? outcome.error.code : outcome.challenge ? TOKEN_CODE_CHALLENGE : TOKEN_CODE_OK;
    metrics.tokenRequest({ dialect: outcome.dialect, identity: outcome.identity, resource: outcome.resource, code }, durationMs / 1000);
  }

  function handleHealth(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, { status: 405, headers: { 'content-type': JSON_CONTENT_TYPE, allow: 'GET, HEAD' }, body: '{"status":"method not allowed"}' });
      return;
    }
    if (path === PATHS.liveness) {
      send(res, renderJsonOk({ status: 'ok' }));
      return;
    }
    if (path === PATHS.readiness) {
      const status = deps.readiness.status();
      const body = JSON.stringify(status.ready ? { status: 'ready' } : { status: 'not ready', reasons: status.reasons });
      send(res, { status: status.ready ? 200 : 503, headers: { 'content-type': JSON_CONTENT_TYPE, 'cache-control': 'no-store' }, body });
      return;
    }
    send(res, { status: 404, headers: { 'content-type': JSON_CONTENT_TYPE }, body: '{"status":"not found"}' });
  }

  async function handleMetrics(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.resume();
    const path = (req.url ?? '/').split('?')[0];
    if (path !== PATHS.metrics) {
      send(res, { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: 'not found\n' });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, { status: 405, headers: { 'content-type': 'text/plain; charset=utf-8', allow: 'GET, HEAD' }, body: 'method not allowed\n' });
      return;
    }
    try {
      send(res, { status: 200, headers: { 'content-type': deps.register.contentType }, body: await deps.register.metrics() });
    } catch (error) {
      logger.error({ err: error }, 'metrics collection failed');
      send(res, { status: 500, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: 'metrics collection failed\n' });
    }
  }

  /** Writes a rendered IMDS-shape error directly on a socket (no ServerResponse exists for these). */
  function writeRaw(socket: Duplex, error: SidecarError, reason: string): void {
    const response = renderError('unknown', error, newRequestId());
    const head = [`HTTP/1.1 ${response.status} ${reason}`];
    for (const [name, value] of Object.entries(response.headers)) head.push(`${name}: ${value}`);
    head.push(`content-length: ${Buffer.byteLength(response.body)}`, 'connection: close', '', '');
    socket.end(head.join('\r\n') + response.body);
  }

  return {
    token: (req, res) => void handleToken(req, res),
    health: handleHealth,
    metrics: (req, res) => void handleMetrics(req, res),
    connect: (req, socket) => {
      logger.info({ dialect: 'unknown', status: 405, method: 'CONNECT' }, 'token request');
      metrics.tokenRequest({ dialect: 'unknown', identity: NO_IDENTITY, resource: '', code: new MethodNotAllowedError(req.method ?? 'CONNECT', ['GET', 'POST']).code }, 0);
      socket.on('error', () => socket.destroy());
      writeRaw(socket, new MethodNotAllowedError(req.method ?? 'CONNECT', ['GET', 'POST']), 'Method Not Allowed');
    },
    clientError: (error, socket) => {
      socket.on('error', () => socket.destroy());
      if (!socket.writable || error.code === 'ECONNRESET') {
        socket.destroy();
        return;
      }
      if (error.code === 'HPE_HEADER_OVERFLOW') {
        writeRaw(socket, new HeadersTooLargeError(limits.maxHeaderBytes), 'Request Header Fields Too Large');
        return;
      }
      if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        socket.destroy();
        return;
      }
      writeRaw(socket, new BadRequestError('Malformed HTTP request'), 'Bad Request');
    },
  };
}
