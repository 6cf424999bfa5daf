/**
 * The contract between the compatibility harness (test/compat/compat.test.ts) and its drivers, one per client
 * library and language (JS here; Python, Go and Java under test/compat/{python,go,java}, which mirror these types
 * and {@link acceptanceProblems} by hand — keep them in step).
 *
 * A driver process gets ONE JSON argument ({@link DriverInput}) and an environment that holds only what an
 * injected pod gets for one profile (plus PATH/HOME and what the runtime needs). For each variant it asks for a
 * token twice and prints one {@link DriverResult} JSON line.
 */

/** How a user-assigned identity is selected in the client's own API. */
export type SelectorKind = 'client-id' | 'resource-id' | 'object-id';

export interface Selector {
  readonly kind: SelectorKind;
  readonly value: string;
}

/**
 * `default` = DefaultAzureCredential (or the client's equivalent); `managed-identity` = the client's
 * managed-identity credential/application; `az-login` / `az-get-access-token` = Azure CLI commands (the latter with a
 * seeded managed-identity account; `az-get-access-token-no-login` without any account).
 */
export type CredentialKind = 'default' | 'managed-identity' | 'az-login' | 'az-get-access-token' | 'az-get-access-token-no-login';

export interface Variant {
  /** Stable id of the matrix row within its client, e.g. `mi-client-id`. */
  readonly id: string;
  readonly credential: CredentialKind;
  readonly selector?: Selector | undefined;
  /** `appid` the token must carry (the client id of the identity the endpoint should pick). */
  readonly expectedAppId: string;
}

export interface DriverInput {
  /** Resource (audience) to ask for; drivers turn it into `<resource>/.default` where the API takes scopes. */
  readonly resource: string;
  /**
   * GET -> `{"count": n, "requests": [...]}` from this driver's private proxy to the sidecar: `count` = responses
   * that carried a token (see test/compat/counting-proxy.ts), `requests` = every request.
   */
  readonly counterUrl: string;
  /** Upper bound for one token call inside the driver (the harness also kills the whole process). */
  readonly callTimeoutMs: number;
  readonly variants: readonly Variant[];
  /**
   * JavaScript only: the package to load (an older release of the version axis, installed under an npm alias by
   * scripts/provision.d/23-js-compat.sh); absent = the project's own node_modules (the newest release).
   */
  readonly jsPackageDir?: string | undefined;
  /**
   * false: this release keeps no token cache in its credential (every call reaches the endpoint), so the second-call
   * rule is the CLIs' one: the same token and expiry, far in the future. Default true.
   */
  readonly clientCache?: boolean | undefined;
  /** Azure CLI only: an empty directory for AZURE_CONFIG_DIR. */
  readonly azureConfigDir?: string | undefined;
  /** Azure CLI only: tenant of the identities (for the seeded tenant-level account). */
  readonly tenantId?: string | undefined;
}

/** What a driver saw (never the token itself). */
export interface Observed {
  /** Tokens the endpoint served during the first call (>= 1 proves the profile leads to the sidecar). */
  readonly requests1: number;
  /** Tokens the endpoint served during the second call: 0 = served from the client's own cache. */
  readonly requests2?: number | undefined;
  /** Expiry (unix seconds) the client reported for each call. */
  readonly expiresOn1?: number | undefined;
  readonly expiresOn2?: number | undefined;
  readonly sameToken?: boolean | undefined;
  readonly aud: string;
  readonly appid: string;
  readonly exp?: number | undefined;
  readonly exitCode?: number | undefined;
}

/**
 * `ok`: every check passed. `unsupported`: the client refused or failed on its first token request (`error` is the
 * client's own text; whether that is expected is decided by the harness's expectation table). `fail`: a token came
 * back but a check failed, or the driver itself broke.
 */
export type DriverStatus = 'ok' | 'unsupported' | 'fail';

export interface DriverResult {
  readonly variant: string;
  readonly status: DriverStatus;
  readonly error?: string | undefined;
  readonly observed?: Observed | undefined;
  /** Library versions, e.g. `{"@azure/identity": "4.14.1"}`. */
  readonly versions: Readonly<Record<string, string>>;
  /** Azure CLI login only: how the command ended after its token request (the ARM step). */
  readonly armStep?: string | undefined;
}

/** One request the counting proxy forwarded (for the az login checks and for diagnostics). */
export interface ProxiedRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** Claims of the token in a successful response (the token itself is never recorded). */
  readonly aud?: string | undefined;
  readonly appid?: string | undefined;
}

export interface AcceptanceOptions {
  /** Allowed difference between the two expiries (clients that report a relative `expires_in`). */
  readonly expiryToleranceS?: number;
  /** One process per call (CLIs): the second call cannot come from an in-process cache. */
  readonly processPerCall?: boolean;
}

/** The acceptance rules every driver applies to a two-call observation; empty = OK. */
export function acceptanceProblems(
  resource: string,
  expectedAppId: string,
  o: Observed,
  nowS: number,
  options: AcceptanceOptions = {},
): string[] {
  const p: string[] = [];
  const tolerance = options.expiryToleranceS ?? 0;
  if (o.requests1 < 1) p.push('first call did not reach the endpoint under test');
  if (!options.processPerCall && o.requests2 !== 0) {
    p.push(`second call was not served from the client's cache (${String(o.requests2)} more token requests reached the endpoint)`);
  }
  const e1 = o.expiresOn1 ?? 0;
  const e2 = o.expiresOn2 ?? 0;
  // NaN compares false with everything, so it would slip through every check below.
  if (!Number.isFinite(e1) || !Number.isFinite(e2)) p.push(`the client reported no usable expiry (${String(e1)}, ${String(e2)})`);
  if (o.sameToken !== true || Math.abs(e1 - e2) > tolerance) p.push('second call returned a different token or expiry');
  if (e1 < nowS + 300) p.push(`expiry ${String(e1)} is not far in the future (now ${String(nowS)})`);
  if (Math.abs(e1 - (o.exp ?? 0)) > 120) p.push(`expiry ${String(e1)} differs from the token's exp ${String(o.exp)}`);
  if (o.aud !== resource && o.aud !== resource.replace(/\/$/, '')) p.push(`aud "${o.aud}", expected "${resource}"`);
  if (o.appid !== expectedAppId) p.push(`appid "${o.appid}", expected "${expectedAppId}"`);
  return p;
}

/** Claims of a JWT (no verification: the SDKs do not verify either; the harness checks aud/appid only). */
export function jwtClaims(token: string): Record<string, unknown> {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error(`access token is not a JWT (${String(parts.length)} segments)`);
  const parsed: unknown = JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8'));
  if (typeof parsed !== 'object' || parsed === null) throw new Error('JWT payload is not an object');
  return parsed as Record<string, unknown>;
}

export function scopeOf(resource: string): string {
  return resource.endsWith('/') ? `${resource}.default` : `${resource}/.default`;
}
