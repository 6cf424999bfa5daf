/**
 * App Service 2019-08-01 dialect (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), also used by Functions and Container
 * Apps. Every current SDK picks it when both variables are set (docs/protocols.md §1.3), which makes it the dialect of
 * the `default` profile.
 *
 * Pure: request-like data in, {@link TokenRequest} or a typed error out; token/error in, response data out.
 */
import { MethodNotAllowedError, UnauthorizedError, type SidecarError } from '../errors.ts';
import {
  errorHeaders,
  header,
  parseQueryTokenFields,
  publicMessage,
  refuseForwarded,
  secretsEqual,
  type RenderedResponse,
  type RequestLike,
  type SelectorKind,
  type TokenRequest,
} from './common.ts';

/**
 * User-assigned selectors on App Service (docs/protocols.md §2.2; §12, C4 and C5): `client_id`; object id as
 * `object_id` (MSAL libraries) or `principal_id` (older azidentity, docs); resource id as `mi_res_id` (all MSAL
 * libraries) or `msi_res_id` (accepted on every dialect so a client that mixes up the spellings still works).
 */
export const APP_SERVICE_SELECTORS: Readonly<Record<string, SelectorKind>> = {
  client_id: 'clientId',
  object_id: 'objectId',
  principal_id: 'objectId',
  mi_res_id: 'resourceId',
  msi_res_id: 'resourceId',
};

export const APP_SERVICE_API_VERSION = '2019-08-01';

export interface AppServiceContext {
  /** Expected `X-IDENTITY-HEADER` value (`IDENTITY_HEADER` of the app). */
  readonly identityHeader: string;
}

/**
 * Parses an App Service token request. An extra `Metadata: true` (MSAL Python, "needed by Azure Automation",
 * docs/protocols.md §2.2) is tolerated: it is neither required nor refused.
 */
export function parseAppServiceRequest(req: RequestLike, ctx: AppServiceContext): TokenRequest {
  if (req.method !== 'GET') throw new MethodNotAllowedError(req.method, ['GET']);
  refuseForwarded(req.headers);
  const presented = header(req.headers, 'x-identity-header');
  if (presented === undefined) throw new UnauthorizedError('Required header X-IDENTITY-HEADER is missing');
  if (!secretsEqual(presented, ctx.identityHeader)) throw new UnauthorizedError('X-IDENTITY-HEADER does not match IDENTITY_HEADER');
  const { resource, selector } = parseQueryTokenFields(req.query, APP_SERVICE_API_VERSION, APP_SERVICE_SELECTORS);
  return { dialect: 'app-service', resource, selector };
}

/**
 * App Service error shape `{statusCode, message, correlationId}` (msal-node `ManagedIdentityTokenResponse`, MSAL
 * Python `statusCode`/`message`, MSAL.NET `message`/`correlationId`; docs/protocols.md §4.1), plus `error` and
 * `error_description`: msal-node takes `error` as the error code and `message` as the description, so both
 * readers get the same text.
 */
export function renderAppServiceError(error: SidecarError, correlationId: string): RenderedResponse {
  const message = publicMessage(error);
  return {
    status: error.httpStatus,
    headers: errorHeaders(error),
    body: JSON.stringify({ statusCode: error.httpStatus, message, correlationId, error: error.oauthError, error_description: message }),
  };
}
