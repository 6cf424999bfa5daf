/**
 * The fault soak in its quick form inside `npm test`: `node test/soak/soak.ts --quick` — one cycle of every fault mode
 * of the test authority (429 + Retry-After, 500, slow, dripping body, healthy) under mixed traffic on every dialect,
 * with a rotation Entra accepts and one it rejects — must hold the soak's invariants, all counted: no failed request
 * for a warm resource, no unexpected failure, upstream calls within the budget, the failing rotation bridged, every
 * dialect served, memory flat. The full 10-minute run is `npm run soak`. The budget checker itself is tested below,
 * so the soak's "within budget" can fail.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { checkBudget, maxFailedCallsWithin } from '../helpers/upstream-budget.ts';
import type { CallRecord } from '../authority/authority.ts';

interface Summary {
  readonly unexpectedFailures?: number;
  readonly cycles?: number;
  readonly modes?: string[];
  readonly warmOk?: number;
  readonly rotations?: number;
  readonly bridgedRotation?: boolean;
  readonly answeredWithoutUpstreamCall?: number;
  readonly budget?: { readonly tokenCalls: number; readonly violations: number };
  readonly byDialect?: Record<string, number>;
}

describe('fault soak (quick)', () => {
  it('holds every invariant through one cycle of 429 / 500 / slow / dripping / healthy', async (t) => {
    const child = spawn(process.execPath, [join(import.meta.dirname, 'soak.ts'), '--quick'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    // Bounded: the run takes about 20 s plus start-up; a stuck run is killed and fails.
    const killer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    clearTimeout(killer);
    for (const line of output.split('\n').filter((l) => /^(soak summary|memory:|over budget:|unexpected:)/.test(l))) t.diagnostic(line);
    assert.equal(code, 0, output);
    const summary = JSON.parse(/^soak summary (.*)$/m.exec(output)?.[1] ?? '{}') as Summary;
    assert.equal(summary.unexpectedFailures, 0);
    assert.deepEqual(summary.modes, ['429 + Retry-After 1', '500', 'slow (1.5 s)', 'dripping (1 byte/s)', 'healthy']);
    assert.ok((summary.warmOk ?? 0) > 0);
    assert.equal(summary.budget?.violations, 0);
    assert.ok((summary.budget?.tokenCalls ?? 0) > 0, 'the faults reached the authority');
    assert.ok((summary.answeredWithoutUpstreamCall ?? 0) > 0, 'remembered failures answered callers without an upstream call');
    assert.equal(summary.bridgedRotation, true);
    assert.ok((summary.rotations ?? 0) >= 3);
    assert.ok(Object.values(summary.byDialect ?? {}).every((n) => n > 0), JSON.stringify(summary.byDialect));
    assert.match(output, /^memory: RSS .* flat$/m);
  });
});

describe('soak budget checker', () => {
  const call = (atMs: number, status: number, scope = 'https://a/.default'): CallRecord => ({ seq: 0, atMs, endpoint: 'token', method: 'POST', path: '/t', clientId: 'c', scope, status });
  it('allows failures spaced by the backoff, and a fresh run after a success', () => {
    const calls = [call(0, 503), call(600, 503), call(1700, 503), call(3800, 503), call(4000, 200), call(4100, 503), call(4700, 503)];
    assert.deepEqual(checkBudget(calls, 10_000).violations, []);
  });
  it('flags a key hammered faster than the backoff, and a run over the global rate', () => {
    const hammered = Array.from({ length: 10 }, (_, i) => call(i * 100, 429));
    assert.equal(checkBudget(hammered, 10_000).violations.length, 1);
    const flood = Array.from({ length: 100 }, (_, i) => call(i, 200, `https://r${i}/.default`));
    assert.match(checkBudget(flood, 1_000).violations.join('\n'), /rate budget 40/);
  });
  it('maxFailedCallsWithin follows the equal-jitter backoff', () => {
    assert.deepEqual([0, 399, 400, 1300, 3200, 60_000].map(maxFailedCallsWithin), [1, 1, 2, 3, 4, 7]);
  });
});
