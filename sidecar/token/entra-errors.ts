/**
 * Turns what went wrong between msal-node and Entra ID into the sidecar's typed errors, with the AADSTS code and a
 * one-line hint a human can act on, and into the metrics' upstream outcome class.
 *
 * Status policy (observed-clients.md §5): a credential problem is 400 (every SDK fails fast; retrying cannot fix a
 * wrong secret), an unreachable / failing / throttling Entra is 503 with `Retry-After` when known (SDKs retry 5xx
 * for a few seconds, and retry 503 + Retry-After even in @azure/identity's throttling policy).
 *
 * Pure: no I/O. Never puts a secret, assertion or token into a message (Entra's own descriptions contain none).
 */
import { CredentialUnavailableError, SidecarError, UpstreamRejectedError, UpstreamUnavailableError } from '../errors.ts';
import type { UpstreamOutcome } from '../metrics.ts';

/** Entra's error body fields we use (see the test authority or any AADSTS answer). */
export interface EntraErrorBody {
  readonly error?: string | undefined;
  readonly errorCodes?: readonly number[] | undefined;
  readonly description?: string | undefined;
}

/** What the network layer saw during one acquisition (recorded by `network-client.ts`). */
export interface UpstreamObservation {
  /** Last non-2xx answer from Entra (discovery or token endpoint). */
  http?: { readonly status: number; readonly retryAfterSeconds: number | undefined; readonly body: EntraErrorBody | undefined } | undefined;
  /** Last transport failure (ECONNRESET, ECONNREFUSED, timeout, TLS). */
  transport?: { readonly code: string } | undefined;
  /** The acquisition's abort signal (its overall deadline), read by the network client; not an observation. */
  readonly signal?: AbortSignal | undefined;
}

export interface UpstreamFailureContext {
  readonly identity: string;
  readonly tenantId: string;
  readonly clientId: string;
}

export interface MappedUpstreamFailure {
  readonly error: SidecarError;
  readonly outcome: UpstreamOutcome;
}

/** Shape of msal's ServerError / AuthError as far as we read it (duck-typed: no class identity needed). */
interface MsalLikeError {
  readonly errorCode?: unknown;
  readonly errorMessage?: unknown;
  readonly errorNo?: unknown;
  readonly status?: unknown;
  readonly message?: unknown;
}

/** `AADSTS7000215` from an error body or message. */
export function aadstsOf(body: EntraErrorBody | undefined, text?: string): string | undefined {
  const code = body?.errorCodes?.[0];
  if (code !== undefined) return `AADSTS${code}`;
  const match = /AADSTS(\d+)/.exec(`${body?.description ?? ''} ${text ?? ''}`);
  return match ? `AADSTS${match[1]}` : undefined;
}

/**
 * One-line, actionable hints per AADSTS code. Codes: https://learn.microsoft.com/entra/identity-platform/reference-error-codes
 * (`ctx` never carries secrets: identity directory name, tenant and client ids only).
 */
function hintFor(aadsts: string | undefined, description: string, ctx: UpstreamFailureContext): string | undefined {
  const app = `app ${ctx.clientId}`;
  const where = `identity "${ctx.identity}"`;
  switch (aadsts) {
    case 'AADSTS7000215':
      return `invalid client secret for ${app}: put the secret's value (not its ID) into the clientSecret key of ${where}, or create a new secret`;
    case 'AADSTS7000222':
      return `the client secret of ${app} has expired: create a new secret and update the clientSecret key of ${where}`;
    case 'AADSTS700027':
      return /expired/i.test(description)
        ? `the certificate of ${where} has expired in the registration of ${app}: issue a new one, upload it to the app and update tls.crt/tls.key`
        : `the certificate of ${where} (tls.crt) is not registered on ${app}, or tls.key does not belong to it: upload tls.crt to the app registration`;
    case 'AADSTS700024':
      return `the client assertion of ${where} is outside its validity window: check the node's clock, or that the projected service-account token is fresh`;
    case 'AADSTS700016':
      return `${app} was not found in tenant ${ctx.tenantId}: check clientId and tenantId of ${where} (and the authority host for sovereign clouds)`;
    case 'AADSTS90002':
      return `tenant ${ctx.tenantId} was not found: check tenantId of ${where} and MI_ANYWHERE_AUTHORITY_HOST (sovereign clouds have their own host)`;
    case 'AADSTS700211':
      return `no federated credential on ${app} trusts the service-account token's issuer: add a federated credential with this cluster's OIDC issuer URL`;
    case 'AADSTS700212':
      return `no federated credential on ${app} accepts the service-account token's audience: project the token with audience api://AzureADTokenExchange or add it to the credential`;
    case 'AADSTS700213':
    case 'AADSTS70021':
      return `no federated credential on ${app} matches the service-account token (issuer/subject/audience): add one with subject system:serviceaccount:<namespace>:<name>`;
    case 'AADSTS50013':
      return `the service-account token of ${where} failed signature validation: check that the cluster's OIDC issuer publishes its current keys (JWKS)`;
    case 'AADSTS7000218':
      return `no credential was sent for ${where}: mount clientSecret, tls.crt + tls.key, or a federated token`;
    case 'AADSTS1002012':
    case 'AADSTS70011':
      return `Entra rejected the requested scope: ask for a resource URI or app ID URI (for example https://management.azure.com/)`;
    case 'AADSTS500011':
      return `the requested resource is not registered in tenant ${ctx.tenantId}: check the resource URI the app asks for`;
    case 'AADSTS7000112':
    case 'AADSTS700025':
      return `${app} is disabled or cannot use client credentials: check the app registration and service principal`;
    default:
      return undefined;
  }
}

function outcomeOfOAuthError(error: string | undefined): UpstreamOutcome {
  switch (error) {
    case 'invalid_client':
    case 'invalid_grant':
    case 'unauthorized_client':
    case 'invalid_request':
      return error;
    case 'invalid_scope':
    case 'unsupported_grant_type':
      return 'invalid_request';
    default:
      return 'other';
  }
}

function unavailable(message: string, outcome: UpstreamOutcome, retryAfterSeconds: number | undefined, cause: unknown): MappedUpstreamFailure {
  return { error: new UpstreamUnavailableError(message, { cause, retryAfterSeconds }), outcome };
}

function rejected(body: EntraErrorBody, status: number | undefined, ctx: UpstreamFailureContext, cause: unknown): MappedUpstreamFailure {
  const aadsts = aadstsOf(body);
  const description = body.description ?? '';
  const hint = hintFor(aadsts, description, ctx) ?? `Entra ID rejected the credential of ${`identity "${ctx.identity}"`}${status ? ` (HTTP ${status})` : ''}`;
  return {
    error: new UpstreamRejectedError({ oauthError: body.error ?? 'invalid_client', aadsts, hint }, { cause }),
    outcome: outcomeOfOAuthError(body.error),
  };
}

/** Reads Entra's fields out of msal's ServerError (`errorCode` = `error`, `errorNo` = first `error_codes` entry). */
function bodyFromMsal(error: MsalLikeError): EntraErrorBody | undefined {
  if (typeof error.errorCode !== 'string' || error.errorCode === '') return undefined;
  const message = typeof error.errorMessage === 'string' ? error.errorMessage : '';
  const errorNo = typeof error.errorNo === 'string' || typeof error.errorNo === 'number' ? Number(error.errorNo) : undefined;
  const aadsts = /AADSTS(\d+)/.exec(message)?.[1];
  const code = errorNo !== undefined && Number.isFinite(errorNo) ? errorNo : aadsts !== undefined ? Number(aadsts) : undefined;
  return { error: error.errorCode, errorCodes: code === undefined ? undefined : [code], description: message };
}

/**
 * Maps a failed acquisition. `error` is what msal-node (or our assertion callback) threw; `observation` is what the
 * network layer saw, which is more precise for discovery failures (msal reports those only as
 * `endpoints_resolution_error`) and carries `Retry-After`.
 */
export function mapUpstreamFailure(error: unknown, observation: UpstreamObservation, ctx: UpstreamFailureContext): MappedUpstreamFailure {
  if (error instanceof SidecarError) {
    return { error, outcome: error instanceof CredentialUnavailableError ? 'invalid_client' : 'other' };
  }
  const http = observation.http;
  if (http && (http.status === 429 || http.status >= 500)) {
    const aadsts = aadstsOf(http.body);
    const what = http.status === 429 ? 'throttled the request' : `answered HTTP ${http.status}`;
    return unavailable(
      `Entra ID ${what}${aadsts ? ` (${aadsts})` : ''} and no valid cached token exists; retry later`,
      http.status === 429 ? 'throttled' : 'server_error',
      http.retryAfterSeconds,
      error,
    );
  }
  if (http && http.status >= 400 && http.body?.error) return rejected(http.body, http.status, ctx, error);
  const msal = (typeof error === 'object' && error !== null ? error : {}) as MsalLikeError;
  const fromMsal = bodyFromMsal(msal);
  if (fromMsal && fromMsal.errorCodes !== undefined) return rejected(fromMsal, typeof msal.status === 'number' ? msal.status : undefined, ctx, error);
  if (observation.transport) {
    return unavailable(`Entra ID is unreachable (${observation.transport.code}) and no valid cached token exists; retry later`, 'network_error', undefined, error);
  }
  if (http) return unavailable(`Entra ID answered HTTP ${http.status} without an error body; retry later`, 'other', http.retryAfterSeconds, error);
  return unavailable('Token acquisition from Entra ID failed; retry later', 'other', undefined, error);
}
