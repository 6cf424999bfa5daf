/**
 * The `MSI_ENDPOINT` dialects, all served on one path because the SDKs choose among them by which variables are set
 * and the sidecar cannot know which client is calling (docs/protocols.md §1.3; §12, C8):
 *
 * - GET with header `secret` (`MSI_SECRET`): Azure ML (`api-version=2017-09-01`, selector `clientid`; JS, Python,
 *   Go, .NET) and App Service 2017 (az CLI 2.45 with `APPSETTING_WEBSITE_SITE_NAME`, which sends
 *   `<MSI_ENDPOINT>/?resource=<raw>`; docs/clients.md §1 item 1).
 * - GET with `Metadata: true` and no secret: MSAL4J's Cloud Shell source (docs/protocols.md §2.4), also used when
 *   `MSI_SECRET` is set — so the secret is checked when sent but not required when `Metadata` is.
 * - POST form `resource=...` with `Metadata: true`: Cloud Shell (JS, .NET, Go, azure-identity Python, az 2.45), with
 *   an optional `client_id`/`object_id`/`msi_res_id` in the body (azure-identity 1.13, az 2.45).
 *
 * Pure: request-like data in, {@link TokenRequest} or a typed error out; token/error in, response data out.
 */
import { MethodNotAllowedError, UnauthorizedError, type SidecarError } from '../errors.ts';
import {
  checkApiVersion,
  errorHeaders,
  extractSelector,
  header,
  parseParams,
  publicMessage,
  refuseForwarded,
  rejectDuplicates,
  requireMetadataHeader,
  requireResource,
  secretsEqual,
  type RenderedResponse,
  type RequestLike,
  type SelectorKind,
  type TokenRequest,
} from './common.ts';

/**
 * Azure ML / App Service 2017 spell the client id `clientid` (docs/protocols.md §2.3, §2.7). msal-python's Azure ML
 * path (msal 1.39, also behind azure-identity 1.27's AzureMLCredential) sends a user-assigned object id or resource id
 * under its IMDS names `object_id` / `msi_res_id` (`_adjust_param`); found by the compatibility matrix (test/compat):
 * ignored, those requests were served the default identity. So every IMDS spelling is accepted here too
 * (docs/protocols.md §12, C4); more than one selector is still refused.
 */
export const MSI_GET_SELECTORS: Readonly<Record<string, SelectorKind>> = {
  clientid: 'clientId',
  client_id: 'clientId',
  object_id: 'objectId',
  msi_res_id: 'resourceId',
  mi_res_id: 'resourceId',
};

/**
 * Cloud Shell body selectors sent by azure-identity Python 1.13 and az 2.45 (docs/protocols.md §2.4;
 * docs/clients.md §3, row b).
 */
export const CLOUD_SHELL_SELECTORS: Readonly<Record<string, SelectorKind>> = {
  client_id: 'clientId',
  object_id: 'objectId',
  msi_res_id: 'resourceId',
  mi_res_id: 'resourceId',
};

export const MSI_OLDEST_API_VERSION = '2017-09-01';

/**
 * `clientid` values that mean "the compute's default identity" on Azure ML: empty (MSAL Go always sends the
 * parameter, docs/protocols.md §12, C15) and the placeholder `DEFAULT`, which the webhook may put into
 * `DEFAULT_IDENTITY_CLIENT_ID` when it cannot know the default identity's client id at injection time (MSAL.NET
 * throws when that variable is unset, docs/protocols.md §2.7).
 */
export const DEFAULT_CLIENT_ID_PLACEHOLDER = 'DEFAULT';

export interface MsiEndpointContext {
  /** Expected `secret` header value (`MSI_SECRET` of the app). */
  readonly secret: string;
}

export function parseMsiEndpointRequest(req: RequestLike, ctx: MsiEndpointContext): TokenRequest {
  if (req.method === 'GET') return parseMsiGet(req, ctx);
  if (req.method === 'POST') return parseCloudShellPost(req, ctx);
  throw new MethodNotAllowedError(req.method, ['GET', 'POST']);
}

/**
 * The `secret` header, when present, must match; when absent the request must carry `Metadata: true` (Cloud Shell
 * style). A request with neither is refused as a missing Metadata header, the guard real Cloud Shell applies.
 */
function checkSecretOrMetadata(req: RequestLike, ctx: MsiEndpointContext): void {
  const presented = header(req.headers, 'secret');
  if (presented !== undefined) {
    if (!secretsEqual(presented, ctx.secret)) throw new UnauthorizedError('Header secret does not match MSI_SECRET');
    return;
  }
  requireMetadataHeader(req.headers);
}

function parseMsiGet(req: RequestLike, ctx: MsiEndpointContext): TokenRequest {
  refuseForwarded(req.headers);
  checkSecretOrMetadata(req, ctx);
  const params = parseParams(req.query);
  rejectDuplicates(params);
  checkApiVersion(params.values, MSI_OLDEST_API_VERSION, false);
  const resource = requireResource(params.values);
  const clientid = params.values.get('clientid')?.trim();
  if (clientid !== undefined && clientid.toUpperCase() === DEFAULT_CLIENT_ID_PLACEHOLDER) {
    return { dialect: 'msi-endpoint', resource, selector: { kind: 'system' } };
  }
  const { selector } = extractSelector(params.values, MSI_GET_SELECTORS);
  return { dialect: 'msi-endpoint', resource, selector };
}

/**
 * Cloud Shell POST. The body is parsed as a form whatever the Content-Type says: MSAL.NET sends a header literally
 * named `ContentType` instead of `Content-Type` (docs/protocols.md §2.4), so the real header may be missing.
 */
function parseCloudShellPost(req: RequestLike, ctx: MsiEndpointContext): TokenRequest {
  refuseForwarded(req.headers);
  requireMetadataHeader(req.headers);
  const presented = header(req.headers, 'secret');
  if (presented !== undefined && !secretsEqual(presented, ctx.secret)) throw new UnauthorizedError('Header secret does not match MSI_SECRET');
  const params = parseParams(req.body ?? '');
  rejectDuplicates(params);
  const resource = requireResource(params.values);
  const { selector } = extractSelector(params.values, CLOUD_SHELL_SELECTORS);
  return { dialect: 'cloud-shell', resource, selector };
}

/**
 * Cloud Shell POST answers `{"error":{"code","message"}}`, the only error shape Cloud Shell has (msal-node
 * `ErrorObject`, MSAL.NET nested error; docs/protocols.md §4.1). The GET forms (Azure ML / App Service 2017) answer
 * like App Service.
 */
export function renderCloudShellError(error: SidecarError): RenderedResponse {
  const body = { error: { code: error.oauthError, message: publicMessage(error) } };
  return { status: error.httpStatus, headers: errorHeaders(error), body: JSON.stringify(body) };
}
