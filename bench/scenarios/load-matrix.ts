/**
 * Side-by-side load runs: for each connection count, every target is measured in turn, round after round, so
 * noise from the shared machine (other builds) spreads over all targets instead of landing on one. Each figure
 * is the median over rounds. Every target is warmed up first (JIT, keep-alive sockets, first-request caches).
 */
import { runLoad, type LoadResult } from '../lib/load.ts';
import { cpuMicrosOf } from '../lib/processes.ts';
import { median } from '../lib/stats.ts';

export interface Target {
  readonly name: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Server process, to measure its CPU time per answered request. */
  readonly pid?: number;
}

export interface MatrixCell {
  readonly target: string;
  readonly connections: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly failures: number;
  /** Best round's throughput: on a shared machine the least disturbed round. */
  readonly bestRps: number;
  /**
   * Server CPU time (user + system) per answered request, median over rounds. Unlike throughput this barely
   * moves with load from other processes on the machine, so it is the figure A/B decisions rest on.
   */
  readonly cpuUsPerRequest: number;
  readonly rounds: readonly LoadResult[];
}

export interface MatrixOptions {
  readonly targets: readonly Target[];
  readonly connections: readonly number[];
  readonly rounds: number;
  readonly secondsPerRun: number;
  readonly warmupSeconds: number;
  readonly onResult?: (target: string, result: LoadResult) => void;
  /** Hooks around each measured run (e.g. to count upstream calls per target). */
  readonly beforeRun?: (target: string) => Promise<void>;
  readonly afterRun?: (target: string, result: LoadResult) => Promise<void>;
}

export async function runMatrix(options: MatrixOptions): Promise<MatrixCell[]> {
  for (const target of options.targets) {
    await runLoad({ url: target.url, headers: target.headers, connections: 10, durationSeconds: options.warmupSeconds });
  }
  const cells: MatrixCell[] = [];
  for (const connections of options.connections) {
    const perTarget = new Map<string, LoadResult[]>(options.targets.map((t) => [t.name, []]));
    const cpuPerTarget = new Map<string, number[]>(options.targets.map((t) => [t.name, []]));
    for (let round = 0; round < options.rounds; round++) {
      // Alternate the order each round so no target always runs right after the same neighbour.
      const order = round % 2 === 0 ? options.targets : [...options.targets].reverse();
      for (const target of order) {
        await options.beforeRun?.(target.name);
        const cpuBefore = target.pid !== undefined ? cpuMicrosOf(target.pid) : Number.NaN;
        const result = await runLoad({
          url: target.url,
          headers: target.headers,
          connections,
          durationSeconds: options.secondsPerRun,
        });
        const cpuAfter = target.pid !== undefined ? cpuMicrosOf(target.pid) : Number.NaN;
        cpuPerTarget.get(target.name)?.push(result.requests > 0 ? (cpuAfter - cpuBefore) / result.requests : Number.NaN);
        await options.afterRun?.(target.name, result);
        perTarget.get(target.name)?.push(result);
        options.onResult?.(target.name, result);
      }
    }
    for (const target of options.targets) {
      const rounds = perTarget.get(target.name) ?? [];
      cells.push({
        target: target.name,
        connections,
        rps: median(rounds.map((r) => r.rps)),
        p50Ms: median(rounds.map((r) => r.p50Ms)),
        p99Ms: median(rounds.map((r) => r.p99Ms)),
        failures: rounds.reduce((sum, r) => sum + r.failures, 0),
        bestRps: Math.max(...rounds.map((r) => r.rps)),
        cpuUsPerRequest: median(cpuPerTarget.get(target.name) ?? []),
        rounds,
      });
    }
  }
  return cells;
}
