/**
 * Typed errors of the webhook. Each has a stable `code` (`WEBHOOK_ERR_*`, never reused, listed in
 * docs/webhook.md), the HTTP-style status that goes into the AdmissionReview's `response.status.code`, and an
 * `expose` flag (may the message reach the API server and thus the user's kubectl?). They become AdmissionReview
 * answers only through `admission/review.ts` (`denied`, `errored`): `admission/handler.ts` maps what the decision
 * throws, the admission app's error handler in `http/server.ts` what the transport throws (body, content type,
 * path, method). The HTTP status of the HTTPS response itself is 200 (404/405 only for a wrong path or method),
 * because the API server reads the verdict from the body (CONTRIBUTING.md, "Typed errors, mapped in one place").
 *
 * Messages never contain Secret contents, tokens or the per-pod identity header.
 */

export class WebhookError extends Error {
  /** Stable machine-readable code, `WEBHOOK_ERR_*`. */
  readonly code: string;
  /** Status placed in `response.status.code` (400 bad input, 403 denied, 413 too large, 500 our bug). */
  readonly httpStatus: number;
  /** May the message be shown to the caller (API server, kubectl)? false: a generic text, the message is only logged. */
  readonly expose: boolean;

  constructor(init: { code: string; httpStatus: number; message: string; expose?: boolean }, options: { cause?: unknown } = {}) {
    super(init.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = init.code;
    this.httpStatus = init.httpStatus;
    this.expose = init.expose ?? true;
  }
}

/** Invalid configuration at start-up; lists every problem at once. */
export class ConfigError extends WebhookError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super({ code: 'WEBHOOK_ERR_CONFIG', httpStatus: 500, message: `invalid configuration:\n  - ${problems.join('\n  - ')}` });
    this.problems = problems;
  }
}

/** The body is not an AdmissionReview v1 we can read (bad JSON, wrong apiVersion/kind, no request, no uid). */
export class BadReviewError extends WebhookError {
  constructor(message: string, options?: { cause?: unknown }) {
    super({ code: 'WEBHOOK_ERR_BAD_REVIEW', httpStatus: 400, message }, options);
  }
}

/** Content-Type is not application/json (the API server always sends JSON). */
export class UnsupportedMediaTypeError extends WebhookError {
  constructor(contentType: string | undefined) {
    super({
      code: 'WEBHOOK_ERR_CONTENT_TYPE',
      httpStatus: 415,
      message: `content type ${JSON.stringify(contentType ?? '')} is not supported; expected application/json`,
    });
  }
}

/** The body exceeds the size limit (7 MiB, see http/server.ts). */
export class PayloadTooLargeError extends WebhookError {
  constructor(limitBytes: number) {
    super({ code: 'WEBHOOK_ERR_TOO_LARGE', httpStatus: 413, message: `request body exceeds ${limitBytes} bytes` });
  }
}

/** A `mi-anywhere.io/*` annotation of an opted-in pod is invalid; the message names the annotation and why. */
export class InvalidAnnotationError extends WebhookError {
  readonly annotation: string;
  constructor(annotation: string, why: string) {
    super({ code: 'WEBHOOK_ERR_INVALID_ANNOTATION', httpStatus: 403, message: `annotation ${annotation}: ${why}` });
    this.annotation = annotation;
  }
}

/** The pod opted in but cannot safely get a sidecar (hostNetwork, a name clash); the message explains. */
export class PodRefusedError extends WebhookError {
  constructor(message: string) {
    super({ code: 'WEBHOOK_ERR_POD_REFUSED', httpStatus: 403, message });
  }
}

/** Self-managed certificates: the Secret or the MutatingWebhookConfiguration could not be read or written. */
export class CertificateError extends WebhookError {
  constructor(message: string, options?: { cause?: unknown }) {
    super({ code: 'WEBHOOK_ERR_CERTIFICATE', httpStatus: 500, message }, options);
  }
}

/** Anything unexpected: answered as an errored review with a generic message, full error logged. */
export class InternalError extends WebhookError {
  constructor(options?: { cause?: unknown }) {
    super({ code: 'WEBHOOK_ERR_INTERNAL', httpStatus: 500, message: 'internal error in the mi-anywhere webhook', expose: false }, options);
  }
}

/** Every error class, for the catalogue test (codes unique, documented). */
export const WEBHOOK_ERROR_CODES = [
  'WEBHOOK_ERR_CONFIG',
  'WEBHOOK_ERR_BAD_REVIEW',
  'WEBHOOK_ERR_CONTENT_TYPE',
  'WEBHOOK_ERR_TOO_LARGE',
  'WEBHOOK_ERR_INVALID_ANNOTATION',
  'WEBHOOK_ERR_POD_REFUSED',
  'WEBHOOK_ERR_CERTIFICATE',
  'WEBHOOK_ERR_INTERNAL',
] as const;
