/**
 * Benchmark 3: the cold path. N requests for one identity and one resource the sidecar has never served, all sent
 * at once, while the test authority answers token requests after 50 ms. Single-flight must turn them into exactly
 * one upstream call, and every caller must be answered within upstream latency + 5 ms (p99). Each round uses a
 * new resource, so every round is cold without restarting the sidecar; discovery was done by the sidecar's
 * warm-up (only the token endpoint is delayed).
 */
import { request } from 'node:http';
import type { AuthorityHost } from '../lib/authority.ts';
import type { Programs } from '../lib/programs.ts';
import { imdsRequest } from '../lib/sidecar.ts';
import { percentileOfSorted } from '../lib/stats.ts';
import { startEntraSidecar } from './entra.ts';

export const UPSTREAM_LATENCY_MS = 50;

export interface ColdRound {
  readonly resource: string;
  readonly upstreamCalls: number;
  readonly failures: number;
  readonly latenciesMs: readonly number[];
}

export interface ColdResult {
  readonly concurrency: number;
  readonly upstreamLatencyMs: number;
  readonly rounds: readonly ColdRound[];
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface ColdOptions {
  readonly programs: Programs;
  readonly nodeFlags: readonly string[];
  readonly authority: AuthorityHost;
  readonly quick: boolean;
  readonly log: (line: string) => void;
}

/** One GET on its own connection (as N separate app processes would), timed from send to the last byte. */
function timedGet(url: string, headers: Readonly<Record<string, string>>): Promise<{ status: number; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const req = request(url, { headers: { ...headers }, agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, ms: performance.now() - started }));
    req.end();
  });
}

export async function runCold(options: ColdOptions): Promise<ColdResult> {
  const concurrency = options.quick ? 20 : 100;
  const roundCount = options.quick ? 2 : 5;
  const sidecar = await startEntraSidecar({ programs: options.programs, nodeFlags: options.nodeFlags, authority: options.authority, name: 'sidecar-entra-cold' });
  try {
    await options.authority.setFault({ scope: 'token', latencyMs: UPSTREAM_LATENCY_MS });
    const rounds: ColdRound[] = [];
    const runId = Date.now().toString(36);
    for (let r = 0; r < roundCount; r++) {
      const resource = `https://cold-${runId}-${r}.vault.azure.net`;
      const req = imdsRequest(resource);
      const scope = `${resource}/.default`;
      const before = await options.authority.calls({ endpoint: 'token', scope });
      const answers = await Promise.all(Array.from({ length: concurrency }, () => timedGet(sidecar.baseUrl + req.path, req.headers)));
      const upstreamCalls = (await options.authority.calls({ endpoint: 'token', scope })) - before;
      const round: ColdRound = {
        resource,
        upstreamCalls,
        failures: answers.filter((a) => a.status !== 200).length,
        latenciesMs: answers.map((a) => a.ms),
      };
      rounds.push(round);
      const sorted = [...round.latenciesMs].sort((a, b) => a - b);
      options.log(`  cold round ${r + 1}: ${upstreamCalls} upstream call(s), p99 ${percentileOfSorted(sorted, 99).toFixed(1)} ms, failures ${round.failures}`);
    }
    const all = rounds.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
    return {
      concurrency,
      upstreamLatencyMs: UPSTREAM_LATENCY_MS,
      rounds,
      p50Ms: percentileOfSorted(all, 50),
      p99Ms: percentileOfSorted(all, 99),
      maxMs: all.at(-1) ?? Number.NaN,
    };
  } finally {
    await options.authority.setFault(undefined);
    await sidecar.server.stop();
  }
}
