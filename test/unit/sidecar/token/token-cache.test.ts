/**
 * Token cache: the pure decisions (table-driven) and the caching TokenSource on simulated time — single flight,
 * background refresh before expiry, serving through a 10-minute upstream outage, backoff, Retry-After, the upstream
 * call budget, LRU bound, idle eviction and invalidation on credential change.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_CACHE_POLICY,
  UpstreamRateGate,
  backoffDelayMs,
  decideLookup,
  planRefreshAt,
  type CachePolicy,
  type LookupDecision,
} from '../../../../sidecar/token/token-cache-policy.ts';
import { CachingTokenSource } from '../../../../sidecar/token/caching-token-source.ts';
import type { IssuedToken, TokenSource, TokenSourceRequest } from '../../../../sidecar/token/token-source.ts';
import type { LoadedIdentity } from '../../../../sidecar/identity/identity.ts';
import { UpstreamRejectedError, UpstreamUnavailableError } from '../../../../sidecar/errors.ts';
import { FakeTime, settle } from '../../../helpers/fake-time.ts';

const P = DEFAULT_CACHE_POLICY;
const MIN = 60_000;

describe('decideLookup', () => {
  const now = 1_000_000_000;
  const cases: ReadonlyArray<{ name: string; expiresInMs: number | undefined; failures: number; want: LookupDecision }> = [
    { name: 'nothing cached', expiresInMs: undefined, failures: 0, want: 'fetch' },
    { name: 'plenty left', expiresInMs: 30 * MIN, failures: 0, want: 'serve' },
    { name: 'just above the 5-minute floor', expiresInMs: 5 * MIN + 1, failures: 0, want: 'serve' },
    { name: 'below the floor, upstream healthy: wait for a fresh one', expiresInMs: 4 * MIN, failures: 0, want: 'wait-fresh' },
    { name: 'below the floor, upstream failing: serve what we have', expiresInMs: 4 * MIN, failures: 3, want: 'serve-stale' },
    { name: 'inside the safety margin: never served', expiresInMs: 59_000, failures: 3, want: 'fetch' },
    { name: 'expired', expiresInMs: -1, failures: 0, want: 'fetch' },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const entry = tc.expiresInMs === undefined ? undefined : { expiresOnMs: now + tc.expiresInMs, consecutiveFailures: tc.failures };
      assert.equal(decideLookup(entry, now, P), tc.want);
    });
  }
});

describe('planRefreshAt', () => {
  const cases: ReadonlyArray<{ name: string; lifetimeS: number; random: number; wantS: number }> = [
    { name: 'one hour: half-life', lifetimeS: 3600, random: 0, wantS: 1800 },
    { name: 'one hour: jitter only moves it earlier (max 10 %)', lifetimeS: 3600, random: 0.999999, wantS: 1620 },
    { name: '24 hours (IMDS-like): half-life', lifetimeS: 86_400, random: 0, wantS: 43_200 },
    { name: '10 minutes: 2 minutes before the 5-minute floor', lifetimeS: 600, random: 0, wantS: 180 },
    { name: '6 minutes (shorter than floor + lead): half-life', lifetimeS: 360, random: 0, wantS: 180 },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const at = planRefreshAt(0, tc.lifetimeS * 1000, P, () => tc.random);
      assert.equal(Math.round(at / 1000), tc.wantS);
      assert.ok(at < tc.lifetimeS * 1000 - P.safetyMarginSeconds * 1000, 'refresh must be planned before the token becomes unservable');
    });
  }
});

describe('backoffDelayMs', () => {
  it('grows exponentially, capped, with equal jitter, never below Retry-After', () => {
    const table: ReadonlyArray<{ attempt: number; random: number; retryAfter?: number; want: number }> = [
      { attempt: 1, random: 0, want: 500 },
      { attempt: 1, random: 1, want: 1000 },
      { attempt: 2, random: 1, want: 2000 },
      { attempt: 5, random: 1, want: 16_000 },
      { attempt: 10, random: 1, want: 60_000 },
      { attempt: 30, random: 0, want: 30_000 },
      { attempt: 1, random: 0, retryAfter: 20, want: 20_000 },
    ];
    for (const tc of table) assert.equal(backoffDelayMs(tc.attempt, P, () => tc.random, tc.retryAfter), tc.want, JSON.stringify(tc));
  });
});

describe('UpstreamRateGate', () => {
  it('allows a burst of one second worth of calls, then spaces them', () => {
    const gate = new UpstreamRateGate(4);
    const delays = Array.from({ length: 6 }, () => gate.reserve(0));
    assert.deepEqual(delays, [0, 0, 0, 0, 250, 500]);
    assert.equal(gate.reserve(10_000), 0, 'budget refills with time');
  });
});

// ---------------------------------------------------------------------------------------------------------------

function identity(name = 'app', fingerprint = 'fp1'): LoadedIdentity {
  return {
    descriptor: { name, tenantId: 't', clientId: `client-${name}`, credentialKind: 'secret', isDefault: true },
    material: { kind: 'secret', clientSecret: 'never-logged' },
    credentialFingerprint: fingerprint,
  };
}

/** An upstream on simulated time: counts calls, can be held, failed or given a token lifetime. */
class FakeUpstream implements TokenSource {
  calls: TokenSourceRequest[] = [];
  lifetimeSeconds = 3600;
  failure: Error | undefined;
  #held: Array<() => void> = [];
  hold = false;
  readonly #time: FakeTime;

  constructor(time: FakeTime) {
    this.#time = time;
  }

  release(): void {
    for (const resume of this.#held.splice(0)) resume();
  }

  async getToken(request: TokenSourceRequest): Promise<IssuedToken> {
    this.calls.push(request);
    const n = this.calls.length;
    if (this.hold) await new Promise<void>((resolve) => this.#held.push(resolve));
    if (this.failure) throw this.failure;
    const now = Math.floor(this.#time.nowMs() / 1000);
    return {
      accessToken: `token-${n}-${request.identity.credentialFingerprint}`,
      expiresOnSeconds: now + this.lifetimeSeconds,
      notBeforeSeconds: now,
      resource: request.resource,
      clientId: request.identity.descriptor.clientId,
    };
  }
}

interface Harness {
  time: FakeTime;
  upstream: FakeUpstream;
  cache: CachingTokenSource;
  lookups: string[];
  refreshes: string[];
  evictions: string[];
  suppressed: string[];
  superseded: string[];
  unusable: string[];
  warnings: Array<{ fields: Record<string, unknown>; message: string }>;
}

function harness(policy: Partial<CachePolicy> = {}, random = 0): Harness {
  const time = new FakeTime();
  const upstream = new FakeUpstream(time);
  const lookups: string[] = [];
  const refreshes: string[] = [];
  const evictions: string[] = [];
  const suppressed: string[] = [];
  const superseded: string[] = [];
  const unusable: string[] = [];
  const warnings: Harness['warnings'] = [];
  const cache = new CachingTokenSource({
    inner: upstream,
    nowMs: time.nowMs,
    scheduler: time.scheduler,
    random: () => random,
    policy,
    metrics: {
      cacheLookup: (r) => lookups.push(r),
      cacheRefresh: (_i, r) => refreshes.push(r),
      cacheEviction: (r) => evictions.push(r),
      upstreamSuppressed: (r) => suppressed.push(r),
      supersededTokenServed: (i) => superseded.push(i),
      unusableToken: (i) => unusable.push(i),
    },
    log: { warn: (fields, message) => warnings.push({ fields, message }) },
  });
  return { time, upstream, cache, lookups, refreshes, evictions, suppressed, superseded, unusable, warnings };
}

const RESOURCE = 'https://management.azure.com/';

describe('CachingTokenSource', () => {
  it('500 concurrent cold requests cause exactly one upstream call', async () => {
    const h = harness();
    h.upstream.hold = true;
    const pending = Array.from({ length: 500 }, () => h.cache.getToken({ identity: identity(), resource: RESOURCE }));
    await settle();
    assert.equal(h.upstream.calls.length, 1);
    h.upstream.release();
    const tokens = await Promise.all(pending);
    assert.equal(new Set(tokens.map((t) => t.accessToken)).size, 1);
    assert.equal(h.upstream.calls.length, 1);
    assert.equal(h.lookups.filter((l) => l === 'miss').length, 500);
  });

  it('a failed cold call is shared too; it is remembered during the backoff, then the next request tries again', async () => {
    const h = harness();
    h.upstream.hold = true;
    h.upstream.failure = new UpstreamRejectedError({ oauthError: 'invalid_client', aadsts: 'AADSTS7000215', hint: 'wrong secret' });
    const pending = Array.from({ length: 20 }, () => h.cache.getToken({ identity: identity(), resource: RESOURCE }).then(() => 'ok', (e: unknown) => e));
    await settle();
    h.upstream.release();
    const results = await Promise.all(pending);
    assert.ok(results.every((r) => r instanceof UpstreamRejectedError));
    assert.equal(h.upstream.calls.length, 1);
    h.upstream.failure = undefined;
    h.upstream.hold = false;
    // Within the backoff (random 0: half of the initial 1 s) the same clear error comes back without an upstream call.
    await assert.rejects(h.cache.getToken({ identity: identity(), resource: RESOURCE }), UpstreamRejectedError);
    assert.equal(h.upstream.calls.length, 1);
    assert.deepEqual(h.suppressed, ['backoff']);
    await h.time.advance(P.backoffInitialMs);
    await h.cache.getToken({ identity: identity(), resource: RESOURCE });
    assert.equal(h.upstream.calls.length, 2);
  });

  it('refreshes in the background before expiry, so requests never wait once a token was issued', async () => {
    const h = harness();
    const first = await h.cache.getToken({ identity: identity(), resource: RESOURCE });
    await h.time.advance(29 * MIN);
    assert.equal(h.upstream.calls.length, 1, 'no refresh before half-life');
    await h.time.advance(1 * MIN + 1000);
    assert.equal(h.upstream.calls.length, 2, 'refreshed at half-life without any request');
    assert.deepEqual(h.refreshes, ['success']);
    const second = await h.cache.getToken({ identity: identity(), resource: RESOURCE });
    assert.notEqual(second.accessToken, first.accessToken);
    assert.ok(second.expiresOnSeconds > first.expiresOnSeconds);
    // Over a simulated day of steady use, every request is a hit after the first.
    h.lookups.length = 0;
    for (let i = 0; i < 24 * 12; i++) {
      await h.time.advance(5 * MIN);
      const token = await h.cache.getToken({ identity: identity(), resource: RESOURCE });
      assert.ok(token.expiresOnSeconds * 1000 - h.time.nowMs() > P.minRemainingSeconds * 1000);
    }
    assert.deepEqual(new Set(h.lookups), new Set(['hit']));
  });

  it('a 10-minute upstream outage produces zero failed requests while tokens are valid', async () => {
    const h = harness({}, 0.5);
    await h.cache.getToken({ identity: identity(), resource: RESOURCE });
    await h.time.advance(25 * MIN);
    h.upstream.failure = new UpstreamUnavailableError('Entra ID is unreachable (ECONNRESET)');
    const callsAtOutageStart = h.upstream.calls.length;
    let failed = 0;
    let served = 0;
    // 10 minutes of outage spanning the planned refresh, a request every 5 s.
    for (let i = 0; i < 120; i++) {
      await h.time.advance(5_000);
      try {
        const token = await h.cache.getToken({ identity: identity(), resource: RESOURCE });
        assert.ok(token.expiresOnSeconds * 1000 - h.time.nowMs() > P.safetyMarginSeconds * 1000);
        served++;
      } catch {
        failed++;
      }
    }
    assert.equal(failed, 0);
    assert.equal(served, 120);
    const outageCalls = h.upstream.calls.length - callsAtOutageStart;
    assert.ok(outageCalls >= 2, `refresh was retried during the outage (${outageCalls} calls)`);
    assert.ok(outageCalls <= 15, `retries backed off (${outageCalls} calls in 10 minutes)`);
    // Upstream recovers: the next retry succeeds without any request waiting.
    h.upstream.failure = undefined;
    await h.time.advance(2 * MIN);
    const after = await h.cache.getToken({ identity: identity(), resource: RESOURCE });
    assert.ok(after.expiresOnSeconds * 1000 - h.time.nowMs() > 50 * MIN, 'a fresh token is served after recovery');
  });

  it('an outage longer than the token fails requests once the token is inside its safety margin', async () => {
    const h = harness();
    await h.cache.getToken({ identity: identity(), resource: RESOURCE });
    h.upstream.failure = new UpstreamUnavailableError('down');
    await h.time.advance(58 * MIN);
    assert.ok(await h.cache.getToken({ identity: identity(), resource: RESOURCE }), 'stale but valid token served at 2 minutes left');
    await h.time.advance(1 * MIN + 1000);
    await assert.rejects(h.cache.getToken({ identity: identity(), resource: RESOURCE }), UpstreamUnavailableError);
  });

  it('waits for a fresh token instead of handing out one with < 5 minutes left', async () => {
    const h = harness();
    h.upstream.lifetimeSeconds = 600;
    const first = await h.cache.getToken({ identity: identity(), resource: RESOURCE });
    h.cache.close(); // no background refresh: the request itself meets the token at 4 minutes left
    await h.time.advance(6 * MIN);
    const second = await h.cache.getToken({ identity: identity(), resource: RESOURCE });
    assert.notEqual(second.accessToken, first.accessToken);
    assert.equal(h.upstream.calls.length, 2);
    // ...but when upstream fails, the cached token (outside the safety margin) is better than an error.
    h.upstream.failure = new UpstreamUnavailableError('down');
    await h.time.advance(7 * MIN);
    assert.equal((await h.cache.getToken({ identity: identity(), resource: RESOURCE })).accessToken, second.accessToken);
  });

  // Table: tokens upstream hands out already expired or inside the 5-minute refresh margin (a clock far off).
  for (const tc of [
    { name: 'already expired', lifetimeSeconds: -30 },
    { name: 'expiring now', lifetimeSeconds: 0 },
    { name: 'inside the refresh margin', lifetimeSeconds: 240 },
  ]) {
    it(`a token ${tc.name} is neither cached nor served, and starts no refresh loop`, async () => {
      const h = harness();
      h.upstream.lifetimeSeconds = tc.lifetimeSeconds;
      await assert.rejects(h.cache.getToken({ identity: identity(), resource: RESOURCE }), (e: unknown) => {
        assert.ok(e instanceof UpstreamUnavailableError);
        assert.match(e.message, /refresh margin.*clock/);
        assert.ok((e.retryAfterSeconds ?? 0) >= 1);
        return true;
      });
      assert.equal(h.cache.entries().length, 0, 'nothing cached');
      assert.deepEqual(h.unusable, ['app']);
      // No traffic for ten minutes: no further upstream call at all.
      await h.time.advance(10 * MIN);
      assert.equal(h.upstream.calls.length, 1);
      assert.equal(h.time.pendingTimers, 0);
      // Traffic every 100 ms for a minute: calls follow the backoff (0.5, 1, 2, 4, 8, 16, 32 s), not the traffic.
      for (let i = 0; i < 600; i++) {
        await assert.rejects(h.cache.getToken({ identity: identity(), resource: RESOURCE }), UpstreamUnavailableError);
        await h.time.advance(100);
      }
      assert.ok(h.upstream.calls.length <= 8, `${h.upstream.calls.length} upstream calls in a minute`);
    });
  }

  it('honours Retry-After before retrying a throttled refresh', async () => {
    const h = harness();
    await h.cache.getToken({ identity: identity(), resource: RESOURCE });
    h.upstream.failure = new UpstreamUnavailableError('throttled', { retryAfterSeconds: 120 });
    await h.time.advance(30 * MIN + 1000);
    const afterFirstFailure = h.upstream.calls.length;
    await h.time.advance(118_000);
    assert.equal(h.upstream.calls.length, afterFirstFailure, 'no call inside Retry-After');
    await h.time.advance(2_000);
    assert.equal(h.upstream.calls.length, afterFirstFailure + 1);
  });

  it('caps upstream calls per second across distinct cold entries', async () => {
    const h = harness({ maxUpstreamPerSecond: 2 });
    const pending = Array.from({ length: 6 }, (_, i) => h.cache.getToken({ identity: identity(), resource: `https://r${i}.example/` }));
    await settle();
    assert.equal(h.upstream.calls.length, 2);
    await h.time.advance(1000);
    assert.equal(h.upstream.calls.length, 4);
    await h.time.advance(1000);
    await Promise.all(pending);
    assert.equal(h.upstream.calls.length, 6);
  });

  it('fails fast with 503 + Retry-After when the upstream budget is exhausted for longer than the queue limit', async () => {
    const h = harness({ maxUpstreamPerSecond: 1, maxQueueMs: 1500 });
    const pending = Array.from({ length: 5 }, (_, i) => h.cache.getToken({ identity: identity(), resource: `https://r${i}.example/` }));
    const settled = Promise.allSettled(pending);
    await h.time.advance(2000);
    const results = await settled;
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'rejected', 'rejected']);
    for (const r of results) {
      if (r.status === 'rejected') {
        assert.ok(r.reason instanceof UpstreamUnavailableError);
        assert.equal(r.reason.httpStatus, 503);
        assert.equal(r.reason.retryAfterSeconds, 2);
      }
    }
  });

  it('keeps one entry per (identity + credential fingerprint, resource) and invalidates on credential change', async () => {
    const h = harness();
    await h.cache.getToken({ identity: identity('a', 'fp1'), resource: RESOURCE });
    await h.cache.getToken({ identity: identity('a', 'fp1'), resource: 'https://vault.azure.net' });
    await h.cache.getToken({ identity: identity('b', 'fp1'), resource: RESOURCE });
    assert.equal(h.cache.entries().length, 3);
    assert.equal(h.upstream.calls.length, 3);
    h.cache.invalidateIdentity('a', 'fp2');
    assert.deepEqual(h.cache.entries().map((e) => e.identity), ['b']);
    const fresh = await h.cache.getToken({ identity: identity('a', 'fp2'), resource: RESOURCE });
    assert.equal(fresh.accessToken, 'token-4-fp2');
    await h.time.advance(31 * MIN);
    assert.equal(h.upstream.calls.filter((c) => c.identity.credentialFingerprint === 'fp1' && c.identity.descriptor.name === 'a').length, 2, 'no refresh for invalidated entries');
  });

  it('a rotation during an Entra outage fails no request: the replaced credential\'s token bridges the gap', async () => {
    const h = harness();
    const before = await h.cache.getToken({ identity: identity('a', 'fp1'), resource: RESOURCE });
    h.upstream.failure = new UpstreamUnavailableError('down');
    h.cache.invalidateIdentity('a');
    const during = await h.cache.getToken({ identity: identity('a', 'fp2'), resource: RESOURCE });
    assert.equal(during.accessToken, before.accessToken);
    // Entra back (after the entry's backoff): the new credential's token replaces the bridge.
    h.upstream.failure = undefined;
    await h.time.advance(P.backoffInitialMs);
    const after = await h.cache.getToken({ identity: identity('a', 'fp2'), resource: RESOURCE });
    assert.equal(after.accessToken, `token-${h.upstream.calls.length}-fp2`);
  });

  it('a rotated-in credential that Entra rejects: the previous credential\'s valid tokens keep serving, with a metric and a log line', async () => {
    const h = harness();
    const before = await h.cache.getToken({ identity: identity('a', 'fp1'), resource: RESOURCE });
    h.cache.invalidateIdentity('a');
    h.upstream.failure = new UpstreamRejectedError({ oauthError: 'invalid_client', aadsts: 'AADSTS7000215', hint: 'wrong secret' });
    for (let i = 0; i < 50; i++) {
      assert.equal((await h.cache.getToken({ identity: identity('a', 'fp2'), resource: RESOURCE })).accessToken, before.accessToken);
      await h.time.advance(1000);
    }
    assert.equal(h.superseded.length, 50);
    assert.ok(h.upstream.calls.length <= 1 + 7, 'the failing credential is retried on the backoff, not per request');
    assert.ok(h.warnings.some((w) => /new credential of this identity fails/.test(w.message) && w.fields.rejected === true));
    // Another app under the same identity name never gets those tokens.
    const moved: LoadedIdentity = { ...identity('a', 'fp3'), descriptor: { ...identity('a').descriptor, clientId: 'client-other' } };
    await assert.rejects(h.cache.getToken({ identity: moved, resource: RESOURCE }), UpstreamRejectedError);
    // Once the old token reaches the safety margin, the rejection surfaces.
    await h.time.advance(60 * MIN);
    await assert.rejects(h.cache.getToken({ identity: identity('a', 'fp2'), resource: RESOURCE }), UpstreamRejectedError);
  });

  it('never serves a token issued to another app, even with the same name and credential', async () => {
    const h = harness();
    const a = identity('a', 'fp1');
    const moved: LoadedIdentity = { ...a, descriptor: { ...a.descriptor, clientId: 'client-other' } };
    await h.cache.getToken({ identity: a, resource: RESOURCE });
    const other = await h.cache.getToken({ identity: moved, resource: RESOURCE });
    assert.equal(h.upstream.calls.length, 2);
    assert.equal(other.clientId, 'client-other');
  });

  it('is bounded: the least recently used entry is evicted', async () => {
    const h = harness({ maxEntries: 3 });
    for (const r of ['https://a/', 'https://b/', 'https://c/']) await h.cache.getToken({ identity: identity(), resource: r });
    await h.cache.getToken({ identity: identity(), resource: 'https://a/' });
    await h.cache.getToken({ identity: identity(), resource: 'https://d/' });
    assert.deepEqual(h.cache.entries().map((e) => e.resource).sort(), ['https://a/', 'https://c/', 'https://d/']);
    assert.deepEqual(h.evictions, ['capacity']);
  });

  it('40 000 distinct resources keep at most maxEntries entries and timers; every eviction is counted', async () => {
    const h = harness({ maxUpstreamPerSecond: 1e9 });
    for (let i = 0; i < 40_000; i++) await h.cache.getToken({ identity: identity(), resource: `https://r${i}.example/` });
    assert.equal(h.cache.entries().length, P.maxEntries);
    assert.equal(h.time.pendingTimers, P.maxEntries);
    assert.equal(h.evictions.length, 40_000 - P.maxEntries);
  });

  it('failing cold resources are bounded too (remembered failures live in the same LRU)', async () => {
    const h = harness({ maxUpstreamPerSecond: 1e9, maxEntries: 100 });
    h.upstream.failure = new UpstreamUnavailableError('down');
    for (let i = 0; i < 5_000; i++) await h.cache.getToken({ identity: identity(), resource: `https://r${i}.example/` }).catch(() => undefined);
    assert.equal(h.evictions.length, 4_900);
    assert.equal(h.time.pendingTimers, 0);
  });

  it('stops refreshing entries nobody asked for in a day', async () => {
    const h = harness({ idleEvictSeconds: 3600 });
    await h.cache.getToken({ identity: identity(), resource: RESOURCE });
    await h.time.advance(3 * 3600_000);
    assert.equal(h.cache.entries().length, 0);
    assert.equal(h.time.pendingTimers, 0);
    assert.ok(h.upstream.calls.length <= 3);
  });

  it('close() cancels pending refreshes', async () => {
    const h = harness();
    await h.cache.getToken({ identity: identity(), resource: RESOURCE });
    h.cache.close();
    assert.equal(h.time.pendingTimers, 0);
    await h.time.advance(2 * 3600_000);
    assert.equal(h.upstream.calls.length, 1);
  });
});

describe('CachingTokenSource: upstream budget', () => {
  for (const tc of [
    { name: '429 with Retry-After 30', failure: () => new UpstreamUnavailableError('throttled', { retryAfterSeconds: 30 }), maxCalls: 1, minRetryAfter: 1 },
    { name: '500 without Retry-After', failure: () => new UpstreamUnavailableError('server error'), maxCalls: 4, minRetryAfter: 1 },
    { name: 'network error', failure: () => new UpstreamUnavailableError('unreachable'), maxCalls: 4, minRetryAfter: 1 },
  ]) {
    it(`${tc.name}: 1000 requests in 10 s cause at most ${tc.maxCalls} upstream call(s), each caller answered at once with Retry-After`, async () => {
      const h = harness({}, 0.5);
      h.upstream.failure = tc.failure();
      for (let i = 0; i < 1000; i++) {
        await assert.rejects(h.cache.getToken({ identity: identity(), resource: RESOURCE }), (e: unknown) => {
          assert.ok(e instanceof UpstreamUnavailableError);
          assert.ok((e.retryAfterSeconds ?? 0) >= tc.minRetryAfter, `Retry-After ${e.retryAfterSeconds}`);
          return true;
        });
        await h.time.advance(10);
      }
      assert.ok(h.upstream.calls.length <= tc.maxCalls, `${h.upstream.calls.length} upstream calls`);
      assert.ok(h.suppressed.filter((r) => r === 'backoff').length >= 1000 - tc.maxCalls);
    });
  }

  it('obeys Retry-After for a cold resource: no call before it, one after it', async () => {
    const h = harness();
    h.upstream.failure = new UpstreamUnavailableError('throttled', { retryAfterSeconds: 30 });
    await assert.rejects(h.cache.getToken({ identity: identity(), resource: RESOURCE }));
    await h.time.advance(29_000);
    await assert.rejects(h.cache.getToken({ identity: identity(), resource: RESOURCE }), (e: unknown) => (e as UpstreamUnavailableError).retryAfterSeconds === 1);
    assert.equal(h.upstream.calls.length, 1);
    h.upstream.failure = undefined;
    await h.time.advance(1_000);
    await h.cache.getToken({ identity: identity(), resource: RESOURCE });
    assert.equal(h.upstream.calls.length, 2);
  });

  it('backs off exponentially with jitter, capped, and forgets the failures after a success', async () => {
    const h = harness({}, 0.999);
    h.upstream.failure = new UpstreamUnavailableError('server error');
    const callTimes: number[] = [];
    for (let t = 0; t < 10 * MIN; t += 100) {
      const before = h.upstream.calls.length;
      await h.cache.getToken({ identity: identity(), resource: RESOURCE }).catch(() => undefined);
      if (h.upstream.calls.length > before) callTimes.push(h.time.nowMs());
      await h.time.advance(100);
    }
    const gaps = callTimes.slice(1).map((t, i) => t - callTimes[i]!);
    for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i]! >= gaps[i - 1]! || gaps[i]! >= P.backoffMaxMs / 2, `gaps ${gaps.join(',')}`);
    assert.ok(gaps.every((g) => g <= P.backoffMaxMs + 100), `gaps ${gaps.join(',')}`);
    assert.ok(callTimes.length <= 20, `${callTimes.length} calls in 10 minutes`);
    h.upstream.failure = undefined;
    await h.time.advance(P.backoffMaxMs);
    await h.cache.getToken({ identity: identity(), resource: RESOURCE });
    assert.equal((await h.cache.getToken({ identity: identity(), resource: RESOURCE })).accessToken, `token-${h.upstream.calls.length}-fp1`);
  });

  it('one overall deadline per acquisition: every waiting caller gets a 503 when it passes and the call is aborted', async () => {
    const h = harness({ upstreamDeadlineMs: 10_000 });
    h.upstream.hold = true;
    const outcomes: string[] = [];
    const pending = Array.from({ length: 50 }, () =>
      h.cache.getToken({ identity: identity(), resource: RESOURCE }).then(
        () => outcomes.push('token'),
        (e: unknown) => outcomes.push(e instanceof UpstreamUnavailableError && /did not answer within 10 s/.test(e.message) ? 'deadline' : String(e)),
      ),
    );
    await h.time.advance(9_999);
    assert.equal(outcomes.length, 0);
    await h.time.advance(1);
    await Promise.all(pending);
    assert.deepEqual(new Set(outcomes), new Set(['deadline']));
    assert.equal(h.upstream.calls.length, 1);
    assert.equal(h.upstream.calls[0]!.signal?.aborted, true, 'the network call was told to stop');
    assert.deepEqual(h.cache.upstreamLoad(), { inFlight: 0, queued: 0 }, 'the abandoned call gave its slot back');
  });

  it('bounds concurrent upstream calls globally; queued calls are within the same deadline', async () => {
    const h = harness({ maxConcurrentUpstream: 2, upstreamDeadlineMs: 10_000 });
    h.upstream.hold = true;
    const results = Array.from({ length: 5 }, (_, i) => h.cache.getToken({ identity: identity(), resource: `https://r${i}.example/` }).then(() => 'token', () => 'error'));
    await settle();
    assert.equal(h.upstream.calls.length, 2);
    assert.deepEqual(h.cache.upstreamLoad(), { inFlight: 2, queued: 3 });
    h.upstream.release();
    await settle();
    assert.equal(h.upstream.calls.length, 4);
    h.upstream.hold = false;
    h.upstream.release();
    await settle();
    assert.equal(h.upstream.calls.length, 5);
    assert.deepEqual(await Promise.all(results), ['token', 'token', 'token', 'token', 'token']);
    // A call that waits for a slot longer than the deadline is answered at the deadline.
    h.upstream.hold = true;
    const stuck = Promise.allSettled([0, 1].map((i) => h.cache.getToken({ identity: identity(), resource: `https://s${i}.example/` })));
    const queued = h.cache.getToken({ identity: identity(), resource: 'https://queued.example/' }).then(() => 'token', (e: unknown) => String(e));
    await h.time.advance(10_000);
    assert.match(await queued, /did not answer within 10 s/);
    await stuck;
  });
});
