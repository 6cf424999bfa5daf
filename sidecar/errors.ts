/**
 * Typed errors of the sidecar. Every failure a client can see is one of these; they become answers in one place,
 * the token application's error middleware in `http/app.ts`, which renders each in its dialect's own error body
 * through `protocol/render.ts` (CONTRIBUTING.md, "Typed errors, mapped in one place").
 *
 * Rules: a stable `code` per class (never reused, documented in docs/errors.md), an HTTP status chosen for how
 * the Azure SDKs react to it (docs/clients.md §5: 400 fails fast everywhere, 5xx/404 are retried for seconds),
 * an `oauthError` for the `error` field of IMDS-style bodies, and messages that never contain a secret or token.
 */

export interface SidecarErrorOptions {
  readonly cause?: unknown;
  /** Seconds the client should wait (429/503); rendered as `Retry-After`. */
  readonly retryAfterSeconds?: number | undefined;
}

export class SidecarError extends Error {
  /** Stable machine-readable code, `SIDECAR_ERR_*`. */
  readonly code: string;
  readonly httpStatus: number;
  /** OAuth-style error name for the `error` field (IMDS, Cloud Shell bodies). */
  readonly oauthError: string;
  /** May the message be shown to the caller? (false: a generic text is rendered, the message is only logged). */
  readonly expose: boolean;
  readonly retryAfterSeconds: number | undefined;

  constructor(
    init: { code: string; httpStatus: number; oauthError: string; message: string; expose?: boolean },
    options: SidecarErrorOptions = {},
  ) {
    super(init.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = init.code;
    this.httpStatus = init.httpStatus;
    this.oauthError = init.oauthError;
    this.expose = init.expose ?? true;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** Malformed request: missing or duplicated parameter, bad api-version, bad body. */
export class BadRequestError extends SidecarError {
  constructor(message: string, options?: SidecarErrorOptions) {
    super({ code: 'SIDECAR_ERR_BAD_REQUEST', httpStatus: 400, oauthError: 'invalid_request', message }, options);
  }
}

/**
 * `Metadata: true` missing. Text of real IMDS (`bad_request_102`); it must not contain "Identity not found"
 * (.NET's DefaultAzureCredential probe reads that phrase as "no identity", docs/protocols.md §5).
 */
export class MissingMetadataHeaderError extends SidecarError {
  constructor() {
    super({
      code: 'SIDECAR_ERR_METADATA_HEADER',
      httpStatus: 400,
      oauthError: 'invalid_request',
      message: 'Required metadata header not specified',
    });
  }
}

/** A request carried `X-Forwarded-For` or came through a proxy hop (SSRF defence copied from real IMDS). */
export class ForwardedRequestError extends SidecarError {
  /** @param header the proxy-hop header found (default: the one real IMDS names) */
  constructor(header = 'X-Forwarded-For') {
    const also = header.toLowerCase() === 'x-forwarded-for' ? '' : ` (like X-Forwarded-For: every proxy header is refused alike)`;
    super({
      code: 'SIDECAR_ERR_FORWARDED',
      httpStatus: 400,
      oauthError: 'invalid_request',
      message: `Requests carrying ${header}${also} are refused: the identity endpoint must be called directly, not through a proxy`,
    });
  }
}

/**
 * A request naming a `Host` the sidecar does not know, or carrying a browser's `Origin`: the DNS-rebinding defence
 * (docs/security.md).
 */
export class HostNotAllowedError extends SidecarError {
  constructor(message: string) {
    super({ code: 'SIDECAR_ERR_HOST_NOT_ALLOWED', httpStatus: 403, oauthError: 'access_denied', message });
  }
}

/** Wrong or missing `X-IDENTITY-HEADER` / `secret` / Arc `Authorization`. */
export class UnauthorizedError extends SidecarError {
  constructor(message: string) {
    super({ code: 'SIDECAR_ERR_UNAUTHORIZED', httpStatus: 401, oauthError: 'unauthorized_client', message });
  }
}

export class MethodNotAllowedError extends SidecarError {
  readonly allow: readonly string[];
  constructor(method: string, allow: readonly string[]) {
    super({
      code: 'SIDECAR_ERR_METHOD',
      httpStatus: 405,
      oauthError: 'invalid_request',
      message: `Method ${method} is not allowed here; use ${allow.join(' or ')}`,
    });
    this.allow = allow;
  }
}

export class NotFoundError extends SidecarError {
  constructor() {
    super({ code: 'SIDECAR_ERR_NOT_FOUND', httpStatus: 404, oauthError: 'invalid_request', message: 'No such endpoint' });
  }
}

export class PayloadTooLargeError extends SidecarError {
  constructor(what: string, limitBytes: number) {
    super({
      code: 'SIDECAR_ERR_TOO_LARGE',
      httpStatus: 413,
      oauthError: 'invalid_request',
      message: `${what} exceeds ${limitBytes} bytes`,
    });
  }
}

/**
 * No identity matches the selector. 400 with the exact text "Identity not found" as Azure answers: SDKs fail fast and
 * DefaultAzureCredential moves on (docs/clients.md §1 item 5); never a 403 with "unreachable" (docs/protocols.md §4.1).
 */
export class IdentityNotFoundError extends SidecarError {
  constructor(detail: string) {
    super({
      code: 'SIDECAR_ERR_IDENTITY_NOT_FOUND',
      httpStatus: 400,
      oauthError: 'invalid_request',
      message: `Identity not found: ${detail}`,
    });
  }
}

/**
 * Entra ID refused the credential (wrong secret, expired certificate, missing federated credential, wrong
 * tenant). 400 so SDKs fail fast: retrying cannot fix a credential. Carries the AADSTS code and a one-line hint.
 */
export class UpstreamRejectedError extends SidecarError {
  readonly aadsts: string | undefined;
  constructor(init: { oauthError: string; aadsts: string | undefined; hint: string }, options?: SidecarErrorOptions) {
    super(
      {
        code: 'SIDECAR_ERR_UPSTREAM_REJECTED',
        httpStatus: 400,
        oauthError: init.oauthError,
        message: `${init.aadsts ? `${init.aadsts}: ` : ''}${init.hint}`,
      },
      options,
    );
    this.aadsts = init.aadsts;
  }
}

/**
 * Entra ID could not be reached or failed (5xx, timeout, TLS error, throttling) and no valid cached token exists.
 * 503 so SDKs retry for a few seconds, with Retry-After when known.
 */
export class UpstreamUnavailableError extends SidecarError {
  constructor(message: string, options?: SidecarErrorOptions) {
    super({ code: 'SIDECAR_ERR_UPSTREAM_UNAVAILABLE', httpStatus: 503, oauthError: 'temporarily_unavailable', message }, options);
  }
}

/** The identity exists but its credential files are unreadable or malformed (after the last good one was lost). */
export class CredentialUnavailableError extends SidecarError {
  constructor(message: string, options?: SidecarErrorOptions) {
    super({ code: 'SIDECAR_ERR_CREDENTIAL_UNAVAILABLE', httpStatus: 400, oauthError: 'invalid_client', message }, options);
  }
}

/** Too many requests from this pod; 429 + Retry-After (every SDK retries 429 with Retry-After). */
export class RateLimitedError extends SidecarError {
  constructor(retryAfterSeconds: number) {
    super(
      { code: 'SIDECAR_ERR_RATE_LIMITED', httpStatus: 429, oauthError: 'too_many_requests', message: 'Too many token requests; retry later' },
      { retryAfterSeconds },
    );
  }
}

/**
 * The Arc key file could not be written (directory missing, read-only, full). 500 so SDKs retry briefly while a
 * volume is still being mounted; the message names the setting to fix, never the key.
 */
export class ArcKeyDirectoryError extends SidecarError {
  constructor(keyDir: string, cause: unknown) {
    const reason = (cause as { code?: unknown }).code;
    super(
      {
        code: 'SIDECAR_ERR_ARC_KEY_DIR',
        httpStatus: 500,
        oauthError: 'server_error',
        message: `Cannot write the Arc key file into MI_ANYWHERE_ARC_KEY_DIR (${keyDir})${typeof reason === 'string' ? `: ${reason}` : ''}; the directory must exist, be writable by the sidecar and be shared with the app at /var/opt/azcmagent/tokens`,
      },
      { cause },
    );
  }
}

/** Anything unexpected. The message is logged, never shown. */
export class InternalError extends SidecarError {
  constructor(cause: unknown) {
    super(
      { code: 'SIDECAR_ERR_INTERNAL', httpStatus: 500, oauthError: 'server_error', message: 'Internal error in the identity sidecar', expose: false },
      { cause },
    );
  }
}

/** Normalises anything thrown into a SidecarError (unknown errors become InternalError). */
export function toSidecarError(error: unknown): SidecarError {
  return error instanceof SidecarError ? error : new InternalError(error);
}

/**
 * An absolute-form request (`GET http://host/...`, sent by clients that go through `HTTP_PROXY`) for anything other
 * than the IMDS token URL on 169.254.169.254. The sidecar answers IMDS for proxy users (docs/clients.md §1 item 3) but
 * is never a general-purpose proxy. 403: a refusal, not a retryable failure; the text avoids "unreachable" (SDKs read
 * a 403 containing it as "no managed identity here", docs/protocols.md §4.1).
 */
export class NotAProxyError extends SidecarError {
  constructor() {
    super({
      code: 'SIDECAR_ERR_NOT_A_PROXY',
      httpStatus: 403,
      oauthError: 'access_denied',
      message: 'This is an identity endpoint, not a proxy: only http://169.254.169.254/metadata/identity/oauth2/token is answered in absolute form',
    });
  }
}

/** Request target longer than the configured limit (414: the request line is not a body, so not 413). */
export class UriTooLongError extends SidecarError {
  constructor(limitBytes: number) {
    super({ code: 'SIDECAR_ERR_URI_TOO_LONG', httpStatus: 414, oauthError: 'invalid_request', message: `Request URL exceeds ${limitBytes} bytes` });
  }
}

/** Request headers larger than the configured limit. */
export class HeadersTooLargeError extends SidecarError {
  constructor(limitBytes: number) {
    super({
      code: 'SIDECAR_ERR_HEADERS_TOO_LARGE',
      httpStatus: 431,
      oauthError: 'invalid_request',
      message: `Request headers exceed ${limitBytes} bytes`,
    });
  }
}

/**
 * A dialect that needs configuration the sidecar was not given (Azure Arc without `MI_ANYWHERE_ARC_KEY_DIR`).
 * 400 so SDKs fail at once with this text instead of retrying a 404/5xx for seconds (docs/clients.md §5).
 */
export class DialectDisabledError extends SidecarError {
  constructor(message: string) {
    super({ code: 'SIDECAR_ERR_DIALECT_DISABLED', httpStatus: 400, oauthError: 'invalid_request', message });
  }
}

/**
 * Invalid configuration (environment variables, flags, identity directory in dev mode). Not an HTTP error: it
 * stops the program before anything listens. Lists every problem at once so one restart fixes them all.
 */
export class ConfigError extends Error {
  readonly code = 'SIDECAR_ERR_CONFIG';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}
