/**
 * Routing of the token listener: which dialect (or dev-issuer document) a request target addresses. One path per
 * dialect (contract `PATHS`), so a dialect is never guessed from headers.
 *
 * Path variants are normalised before matching (docs/protocols.md §6 and §2.2; §12, C3): msal-node lower-cases the URL
 * and appends `/`; MSAL4J produces `//metadata/...`; App Service docs show `/MSI/token/`. Absolute-form targets
 * (`GET http://169.254.169.254/metadata/...`, sent by clients that use `HTTP_PROXY`, docs/clients.md §1 item 3) are
 * answered for the IMDS token path of 169.254.169.254 only; the sidecar never proxies anything else.
 *
 * Pure.
 */
import { IMDS_ADDRESS, PATHS } from '../contract.ts';
import type { PathDialect } from './dialect.ts';

export type Route =
  | { readonly kind: 'token'; readonly dialect: PathDialect }
  | { readonly kind: 'dev-discovery' }
  | { readonly kind: 'dev-jwks' }
  | { readonly kind: 'not-found' }
  | { readonly kind: 'not-a-proxy' };

export interface RoutedTarget {
  readonly route: Route;
  /** Normalised path (lower case, single slashes, no trailing slash). */
  readonly path: string;
  /** Raw query string without `?`. */
  readonly query: string;
}

/**
 * Collapses repeated slashes, drops trailing slashes and lower-cases (SDK paths are case-insensitive,
 * docs/protocols.md §6).
 */
export function normalisePath(path: string): string {
  const collapsed = path.replace(/\/{2,}/g, '/').replace(/\/+$/, '');
  return (collapsed === '' ? '/' : collapsed).toLowerCase();
}

const TOKEN_PATHS: ReadonlyMap<string, PathDialect> = new Map([
  [PATHS.imds.toLowerCase(), 'imds'],
  [PATHS.appService.toLowerCase(), 'app-service'],
  [PATHS.msiEndpoint.toLowerCase(), 'msi-endpoint'],
  [PATHS.arc.toLowerCase(), 'arc'],
]);
const DISCOVERY_PATH = `${PATHS.devIssuer}/.well-known/openid-configuration`.toLowerCase();
const JWKS_PATH = `${PATHS.devIssuer}/jwks`.toLowerCase();

function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  return q === -1 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q + 1) };
}

function routePath(path: string): Route {
  const dialect = TOKEN_PATHS.get(path);
  if (dialect !== undefined) return { kind: 'token', dialect };
  if (path === DISCOVERY_PATH) return { kind: 'dev-discovery' };
  if (path === JWKS_PATH) return { kind: 'dev-jwks' };
  return { kind: 'not-found' };
}

const NOT_FOUND: RoutedTarget = { route: { kind: 'not-found' }, path: '', query: '' };
const NOT_A_PROXY: RoutedTarget = { route: { kind: 'not-a-proxy' }, path: '', query: '' };

/**
 * Routes a request target (`req.url` of node:http: origin form `/path?query` or absolute form `http://host/path`).
 */
export function routeTarget(target: string): RoutedTarget {
  if (target.startsWith('/')) return routeOriginForm(target);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) return routeAbsoluteForm(target);
  return NOT_FOUND;
}

function routeOriginForm(target: string): RoutedTarget {
  const { path, query } = splitTarget(target);
  const normalised = normalisePath(path);
  return { route: routePath(normalised), path: normalised, query };
}

/** Absolute form is answered only as the IMDS token URL of {@link IMDS_ADDRESS}: the sidecar is no proxy. */
function routeAbsoluteForm(target: string): RoutedTarget {
  if (!namesImdsOverPlainHttp(target)) return NOT_A_PROXY;
  // Take path and query from the raw text: URL parsing would re-encode a raw resource (az sends it unencoded).
  const slash = target.indexOf('/', target.indexOf('//') + 2);
  const { path, query } = splitTarget(slash === -1 ? '/' : target.slice(slash));
  const normalised = normalisePath(path);
  const route = TOKEN_PATHS.get(normalised) === 'imds' ? ({ kind: 'token', dialect: 'imds' } as const) : ({ kind: 'not-found' } as const);
  return { route, path: normalised, query };
}

/** `http://169.254.169.254[:80]/...` without user info. */
function namesImdsOverPlainHttp(target: string): boolean {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return false;
  }
  const defaultPort = url.port === '' || url.port === '80';
  return url.protocol === 'http:' && url.hostname === IMDS_ADDRESS && defaultPort && url.username === '';
}
