/**
 * One express router per dialect of the token listener (IMDS, App Service 2019, MSI_ENDPOINT GET and Cloud Shell
 * POST, Azure Arc, dev issuer). Each router turns the express request into the parser's plain {@link RequestLike}
 * (express objects never reach `protocol/`), resolves the identity, counts the request against the rate limit once
 * it is known to be valid, and asks {@link DialectSteps.issue} for the answer. Failures are thrown; the error
 * middleware in `app.ts` renders them in the dialect's own shape.
 *
 * The routers see normalised paths only: the target middleware in `app.ts` has already rewritten `req.url`.
 * Each function adds its routes to the router it is given (the token application's own router in `app.ts`: a nested
 * Router per dialect cost a second routing pass per request, docs/performance.md) or to a new one.
 */
import express, { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { PATHS } from '../contract.ts';
import { BadRequestError, DialectDisabledError, MethodNotAllowedError, NotFoundError, PayloadTooLargeError, UnauthorizedError } from '../errors.ts';
import type { LoadedIdentity } from '../identity/identity.ts';
import type { Dialect } from '../protocol/dialect.ts';
import { parseAppServiceRequest } from '../protocol/app-service.ts';
import { parseArcRequest, renderArcChallenge, type ArcRequest } from '../protocol/arc.ts';
import { JSON_CONTENT_TYPE, renderJsonOk, type RenderedResponse, type RequestLike, type TokenRequest } from '../protocol/common.ts';
import { parseImdsRequest } from '../protocol/imds.ts';
import { parseMsiEndpointRequest } from '../protocol/msi-endpoint.ts';
import type { DevIssuer } from '../token/dev-issuer.ts';
import type { ArcKeyStore } from './arc-keys.ts';

/** What one token request became, for the access line and metrics (kept on `res.locals`). */
export interface Exchange {
  readonly reqId: string;
  readonly startedMs: number;
  dialect: Dialect;
  /** Raw query string of the target (without `?`). */
  query: string;
  /** The target was the absolute form `http://169.254.169.254/...` (a client using HTTP_PROXY). */
  absoluteForm: boolean;
  identity: string;
  resource: string;
  /** The answer is the Azure Arc 401 challenge: the protocol's first leg, counted apart from failures. */
  challenge: boolean;
  /** Whether the request gets an access line (dev-issuer documents do not). */
  logged: boolean;
  /** Close the connection after answering (part of the request may be unread). */
  close: boolean;
}

export function exchangeOf(res: Response): Exchange {
  return res.locals['exchange'] as Exchange;
}

/** The request as the pure parsers see it: method, raw query, header map, body text. */
function requestLike(req: Request, exchange: Exchange, body?: string): RequestLike {
  return { method: req.method, query: exchange.query, headers: req.headers, body };
}

export interface DialectSteps {
  /** Expected `X-IDENTITY-HEADER` / `secret` value. */
  readonly identityHeader: string;
  readonly maxBodyBytes: number;
  readonly arcKeys: ArcKeyStore | undefined;
  readonly devIssuer: Pick<DevIssuer, 'discovery' | 'jwks'> | undefined;
  /** The identity a selector names; throws IdentityNotFoundError. */
  resolve(request: TokenRequest, exchange: Exchange): LoadedIdentity;
  /** Takes one request from the rate limit; throws RateLimitedError. Called only for valid requests. */
  takeRate(exchange: Exchange): void;
  /** The rendered token answer for a resolved request. */
  issue(request: TokenRequest, identity: LoadedIdentity, res: Response): Promise<RenderedResponse>;
  /** Writes the answer and records the exchange. */
  respond(res: Response, response: RenderedResponse): void;
}

type Parser = (like: RequestLike, req: Request) => TokenRequest;

/**
 * The common chain of a token dialect: parse (pure), resolve the identity, count against the rate limit, issue.
 * The rate limit comes last so that a flood of invalid requests cannot spend it for valid callers.
 */
function tokenRoute(steps: DialectSteps, parse: Parser): RequestHandler {
  return async (req, res) => {
    const exchange = exchangeOf(res);
    const request = parse(requestLike(req, exchange, bodyText(req)), req);
    exchange.resource = request.resource;
    const identity = steps.resolve(request, exchange);
    steps.takeRate(exchange);
    steps.respond(res, await steps.issue(request, identity, res));
  };
}

function bodyText(req: Request): string | undefined {
  const body = (req as { body?: unknown }).body;
  return Buffer.isBuffer(body) ? body.toString('utf8') : undefined;
}

export function imdsRouter(steps: DialectSteps, router: Router = Router()): Router {
  return router.all(PATHS.imds, tokenRoute(steps, (like) => parseImdsRequest(like)));
}

export function appServiceRouter(steps: DialectSteps, router: Router = Router()): Router {
  const ctx = { identityHeader: steps.identityHeader };
  return router.all(PATHS.appService, tokenRoute(steps, (like) => parseAppServiceRequest(like, ctx)));
}

/**
 * MSI_ENDPOINT: GET (Azure ML, App Service 2017, MSAL4J Cloud Shell) and Cloud Shell POST on one path. The POST
 * body is read as bytes whatever its Content-Type (MSAL.NET sends a header named `ContentType` instead,
 * docs/protocols.md §2.4) and decoded as UTF-8 form data by the parser.
 */
export function msiEndpointRouter(steps: DialectSteps, router: Router = Router()): Router {
  const ctx = { secret: steps.identityHeader };
  const readBody = express.raw({ type: () => true, limit: steps.maxBodyBytes, inflate: false });
  return router
    .post(PATHS.msiEndpoint, refuseDeclaredOversize(steps.maxBodyBytes), readBody)
    .all(PATHS.msiEndpoint, tokenRoute(steps, (like) => parseMsiEndpointRequest(like, ctx)));
}

/**
 * Answers 413 at once for a body declared larger than the limit, without reading it (body-parser would read the
 * whole body first); the connection is closed after the answer.
 */
function refuseDeclaredOversize(limit: number): RequestHandler {
  return (req, _res, next) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) throw new PayloadTooLargeError('Request body', limit);
    next();
  };
}

/** Azure Arc: the 401 challenge with a fresh key file, then the token for the key read back. */
export function arcRouter(steps: DialectSteps, router: Router = Router()): Router {
  return router.all(PATHS.arc, async (req, res) => {
    const exchange = exchangeOf(res);
    const request: ArcRequest = parseArcRequest(requestLike(req, exchange));
    exchange.resource = request.resource;
    const arcKeys = steps.arcKeys;
    if (arcKeys === undefined) {
      throw new DialectDisabledError('The Azure Arc endpoint is disabled: the sidecar was started without MI_ANYWHERE_ARC_KEY_DIR');
    }
    // Unknown identities fail before a key file is written.
    const identity = steps.resolve(request, exchange);
    if (request.presentedKey === undefined) {
      steps.takeRate(exchange);
      exchange.challenge = true;
      steps.respond(res, renderArcChallenge(await arcKeys.issue()));
      return;
    }
    if (!(await arcKeys.redeem(request.presentedKey))) {
      throw new UnauthorizedError('Authorization does not match a current key file; repeat the request without Authorization for a new challenge');
    }
    steps.takeRate(exchange);
    steps.respond(res, await steps.issue(request, identity, res));
  });
}

/** Dev issuer OIDC documents (dev mode only): public, cacheable, no access line. */
export function devIssuerRouter(steps: DialectSteps, router: Router = Router()): Router {
  const serve = (kind: 'discovery' | 'jwks'): RequestHandler => async (req, res) => {
    exchangeOf(res).logged = false;
    const issuer = steps.devIssuer;
    if (issuer === undefined) throw new NotFoundError();
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new MethodNotAllowedError(req.method, ['GET']);
    const doc = kind === 'discovery' ? issuer.discovery() : await issuer.jwks();
    // Public documents: a resource emulator may cache them (keys live as long as the process).
    steps.respond(res, { ...renderJsonOk(doc), headers: { 'content-type': JSON_CONTENT_TYPE, 'cache-control': 'public, max-age=300' } });
  };
  return router
    .all(`${PATHS.devIssuer}/.well-known/openid-configuration`, serve('discovery'))
    .all(`${PATHS.devIssuer}/jwks`, serve('jwks'));
}

/**
 * Errors of express's body reader as the sidecar's own: 413 stays "too large"; anything else it refuses (a client
 * that closed early, a length that does not match the body) is the client's bad request, never a 500.
 */
export function fromBodyParserError(error: unknown, limit: number): unknown {
  const e = error as { type?: unknown; status?: unknown };
  if (typeof e?.type !== 'string' || typeof e.status !== 'number') return error;
  if (e.type === 'entity.too.large') return new PayloadTooLargeError('Request body', limit);
  if (e.status < 500 || e.type === 'request.aborted') {
    return new BadRequestError(e.type === 'request.aborted' ? 'The client closed the connection before sending the whole request body' : 'The request body could not be read');
  }
  return error;
}

export type ErrorMiddleware = (error: unknown, req: Request, res: Response, next: NextFunction) => void;
