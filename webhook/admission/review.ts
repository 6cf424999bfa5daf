/**
 * AdmissionReview v1 decoding and the answer vocabulary of controller-runtime
 * (https://github.com/kubernetes-sigs/controller-runtime/blob/main/pkg/webhook/admission/response.go):
 * `allowed`, `patched`, `denied`, `errored`. Every answer echoes the request's uid; a body we cannot read still gets
 * a review (with an empty uid when none could be found), never a bare HTTP error.
 *
 * Pure: no I/O.
 */
import { Buffer } from 'node:buffer';
import type { Operation } from 'fast-json-patch';
import { BadReviewError, type WebhookError } from '../errors.ts';
import type { AdmissionRequest, AdmissionResponse, AdmissionReviewResponse, JsonObject } from './types.ts';

const API_VERSION = 'admission.k8s.io/v1';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Best-effort uid of a body that failed validation, so that even an errored answer can echo it
 * (the API server rejects answers whose uid does not match).
 */
export function salvageUid(body: unknown): string {
  if (isObject(body) && isObject(body.request) && typeof body.request.uid === 'string') return body.request.uid;
  return '';
}

/** The AdmissionReview envelope: a v1 AdmissionReview object carrying a `request` object, which it returns. */
function reviewRequest(body: unknown): Record<string, unknown> {
  if (!isObject(body)) throw new BadReviewError('body is not a JSON object');
  // v1beta1 is refused rather than guessed: its response shape differs and the chart registers only v1.
  if (body.apiVersion !== API_VERSION) throw new BadReviewError(`apiVersion must be ${API_VERSION}, got ${JSON.stringify(body.apiVersion ?? null)}`);
  if (body.kind !== 'AdmissionReview') throw new BadReviewError(`kind must be AdmissionReview, got ${JSON.stringify(body.kind ?? null)}`);
  if (!isObject(body.request)) throw new BadReviewError('request is missing');
  return body.request;
}

/** The request fields every answer or decision reads: uid, kind, operation, and an object when there is one. */
function checkRequestFields(request: Record<string, unknown>): void {
  if (typeof request.uid !== 'string' || request.uid === '') throw new BadReviewError('request.uid is missing');
  if (!isObject(request.kind) || typeof request.kind.kind !== 'string') throw new BadReviewError('request.kind is missing');
  if (typeof request.operation !== 'string') throw new BadReviewError('request.operation is missing');
  if (request.object !== undefined && request.object !== null && !isObject(request.object)) throw new BadReviewError('request.object is not an object');
}

/**
 * Validates a parsed JSON body as an AdmissionReview v1 request.
 * @throws BadReviewError naming the first problem (wrong apiVersion/kind, missing request/uid/kind/operation)
 */
export function parseReview(body: unknown): AdmissionRequest {
  const request = reviewRequest(body);
  checkRequestFields(request);
  return request as unknown as AdmissionRequest;
}

function review(response: AdmissionResponse): AdmissionReviewResponse {
  return { apiVersion: API_VERSION, kind: 'AdmissionReview', response };
}

/** Allowed without changes (non-opted-in pods, other kinds, reinvocation with nothing to add). */
export function allowed(uid: string, warnings: readonly string[] = []): AdmissionReviewResponse {
  return review({ uid, allowed: true, ...(warnings.length > 0 ? { warnings } : {}) });
}

/** Allowed with a JSON patch; an empty patch degrades to {@link allowed} (the API server needs no empty patch). */
export function patched(uid: string, patch: readonly Operation[], warnings: readonly string[] = []): AdmissionReviewResponse {
  if (patch.length === 0) return allowed(uid, warnings);
  return review({
    uid,
    allowed: true,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
    ...(warnings.length > 0 ? { warnings } : {}),
  });
}

/** Refused with a reason the user sees in `kubectl` output (403, like controller-runtime's Denied). */
export function denied(uid: string, error: WebhookError): AdmissionReviewResponse {
  return review({ uid, allowed: false, status: { code: error.httpStatus, message: error.message, reason: 'Forbidden' } });
}

/** The request could not be processed (400 undecodable, 413 too large, 415 content type, 500 our bug). */
export function errored(uid: string, error: WebhookError): AdmissionReviewResponse {
  const message = error.expose ? error.message : 'internal error in the mi-anywhere webhook';
  return review({ uid, allowed: false, status: { code: error.httpStatus, message } });
}

/** Shape guard used by the HTTP layer and tests. */
export function isPodObject(object: JsonObject | undefined): boolean {
  return object !== undefined && (object.kind === undefined || object.kind === 'Pod');
}
