/**
 * The token-source interface: the one seam between the HTTP dialects and wherever tokens come from
 * (the built-in dev issuer, Entra ID through msal-node, and the cache that wraps either).
 * Pure types only.
 */
import type { LoadedIdentity } from '../identity/identity.ts';

/** An access token as every dialect renders it. Times are unix seconds (integers). */
export interface IssuedToken {
  /** The JWT. Secret: never log it (log `tokenHash` from the cache if correlation is needed). */
  readonly accessToken: string;
  readonly expiresOnSeconds: number;
  readonly notBeforeSeconds: number;
  /** The resource exactly as the app asked for it (echoed in the response, used as SDK cache key). */
  readonly resource: string;
  /** Client id of the identity the token was issued to (echoed as `client_id`). */
  readonly clientId: string;
}

export interface TokenSourceRequest {
  readonly identity: LoadedIdentity;
  /** Resource as sent by the app (no `/.default`); sources map it to the `<resource>/.default` scope. */
  readonly resource: string;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Anything that can issue a token for an identity. Implementations throw `SidecarError` subclasses
 * (see `errors.ts`) so that every dialect can render the failure in its own shape.
 */
export interface TokenSource {
  getToken(request: TokenSourceRequest): Promise<IssuedToken>;
}
