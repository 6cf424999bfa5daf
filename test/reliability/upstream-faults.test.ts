/**
 * Upstream faults, end to end: the real sidecar in entra mode, the test authority behind a TCP forwarder.
 * For each fault — slow answers, 5xx, 429 with Retry-After, connection resets, a full outage (connection refused),
 * a TLS failure (traffic routed to a server whose CA the sidecar does not trust) — the sidecar does not crash,
 * keeps serving the token it already cached, answers a request it cannot serve with a clear 503 in the IMDS error
 * shape (naming the cause), and recovers without a restart once the fault is gone.
 *
 * Waits are bounded polls on the other process's answers (the sidecar backs off with jitter), never timed
 * assertions.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestAuthority, type RegisteredApp, type TestAuthority } from '../authority/authority.ts';
import { PATHS } from '../../sidecar/contract.ts';
import { isDialectError } from '../helpers/shapes.ts';
import { startEntraSidecar, startUpstream, type EntraSidecar, type Upstream } from '../helpers/upstream.ts';
import { maxFailedCallsWithin } from '../helpers/upstream-budget.ts';

interface Answer {
  readonly status: number;
  readonly body: Record<string, string>;
  readonly retryAfter: string | null;
}

let counter = 0;
/** A resource nobody asked for yet: its token cannot be in any cache. */
function freshResource(label: string): string {
  counter += 1;
  return `https://fresh-${label}-${counter}.example.net`;
}

async function token(baseUrl: string, resource: string): Promise<Answer> {
  const url = `${baseUrl}${PATHS.imds}?api-version=2018-02-01&resource=${encodeURIComponent(resource)}`;
  const res = await fetch(url, { headers: { Metadata: 'true' } });
  return { status: res.status, body: (await res.json()) as Record<string, string>, retryAfter: res.headers.get('retry-after') };
}

async function eventually<T>(what: string, attempt: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await attempt();
    if (ok(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  assert.fail(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

interface Fault {
  readonly name: string;
  /** Starts the fault. */
  readonly inject: (ctx: Ctx) => Promise<void>;
  /** Ends it. */
  readonly clear: (ctx: Ctx) => Promise<void>;
  /** What the error description of an uncached request must say. */
  readonly explains: RegExp;
  /** Retry-After passed on to the client, when the upstream sent one. */
  readonly retryAfter?: string;
}

interface Ctx {
  readonly upstream: Upstream;
  readonly untrusted: TestAuthority;
}

const faults: readonly Fault[] = [
  {
    name: 'Entra answers 500',
    inject: async ({ upstream }) => upstream.authority.setFault({ status: 500 }),
    clear: async ({ upstream }) => upstream.authority.setFault(undefined),
    explains: /^Entra ID answered HTTP 500 \(AADSTS90033\) and no valid cached token exists; retry later$/,
  },
  {
    name: 'Entra answers 503',
    inject: async ({ upstream }) => upstream.authority.setFault({ status: 503 }),
    clear: async ({ upstream }) => upstream.authority.setFault(undefined),
    explains: /^Entra ID answered HTTP 503 \(AADSTS90033\) and no valid cached token exists; retry later$/,
  },
  {
    name: 'Entra throttles with 429 + Retry-After',
    inject: async ({ upstream }) => upstream.authority.setFault({ status: 429, retryAfterSeconds: 2 }),
    clear: async ({ upstream }) => upstream.authority.setFault(undefined),
    explains: /^Entra ID throttled the request \(AADSTS90055\) and no valid cached token exists; retry later$/,
    retryAfter: '2',
  },
  {
    name: 'connections are reset',
    inject: async ({ upstream }) => upstream.authority.setFault({ reset: true, scope: 'all' }),
    clear: async ({ upstream }) => upstream.authority.setFault(undefined),
    explains: /^Entra ID is unreachable \((ECONNRESET|EPIPE)\)/,
  },
  {
    name: 'Entra is down (connection refused)',
    inject: async ({ upstream }) => upstream.forwarder.down(),
    clear: async ({ upstream }) => upstream.forwarder.up(),
    explains: /^Entra ID is unreachable \(ECONNREFUSED\)/,
  },
  {
    name: 'TLS fails (a server with a certificate from an untrusted CA)',
    inject: async ({ upstream, untrusted }) => {
      upstream.forwarder.setTarget(Number(new URL(untrusted.url).port));
      // Cut pooled connections so the next request makes a new TLS handshake.
      await upstream.forwarder.down();
      await upstream.forwarder.up();
    },
    clear: async ({ upstream }) => {
      upstream.forwarder.setTarget(upstream.authorityPort);
      await upstream.forwarder.down();
      await upstream.forwarder.up();
    },
    explains: /^Entra ID is unreachable \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_[A-Z_]+)\)/,
  },
];

describe('upstream faults: no crash, cached tokens keep flowing, clear errors, recovery without restart', () => {
  let upstream: Upstream;
  let untrusted: TestAuthority;
  let entra: EntraSidecar;
  let app: RegisteredApp;
  const cachedResource = 'https://vault.azure.net';
  let cachedToken = '';

  before(async () => {
    upstream = await startUpstream();
    untrusted = await startTestAuthority();
    app = upstream.authority.registerApp({ secrets: ['reliability-client-secret-1'] });
    entra = await startEntraSidecar(upstream, [{ name: 'app', app, secret: 'reliability-client-secret-1' }]);
    await eventually('readiness', async () => (await fetch(`${entra.sidecar.healthUrl}/readyz`)).status, (s) => s === 200);
    const first = await token(entra.sidecar.tokenUrl, cachedResource);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    cachedToken = first.body['access_token'] ?? '';
  });
  after(async () => {
    await entra?.cleanup();
    await untrusted?.stop();
    await upstream?.stop();
  });

  it('a slow upstream only delays the first token of a resource; cached ones are served meanwhile', async () => {
    upstream.authority.setFault({ latencyMs: 1500 });
    try {
      const resource = freshResource('slow');
      const slow = token(entra.sidecar.tokenUrl, resource);
      const cached = await token(entra.sidecar.tokenUrl, cachedResource);
      assert.equal(cached.status, 200);
      assert.equal(cached.body['access_token'], cachedToken);
      const answer = await slow;
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(answer.body['resource'], resource);
    } finally {
      upstream.authority.setFault(undefined);
    }
  });

  for (const fault of faults) {
    it(`${fault.name}`, async () => {
      const ctx = { upstream, untrusted };
      await fault.inject(ctx);
      let failedResource = '';
      try {
        // Cached: served from the cache, same token, no upstream involved.
        for (let i = 0; i < 3; i++) {
          const cached = await token(entra.sidecar.tokenUrl, cachedResource);
          assert.equal(cached.status, 200, `cached token during "${fault.name}": ${JSON.stringify(cached.body)}`);
          assert.equal(cached.body['access_token'], cachedToken);
        }
        // Not cached: a clear, retryable error in the dialect's shape.
        failedResource = freshResource('fault');
        const failed = await token(entra.sidecar.tokenUrl, failedResource);
        assert.equal(failed.status, 503, JSON.stringify(failed.body));
        assert.ok(isDialectError('imds', failed.body, 503), JSON.stringify(failed.body));
        assert.equal(failed.body['error'], 'temporarily_unavailable');
        assert.match(failed.body['error_description'] ?? '', fault.explains);
        // Retry-After: the upstream's own, or when the sidecar will ask again (its backoff), never absent.
        if (fault.retryAfter !== undefined) assert.equal(failed.retryAfter, fault.retryAfter);
        else assert.ok(Number(failed.retryAfter) >= 1, `Retry-After: ${failed.retryAfter}`);
        assert.ok(!JSON.stringify(failed.body).includes('reliability-client-secret-1'), 'never echoes the client secret');
      } finally {
        await fault.clear(ctx);
      }
      // Recovery without a restart: a new resource, and the one that failed.
      const recovered = await eventually('a new token after the fault', () => token(entra.sidecar.tokenUrl, freshResource('recovered')), (a) => a.status === 200);
      assert.equal(recovered.body['client_id'], app.clientId);
      await eventually('the failed resource after the fault', () => token(entra.sidecar.tokenUrl, failedResource), (a) => a.status === 200);
      assert.equal(entra.sidecar.exitCode(), undefined, 'the sidecar is still running');
      const health = await fetch(`${entra.sidecar.healthUrl}/healthz`);
      assert.equal(health.status, 200);
      await health.text();
    });
  }

  it('a response dripping one byte a second is cut at the deadline: every waiting caller gets a clear 503, cached tokens flow', async () => {
    upstream.authority.setFault({ dripIntervalMs: 1000 });
    try {
      const resource = freshResource('drip');
      const waiting = Array.from({ length: 5 }, () => token(entra.sidecar.tokenUrl, resource));
      const cached = await token(entra.sidecar.tokenUrl, cachedResource);
      assert.equal(cached.body['access_token'], cachedToken);
      for (const answer of await Promise.all(waiting)) {
        assert.equal(answer.status, 503, JSON.stringify(answer.body));
        assert.match(answer.body['error_description'] ?? '', /^Entra ID did not answer within 10 s for identity "app" and no valid cached token exists; retry later$/);
        assert.ok(Number(answer.retryAfter) >= 1);
      }
      assert.equal(upstream.authority.calls({ endpoint: 'token', clientId: app.clientId }).filter((c) => c.scope === `${resource}/.default`).length, 1);
    } finally {
      upstream.authority.setFault(undefined);
    }
  });

  it('obeys Retry-After: 100 requests for an uncached resource during a 30 s throttle make one upstream call', async () => {
    upstream.authority.setFault({ status: 429, retryAfterSeconds: 30 });
    try {
      const resource = freshResource('throttled');
      for (let i = 0; i < 100; i++) {
        const answer = await token(entra.sidecar.tokenUrl, resource);
        assert.equal(answer.status, 503);
        assert.ok(Number(answer.retryAfter) >= 1 && Number(answer.retryAfter) <= 30, `Retry-After ${answer.retryAfter}`);
      }
      assert.equal(upstream.authority.tokenCalls(app.clientId, `${resource}/.default`), 1);
    } finally {
      upstream.authority.setFault(undefined);
    }
  });

  it('an already expired token from upstream is neither served nor cached, and starts no refresh loop', async () => {
    upstream.authority.setTokenLifetime(-60);
    try {
      const resource = freshResource('expired');
      const answer = await token(entra.sidecar.tokenUrl, resource);
      assert.equal(answer.status, 503, JSON.stringify(answer.body));
      assert.match(answer.body['error_description'] ?? '', /expired \d+ s ago, inside the 300 s refresh margin; it is neither cached nor served/);
      const started = Date.now();
      for (let i = 0; i < 20; i++) assert.equal((await token(entra.sidecar.tokenUrl, resource)).status, 503);
      // Under traffic, retries follow the backoff (however long the 20 requests took)...
      const calls = (): number => upstream.authority.tokenCalls(app.clientId, `${resource}/.default`);
      const afterTraffic = calls();
      assert.ok(afterTraffic <= maxFailedCallsWithin(Date.now() - started), `${afterTraffic} calls`);
      // ...and with no traffic nothing happens at all (the old loop made about 24 calls a second).
      await new Promise((resolve) => setTimeout(resolve, 2000));
      assert.equal(calls(), afterTraffic);
      const metrics = await (await fetch(`${entra.sidecar.metricsUrl}/metrics`)).text();
      assert.match(metrics, /^mi_anywhere_upstream_unusable_tokens_total\{identity="app"\} [1-9]/m);
    } finally {
      upstream.authority.setTokenLifetime(3600);
    }
  });

  it('counted every fault in its metrics and logged no secret', async () => {
    const metrics = await (await fetch(`${entra.sidecar.metricsUrl}/metrics`)).text();
    for (const outcome of ['server_error', 'throttled', 'network_error']) {
      const line = metrics.split('\n').find((l) => l.startsWith('mi_anywhere_upstream_requests_total') && l.includes(`outcome="${outcome}"`) && l.includes('identity="app"'));
      assert.ok(line !== undefined && Number(line.split(' ').pop()) > 0, `no ${outcome} counted: ${line}`);
    }
    assert.ok(!entra.sidecar.logs().includes('reliability-client-secret-1'));
    assert.ok(!entra.sidecar.logs().includes(cachedToken));
  });
});
