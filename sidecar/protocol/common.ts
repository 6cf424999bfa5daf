/**
 * Building blocks shared by the dialect parsers and renderers: the request-like input, the parsed
 * {@link TokenRequest}, lenient query/form decoding with duplicate detection, selector extraction, api-version
 * checks, header guards, and the one success body every dialect sends.
 *
 * Pure: no I/O, no clock (callers pass `nowSeconds`), no express/node:http types.
 */
import { memoiseString } from '../memoise.ts';
import { hash, timingSafeEqual } from 'node:crypto';
import { BadRequestError, ForwardedRequestError, MissingMetadataHeaderError, type SidecarError } from '../errors.ts';
import type { IdentitySelector } from '../identity/identity.ts';
import type { Dialect } from './dialect.ts';
import type { IssuedToken } from '../token/token-source.ts';

/** Header map as node:http delivers it: lower-case names; repeated headers joined (or arrays for set-cookie). */
export type Headers = Readonly<Record<string, string | readonly string[] | undefined>>;

/** The parts of an HTTP request the parsers look at. */
export interface RequestLike {
  readonly method: string;
  /** Raw query string without the leading `?` (may be empty). */
  readonly query: string;
  readonly headers: Headers;
  /** Request body as text (only read for Cloud Shell POST). */
  readonly body?: string | undefined;
}

/** A selector as the client spelled it, for dialects that must echo it (Azure Arc, docs/protocols.md §7 step 6). */
export interface SelectorEcho {
  readonly key: string;
  readonly value: string;
}

/** What a token request asks for, independent of its dialect. */
export interface TokenRequest {
  readonly dialect: Dialect;
  /** The resource exactly as the client sent it (decoded), echoed in the response. */
  readonly resource: string;
  readonly selector: IdentitySelector;
  readonly echo?: SelectorEcho | undefined;
}

/** An HTTP response as data; the HTTP edge writes it. */
export interface RenderedResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Response header carrying the stable `SIDECAR_ERR_*` code of an error answer. */
export const ERROR_CODE_HEADER = 'x-mi-anywhere-error';

/** Real IMDS answers `application/json; charset=utf-8`; every SDK checks only the media type. */
export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/**
 * Decodes one query/form component; malformed percent-escapes are kept raw (az sends resources unencoded,
 * docs/protocols.md §2.3).
 */
export function decodeComponent(raw: string): string {
  // Most names and values carry nothing to decode (`api-version`, `2018-02-01`): skip the regex and the decoder.
  if (!raw.includes('%') && !raw.includes('+')) return raw;
  const spaced = raw.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}

export interface ParsedParams {
  /** First value per name. */
  readonly values: ReadonlyMap<string, string>;
  /** Names that appeared more than once. */
  readonly duplicates: readonly string[];
}

/**
 * Parses `a=1&b=2` (query string or form body). Names are case-sensitive like real IMDS. Empty segments are
 * ignored (`?&resource=...` from string concatenation). The result is shared between calls with the same text:
 * callers only read it.
 */
export const parseParams: (raw: string) => ParsedParams = memoiseString(computeParams, { maxEntries: 256, maxKeyLength: 2048 });

function computeParams(raw: string): ParsedParams {
  const values = new Map<string, string>();
  // Created only when a name repeats: almost no request has one.
  let duplicates: Set<string> | undefined;
  for (const segment of raw.split('&')) {
    if (segment === '') continue;
    const eq = segment.indexOf('=');
    const name = decodeComponent(eq === -1 ? segment : segment.slice(0, eq));
    const value = eq === -1 ? '' : decodeComponent(segment.slice(eq + 1));
    if (values.has(name)) (duplicates ??= new Set()).add(name);
    else values.set(name, value);
  }
  return { values, duplicates: Object.freeze(duplicates === undefined ? [] : [...duplicates]) };
}

/**
 * Rejects duplicated parameters: real IMDS does (docs/protocols.md §9), and a duplicated selector or resource would
 * otherwise be ambiguous (which one did the client mean?).
 */
export function rejectDuplicates(params: ParsedParams): void {
  if (params.duplicates.length > 0) {
    throw new BadRequestError(`Duplicate query parameter${params.duplicates.length > 1 ? 's' : ''}: ${params.duplicates.join(', ')}`);
  }
}

/** Single header value (node joins repeated headers with ", "; arrays only occur for set-cookie). */
export function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value.join(', ');
}

/** `Metadata: true` (case-insensitive value; every SDK sends lower-case `true`, docs/protocols.md §2.1). */
export function requireMetadataHeader(headers: Headers): void {
  if (header(headers, 'metadata')?.trim().toLowerCase() !== 'true') throw new MissingMetadataHeaderError();
}

/**
 * Refuses requests that went through a proxy hop: real IMDS rejects `X-Forwarded-For` (docs/protocols.md §9) so that a
 * server-side request forgery through a reverse proxy cannot fetch tokens; `Forwarded` is the standard spelling.
 */
export function refuseForwarded(headers: Headers): void {
  if (headers['x-forwarded-for'] !== undefined || headers['forwarded'] !== undefined) throw new ForwardedRequestError();
}

/** The `resource` parameter, required and non-empty. */
export function requireResource(values: ReadonlyMap<string, string>): string {
  const resource = values.get('resource')?.trim();
  if (resource === undefined || resource === '') throw new BadRequestError('Required query parameter resource is missing');
  return resource;
}

const API_VERSION = /^(\d{4}-\d{2}-\d{2})(-preview)?$/;

/**
 * Checks an `api-version` against the oldest date the dialect supports. Dates compare as strings (ISO order).
 * @param required whether a missing api-version is an error (IMDS, App Service, Arc) or allowed (MSI_ENDPOINT GET)
 */
export function checkApiVersion(values: ReadonlyMap<string, string>, oldest: string, required: boolean): void {
  const value = values.get('api-version');
  if (value === undefined || value === '') {
    if (required) throw new BadRequestError(`Bad request. api-version was not specified in the request; use ${oldest} or later`);
    return;
  }
  const match = API_VERSION.exec(value.trim());
  if (!match || (match[1] ?? '') < oldest) {
    throw new BadRequestError(`Bad request. api-version ${JSON.stringify(value)} is not supported; use ${oldest} or later`);
  }
}

export type SelectorKind = Exclude<IdentitySelector['kind'], 'system'>;

/**
 * Finds at most one identity selector among the parameters. `names` maps each wire spelling the dialect accepts to
 * its kind. Empty values count as absent (MSAL Go sends `clientid=` for the system identity, docs/protocols.md §2.7).
 * @throws BadRequestError when more than one selector is given (they are mutually exclusive in every dialect).
 */
export function extractSelector(
  values: ReadonlyMap<string, string>,
  names: Readonly<Record<string, SelectorKind>>,
): { selector: IdentitySelector; echo?: SelectorEcho } {
  const present: SelectorEcho[] = [];
  for (const key of Object.keys(names)) {
    const value = values.get(key)?.trim();
    if (value !== undefined && value !== '') present.push({ key, value });
  }
  if (present.length > 1) {
    throw new BadRequestError(`Only one identity selector may be given, got ${present.map((p) => p.key).join(' and ')}`);
  }
  const only = present[0];
  if (only === undefined) return { selector: { kind: 'system' } };
  const kind = names[only.key];
  if (kind === undefined) return { selector: { kind: 'system' } };
  return { selector: { kind, value: only.value }, echo: only };
}

/**
 * The query of a GET token request in the IMDS, App Service and Arc dialects, which validate it the same way: no
 * duplicated parameter, an `api-version` at least `oldestApiVersion`, a `resource`, at most one selector.
 */
export function parseQueryTokenFields(
  query: string,
  oldestApiVersion: string,
  selectors: Readonly<Record<string, SelectorKind>>,
): { resource: string; selector: IdentitySelector; echo?: SelectorEcho } {
  const params = parseParams(query);
  rejectDuplicates(params);
  checkApiVersion(params.values, oldestApiVersion, true);
  const resource = requireResource(params.values);
  return { resource, ...extractSelector(params.values, selectors) };
}

/**
 * Constant-time string comparison for shared secrets (identity header, MSI secret, Arc key). Hashing first makes
 * both sides the same length, so neither content nor length leaks through timing.
 */
export function secretsEqual(presented: string, expected: string): boolean {
  // One-shot hashing (no Hash object per call): this runs on every App Service / Azure ML request.
  const a = hash('sha256', presented, 'buffer');
  return timingSafeEqual(a, expectedDigest(expected));
}

/**
 * The digest of the expected secret, kept for the last secret asked about: every App Service / MSI_ENDPOINT request
 * compares with the same configured value, and a SHA-256 costs 1-2 µs (docs/performance.md). A cache of a pure
 * function; the check looks only at the expected value, never at what the client presented.
 */
let lastExpected: { readonly secret: string; readonly digest: Buffer } | undefined;
function expectedDigest(expected: string): Buffer {
  if (lastExpected?.secret !== expected) lastExpected = { secret: expected, digest: hash('sha256', expected, 'buffer') };
  return lastExpected.digest;
}

/**
 * The success body, identical in every dialect (docs/clients.md §1 item 4; docs/protocols.md §3.2): all time values as
 * integer digit strings like real IMDS, both `expires_in` (MSAL Python IMDS/Arc) and `expires_on` (msal-node, MSAL4J,
 * MSAL Python App Service/ML), `resource` (azure-identity Python cache key), `token_type` (az CLI, MSAL Python SF),
 * `client_id`. Never an `error`/`message` key (msal-node would treat the body as an error,
 * docs/protocols.md §3.1 and §12, C17).
 */
export function renderTokenBody(token: IssuedToken, nowSeconds: number, echo?: SelectorEcho): Record<string, string> {
  const expiresIn = String(Math.max(0, Math.floor(token.expiresOnSeconds - nowSeconds)));
  const body: Record<string, string> = {
    access_token: token.accessToken,
    client_id: token.clientId,
    expires_in: expiresIn,
    expires_on: String(Math.floor(token.expiresOnSeconds)),
    ext_expires_in: expiresIn,
    not_before: String(Math.floor(token.notBeforeSeconds)),
    resource: token.resource,
    token_type: 'Bearer',
  };
  if (echo !== undefined) body[echo.key] = echo.value;
  return body;
}

/** A 200 JSON response with headers every token answer carries (no caching by intermediaries). */
export function renderJsonOk(body: unknown): RenderedResponse {
  return { status: 200, headers: { 'content-type': JSON_CONTENT_TYPE, 'cache-control': 'no-store' }, body: JSON.stringify(body) };
}

/** Status and headers common to every dialect's error response (Retry-After, Allow). */
export function errorHeaders(error: SidecarError): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': JSON_CONTENT_TYPE,
    'cache-control': 'no-store',
    // The stable code (docs/errors.md) for people reading traces; SDK error texts only carry the body.
    [ERROR_CODE_HEADER]: error.code,
  };
  if (error.retryAfterSeconds !== undefined) headers['retry-after'] = String(Math.max(0, Math.ceil(error.retryAfterSeconds)));
  const allow = (error as { allow?: readonly string[] }).allow;
  if (allow !== undefined) headers['allow'] = allow.join(', ');
  return headers;
}

/** The message a caller may see (unexposed errors get a generic text; the real one is logged). */
export function publicMessage(error: SidecarError): string {
  return error.expose ? error.message : 'Internal error in the identity sidecar';
}
