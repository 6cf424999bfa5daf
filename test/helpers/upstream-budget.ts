/**
 * The sidecar's upstream budget as seen from the authority's call log (docs/security.md, "Upstream budget"): how many
 * failed calls a run of failures may hold for the time it spans if the sidecar keeps its backoff, and a checker over
 * a whole log (per app and resource, and the global rate). Used by the fault soak and the upstream-fault tests; the
 * checker is itself tested in test/soak/soak-quick.test.ts.
 */
import { DEFAULT_CACHE_POLICY } from '../../sidecar/token/token-cache-policy.ts';
import type { CallRecord } from '../authority/authority.ts';

/**
 * Most failed calls a run of failures spanning `spanMs` can hold if the sidecar keeps its backoff: the k-th retry
 * comes at least half of min(initial * 2^(k-1), max) after the previous one ("equal jitter"), less 100 ms per gap
 * for the distance between the sidecar's clock and the authority's records.
 */
export function maxFailedCallsWithin(spanMs: number): number {
  const { backoffInitialMs, backoffMaxMs } = DEFAULT_CACHE_POLICY;
  let calls = 1;
  let elapsed = 0;
  for (let k = 1; ; k++) {
    elapsed += Math.max(0, Math.min(backoffMaxMs, backoffInitialMs * 2 ** (k - 1)) / 2 - 100);
    if (elapsed > spanMs) return calls;
    calls += 1;
  }
}

export interface BudgetReport {
  readonly tokenCalls: number;
  readonly globalBound: number;
  readonly keys: number;
  readonly violations: string[];
}

/** Checks the authority's token-call log against the budget (see module doc). */
export function checkBudget(calls: readonly CallRecord[], durationMs: number): BudgetReport {
  const byKey = new Map<string, CallRecord[]>();
  for (const call of calls) {
    const key = `${call.clientId ?? '?'} ${call.scope ?? '?'}`;
    const list = byKey.get(key) ?? [];
    list.push(call);
    byKey.set(key, list);
  }
  const violations: string[] = [];
  for (const [key, list] of byKey) {
    let run: CallRecord[] = [];
    const closeRun = (): void => {
      if (run.length === 0) return;
      const span = run.at(-1)!.atMs - run[0]!.atMs;
      const bound = maxFailedCallsWithin(span);
      if (run.length > bound) violations.push(`${key}: ${run.length} failed calls within ${span} ms (backoff allows ${bound})`);
      run = [];
    };
    for (const call of list) {
      if (call.status === 200) closeRun();
      // A 400/401 is a rejection (wrong credential): it is backed off the same way.
      else run.push(call);
    }
    closeRun();
  }
  const globalBound = Math.ceil(DEFAULT_CACHE_POLICY.maxUpstreamPerSecond * (durationMs / 1000 + 1));
  if (calls.length > globalBound) violations.push(`${calls.length} token calls in ${durationMs} ms (rate budget ${globalBound})`);
  return { tokenCalls: calls.length, globalBound, keys: byKey.size, violations };
}

