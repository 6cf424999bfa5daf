/**
 * The sidecar's token cache as a TokenSource decorator: one entry per (identity name + credential fingerprint,
 * resource), single-flight upstream calls, background refresh before expiry, serving through upstream outages,
 * and the upstream budget (docs/security.md, "Upstream budget"): backoff with jitter after every failure (never
 * sooner than Retry-After), failures remembered per entry so waiting callers get a fast, clear error instead of a
 * new upstream call, a global rate and concurrency bound, one overall deadline per acquisition, an LRU bound, and
 * invalidation when an identity's credential changes (the previous credential's tokens bridge a failing rotation).
 * Decisions come from the pure policy `token-cache-policy.ts`; this module owns the state, the timers (through an injected
 * scheduler) and the promises. Clock, scheduler and random are injected so tests run on simulated time.
 */
import type { LoadedIdentity } from '../identity/identity.ts';
import type { CachedTokenInfo, EvictionReason, SuppressionReason } from '../metrics.ts';
import { SidecarError, UpstreamRejectedError, UpstreamUnavailableError } from '../errors.ts';
import type { IssuedToken, TokenSource, TokenSourceRequest } from './token-source.ts';
import {
  DEFAULT_CACHE_POLICY,
  ConcurrencyLimit,
  UpstreamRateGate,
  backoffDelayMs,
  decideLookup,
  isServableDuringOutage,
  isUsableFreshToken,
  planRefreshAt,
  type CachePolicy,
} from './token-cache-policy.ts';

/**
 * The sidecar's setTimeout-like seam, for the cache's refreshes and deadlines and the identity watcher's polls and debounce
 * (tests drive both on simulated time). Production timers are unref'd so a pending one never keeps the process alive.
 */
export interface Scheduler {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemScheduler: Scheduler = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs).unref(),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface CacheMetrics {
  cacheLookup(result: 'hit' | 'miss'): void;
  cacheRefresh(identity: string, result: 'success' | 'failure'): void;
  cacheEviction?(reason: EvictionReason): void;
  upstreamSuppressed?(reason: SuppressionReason): void;
  /** A token of the previous credential was served because the rotated-in one fails. */
  supersededTokenServed?(identity: string): void;
  /** Upstream issued a token that was already expired or inside the refresh margin (neither cached nor served). */
  unusableToken?(identity: string): void;
}

export interface CacheLog {
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface CachingTokenSourceOptions {
  readonly inner: TokenSource;
  readonly nowMs: () => number;
  readonly scheduler: Scheduler;
  readonly random: () => number;
  readonly policy?: Partial<CachePolicy> | undefined;
  readonly metrics?: CacheMetrics | undefined;
  readonly log?: CacheLog | undefined;
}

/** The last failure of an entry and until when it is answered from memory instead of a new upstream call. */
interface RememberedFailure {
  readonly error: Error;
  readonly untilMs: number;
}

interface Entry {
  readonly key: string;
  readonly resource: string;
  /** Latest identity object for this key (same name and fingerprint; descriptor fields may be refreshed). */
  identity: LoadedIdentity;
  token: IssuedToken | undefined;
  obtainedAtMs: number;
  lastUsedMs: number;
  consecutiveFailures: number;
  /** When the next background refresh (or retry) is due. */
  nextAttemptMs: number;
  inflight: Promise<IssuedToken> | undefined;
  timer: unknown;
  failure: RememberedFailure | undefined;
}

/**
 * Entry key: identity name + credential fingerprint, plus the tenant and client id the token is issued for (a
 * Secret whose clientId file changed but whose secret did not must not be served the other app's tokens).
 */
function entryKey(identity: LoadedIdentity, resource: string): string {
  const d = identity.descriptor;
  return [d.name, identity.credentialFingerprint, d.tenantId.toLowerCase(), d.clientId.toLowerCase(), resource].join('\u0000');
}

/** Tokens of a replaced credential are kept by identity, app and resource (never served to another app). */
function supersededKey(identity: LoadedIdentity, resource: string): string {
  const d = identity.descriptor;
  return [d.name, d.tenantId.toLowerCase(), d.clientId.toLowerCase(), resource].join('\u0000');
}

function retryAfterOf(error: unknown): number | undefined {
  return error instanceof SidecarError ? error.retryAfterSeconds : undefined;
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The error a caller sees for a failed or remembered acquisition. A 503 carries when the sidecar will ask upstream
 * again (so an SDK's retry lands after it); a rejection (400) is the same error again: retrying cannot fix it.
 */
function withRetryAfter(error: unknown, retryAfterSeconds: number): Error {
  if (!(error instanceof UpstreamUnavailableError)) return error instanceof Error ? error : new Error(String(error));
  if (error.retryAfterSeconds === retryAfterSeconds) return error;
  return new UpstreamUnavailableError(error.message, { cause: error.cause ?? error, retryAfterSeconds });
}

export class CachingTokenSource implements TokenSource {
  readonly #inner: TokenSource;
  readonly #nowMs: () => number;
  readonly #scheduler: Scheduler;
  readonly #random: () => number;
  readonly #policy: CachePolicy;
  readonly #metrics: CacheMetrics | undefined;
  readonly #log: CacheLog | undefined;
  readonly #gate: UpstreamRateGate;
  readonly #concurrency: ConcurrencyLimit;
  /** Map order = recency (re-inserted on use), so the first key is the least recently used. */
  readonly #entries = new Map<string, Entry>();
  /**
   * Tokens of credential versions replaced by a rotation, by identity name + resource. Served only while Entra is
   * unavailable (never after a rejection), so rotating a Secret during an Entra outage fails no request.
   */
  readonly #superseded = new Map<string, IssuedToken>();
  #closed = false;

  constructor(options: CachingTokenSourceOptions) {
    this.#inner = options.inner;
    this.#nowMs = options.nowMs;
    this.#scheduler = options.scheduler;
    this.#random = options.random;
    this.#policy = { ...DEFAULT_CACHE_POLICY, ...options.policy };
    this.#metrics = options.metrics;
    this.#log = options.log;
    this.#gate = new UpstreamRateGate(this.#policy.maxUpstreamPerSecond);
    this.#concurrency = new ConcurrencyLimit(this.#policy.maxConcurrentUpstream);
  }

  /** Upstream calls in flight and queued for a slot (for the metrics' gauges). */
  upstreamLoad(): { readonly inFlight: number; readonly queued: number } {
    return { inFlight: this.#concurrency.active, queued: this.#concurrency.queued };
  }

  async getToken(request: TokenSourceRequest): Promise<IssuedToken> {
    const now = this.#nowMs();
    const entry = this.#touch(request.identity, request.resource, now);
    const decision = decideLookup({ expiresOnMs: this.#expiresOnMs(entry), consecutiveFailures: entry.consecutiveFailures }, now, this.#policy);
    this.#metrics?.cacheLookup(decision === 'serve' || decision === 'serve-stale' ? 'hit' : 'miss');
    switch (decision) {
      case 'serve':
      case 'serve-stale':
        return this.#serveCached(entry, now);
      case 'wait-fresh':
        return this.#fetchOrServeCached(entry);
      case 'fetch':
        return this.#fetchOrBridge(entry, now);
    }
  }

  /** The cached token; a timer may fire late (suspended VM, busy event loop), so an overdue refresh starts now. */
  #serveCached(entry: Entry, now: number): IssuedToken {
    const token = entry.token!;
    if (entry.inflight === undefined && now >= entry.nextAttemptMs) this.#refreshInBackground(entry);
    return token;
  }

  /** A fresh token; if Entra fails while the cached one is still comfortably valid, the app is better served with it. */
  async #fetchOrServeCached(entry: Entry): Promise<IssuedToken> {
    const cached = entry.token!;
    try {
      return await this.#fetch(entry);
    } catch (error) {
      if (isServableDuringOutage(cached.expiresOnSeconds * 1000, this.#nowMs(), this.#policy)) return cached;
      throw error;
    }
  }

  /** Nothing servable cached: upstream (or its remembered failure); if that fails, a replaced credential's token. */
  async #fetchOrBridge(entry: Entry, now: number): Promise<IssuedToken> {
    try {
      return await this.#fetchOrRemembered(entry, now);
    } catch (error) {
      const bridge = this.#supersededToken(entry);
      if (bridge === undefined) throw error;
      this.#metrics?.supersededTokenServed?.(entry.identity.descriptor.name);
      return bridge;
    }
  }

  /**
   * Drops the cached tokens of an identity whose credential changed (all fingerprints except `keepFingerprint`),
   * so the next request is served with a token obtained through the new credential. Still-valid dropped tokens are
   * kept aside and served while the new credential fails (Entra unavailable, or rejecting the new credential: the
   * old token was issued legitimately and stays valid at the resource whatever happens to its credential), with a
   * metric and a log line saying so, until they reach the outage safety margin.
   */
  invalidateIdentity(identityName: string, keepFingerprint?: string): void {
    for (const entry of [...this.#entries.values()]) {
      if (entry.identity.descriptor.name !== identityName) continue;
      if (keepFingerprint !== undefined && entry.identity.credentialFingerprint === keepFingerprint) continue;
      if (isServableDuringOutage(this.#expiresOnMs(entry), this.#nowMs(), this.#policy)) this.#setAside(entry);
      this.#evict(entry, 'rotation');
    }
  }

  /** Keeps a replaced credential's token for the bridge; bounded like the cache (oldest dropped first). */
  #setAside(entry: Entry): void {
    this.#superseded.set(supersededKey(entry.identity, entry.resource), entry.token!);
    while (this.#superseded.size > this.#policy.maxEntries) {
      const oldest = this.#superseded.keys().next().value;
      if (oldest === undefined) break;
      this.#superseded.delete(oldest);
    }
  }

  /** Cached tokens, for the metrics' expiry and size gauges. */
  entries(): CachedTokenInfo[] {
    const list: CachedTokenInfo[] = [];
    for (const entry of this.#entries.values()) {
      if (entry.token) list.push({ identity: entry.identity.descriptor.name, resource: entry.resource, expiresOnSeconds: entry.token.expiresOnSeconds });
    }
    return list;
  }

  /** Cancels every pending refresh (shutdown). In-flight calls finish but are not rescheduled. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) this.#cancelTimer(entry);
  }

  #supersededToken(entry: Entry): IssuedToken | undefined {
    const key = supersededKey(entry.identity, entry.resource);
    const token = this.#superseded.get(key);
    if (token === undefined) return undefined;
    if (isServableDuringOutage(token.expiresOnSeconds * 1000, this.#nowMs(), this.#policy)) return token;
    this.#superseded.delete(key);
    return undefined;
  }

  #expiresOnMs(entry: Entry): number | undefined {
    return entry.token ? entry.token.expiresOnSeconds * 1000 : undefined;
  }

  #touch(identity: LoadedIdentity, resource: string, now: number): Entry {
    const key = entryKey(identity, resource);
    let entry = this.#entries.get(key);
    if (entry) {
      this.#entries.delete(key);
      entry.identity = identity;
    } else {
      entry = {
        key,
        resource,
        identity,
        token: undefined,
        obtainedAtMs: 0,
        lastUsedMs: now,
        consecutiveFailures: 0,
        nextAttemptMs: Number.POSITIVE_INFINITY,
        inflight: undefined,
        timer: undefined,
        failure: undefined,
      };
    }
    entry.lastUsedMs = now;
    this.#entries.set(key, entry);
    while (this.#entries.size > this.#policy.maxEntries) {
      const oldest = this.#entries.values().next().value;
      if (oldest === undefined || oldest === entry) break;
      this.#evict(oldest, 'capacity');
    }
    return entry;
  }

  #evict(entry: Entry, reason: EvictionReason): void {
    this.#cancelTimer(entry);
    if (this.#entries.get(entry.key) === entry) {
      this.#entries.delete(entry.key);
      this.#metrics?.cacheEviction?.(reason);
    }
    entry.token = undefined;
  }

  #cancelTimer(entry: Entry): void {
    if (entry.timer !== undefined) this.#scheduler.clearTimeout(entry.timer);
    entry.timer = undefined;
  }

  #schedule(entry: Entry, atMs: number, action: () => void): void {
    this.#cancelTimer(entry);
    entry.nextAttemptMs = atMs;
    if (this.#closed) return;
    entry.timer = this.#scheduler.setTimeout(() => {
      entry.timer = undefined;
      action();
    }, Math.max(0, atMs - this.#nowMs()));
  }

  /**
   * Waits for the rate budget; beyond `maxQueueMs` the request fails fast with 503 + Retry-After. The wait ends
   * early when the acquisition's deadline passes.
   */
  async #awaitRateBudget(signal: AbortSignal): Promise<void> {
    const delay = this.#gate.reserve(this.#nowMs());
    if (delay === 0) return;
    if (delay > this.#policy.maxQueueMs) {
      this.#gate.release();
      this.#metrics?.upstreamSuppressed?.('saturated');
      throw new UpstreamUnavailableError('Too many distinct token requests towards Entra ID at once; retry shortly', {
        retryAfterSeconds: Math.ceil(delay / 1000),
      });
    }
    await this.#waitFor(delay, signal);
  }

  #waitFor(delayMs: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#scheduler.clearTimeout(handle);
        reject(abortReason(signal));
      };
      const handle = this.#scheduler.setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, delayMs);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Takes one of the global upstream slots (queueing if all are busy); returns its idempotent release. */
  async #acquireSlot(signal: AbortSignal): Promise<() => void> {
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.#concurrency.release();
    };
    if (!this.#concurrency.tryAcquire()) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          this.#concurrency.withdraw(grant);
          reject(abortReason(signal));
        };
        const grant = (): void => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        this.#concurrency.enqueue(grant);
      });
    }
    // A call abandoned at its deadline gives its slot back at once (the network client also drops the socket).
    signal.addEventListener('abort', release, { once: true });
    return release;
  }

  async #callUpstream(entry: Entry, signal: AbortSignal): Promise<IssuedToken> {
    await this.#awaitRateBudget(signal);
    const release = await this.#acquireSlot(signal);
    try {
      return await this.#inner.getToken({ identity: entry.identity, resource: entry.resource, signal });
    } finally {
      release();
    }
  }

  /** An entry's remembered failure answers callers until its backoff ends; then a new attempt is made. */
  #fetchOrRemembered(entry: Entry, now: number): Promise<IssuedToken> {
    if (entry.inflight) return entry.inflight;
    const failure = entry.failure;
    if (failure !== undefined && now < failure.untilMs) {
      this.#metrics?.upstreamSuppressed?.('backoff');
      return Promise.reject(withRetryAfter(failure.error, Math.max(1, Math.ceil((failure.untilMs - now) / 1000))));
    }
    return this.#fetch(entry);
  }

  /**
   * Single flight: every caller for this entry shares one upstream acquisition, bounded by one overall deadline
   * (slot queueing, discovery, token call and body together) after which all of them get a 503 and the call is
   * aborted.
   */
  #fetch(entry: Entry): Promise<IssuedToken> {
    if (entry.inflight) return entry.inflight;
    const flight = (async () => {
      const controller = new AbortController();
      const deadlineMs = this.#policy.upstreamDeadlineMs;
      let deadlineTimer: unknown;
      const deadline = new Promise<never>((_resolve, reject) => {
        deadlineTimer = this.#scheduler.setTimeout(() => {
          const error = new UpstreamUnavailableError(
            `Entra ID did not answer within ${deadlineMs / 1000} s for identity "${entry.identity.descriptor.name}" and no valid cached token exists; retry later`,
          );
          reject(error);
          controller.abort(error);
        }, deadlineMs);
      });
      try {
        const token = await Promise.race([this.#callUpstream(entry, controller.signal), deadline]);
        this.#checkUsable(entry, token);
        this.#store(entry, token);
        return token;
      } catch (error) {
        throw this.#onFailure(entry, error);
      } finally {
        this.#scheduler.clearTimeout(deadlineTimer);
        entry.inflight = undefined;
      }
    })();
    entry.inflight = flight;
    return flight;
  }

  /** A token already expired or inside the refresh margin is neither cached nor served (it would loop). */
  #checkUsable(entry: Entry, token: IssuedToken): void {
    const now = this.#nowMs();
    if (isUsableFreshToken(token.expiresOnSeconds * 1000, now, this.#policy)) return;
    const name = entry.identity.descriptor.name;
    this.#metrics?.unusableToken?.(name);
    const remaining = Math.round(token.expiresOnSeconds - now / 1000);
    throw new UpstreamUnavailableError(
      `Entra ID issued a token for identity "${name}" that ${remaining <= 0 ? `expired ${-remaining} s ago` : `expires in ${remaining} s`}, ` +
        `inside the ${this.#policy.minRemainingSeconds} s refresh margin; it is neither cached nor served. Check this machine's clock (NTP)`,
    );
  }

  #store(entry: Entry, token: IssuedToken): void {
    const now = this.#nowMs();
    entry.consecutiveFailures = 0;
    entry.failure = undefined;
    // Evicted or invalidated while the call was in flight: hand the token to the waiting callers, cache nothing.
    if (this.#entries.get(entry.key) !== entry) return;
    this.#superseded.delete(supersededKey(entry.identity, entry.resource));
    entry.token = token;
    entry.obtainedAtMs = now;
    this.#schedule(entry, planRefreshAt(now, token.expiresOnSeconds * 1000, this.#policy, this.#random), () => this.#onRefreshDue(entry));
  }

  /**
   * Records a failed acquisition: backoff (never sooner than Retry-After) before the entry asks upstream again, the
   * error remembered for callers until then; a servable cached token keeps being served and is retried in the
   * background. Returns the error the waiting callers get.
   */
  #onFailure(entry: Entry, error: unknown): Error {
    entry.consecutiveFailures += 1;
    const now = this.#nowMs();
    const delay = backoffDelayMs(entry.consecutiveFailures, this.#policy, this.#random, retryAfterOf(error));
    const answer = withRetryAfter(error, Math.max(1, Math.ceil(delay / 1000)));
    entry.failure = { error: answer, untilMs: now + delay };
    if (this.#entries.get(entry.key) !== entry) return answer;
    const name = entry.identity.descriptor.name;
    if (!isServableDuringOutage(this.#expiresOnMs(entry), now, this.#policy)) {
      // Nothing worth refreshing: the next request after the backoff asks upstream in the foreground.
      this.#cancelTimer(entry);
      entry.nextAttemptMs = now + delay;
      entry.token = undefined;
      const bridge = this.#supersededToken(entry);
      if (bridge !== undefined) {
        this.#log?.warn(
          {
            identity: name,
            rejected: error instanceof UpstreamRejectedError,
            previousTokenExpiresOn: new Date(bridge.expiresOnSeconds * 1000).toISOString(),
            retryInMs: delay,
            error: messageOf(error),
          },
          'the new credential of this identity fails; serving tokens obtained with the previous credential until they near expiry',
        );
      }
      return answer;
    }
    this.#log?.warn(
      { identity: name, attempt: entry.consecutiveFailures, retryInMs: delay, error: messageOf(error) },
      'token refresh failed; serving the cached token and retrying',
    );
    this.#schedule(entry, now + delay, () => this.#onRefreshDue(entry));
    return answer;
  }

  #onRefreshDue(entry: Entry): void {
    if (this.#entries.get(entry.key) !== entry) return;
    if (this.#nowMs() - entry.lastUsedMs > this.#policy.idleEvictSeconds * 1000) {
      this.#evict(entry, 'idle');
      return;
    }
    this.#refreshInBackground(entry);
  }

  #refreshInBackground(entry: Entry): void {
    if (entry.inflight) return;
    const name = entry.identity.descriptor.name;
    this.#fetch(entry).then(
      () => this.#metrics?.cacheRefresh(name, 'success'),
      () => this.#metrics?.cacheRefresh(name, 'failure'),
    );
  }
}
