/**
 * The token cache's policy, its pure decision core: when to serve a cached token, when a request must wait for a fresh one, when
 * to refresh in the background, how long to back off after an upstream failure, and how many upstream calls per
 * second are allowed. Every function takes `now` (ms) and, where randomness is needed, a `random()` in [0, 1).
 *
 * Pure: no timers, no clock, no I/O. The stateful wrapper that applies these decisions is `caching-token-source.ts`.
 *
 * Rules (the same shape as azure-workload-identity's proxy cache and the EKS pod identity agent's
 * refreshing cache):
 * - never hand out a token with less than {@link CachePolicy.minRemainingSeconds} left when a fresh one can be had
 *   (MSAL Python and msal-node treat a token with < 5 minutes left as expired, docs/protocols.md §3.1, so the app would
 *   come straight back);
 * - refresh in the background at half-life, or a few minutes before the 5-minute floor for short tokens, minus
 *   jitter so that many sidecars started together do not refresh in lock-step;
 * - while Entra is failing, keep serving a cached token until {@link CachePolicy.safetyMarginSeconds} before its
 *   expiry, and retry with exponential backoff + jitter, honouring Retry-After.
 */

export interface CachePolicy {
  /** A token with less than this left is only served when no fresh one can be had. 300 s (see module doc). */
  readonly minRemainingSeconds: number;
  /**
   * During an upstream outage a cached token is served until this many seconds before it expires. 60 s covers
   * clock skew between the sidecar, the app and the resource (Entra itself tolerates 5 minutes on `nbf`, resources
   * typically a few minutes on `exp`), while keeping the token useful for the app's next call.
   */
  readonly safetyMarginSeconds: number;
  /** Background refresh lead before the {@link minRemainingSeconds} floor for short-lived tokens. 120 s. */
  readonly refreshLeadSeconds: number;
  /** Fraction of the lifetime after which a token is refreshed (0.5 = half-life, as MSAL's `refresh_in`). */
  readonly refreshAtFraction: number;
  /** Up to this fraction of the time-to-refresh is subtracted at random (spreads refreshes of many sidecars). */
  readonly refreshJitterFraction: number;
  /** First retry delay after a failed refresh, doubled per failure up to {@link backoffMaxMs}. */
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** Most upstream calls per second (foreground and background together); protects Entra from retry storms. */
  readonly maxUpstreamPerSecond: number;
  /** A foreground request waits at most this long for an upstream slot before failing with 503 + Retry-After. */
  readonly maxQueueMs: number;
  /** Most (identity, resource) entries kept; the least recently used is evicted beyond it. */
  readonly maxEntries: number;
  /** An entry not requested for this long is dropped at its next refresh instead of being refreshed. */
  readonly idleEvictSeconds: number;
  /** Most upstream calls in flight at once, all identities together; further calls queue (within the deadline). */
  readonly maxConcurrentUpstream: number;
  /**
   * One overall deadline per upstream acquisition: queueing for a slot, discovery, the token call and its whole body.
   * Every caller waiting on that acquisition is answered by then. Below the HTTP server's 15 s request timeout
   * (sidecar/config.ts), so a caller always gets the sidecar's own clear 503 rather than a cut connection.
   */
  readonly upstreamDeadlineMs: number;
}

export const DEFAULT_CACHE_POLICY: CachePolicy = {
  minRemainingSeconds: 300,
  safetyMarginSeconds: 60,
  refreshLeadSeconds: 120,
  refreshAtFraction: 0.5,
  refreshJitterFraction: 0.1,
  backoffInitialMs: 1_000,
  // One minute: Go azidentity and azure-identity cap their own backoff there; longer gaps risk letting a token expire.
  backoffMaxMs: 60_000,
  maxUpstreamPerSecond: 20,
  maxQueueMs: 5_000,
  maxEntries: 1_000,
  idleEvictSeconds: 24 * 3600,
  maxConcurrentUpstream: 8,
  upstreamDeadlineMs: 10_000,
};

/** What the core needs to know about one cache entry. Times in ms. */
export interface EntryView {
  /** The cached token's expiry, if a token is cached. */
  readonly expiresOnMs: number | undefined;
  /** Failed upstream attempts since the last success (0 = upstream believed healthy). */
  readonly consecutiveFailures: number;
}

/**
 * - `serve`: return the cached token now.
 * - `serve-stale`: return the cached token now although it has < minRemaining left, because upstream is failing.
 * - `wait-fresh`: wait for a fresh token; if that fails, the cached token (still within the safety margin) is served.
 * - `fetch`: nothing servable is cached; wait for upstream and fail if it fails.
 */
export type LookupDecision = 'serve' | 'serve-stale' | 'wait-fresh' | 'fetch';

export function decideLookup(entry: EntryView | undefined, nowMs: number, policy: CachePolicy): LookupDecision {
  if (entry?.expiresOnMs === undefined) return 'fetch';
  const remainingMs = entry.expiresOnMs - nowMs;
  if (remainingMs > policy.minRemainingSeconds * 1000) return 'serve';
  if (remainingMs <= policy.safetyMarginSeconds * 1000) return 'fetch';
  return entry.consecutiveFailures > 0 ? 'serve-stale' : 'wait-fresh';
}

/** Is a cached token still good enough to hand out when upstream just failed? */
export function isServableDuringOutage(expiresOnMs: number | undefined, nowMs: number, policy: CachePolicy): boolean {
  return expiresOnMs !== undefined && expiresOnMs - nowMs > policy.safetyMarginSeconds * 1000;
}

/**
 * May a token just received from upstream be cached and served? Not when it is already expired or expires within
 * the {@link CachePolicy.minRemainingSeconds} floor: the apps' SDKs treat such a token as expired and come straight
 * back, and refreshing it would loop. Usually the sign of a clock far off on this machine.
 */
export function isUsableFreshToken(expiresOnMs: number, nowMs: number, policy: CachePolicy): boolean {
  return expiresOnMs - nowMs > policy.minRemainingSeconds * 1000;
}

/**
 * When to refresh a token obtained at `obtainedAtMs` and expiring at `expiresOnMs`: at the fraction of its
 * lifetime, but no later than `refreshLead` before the 5-minute floor, with jitter that only moves it earlier.
 * A token shorter than the floor itself is refreshed at the fraction (nothing better is possible).
 */
export function planRefreshAt(obtainedAtMs: number, expiresOnMs: number, policy: CachePolicy, random: () => number): number {
  const lifetimeMs = Math.max(0, expiresOnMs - obtainedAtMs);
  const byFraction = obtainedAtMs + lifetimeMs * policy.refreshAtFraction;
  const beforeFloor = expiresOnMs - (policy.minRemainingSeconds + policy.refreshLeadSeconds) * 1000;
  const target = beforeFloor > obtainedAtMs ? Math.min(byFraction, beforeFloor) : byFraction;
  const jitter = (target - obtainedAtMs) * policy.refreshJitterFraction * random();
  return Math.round(target - jitter);
}

/**
 * Delay before retry number `attempt` (1 = first retry): exponential from `backoffInitialMs`, capped, with "equal
 * jitter" (half fixed, half random) so retries spread out but never collapse to zero, and never sooner than the
 * upstream's Retry-After.
 */
export function backoffDelayMs(attempt: number, policy: CachePolicy, random: () => number, retryAfterSeconds?: number): number {
  const exponential = Math.min(policy.backoffMaxMs, policy.backoffInitialMs * 2 ** Math.max(0, attempt - 1));
  const jittered = exponential / 2 + (exponential / 2) * random();
  return Math.round(Math.max(jittered, (retryAfterSeconds ?? 0) * 1000));
}

/**
 * Upstream call budget: a GCRA / virtual-scheduling limiter allowing `ratePerSecond` calls per second with a burst
 * of the same size. `reserve(now)` books the next slot and says how long the caller must wait for it.
 */
export class UpstreamRateGate {
  readonly #intervalMs: number;
  readonly #burstMs: number;
  #theoreticalArrivalMs = Number.NEGATIVE_INFINITY;

  constructor(ratePerSecond: number) {
    this.#intervalMs = 1000 / Math.max(ratePerSecond, 0.001);
    this.#burstMs = this.#intervalMs * Math.max(1, Math.floor(ratePerSecond));
  }

  /** Delay in ms before the booked call may start (0 = now). */
  reserve(nowMs: number): number {
    const tat = Math.max(this.#theoreticalArrivalMs, nowMs);
    const allowedAt = tat + this.#intervalMs - this.#burstMs;
    this.#theoreticalArrivalMs = tat + this.#intervalMs;
    return Math.max(0, allowedAt - nowMs);
  }

  /** Gives a booked slot back (the caller did not use it). */
  release(): void {
    this.#theoreticalArrivalMs -= this.#intervalMs;
  }
}

/**
 * Global bound on concurrent upstream calls: `tryAcquire()` takes a slot when one is free; otherwise the caller
 * queues with `enqueue(grant)` and is granted a slot, first come first served, by a later `release()`. No timers:
 * the caller owns its deadline and withdraws with `withdraw(grant)`.
 */
export class ConcurrencyLimit {
  readonly #max: number;
  #active = 0;
  readonly #waiting = new Set<() => void>();

  constructor(max: number) {
    this.#max = Math.max(1, Math.floor(max));
  }

  get active(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#waiting.size;
  }

  tryAcquire(): boolean {
    if (this.#active >= this.#max) return false;
    this.#active += 1;
    return true;
  }

  enqueue(grant: () => void): void {
    this.#waiting.add(grant);
  }

  withdraw(grant: () => void): void {
    this.#waiting.delete(grant);
  }

  /** Frees a slot, handing it straight to the longest waiter if there is one. */
  release(): void {
    const next = this.#waiting.values().next();
    if (next.done) {
      this.#active = Math.max(0, this.#active - 1);
      return;
    }
    this.#waiting.delete(next.value);
    next.value();
  }
}
