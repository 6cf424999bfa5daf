/**
 * One admission decision, from a parsed JSON body to the AdmissionReview answer, plus what the shell needs for
 * its log line and metrics. The HTTP layer only reads bytes and writes this answer.
 *
 * Pure: the per-pod secret generator is injected.
 */
import type { Operation } from 'fast-json-patch';
import type { SidecarConfig } from '../config.ts';
import { BadReviewError, InternalError, WebhookError } from '../errors.ts';
import { injectionPatch, injectionWarnings } from '../inject/mutate.ts';
import { decide } from '../inject/policy.ts';
import { podShapeProblem } from './pod-shape.ts';
import { allowed, denied, errored, parseReview, patched, salvageUid } from './review.ts';
import type { AdmissionRequest, AdmissionReviewResponse, PodJson } from './types.ts';

export const OUTCOMES = ['mutated', 'skipped', 'denied', 'error'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface HandlerDeps {
  readonly config: SidecarConfig;
  /** Native sidecar for first injections (decided once at start-up from the API server version). */
  readonly native: boolean;
  /** A fresh per-pod random secret (crypto in the shell, a constant in tests). */
  readonly newSecret: () => string;
}

/**
 * Result: the answer and the facts for the request log and metrics. No secrets in here but the patch, of which
 * only each operation's op and path are logged (CONTRIBUTING.md, "Nothing secret in logs").
 */
export interface HandleResult {
  readonly review: AdmissionReviewResponse;
  readonly outcome: Outcome;
  /** Why (skip reason, denial message, error code); safe to log. */
  readonly reason: string;
  readonly uid: string;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
  readonly operation: string | undefined;
  readonly patch: readonly Operation[];
  /** Unexpected error, to be logged in full by the shell. */
  readonly error: unknown;
}

/** Strings only: these go into the log line, and an unchecked body may hold anything (even deeply nested JSON). */
const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

function podName(pod: PodJson | undefined, requestName: unknown): string | undefined {
  const metadata = pod?.metadata as Record<string, unknown> | undefined;
  const generateName = text(metadata?.['generateName']);
  return text(metadata?.['name']) ?? text(requestName) ?? (generateName !== undefined ? `${generateName}*` : undefined);
}

type Facts = Pick<HandleResult, 'uid' | 'namespace' | 'name' | 'operation' | 'patch' | 'error'>;

/** An errored answer (the request could not be judged). */
function erroredResult(facts: Facts, error: WebhookError, reason = error.message): HandleResult {
  return { ...facts, review: errored(facts.uid, error), outcome: 'error', reason };
}

/** Why a request is not judged at all (not a pod creation, no object, not shaped like a pod), or undefined. */
function precheck(request: AdmissionRequest, facts: Facts): HandleResult | undefined {
  // The chart registers CREATE of pods only; anything else reaching us (a hand-made configuration) passes untouched.
  const isPodCreate = request.kind.kind === 'Pod' && request.operation === 'CREATE' && (request.subResource ?? '') === '';
  if (!isPodCreate) {
    return { ...facts, review: allowed(request.uid), outcome: 'skipped', reason: `not a pod creation (${request.kind.kind} ${request.operation})` };
  }
  if (request.object === undefined || request.object === null) return erroredResult(facts, new BadReviewError('request.object is missing'));
  const shapeProblem = podShapeProblem(request.object);
  if (shapeProblem !== undefined) return erroredResult(facts, new BadReviewError(`request.object is not a Pod: ${shapeProblem}`));
  return undefined;
}

/** Decide, then list the additions: the verdict for a well-formed pod creation. */
function judge(pod: PodJson, facts: Facts, deps: HandlerDeps): HandleResult {
  try {
    const decision = decide(pod, deps.config);
    if (!decision.inject) return { ...facts, review: allowed(facts.uid, decision.warnings), outcome: 'skipped', reason: decision.reason };
    const plan = { config: deps.config, settings: decision.settings, native: deps.native, secret: deps.newSecret() };
    const patch = injectionPatch(pod, plan);
    const warnings = [...decision.warnings, ...injectionWarnings(pod, plan)];
    if (patch.length === 0) return { ...facts, review: allowed(facts.uid, warnings), outcome: 'skipped', reason: 'already injected' };
    return { ...facts, patch, review: patched(facts.uid, patch, warnings), outcome: 'mutated', reason: 'injected' };
  } catch (error) {
    // Invalid annotations and refused pods are 403 denials the user reads in kubectl; anything else is our bug.
    if (error instanceof WebhookError && error.httpStatus === 403) return { ...facts, review: denied(facts.uid, error), outcome: 'denied', reason: error.message };
    const e = error instanceof WebhookError ? error : new InternalError({ cause: error });
    return { ...erroredResult(facts, e, e.code), error };
  }
}

/** Answers one AdmissionReview body (already JSON-parsed). Never throws. */
export function handleReview(body: unknown, deps: HandlerDeps): HandleResult {
  let request: AdmissionRequest;
  try {
    request = parseReview(body);
  } catch (error) {
    const e = error instanceof WebhookError ? error : new BadReviewError('unreadable AdmissionReview');
    return erroredResult({ uid: salvageUid(body), namespace: undefined, name: undefined, operation: undefined, patch: [], error: undefined }, e);
  }
  const pod = request.object as PodJson | undefined;
  const facts: Facts = {
    uid: request.uid,
    namespace: text(request.namespace) ?? text((pod?.metadata as Record<string, unknown> | undefined)?.['namespace']),
    name: podName(pod, request.name),
    operation: request.operation,
    patch: [],
    error: undefined,
  };
  return precheck(request, facts) ?? judge(pod as PodJson, facts, deps);
}
