/**
 * The sidecar's token cache as a TokenSource decorator: one entry per (identity name + credential fingerprint,
 * resource), single-flight upstream calls, background refresh before expiry, serving through upstream outages,
 * backoff with jitter, an upstream call budget, LRU bound, and invalidation when an identity's credential changes.
 * Decisions come from the pure `token-cache.ts`; this module owns the state, the timers (through an injected
 * scheduler) and the promises. Clock, scheduler and random are injected so tests run on simulated time.
 */
import type { LoadedIdentity } from '../identity/identity.ts';
import type { CachedTokenInfo } from '../metrics.ts';
import { SidecarError, UpstreamUnavailableError } from '../errors.ts';
import type { IssuedToken, TokenSource, TokenSourceRequest } from './token-source.ts';
import {
  DEFAULT_CACHE_POLICY,
  UpstreamRateGate,
  backoffDelayMs,
  decideLookup,
  isServableDuringOutage,
  planRefreshAt,
  type CachePolicy,
} from './token-cache.ts';

/** setTimeout-like seam. Production timers are unref'd so a pending refresh never keeps the process alive. */
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
}

/**
 * Entry key: identity name + credential fingerprint, plus the tenant and client id the token is issued for (a
 * Secret whose clientId file changed but whose secret did not must not be served the other app's tokens).
 */
function entryKey(identity: LoadedIdentity, resource: string): string {
  const d = identity.descriptor;
  return [d.name, identity.credentialFingerprint, d.tenantId.toLowerCase(), d.clientId.toLowerCase(), resource].join('\u0000');
}

function supersededKey(identityName: string, resource: string): string {
  return `${identityName}\u0000${resource}`;
}

function retryAfterOf(error: unknown): number | undefined {
  return error instanceof SidecarError ? error.retryAfterSeconds : undefined;
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
  }

  async getToken(request: TokenSourceRequest): Promise<IssuedToken> {
    const now = this.#nowMs();
    const entry = this.#touch(request.identity, request.resource, now);
    const decision = decideLookup({ expiresOnMs: this.#expiresOnMs(entry), consecutiveFailures: entry.consecutiveFailures }, now, this.#policy);
    switch (decision) {
      case 'serve':
      case 'serve-stale': {
        this.#metrics?.cacheLookup('hit');
        const token = entry.token!;
        // A timer may fire late (suspended VM, busy event loop): start the refresh now if it is overdue.
        if (entry.inflight === undefined && now >= entry.nextAttemptMs) this.#refreshInBackground(entry);
        return token;
      }
      case 'wait-fresh': {
        this.#metrics?.cacheLookup('miss');
        const cached = entry.token!;
        try {
          return await this.#fetch(entry);
        } catch (error) {
          // Entra failed: the cached token is still comfortably valid, so the app is better served with it.
          if (isServableDuringOutage(cached.expiresOnSeconds * 1000, this.#nowMs(), this.#policy)) return cached;
          throw error;
        }
      }
      case 'fetch': {
        this.#metrics?.cacheLookup('miss');
        try {
          return await this.#fetch(entry);
        } catch (error) {
          const fallback = error instanceof UpstreamUnavailableError ? this.#supersededToken(entry) : undefined;
          if (fallback) return fallback;
          throw error;
        }
      }
    }
  }

  /**
   * Drops the cached tokens of an identity whose credential changed (all fingerprints except `keepFingerprint`),
   * so the next request is served with a token obtained through the new credential. Still-valid dropped tokens are
   * kept aside and served only if Entra is unavailable when the new credential is first used.
   */
  invalidateIdentity(identityName: string, keepFingerprint?: string): void {
    for (const entry of [...this.#entries.values()]) {
      if (entry.identity.descriptor.name !== identityName) continue;
      if (keepFingerprint !== undefined && entry.identity.credentialFingerprint === keepFingerprint) continue;
      if (isServableDuringOutage(this.#expiresOnMs(entry), this.#nowMs(), this.#policy)) {
        this.#superseded.set(supersededKey(identityName, entry.resource), entry.token!);
        while (this.#superseded.size > this.#policy.maxEntries) {
          const oldest = this.#superseded.keys().next().value;
          if (oldest === undefined) break;
          this.#superseded.delete(oldest);
        }
      }
      this.#evict(entry);
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
    const key = supersededKey(entry.identity.descriptor.name, entry.resource);
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
      entry = { key, resource, identity, token: undefined, obtainedAtMs: 0, lastUsedMs: now, consecutiveFailures: 0, nextAttemptMs: Number.POSITIVE_INFINITY, inflight: undefined, timer: undefined };
    }
    entry.lastUsedMs = now;
    this.#entries.set(key, entry);
    while (this.#entries.size > this.#policy.maxEntries) {
      const oldest = this.#entries.values().next().value;
      if (oldest === undefined || oldest === entry) break;
      this.#evict(oldest);
    }
    return entry;
  }

  #evict(entry: Entry): void {
    this.#cancelTimer(entry);
    if (this.#entries.get(entry.key) === entry) this.#entries.delete(entry.key);
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

  /** Waits for an upstream slot; beyond `maxQueueMs` the request fails fast with 503 + Retry-After. */
  async #awaitUpstreamSlot(): Promise<void> {
    const delay = this.#gate.reserve(this.#nowMs());
    if (delay === 0) return;
    if (delay > this.#policy.maxQueueMs) {
      this.#gate.release();
      throw new UpstreamUnavailableError('Too many distinct token requests towards Entra ID at once; retry shortly', {
        retryAfterSeconds: Math.ceil(delay / 1000),
      });
    }
    await new Promise<void>((resolve) => this.#scheduler.setTimeout(resolve, delay));
  }

  /** Single flight: every caller for this entry shares one upstream call. */
  #fetch(entry: Entry): Promise<IssuedToken> {
    if (entry.inflight) return entry.inflight;
    const flight = (async () => {
      try {
        await this.#awaitUpstreamSlot();
        const token = await this.#inner.getToken({ identity: entry.identity, resource: entry.resource });
        this.#store(entry, token);
        return token;
      } catch (error) {
        this.#onFailure(entry, error);
        throw error;
      } finally {
        entry.inflight = undefined;
      }
    })();
    entry.inflight = flight;
    return flight;
  }

  #store(entry: Entry, token: IssuedToken): void {
    const now = this.#nowMs();
    entry.consecutiveFailures = 0;
    // Evicted or invalidated while the call was in flight: hand the token to the waiting callers, cache nothing.
    if (this.#entries.get(entry.key) !== entry) return;
    this.#superseded.delete(supersededKey(entry.identity.descriptor.name, entry.resource));
    entry.token = token;
    entry.obtainedAtMs = now;
    this.#schedule(entry, planRefreshAt(now, token.expiresOnSeconds * 1000, this.#policy, this.#random), () => this.#onRefreshDue(entry));
  }

  #onFailure(entry: Entry, error: unknown): void {
    entry.consecutiveFailures += 1;
    if (this.#entries.get(entry.key) !== entry) return;
    const now = this.#nowMs();
    if (!isServableDuringOutage(this.#expiresOnMs(entry), now, this.#policy)) {
      // Nothing worth keeping: the next request fetches in the foreground and sees the error itself.
      this.#cancelTimer(entry);
      entry.nextAttemptMs = Number.POSITIVE_INFINITY;
      entry.token = undefined;
      return;
    }
    const delay = backoffDelayMs(entry.consecutiveFailures, this.#policy, this.#random, retryAfterOf(error));
    this.#log?.warn(
      { identity: entry.identity.descriptor.name, attempt: entry.consecutiveFailures, retryInMs: delay, error: error instanceof Error ? error.message : String(error) },
      'token refresh failed; serving the cached token and retrying',
    );
    this.#schedule(entry, now + delay, () => this.#onRefreshDue(entry));
  }

  #onRefreshDue(entry: Entry): void {
    if (this.#entries.get(entry.key) !== entry) return;
    if (this.#nowMs() - entry.lastUsedMs > this.#policy.idleEvictSeconds * 1000) {
      this.#evict(entry);
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
