/**
 * The error and success body shapes each dialect must answer with (docs/protocols.md §3, §4.1), as predicates for the
 * attacker, fuzz and soak suites: whatever the input, the answer is one of these.
 */
import type { Dialect } from '../../sidecar/protocol/dialect.ts';

type Json = Record<string, unknown>;

const isString = (v: unknown): v is string => typeof v === 'string';

/** IMDS, Arc and unrouted requests: `{error, error_description}`. */
function imdsError(b: Json): boolean {
  return Object.keys(b).sort().join(',') === 'error,error_description' && isString(b['error']) && isString(b['error_description']);
}

/** App Service and MSI_ENDPOINT GET: `{statusCode, message, correlationId, error, error_description}`. */
function appServiceError(b: Json, status: number): boolean {
  return b['statusCode'] === status && isString(b['message']) && isString(b['correlationId']) && isString(b['error']) && isString(b['error_description']);
}

/** Cloud Shell POST: `{error: {code, message}}`. */
function cloudShellError(b: Json): boolean {
  const e = b['error'] as Json | undefined;
  return Object.keys(b).join(',') === 'error' && typeof e === 'object' && e !== null && isString(e['code']) && isString(e['message']);
}

/** Every success body carries these as strings (docs/clients.md §1, item 4). */
export function isTokenBody(b: Json): boolean {
  return ['access_token', 'expires_in', 'expires_on', 'not_before', 'resource', 'token_type', 'client_id'].every((k) => isString(b[k]));
}

export function isDialectError(dialect: Dialect, body: Json, status: number): boolean {
  switch (dialect) {
    case 'app-service':
    case 'msi-endpoint':
      return appServiceError(body, status);
    case 'cloud-shell':
      return cloudShellError(body);
    case 'imds':
    case 'arc':
    case 'unknown':
      return imdsError(body);
  }
}

/** Any of the shapes the token listener may answer an error with (for inputs whose dialect a test cannot know). */
export function isAnyErrorShape(body: Json, status: number): boolean {
  return imdsError(body) || appServiceError(body, status) || cloudShellError(body);
}
