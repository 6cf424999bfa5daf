/**
 * Turns what went wrong between msal-node and Entra ID into the sidecar's typed errors, with the AADSTS code and a
 * one-line hint a human can act on, and into the metrics' upstream outcome class.
 *
 * Status policy (docs/clients.md §5, docs/protocols.md §4.2): a credential problem is 400 (every SDK fails fast;
 * retrying cannot fix a wrong secret), an unreachable / failing / throttling Entra is 503 with `Retry-After` when known
 * (SDKs retry 5xx for a few seconds, and retry 503 + Retry-After even in @azure/identity's throttling policy).
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

/** What a hint may name (never a secret: the identity's directory name, tenant and client ids only). */
interface HintSubject {
  /** `app <client id>` */
  readonly app: string;
  /** `identity "<directory name>"` */
  readonly where: string;
  readonly tenantId: string;
  /** Entra's error description, for codes that cover more than one cause. */
  readonly description: string;
}

type Hint = (subject: HintSubject) => string;

/** AADSTS700027 is both an expired and an unregistered certificate; only the description tells them apart. */
const certificateHint: Hint = ({ app, where, description }) =>
  /expired/i.test(description)
    ? `the certificate of ${where} has expired in the registration of ${app}: issue a new one, upload it to the app and update tls.crt/tls.key`
    : `the certificate of ${where} (tls.crt) is not registered on ${app}, or tls.key does not belong to it: upload tls.crt to the app registration`;

const federatedSubjectHint: Hint = ({ app }) =>
  `no federated credential on ${app} matches the service-account token (issuer/subject/audience): add one with subject system:serviceaccount:<namespace>:<name>`;
const scopeHint: Hint = () => `Entra rejected the requested scope: ask for a resource URI or app ID URI (for example https://management.azure.com/)`;
const disabledAppHint: Hint = ({ app }) => `${app} is disabled or cannot use client credentials: check the app registration and service principal`;

/**
 * One-line, actionable hints per AADSTS code. Codes:
 * https://learn.microsoft.com/entra/identity-platform/reference-error-codes
 */
const HINTS: ReadonlyMap<string, Hint> = new Map<string, Hint>([
  ['AADSTS7000215', ({ app, where }) => `invalid client secret for ${app}: put the secret's value (not its ID) into the clientSecret key of ${where}, or create a new secret`],
  ['AADSTS7000222', ({ app, where }) => `the client secret of ${app} has expired: create a new secret and update the clientSecret key of ${where}`],
  ['AADSTS700027', certificateHint],
  ['AADSTS700024', ({ where }) => `the client assertion of ${where} is outside its validity window: check the node's clock, or that the projected service-account token is fresh`],
  ['AADSTS700016', ({ app, where, tenantId }) => `${app} was not found in tenant ${tenantId}: check clientId and tenantId of ${where} (and the authority host for sovereign clouds)`],
  ['AADSTS90002', ({ where, tenantId }) => `tenant ${tenantId} was not found: check tenantId of ${where} and MI_ANYWHERE_AUTHORITY_HOST (sovereign clouds have their own host)`],
  ['AADSTS700211', ({ app }) => `no federated credential on ${app} trusts the service-account token's issuer: add a federated credential with this cluster's OIDC issuer URL`],
  ['AADSTS700212', ({ app }) => `no federated credential on ${app} accepts the service-account token's audience: project the token with audience api://AzureADTokenExchange or add it to the credential`],
  ['AADSTS700213', federatedSubjectHint],
  ['AADSTS70021', federatedSubjectHint],
  ['AADSTS50013', ({ where }) => `the service-account token of ${where} failed signature validation: check that the cluster's OIDC issuer publishes its current keys (JWKS)`],
  ['AADSTS7000218', ({ where }) => `no credential was sent for ${where}: mount clientSecret, tls.crt + tls.key, or a federated token`],
  ['AADSTS1002012', scopeHint],
  ['AADSTS70011', scopeHint],
  ['AADSTS500011', ({ tenantId }) => `the requested resource is not registered in tenant ${tenantId}: check the resource URI the app asks for`],
  ['AADSTS7000112', disabledAppHint],
  ['AADSTS700025', disabledAppHint],
]);

function hintFor(aadsts: string | undefined, description: string, ctx: UpstreamFailureContext): string | undefined {
  const hint = aadsts === undefined ? undefined : HINTS.get(aadsts);
  return hint?.({ app: `app ${ctx.clientId}`, where: `identity "${ctx.identity}"`, tenantId: ctx.tenantId, description });
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
  const code = errorNumberOf(error.errorNo) ?? aadstsNumberIn(message);
  return { error: error.errorCode, errorCodes: code === undefined ? undefined : [code], description: message };
}

/** msal's `errorNo` (a string or number) as a finite number. */
function errorNumberOf(errorNo: unknown): number | undefined {
  if (typeof errorNo !== 'string' && typeof errorNo !== 'number') return undefined;
  const code = Number(errorNo);
  return Number.isFinite(code) ? code : undefined;
}

/** The number of the first `AADSTS<n>` in a message. */
function aadstsNumberIn(message: string): number | undefined {
  const digits = /AADSTS(\d+)/.exec(message)?.[1];
  return digits === undefined ? undefined : Number(digits);
}

/**
 * Maps a failed acquisition. `error` is what msal-node (or our assertion callback) threw; `observation` is what the
 * network layer saw, which is more precise for discovery failures (msal reports those only as
 * `endpoints_resolution_error`) and carries `Retry-After`. In order of precedence: an error of our own, Entra's
 * answer as the network layer saw it, msal's reading of Entra's answer, then a failure without an error body.
 */
export function mapUpstreamFailure(error: unknown, observation: UpstreamObservation, ctx: UpstreamFailureContext): MappedUpstreamFailure {
  if (error instanceof SidecarError) {
    return { error, outcome: error instanceof CredentialUnavailableError ? 'invalid_client' : 'other' };
  }
  return mapEntraAnswer(observation.http, ctx, error) ?? mapMsalError(error, ctx) ?? mapFailureWithoutErrorBody(observation, error);
}

type ObservedHttp = NonNullable<UpstreamObservation['http']>;

/** Throttling and 5xx are Entra being unavailable (503); a 4xx with an OAuth error body is a rejection (400). */
function mapEntraAnswer(http: ObservedHttp | undefined, ctx: UpstreamFailureContext, cause: unknown): MappedUpstreamFailure | undefined {
  if (http === undefined) return undefined;
  if (http.status === 429 || http.status >= 500) {
    const aadsts = aadstsOf(http.body);
    const what = http.status === 429 ? 'throttled the request' : `answered HTTP ${http.status}`;
    return unavailable(
      `Entra ID ${what}${aadsts ? ` (${aadsts})` : ''} and no valid cached token exists; retry later`,
      http.status === 429 ? 'throttled' : 'server_error',
      http.retryAfterSeconds,
      cause,
    );
  }
  if (http.status >= 400 && http.body?.error) return rejected(http.body, http.status, ctx, cause);
  return undefined;
}

/** A rejection msal read from Entra's answer (one the network layer did not see as such). */
function mapMsalError(error: unknown, ctx: UpstreamFailureContext): MappedUpstreamFailure | undefined {
  const msal = (typeof error === 'object' && error !== null ? error : {}) as MsalLikeError;
  const fromMsal = bodyFromMsal(msal);
  if (fromMsal?.errorCodes === undefined) return undefined;
  return rejected(fromMsal, typeof msal.status === 'number' ? msal.status : undefined, ctx, error);
}

function mapFailureWithoutErrorBody(observation: UpstreamObservation, cause: unknown): MappedUpstreamFailure {
  if (observation.transport) {
    return unavailable(`Entra ID is unreachable (${observation.transport.code}) and no valid cached token exists; retry later`, 'network_error', undefined, cause);
  }
  const http = observation.http;
  if (http) return unavailable(`Entra ID answered HTTP ${http.status} without an error body; retry later`, 'other', http.retryAfterSeconds, cause);
  return unavailable('Token acquisition from Entra ID failed; retry later', 'other', undefined, cause);
}
