/**
 * Azure Arc dialect (`IDENTITY_ENDPOINT` + `IMDS_ENDPOINT`): a challenge in two round trips (docs/protocols.md §7).
 * The first request is answered 401 with `WWW-Authenticate: Basic realm=<key file>`; the client reads the file and
 * repeats the request with `Authorization: Basic <file contents>`. Creating and checking key files is I/O and lives
 * in `http/arc-keys.ts`; this module only parses and renders.
 *
 * Pure: request-like data in, {@link ArcRequest} or a typed error out; token/error in, response data out.
 */
import { posix } from 'node:path';
import { MethodNotAllowedError, UnauthorizedError } from '../errors.ts';
import {
  header,
  JSON_CONTENT_TYPE,
  parseQueryTokenFields,
  refuseForwarded,
  requireMetadataHeader,
  type RenderedResponse,
  type RequestLike,
  type SelectorKind,
  type SelectorEcho,
  type TokenRequest,
} from './common.ts';

/**
 * Arc user-assigned selectors sent by msal-node, MSAL Python and MSAL Go, which require their echo
 * (docs/protocols.md §2.5, §7).
 */
export const ARC_SELECTORS: Readonly<Record<string, SelectorKind>> = {
  client_id: 'clientId',
  object_id: 'objectId',
  msi_res_id: 'resourceId',
  mi_res_id: 'resourceId',
};

/**
 * Current MSAL4J sends 2019-11-01, the other current SDKs 2020-06-01; azidentity for Go up to 1.6 sends 2019-08-15, the
 * first api-version Azure Arc served (docs/protocols.md §2.5 and §12, C13; docs/compatibility.md, "Accepted
 * api-versions").
 */
export const ARC_OLDEST_API_VERSION = '2019-08-15';

/**
 * Largest key file the SDKs read (msal-node, MSAL Go, MSAL.NET, MSAL Python, MSAL4J: 4096 bytes,
 * docs/protocols.md §7 step 3).
 */
export const ARC_KEY_MAX_BYTES = 4096;

export interface ArcRequest extends TokenRequest {
  /** Contents of `Authorization: Basic <key>`; undefined on the first (challenge) request. */
  readonly presentedKey: string | undefined;
  readonly echo: SelectorEcho | undefined;
}

export function parseArcRequest(req: RequestLike): ArcRequest {
  if (req.method !== 'GET') throw new MethodNotAllowedError(req.method, ['GET']);
  refuseForwarded(req.headers);
  requireMetadataHeader(req.headers);
  const { resource, selector, echo } = parseQueryTokenFields(req.query, ARC_OLDEST_API_VERSION, ARC_SELECTORS);
  return { dialect: 'arc', resource, selector, echo, presentedKey: parseBasicAuthorization(header(req.headers, 'authorization')) };
}

/**
 * The key after `Basic `. Clients send the raw file contents, not base64 (every SDK, docs/protocols.md §7 step 4), so
 * nothing is decoded or trimmed beyond the single separating space.
 */
function parseBasicAuthorization(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const match = /^basic (.+)$/is.exec(value);
  if (!match || match[1] === undefined) throw new UnauthorizedError('Authorization must be "Basic <contents of the key file>"');
  return match[1];
}

/**
 * The challenge realm: the key file path as the app sees it. It must be `<ARC_TOKENS_DIR>/<name>.key` exactly, and
 * contain no `=` (MSAL Python, MSAL.NET and MSAL4J split the header on `=`, docs/protocols.md §7 step 2).
 */
export function arcRealm(tokensDir: string, fileName: string): string {
  if (!/^[A-Za-z0-9_-]+\.key$/.test(fileName)) throw new Error(`invalid Arc key file name ${JSON.stringify(fileName)}`);
  return posix.join(tokensDir, fileName);
}

/**
 * 401 + `WWW-Authenticate: Basic realm=<path>`, nothing after the path (Go requires the 401,
 * docs/protocols.md §7 step 1).
 */
export function renderArcChallenge(realm: string): RenderedResponse {
  return {
    status: 401,
    headers: { 'content-type': JSON_CONTENT_TYPE, 'cache-control': 'no-store', 'www-authenticate': `Basic realm=${realm}` },
    body: JSON.stringify({
      error: 'unauthorized_client',
      error_description: 'Read the key file named in WWW-Authenticate and repeat the request with "Authorization: Basic <file contents>"',
    }),
  };
}
