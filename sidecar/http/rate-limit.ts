/**
 * The token listener's rate limit: a token bucket that refills at `ratePerSecond` and holds at most
 * `burst` tokens. Above the rate, requests get 429 with `Retry-After` (the time until the next token), so a runaway
 * client loop cannot starve the other clients of the pod nor hammer Entra ID. Real IMDS does the same: 20 requests/s
 * for the managed-identity category, 429 beyond (docs/protocols.md §9).
 *
 * Why a bucket and not a fixed one-second window: a window lets 2x the rate through around its edge and makes every
 * refused client retry at the same instant; the bucket spreads them and its `Retry-After` is exact.
 *
 * Pure: time comes in as a parameter (milliseconds); no timers, no I/O.
 */

export interface TokenBucketOptions {
  /** Tokens added per second; 0 or less disables the limit. */
  readonly ratePerSecond: number;
  /** Capacity (requests allowed back to back after a quiet period); default: one second's worth, at least 1. */
  readonly burst?: number;
}

export type TakeResult = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterSeconds: number };

export interface TokenBucket {
  /** Takes one token at time `nowMs` if there is one; otherwise says how long until there will be (whole seconds, ≥ 1). */
  take(nowMs: number): TakeResult;
}

const ALLOWED: TakeResult = Object.freeze({ allowed: true });

export function createTokenBucket(options: TokenBucketOptions): TokenBucket {
  const rate = options.ratePerSecond;
  if (!(rate > 0)) return { take: () => ALLOWED };
  const capacity = Math.max(1, options.burst ?? Math.ceil(rate));
  let tokens = capacity;
  let lastMs: number | undefined;
  return {
    take(nowMs) {
      // A clock that goes backwards (NTP step) refills nothing rather than minting tokens.
      const elapsedMs = lastMs === undefined ? 0 : Math.max(0, nowMs - lastMs);
      lastMs = lastMs === undefined ? nowMs : Math.max(lastMs, nowMs);
      tokens = Math.min(capacity, tokens + (elapsedMs * rate) / 1000);
      if (tokens >= 1) {
        tokens -= 1;
        return ALLOWED;
      }
      // Retry-After is in whole seconds (RFC 9110); round up so a client that obeys it finds a token.
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / rate)) };
    },
  };
}
