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
} from '../../../sidecar/token/token-cache.ts';
import { CachingTokenSource } from '../../../sidecar/token/caching-token-source.ts';
import type { IssuedToken, TokenSource, TokenSourceRequest } from '../../../sidecar/token/token-source.ts';
import type { LoadedIdentity } from '../../../sidecar/identity/identity.ts';
import { UpstreamRejectedError, UpstreamUnavailableError } from '../../../sidecar/errors.ts';
import { FakeTime, settle } from './fake-time.ts';

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
}

function harness(policy: Partial<CachePolicy> = {}, random = 0): Harness {
  const time = new FakeTime();
  const upstream = new FakeUpstream(time);
  const lookups: string[] = [];
  const refreshes: string[] = [];
  const cache = new CachingTokenSource({
    inner: upstream,
    nowMs: time.nowMs,
    scheduler: time.scheduler,
    random: () => random,
    policy,
    metrics: { cacheLookup: (r) => lookups.push(r), cacheRefresh: (_i, r) => refreshes.push(r) },
  });
  return { time, upstream, cache, lookups, refreshes };
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

  it('a failed cold call is shared too, and the next request tries again', async () => {
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
    h.upstream.lifetimeSeconds = 240; // Shorter than the floor: every token is "almost expired" from the start.
    const first = await h.cache.getToken({ identity: identity(), resource: RESOURCE });
    await h.time.advance(10_000);
    const second = await h.cache.getToken({ identity: identity(), resource: RESOURCE });
    assert.notEqual(second.accessToken, first.accessToken);
    assert.equal(h.upstream.calls.length, 2);
    // ...but when upstream fails, the cached token (outside the safety margin) is better than an error.
    h.upstream.failure = new UpstreamUnavailableError('down');
    await h.time.advance(10_000);
    assert.equal((await h.cache.getToken({ identity: identity(), resource: RESOURCE })).accessToken, second.accessToken);
  });

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
    // Entra back: the new credential's token replaces the bridge.
    h.upstream.failure = undefined;
    const after = await h.cache.getToken({ identity: identity('a', 'fp2'), resource: RESOURCE });
    assert.equal(after.accessToken, `token-${h.upstream.calls.length}-fp2`);
    // A rejection of the new credential is never hidden behind the old token.
    h.cache.invalidateIdentity('a');
    h.upstream.failure = new UpstreamRejectedError({ oauthError: 'invalid_client', aadsts: 'AADSTS7000215', hint: 'wrong secret' });
    await assert.rejects(h.cache.getToken({ identity: identity('a', 'fp3'), resource: RESOURCE }), UpstreamRejectedError);
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
