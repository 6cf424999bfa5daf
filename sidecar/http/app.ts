/**
 * The HTTP edge of the sidecar: three express applications (token, health, metrics) built from injected
 * dependencies (`createSidecarApp`), plus the two server-level listeners express cannot see (CONNECT and
 * `clientError`, installed by `server.ts`).
 *
 * The token application is a chain of middleware in front of one router per dialect (`dialects.ts`):
 * 1. target: URL size, absolute-form targets (only the IMDS token URL of 169.254.169.254 is answered; the sidecar
 *    is not a proxy), path normalisation (case, doubled and trailing slashes; `protocol/route.ts`); `req.url` is
 *    rewritten to the normalised path, so the routers match exact paths;
 * 2. guards: header size, Host allow-list and browser `Origin` (DNS rebinding), proxy-hop headers, and on a
 *    listener reachable beyond loopback the secret-carrying dialects only (`guards.ts`);
 * 3. the dialect routers (parse → identity → rate limit → issue);
 * 4. 404 for everything else, and one error middleware that renders every failure in the dialect's own shape with
 *    its stable `x-mi-anywhere-error` code.
 * Every token request gets one access line and one metrics observation, success or failure, written by
 * {@link SidecarApp.token}'s `respond`.
 *
 * No process.*, no listening: main.ts owns sockets and signals; tests call these listeners on port-0 servers.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import type { Limits } from '../config.ts';
import { PATHS } from '../contract.ts';
import {
  BadRequestError,
  DialectDisabledError,
  ForwardedRequestError,
  HeadersTooLargeError,
  HostNotAllowedError,
  IdentityNotFoundError,
  InternalError,
  MethodNotAllowedError,
  NotAProxyError,
  NotFoundError,
  PayloadTooLargeError,
  RateLimitedError,
  UriTooLongError,
  toSidecarError,
  type SidecarError,
} from '../errors.ts';
import { findIdentity, type IdentitySelector, type LoadedIdentity } from '../identity/identity.ts';
import type { Logger } from '../log.ts';
import { memoiseString } from '../memoise.ts';
import { NO_IDENTITY, TOKEN_CODE_CHALLENGE, TOKEN_CODE_OK, audienceOf, type SidecarMetrics } from '../metrics.ts';
import { JSON_CONTENT_TYPE, renderJsonOk, type RenderedResponse, type SelectorEcho } from '../protocol/common.ts';
import type { Dialect } from '../protocol/dialect.ts';
import { renderError, renderToken } from '../protocol/render.ts';
import { routeTarget } from '../protocol/route.ts';
import type { DevIssuer } from '../token/dev-issuer.ts';
import type { IssuedToken, TokenSource } from '../token/token-source.ts';
import { ACCESS_LINE_MESSAGE, type AccessLog } from './access-log.ts';
import type { ArcKeyStore } from './arc-keys.ts';
import {
  appServiceRouter,
  arcRouter,
  devIssuerRouter,
  exchangeOf,
  fromBodyParserError,
  imdsRouter,
  msiEndpointRouter,
  type DialectSteps,
  type Exchange,
} from './dialects.ts';
import { browserHeaderIn, createHostPolicy, headerBytes, proxyHeaderIn, type HostPolicy } from './guards.ts';
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
  /**
   * Host names (besides loopback names and addresses) the token listener answers for: the advertised host, the
   * bind address, `MI_ANYWHERE_ALLOWED_HOSTS`. Default: none.
   */
  readonly allowedHosts?: readonly string[] | undefined;
  /**
   * The token listener is reachable beyond loopback (bound to a non-loopback address): only requests that carry the
   * shared secret (App Service, MSI_ENDPOINT with `secret`) and name a known Host are served.
   */
  readonly remote?: boolean | undefined;
  /** Current time in milliseconds. */
  readonly nowMs: () => number;
  readonly logger: Logger;
  /**
   * Writes the per-request access line (default: `logger.info`). main.ts passes `access-log.ts` on a buffered
   * asynchronous destination: the line is on every request's path (docs/performance.md).
   */
  readonly accessLog?: AccessLog | undefined;
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
  /** `request` listener of the token listener (an express application). */
  readonly token: Express;
  /** `request` listener of the health listener (`/healthz`, `/readyz`). */
  readonly health: Express;
  /** `request` listener of the metrics listener (`/metrics`). */
  readonly metrics: Express;
  /** `connect` listener of the token listener: CONNECT is refused (the sidecar is not a proxy). */
  readonly connect: (req: IncomingMessage, socket: Duplex) => void;
  /** `clientError` listener: malformed or oversized requests the HTTP parser rejected, answered in IMDS shape. */
  readonly clientError: (error: Error & { code?: string }, socket: Duplex) => void;
}

/**
 * Header lines of a rendered response as the flat `[name, value, ...]` list `writeHead` takes without building a
 * header map, content-length included; computed once per response object (token answers are memoised, so a cached
 * token's headers are built once per second).
 */
const flatHeaders = new WeakMap<RenderedResponse, readonly string[]>();
function headerLines(response: RenderedResponse): readonly string[] {
  let lines = flatHeaders.get(response);
  if (lines === undefined) {
    lines = [...Object.entries(response.headers).flat(), 'content-length', String(Buffer.byteLength(response.body))];
    flatHeaders.set(response, lines);
  }
  return lines;
}

/** Writes a rendered response; `extra` header lines (request id, connection) come after the response's own. */
function send(res: ServerResponse, response: RenderedResponse, extra: readonly string[] = []): void {
  if (res.headersSent) return;
  res.writeHead(response.status, extra.length === 0 ? (headerLines(response) as string[]) : [...headerLines(response), ...extra]);
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

/** A fresh express application with the settings every listener shares (no banner, no ETag, no query parsing). */
function bareApp(): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  // The dialect parsers read the raw query themselves (duplicates and raw resources matter, docs/protocols.md §2 and §9).
  app.set('query parser', false);
  return app;
}

/**
 * Token bodies rendered once per token and whole second: without a selector echo every dialect answers the same
 * bytes for the same token (`protocol/render.ts`), and only `expires_in` changes, once a second. Keyed by the token
 * object the cache hands out (a WeakMap, so an evicted token takes its rendering with it).
 */
function createTokenRenderer(): (dialect: Dialect, token: IssuedToken, nowSeconds: number, echo?: SelectorEcho) => RenderedResponse {
  const rendered = new WeakMap<IssuedToken, { readonly second: number; readonly response: RenderedResponse }>();
  return (dialect, token, nowSeconds, echo) => {
    if (echo !== undefined) return renderToken(dialect, token, nowSeconds, echo);
    const second = Math.floor(nowSeconds);
    const entry = rendered.get(token);
    if (entry !== undefined && entry.second === second) return entry.response;
    const response = renderToken(dialect, token, nowSeconds);
    rendered.set(token, { second, response });
    return response;
  };
}

/**
 * Request ids shaped like a UUID: a random prefix drawn once per process and a counter in the last 12 hex digits.
 * An id only correlates a response header with its access line, so it needs to be unique, not unguessable; a
 * `randomUUID()` per request cost ~0.6 µs of a cached answer's ~38 µs (docs/performance.md).
 */
export function sequentialRequestIds(seed: string): () => string {
  const prefix = seed.slice(0, 24);
  let counter = 0;
  return () => prefix + (counter++ % 0x1000000000000).toString(16).padStart(12, '0');
}

export function createSidecarApp(deps: SidecarAppDeps): SidecarApp {
  const newRequestId = deps.newRequestId ?? sequentialRequestIds(randomUUID());
  return {
    token: createTokenApp(deps, newRequestId),
    health: createHealthApp(deps.readiness),
    metrics: createMetricsApp(deps.register, deps.logger),
    ...rawSocketListeners(deps, newRequestId),
  };
}

/** The token listener's application: the middleware chain of the module header. */
function createTokenApp(deps: SidecarAppDeps, newRequestId: () => string): Express {
  const { limits, logger, metrics } = deps;
  const accessLog = deps.accessLog ?? pinoAccessLog(logger);
  const remote = deps.remote === true;
  const hosts = memoiseHosts(createHostPolicy({ names: deps.allowedHosts ?? [], allowMissing: !remote }));
  const routeOf = memoiseString(routeTarget, { maxEntries: 256 });

  /** Writes the answer, then the access line and the metrics observation (token listener only). */
  function respond(res: Response, response: RenderedResponse, error?: SidecarError): void {
    const exchange = exchangeOf(res);
    send(res, response, exchange.close ? [REQUEST_ID_HEADER, exchange.reqId, 'connection', 'close'] : [REQUEST_ID_HEADER, exchange.reqId]);
    if (!exchange.logged) return;
    const durationMs = deps.nowMs() - exchange.startedMs;
    // One line per token request: never the token, never a header secret; the resource only as its audience.
    accessLog({
      reqId: exchange.reqId,
      dialect: exchange.dialect,
      identity: exchange.identity,
      audience: exchange.resource === '' ? undefined : audienceOf(exchange.resource),
      status: response.status,
      durationMs,
      errorCode: error?.code,
      error: error && error.expose ? error.message : undefined,
    });
    // `code` (docs/metrics.md): ok | challenge | the SidecarError code, so dashboards tell an unknown identity from a
    // rejected credential (both 400) and the Arc challenge from a wrong key (both 401).
    const code = error ? error.code : exchange.challenge ? TOKEN_CODE_CHALLENGE : TOKEN_CODE_OK;
    metrics.tokenRequest({ dialect: exchange.dialect, identity: exchange.identity, resource: exchange.resource, code }, durationMs / 1000);
  }

  const steps = createDialectSteps(deps, (res, response) => respond(res, response));

  /** Middleware 1: the exchange record, URL size, absolute form and path normalisation. */
  function target(req: Request, res: Response, next: NextFunction): void {
    const exchange: Exchange = {
      reqId: newRequestId(),
      startedMs: deps.nowMs(),
      dialect: 'unknown',
      query: '',
      absoluteForm: false,
      identity: NO_IDENTITY,
      resource: '',
      challenge: false,
      logged: true,
      close: false,
    };
    res.locals['exchange'] = exchange;
    const raw = req.url;
    if (Buffer.byteLength(raw) > limits.maxUrlBytes) throw new UriTooLongError(limits.maxUrlBytes);
    const { route, path, query } = routeOf(raw);
    if (route.kind === 'not-a-proxy') throw new NotAProxyError();
    exchange.query = query;
    exchange.absoluteForm = !raw.startsWith('/');
    if (route.kind === 'token') exchange.dialect = route.dialect === 'msi-endpoint' && req.method === 'POST' ? 'cloud-shell' : route.dialect;
    // Unroutable targets (`*`, absolute forms other than the IMDS token URL) get a path no router has: an
    // absolute-form `http://169.254.169.254/msi/token` must not reach the App Service router by its path.
    req.url = route.kind === 'not-found' || path === '' ? '/\0' : path;
    // The guards run next, called directly: one middleware layer (and routing step) fewer per request.
    guards(req, res, next);
  }

  /** Middleware 2 (called by the target middleware): what every token request must satisfy before its dialect parser runs. */
  function guards(req: Request, res: Response, next: NextFunction): void {
    const exchange = exchangeOf(res);
    if (exchange.dialect === 'unknown') {
      next();
      return;
    }
    if (headerBytes(req.rawHeaders) > limits.maxHeaderBytes) throw new HeadersTooLargeError(limits.maxHeaderBytes);
    const browser = browserHeaderIn(req.headers);
    if (browser !== undefined) {
      throw new HostNotAllowedError(`Requests from a web browser (${browser === 'origin' ? 'Origin' : 'Sec-Fetch-Site'} header) are refused: tokens are for the workload, not for web pages`);
    }
    if (!hosts.allows(req.headers.host, exchange.absoluteForm)) {
      throw new HostNotAllowedError(
        req.headers.host === undefined || req.headers.host === ''
          ? 'A Host header is required on this listener'
          : `Host ${JSON.stringify(req.headers.host.slice(0, 100))} is not a name of this sidecar; call it by a loopback address or a name in MI_ANYWHERE_ALLOWED_HOSTS`,
      );
    }
    const proxy = proxyHeaderIn(req.headers);
    if (proxy !== undefined) throw new ForwardedRequestError(canonicalHeaderName(proxy));
    if (remote) requireSecretDialect(req, exchange.dialect);
    next();
  }

  /** 404 for every target no router took. */
  function notFound(_req: Request, _res: Response, next: NextFunction): void {
    next(new NotFoundError());
  }

  /** The single place a failure of the token listener becomes an answer. */
  function renderFailure(thrown: unknown, _req: Request, res: Response, next: NextFunction): void {
    const exchange = exchangeOf(res) as Exchange | undefined;
    if (exchange === undefined || res.headersSent) {
      next(thrown);
      return;
    }
    const error = toSidecarError(fromBodyParserError(thrown, limits.maxBodyBytes));
    if (error instanceof InternalError) logger.error({ reqId: exchange.reqId, err: error.cause }, 'unexpected error while serving a token request');
    // The body may be unread (oversized, or a request refused early): do not reuse the connection.
    exchange.close = error instanceof PayloadTooLargeError || error instanceof HeadersTooLargeError || error instanceof UriTooLongError;
    respond(res, renderError(exchange.dialect, error, exchange.reqId), error);
  }

  const token = bareApp();
  token.use(target);
  // The dialects' routes go on the application's own router: a nested Router per dialect was a second routing pass.
  [imdsRouter, appServiceRouter, msiEndpointRouter, arcRouter, devIssuerRouter].forEach((addRoutes) => addRoutes(steps, token.router));
  token.use(notFound);
  token.use(renderFailure);
  return token;
}

/** The steps every dialect router runs: identity lookup, rate limit, issuing and rendering the token, answering. */
function createDialectSteps(deps: SidecarAppDeps, respond: DialectSteps['respond']): DialectSteps {
  const bucket = createTokenBucket({ ratePerSecond: deps.rateLimitPerSecond });
  const renderTokenFor = createTokenRenderer();
  return {
    identityHeader: deps.identityHeader,
    maxBodyBytes: deps.limits.maxBodyBytes,
    arcKeys: deps.arcKeys,
    devIssuer: deps.devIssuer,
    resolve(request, exchange) {
      const identity = findIdentity(deps.identities(), request.selector);
      if (identity === undefined) throw new IdentityNotFoundError(describeSelector(request.selector));
      exchange.identity = identity.descriptor.name;
      return identity;
    },
    takeRate(exchange) {
      const taken = bucket.take(deps.nowMs());
      if (taken.allowed) return;
      deps.metrics.rateLimited(exchange.dialect);
      throw new RateLimitedError(taken.retryAfterSeconds);
    },
    async issue(request, identity, res) {
      const abort = new AbortController();
      const onClose = (): void => {
        if (!res.writableFinished) abort.abort();
      };
      res.once('close', onClose);
      try {
        const token = await deps.tokenSource.getToken({ identity, resource: request.resource, signal: abort.signal });
        if (identity.descriptor.isDefault) deps.readiness.tokenObtained();
        return renderTokenFor(request.dialect, token, deps.nowMs() / 1000, request.echo);
      } finally {
        res.off('close', onClose);
      }
    },
    respond,
  };
}

/**
 * The two server-level listeners of the token listener: there is no ServerResponse for these, so the answer (IMDS
 * shape) is written on the socket itself.
 */
function rawSocketListeners(deps: SidecarAppDeps, newRequestId: () => string): Pick<SidecarApp, 'connect' | 'clientError'> {
  const { logger, metrics, limits } = deps;
  const writeError = (socket: Duplex, error: SidecarError, reason: string): void => writeRaw(socket, renderError('unknown', error, newRequestId()), reason);
  return {
    connect: (req, socket) => {
      const refused = new MethodNotAllowedError(req.method ?? 'CONNECT', ['GET', 'POST']);
      logger.info({ dialect: 'unknown', status: 405, method: 'CONNECT' }, 'token request');
      metrics.tokenRequest({ dialect: 'unknown', identity: NO_IDENTITY, resource: '', code: refused.code }, 0);
      socket.on('error', () => socket.destroy());
      writeError(socket, refused, 'Method Not Allowed');
    },
    clientError: (error, socket) => {
      socket.on('error', () => socket.destroy());
      if (!socket.writable || error.code === 'ECONNRESET') {
        socket.destroy();
        return;
      }
      if (error.code === 'HPE_HEADER_OVERFLOW') {
        writeError(socket, new HeadersTooLargeError(limits.maxHeaderBytes), 'Request Header Fields Too Large');
        return;
      }
      // Header or request timeout (a slow client): nothing useful can be sent mid-request; cut it.
      if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        socket.destroy();
        return;
      }
      writeError(socket, new BadRequestError('Malformed HTTP request'), 'Bad Request');
    },
  };
}

/** Writes a rendered response directly on a socket, closing the connection. */
function writeRaw(socket: Duplex, response: RenderedResponse, reason: string): void {
  const head = [`HTTP/1.1 ${response.status} ${reason}`];
  for (const [name, value] of Object.entries(response.headers)) head.push(`${name}: ${value}`);
  head.push(`content-length: ${Buffer.byteLength(response.body)}`, 'connection: close', '', '');
  socket.end(head.join('\r\n') + response.body);
}

/**
 * The Host verdict per distinct header value and target form (bounded: a client sending random Host values only
 * fills the memo, which is then cleared). Every request carries the same few values.
 */
function memoiseHosts(policy: HostPolicy): HostPolicy {
  const originForm = memoiseString((host) => policy.allows(host, false), { maxEntries: 256 });
  const absoluteForm = memoiseString((host) => policy.allows(host, true), { maxEntries: 256 });
  return {
    allows: (host, absolute) => (host === undefined ? policy.allows(host, absolute) : absolute ? absoluteForm(host) : originForm(host)),
  };
}

/**
 * The access line through the pino logger. The line is built from fixed, non-secret keys, so no redaction path can
 * ever match it; running pino's redaction on it anyway cost ~10 µs per request (docs/performance.md).
 */
function pinoAccessLog(logger: Logger): AccessLog {
  const child = logger.child({}, { redact: [] });
  return (line) => child.info(line, ACCESS_LINE_MESSAGE);
}

/** `x-real-ip` → `X-Real-IP` for messages (the wire spelling people search for). */
function canonicalHeaderName(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase()).replace(/-Ip$/, '-IP');
}

/**
 * On a listener reachable beyond loopback, a token must be asked for with the shared secret: App Service always
 * carries it; MSI_ENDPOINT must carry `secret`. IMDS, Arc and Cloud Shell without a secret rely on being reachable
 * only locally (`Metadata: true` is no secret), so they are refused there.
 */
function requireSecretDialect(req: Request, dialect: Dialect): void {
  if (dialect === 'app-service') return;
  if ((dialect === 'msi-endpoint' || dialect === 'cloud-shell') && req.headers['secret'] !== undefined) return;
  throw new DialectDisabledError(
    `This token listener is reachable beyond loopback, so it serves only requests carrying the shared secret: use IDENTITY_ENDPOINT + IDENTITY_HEADER ` +
      `(App Service) or MSI_ENDPOINT + MSI_SECRET; ${dialect === 'imds' ? 'IMDS' : dialect === 'arc' ? 'Azure Arc' : 'MSI_ENDPOINT without secret'} is served on loopback only`,
  );
}

/** `/healthz` (alive) and `/readyz` (ready: default identity loaded, and in entra mode a first token obtained). */
function createHealthApp(readiness: Readiness): Express {
  const app = bareApp();
  app.use((req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, { status: 405, headers: { 'content-type': JSON_CONTENT_TYPE, allow: 'GET, HEAD' }, body: '{"status":"method not allowed"}' });
      return;
    }
    next();
  });
  app.get(PATHS.liveness, (_req, res) => send(res, renderJsonOk({ status: 'ok' })));
  app.get(PATHS.readiness, (_req, res) => {
    const status = readiness.status();
    const body = JSON.stringify(status.ready ? { status: 'ready' } : { status: 'not ready', reasons: status.reasons });
    send(res, { status: status.ready ? 200 : 503, headers: { 'content-type': JSON_CONTENT_TYPE, 'cache-control': 'no-store' }, body });
  });
  app.use((_req, res) => send(res, { status: 404, headers: { 'content-type': JSON_CONTENT_TYPE }, body: '{"status":"not found"}' }));
  return app;
}

/** `/metrics` in the registry's own content type. */
function createMetricsApp(register: Registry, logger: Logger): Express {
  const app = bareApp();
  const text = (status: number, body: string, extra: Record<string, string> = {}): RenderedResponse => ({
    status,
    headers: { 'content-type': 'text/plain; charset=utf-8', ...extra },
    body,
  });
  app.all(PATHS.metrics, async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, text(405, 'method not allowed\n', { allow: 'GET, HEAD' }));
      return;
    }
    try {
      send(res, { status: 200, headers: { 'content-type': register.contentType }, body: await register.metrics() });
    } catch (error) {
      logger.error({ err: error }, 'metrics collection failed');
      send(res, text(500, 'metrics collection failed\n'));
    }
  });
  app.use((_req, res) => send(res, text(404, 'not found\n')));
  return app;
}
