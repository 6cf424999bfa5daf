/**
 * Rate limit (docs/security.md §4.2): the pure token bucket (table-driven, simulated time) and the token listener's 429 +
 * Retry-After in each dialect's own error shape, with the `rateLimited` metric, on the real HTTP edge (in-process
 * sidecar on port 0, injected clock). `MI_ANYWHERE_RATE_LIMIT_PER_SECOND` reaches the edge through config.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../sidecar/config.ts';
import { PATHS, SIDECAR_ENV } from '../../sidecar/contract.ts';
import { createTokenBucket } from '../../sidecar/http/rate-limit.ts';
import type { Dialect } from '../../sidecar/protocol/dialect.ts';
import { startInProcessSidecar, startSidecar } from '../helpers/sidecar.ts';
import { isDialectError } from '../helpers/shapes.ts';

describe('token bucket', () => {
  const cases: ReadonlyArray<{ name: string; rate: number; burst?: number; steps: ReadonlyArray<[atMs: number, want: true | number]> }> = [
    { name: 'disabled at 0', rate: 0, steps: [[0, true], [0, true], [0, true], [0, true]] },
    { name: 'a full second of burst, then refusal with Retry-After 1', rate: 3, steps: [[0, true], [0, true], [0, true], [0, 1], [100, 1]] },
    { name: 'refills at the rate', rate: 2, steps: [[0, true], [0, true], [0, 1], [499, 1], [500, true], [500, 1], [1000, true]] },
    { name: 'never more than the burst after a long pause', rate: 2, steps: [[0, true], [0, true], [60_000, true], [60_000, true], [60_000, 1]] },
    { name: 'slow rates give longer Retry-After', rate: 0.25, steps: [[0, true], [0, 4], [2000, 2], [4000, true]] },
    { name: 'explicit burst', rate: 1, burst: 3, steps: [[0, true], [0, true], [0, true], [0, 1]] },
    { name: 'a clock stepping back mints nothing', rate: 1, steps: [[10_000, true], [0, 1], [5_000, 1], [11_000, true]] },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const bucket = createTokenBucket({ ratePerSecond: tc.rate, ...(tc.burst !== undefined ? { burst: tc.burst } : {}) });
      tc.steps.forEach(([atMs, want], i) => {
        const got = bucket.take(atMs);
        if (want === true) assert.equal(got.allowed, true, `step ${i} at ${atMs} ms`);
        else assert.deepEqual(got, { allowed: false, retryAfterSeconds: want }, `step ${i} at ${atMs} ms`);
      });
    });
  }

  it('over one simulated minute lets through at most rate x seconds + burst, whatever the request pattern', () => {
    const rate = 20;
    const bucket = createTokenBucket({ ratePerSecond: rate });
    let allowed = 0;
    for (let t = 0; t <= 60_000; t += 7) if (bucket.take(t).allowed) allowed += 1;
    assert.ok(allowed <= rate * 60 + rate, `${allowed} allowed`);
    assert.ok(allowed >= rate * 60, `${allowed} allowed: the limit must not undershoot either`);
  });
});

describe('rate limit at the token listener', () => {
  it('is read from MI_ANYWHERE_RATE_LIMIT_PER_SECOND', () => {
    assert.equal(loadConfig({ [SIDECAR_ENV.rateLimitPerSecond]: '25' }, ['--dev']).rateLimitPerSecond, 25);
    assert.equal(loadConfig({}, ['--dev']).rateLimitPerSecond, 0);
    assert.throws(() => loadConfig({ [SIDECAR_ENV.rateLimitPerSecond]: '-1' }, ['--dev']), /RATE_LIMIT/);
  });

  const R = 'resource=https%3A%2F%2Fvault.azure.net';
  const dialects: ReadonlyArray<{ dialect: Dialect; path: string; init: (secret: string) => RequestInit }> = [
    { dialect: 'imds', path: `${PATHS.imds}?api-version=2018-02-01&${R}`, init: () => ({ headers: { Metadata: 'true' } }) },
    { dialect: 'app-service', path: `${PATHS.appService}?api-version=2019-08-01&${R}`, init: (h) => ({ headers: { 'X-IDENTITY-HEADER': h } }) },
    { dialect: 'msi-endpoint', path: `${PATHS.msiEndpoint}?api-version=2017-09-01&${R}`, init: (h) => ({ headers: { secret: h } }) },
    {
      dialect: 'cloud-shell',
      path: PATHS.msiEndpoint,
      init: () => ({ method: 'POST', headers: { Metadata: 'true', 'Content-Type': 'application/x-www-form-urlencoded' }, body: R }),
    },
  ];

  for (const d of dialects) {
    it(`answers 429 + Retry-After in the ${d.dialect} error shape above the rate, and serves again after Retry-After`, async () => {
      const sidecar = await startInProcessSidecar({ rateLimitPerSecond: 2 });
      try {
        const call = () => fetch(`${sidecar.tokenUrl}${d.path}`, d.init(sidecar.identityHeader));
        for (let i = 0; i < 2; i++) {
          const ok = await call();
          const text = await ok.text();
          assert.equal(ok.status, 200, text);
        }
        const limited = await call();
        assert.equal(limited.status, 429);
        assert.equal(limited.headers.get('retry-after'), '1');
        assert.equal(limited.headers.get('x-mi-anywhere-error'), 'SIDECAR_ERR_RATE_LIMITED');
        const body = (await limited.json()) as Record<string, unknown>;
        assert.ok(isDialectError(d.dialect, body, 429), `not the ${d.dialect} error shape: ${JSON.stringify(body)}`);
        const metrics = await (await fetch(`${sidecar.metricsUrl}/metrics`)).text();
        assert.match(metrics, new RegExp(`mi_anywhere_token_requests_rate_limited_total\\{dialect="${d.dialect}"\\} 1`));
        sidecar.clock.advance(1000);
        const again = await call();
        assert.equal(again.status, 200);
        await again.arrayBuffer();
      } finally {
        await sidecar.stop();
      }
    });
  }

  it('answers 429 + Retry-After in the arc error shape, counting the challenge leg too', async () => {
    const sidecar = await startInProcessSidecar({ rateLimitPerSecond: 2 });
    try {
      const url = `${sidecar.tokenUrl}${PATHS.arc}?api-version=2020-06-01&${R}`;
      const challenge = await fetch(url, { headers: { Metadata: 'true' } });
      assert.equal(challenge.status, 401);
      await challenge.text();
      const key = [...(sidecar.arcFs.files?.values() ?? [])][0]?.data ?? '';
      const ok = await fetch(url, { headers: { Metadata: 'true', Authorization: `Basic ${key}` } });
      assert.equal(ok.status, 200);
      await ok.text();
      const limited = await fetch(url, { headers: { Metadata: 'true' } });
      assert.equal(limited.status, 429);
      assert.equal(limited.headers.get('retry-after'), '1');
      assert.ok(isDialectError('arc', (await limited.json()) as Record<string, unknown>, 429));
    } finally {
      await sidecar.stop();
    }
  });

  it('limits the real program when the variable is set (spawned sidecar)', async () => {
    const sidecar = await startSidecar({ env: { [SIDECAR_ENV.rateLimitPerSecond]: '1' } });
    try {
      const url = `${sidecar.tokenUrl}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net`;
      const statuses: number[] = [];
      // Back to back: the bucket holds one token and refills one per second; twenty requests cannot all pass
      // unless the machine took more than 19 s for them.
      for (let i = 0; i < 20; i++) {
        const res = await fetch(url, { headers: { Metadata: 'true' } });
        statuses.push(res.status);
        if (res.status === 429) assert.ok(Number(res.headers.get('retry-after')) >= 1);
        await res.arrayBuffer();
      }
      assert.equal(statuses[0], 200);
      assert.ok(statuses.includes(429), statuses.join(','));
      assert.ok(statuses.every((s) => s === 200 || s === 429), statuses.join(','));
    } finally {
      await sidecar.stop();
    }
  });
});
