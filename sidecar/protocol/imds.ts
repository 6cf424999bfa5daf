/**
 * IMDS dialect (`GET /metadata/identity/oauth2/token`): what Azure VMs serve at 169.254.169.254, reached through
 * `AZURE_POD_IDENTITY_AUTHORITY_HOST` or, for clients that hard-code the address, through `HTTP_PROXY`
 * (docs/clients.md §1 items 2 and 3).
 *
 * Pure: request-like data in, {@link TokenRequest} or a typed error out; token/error in, response data out.
 */
import { MethodNotAllowedError, type SidecarError } from '../errors.ts';
import {
  errorHeaders,
  parseQueryTokenFields,
  publicMessage,
  refuseForwarded,
  requireMetadataHeader,
  type RenderedResponse,
  type RequestLike,
  type SelectorKind,
  type TokenRequest,
} from './common.ts';

/**
 * User-assigned selectors on IMDS (docs/protocols.md §2.1; §12, C4): `msi_res_id` (msal-node, MSAL.NET, MSAL Go, MSAL
 * Python, az), `mi_res_id` (MSAL4J 2024-10, older docs), `msi-res-id` (.NET DefaultAzureCredential probe).
 */
export const IMDS_SELECTORS: Readonly<Record<string, SelectorKind>> = {
  client_id: 'clientId',
  object_id: 'objectId',
  msi_res_id: 'resourceId',
  mi_res_id: 'resourceId',
  'msi-res-id': 'resourceId',
};

/** The first api-version with the managed-identity category; every SDK sends exactly this (docs/protocols.md §2.1). */
export const IMDS_OLDEST_API_VERSION = '2018-02-01';

/**
 * Parses an IMDS token request. Order of checks follows real IMDS: method, proxy hop, Metadata header, then
 * parameters — so a probe without `Metadata` gets the documented "Required metadata header not specified" 400
 * (docs/protocols.md §4.1, §5: any HTTP answer means "IMDS present" to JS/Go/Python/Java probes).
 */
export function parseImdsRequest(req: RequestLike): TokenRequest {
  if (req.method !== 'GET') throw new MethodNotAllowedError(req.method, ['GET']);
  refuseForwarded(req.headers);
  requireMetadataHeader(req.headers);
  const { resource, selector } = parseQueryTokenFields(req.query, IMDS_OLDEST_API_VERSION, IMDS_SELECTORS);
  return { dialect: 'imds', resource, selector };
}

/** IMDS error shape `{"error","error_description"}` (docs/protocols.md §4.1), which every SDK parses. */
export function renderImdsError(error: SidecarError): RenderedResponse {
  return {
    status: error.httpStatus,
    headers: errorHeaders(error),
    body: JSON.stringify({ error: error.oauthError, error_description: publicMessage(error) }),
  };
}
