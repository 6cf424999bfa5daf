/**
 * Benchmark 3: the cold path. N requests for one identity and one resource the sidecar has never served, all sent
 * at once, while the test authority answers token requests after 50 ms. Single-flight must turn them into exactly
 * one upstream call, and every caller must be answered within upstream latency + 5 ms (p99). Each round uses a
 * new resource, so every round is cold without restarting the sidecar; discovery was done by the sidecar's
 * warm-up (only the token endpoint is delayed).
 *
 * The N requests go over N connections opened (and used once, for the already cached warm-up resource) before
 * the round: the Azure SDKs keep their connections alive, and a storm of N TCP handshakes from one client process
 * costs 15-40 ms on this shared machine even against a bare node:http server, which would hide the sidecar.
 */
import { Agent, request } from 'node:http';
import type { AuthorityHost } from '../lib/authority.ts';
import type { Programs } from '../lib/programs.ts';
import { imdsRequest } from '../lib/sidecar.ts';
import { percentileOfSorted } from '../lib/stats.ts';
import { startEntraSidecar } from './entra.ts';

export const UPSTREAM_LATENCY_MS = 50;
/** The resource the sidecar fetches for its readiness in entra mode (sidecar/main.ts WARM_UP_RESOURCE). */
const WARM_UP_RESOURCE = 'https://management.azure.com/';

export interface ColdRound {
  readonly resource: string;
  readonly upstreamCalls: number;
  /** How long the sidecar's upstream call took this round, from its own metric (ms). */
  readonly upstreamCallMs: number;
  readonly failures: number;
  readonly latenciesMs: readonly number[];
  readonly p99Ms: number;
}

export interface ColdResult {
  readonly concurrency: number;
  readonly upstreamLatencyMs: number;
  readonly rounds: readonly ColdRound[];
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Per round p99 minus that round's upstream call duration: what the sidecar itself adds (worst round). */
  readonly sidecarAddedP99Ms: number;
}

/** Sum and count of the sidecar's upstream-call histogram (all label sets). */
async function upstreamHistogram(metricsUrl: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(metricsUrl)).text();
  let sum = 0;
  let count = 0;
  for (const line of text.split('\n')) {
    const match = /^mi_anywhere_upstream_request_duration_seconds_(sum|count)(?:\{[^}]*\})? ([0-9.eE+-]+)$/.exec(line);
    if (match?.[1] === 'sum') sum += Number(match[2]);
    else if (match?.[1] === 'count') count += Number(match[2]);
  }
  return { sum, count };
}

export interface ColdOptions {
  readonly programs: Programs;
  readonly nodeFlags: readonly string[];
  readonly authority: AuthorityHost;
  readonly quick: boolean;
  readonly log: (line: string) => void;
}

/** One GET, timed from send to the last byte. */
function timedGet(url: string, headers: Readonly<Record<string, string>>, agent: Agent): Promise<{ status: number; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const req = request(url, { headers: { ...headers }, agent, timeout: 10_000 }, (res) => {
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
      const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
      // The warm-up resource is cached since readiness: these open the N connections without an upstream call.
      const warm = imdsRequest(WARM_UP_RESOURCE);
      await Promise.all(Array.from({ length: concurrency }, () => timedGet(sidecar.baseUrl + warm.path, warm.headers, agent)));
      const before = await options.authority.calls({ endpoint: 'token', scope });
      const histogramBefore = await upstreamHistogram(sidecar.metricsUrl);
      const answers = await Promise.all(Array.from({ length: concurrency }, () => timedGet(sidecar.baseUrl + req.path, req.headers, agent)));
      agent.destroy();
      const upstreamCalls = (await options.authority.calls({ endpoint: 'token', scope })) - before;
      const histogramAfter = await upstreamHistogram(sidecar.metricsUrl);
      const calls = histogramAfter.count - histogramBefore.count;
      const round: ColdRound = {
        resource,
        upstreamCalls,
        upstreamCallMs: calls > 0 ? ((histogramAfter.sum - histogramBefore.sum) / calls) * 1000 : Number.NaN,
        failures: answers.filter((a) => a.status !== 200).length,
        latenciesMs: answers.map((a) => a.ms),
        p99Ms: percentileOfSorted(
          answers.map((a) => a.ms).sort((a, b) => a - b),
          99,
        ),
      };
      rounds.push(round);
      const sorted = [...round.latenciesMs].sort((a, b) => a - b);
      options.log(
        `  cold round ${r + 1}: ${upstreamCalls} upstream call(s) of ${round.upstreamCallMs.toFixed(1)} ms, p99 ${percentileOfSorted(sorted, 99).toFixed(1)} ms, failures ${round.failures}`,
      );
    }
    const all = rounds.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
    return {
      concurrency,
      upstreamLatencyMs: UPSTREAM_LATENCY_MS,
      rounds,
      p50Ms: percentileOfSorted(all, 50),
      p99Ms: percentileOfSorted(all, 99),
      maxMs: all.at(-1) ?? Number.NaN,
      sidecarAddedP99Ms: Math.max(...rounds.map((r) => r.p99Ms - r.upstreamCallMs)),
    };
  } finally {
    await options.authority.setFault(undefined);
    await sidecar.server.stop();
  }
}
