/**
 * One bounded load run with autocannon (the load generator from the ecosystem the issue names), in this
 * process. Latency percentiles come from autocannon's per-response event (float milliseconds), because the
 * histogram in its summary has whole-millisecond resolution, too coarse for a cached token (~0.1-1 ms).
 *
 * Every run is bounded twice: by `durationSeconds` (or `amount`) and by a hard timer that stops autocannon
 * if it overruns, so a hung server cannot hang the benchmark.
 */
import autocannon from 'autocannon';
import { LatencySamples } from './stats.ts';

export interface LoadSpec {
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly method?: string;
  readonly body?: string;
  readonly connections: number;
  /** Run length; ignored when `amount` is set. */
  readonly durationSeconds: number;
  /** Stop after this many requests instead of after a duration. */
  readonly amount?: number;
  /**
   * Responses during the first milliseconds of the run are not counted (connection set-up: for TLS, 50
   * handshakes queue behind each other and would be the whole p99, while the API server keeps its connections).
   */
  readonly settleMs?: number;
}

export interface LoadResult {
  readonly connections: number;
  readonly requests: number;
  readonly seconds: number;
  /** Successful (2xx) responses per second. */
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** non-2xx responses + socket errors + timeouts: any of them makes the run's figures suspect. */
  readonly failures: number;
}

/** Per-request timeout (seconds): far above any latency we accept, so only a wedged server trips it. */
const REQUEST_TIMEOUT_SECONDS = 10;

export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const samples = new LatencySamples();
  const settleMs = spec.settleMs ?? 0;
  let ok = 0;
  return new Promise((resolve, reject) => {
    const hardLimitMs = (spec.amount !== undefined ? 60 : spec.durationSeconds + 15) * 1000;
    const instance = autocannon(
      {
        url: spec.url,
        connections: spec.connections,
        duration: spec.durationSeconds,
        ...(spec.amount !== undefined ? { amount: spec.amount } : {}),
        timeout: REQUEST_TIMEOUT_SECONDS,
        method: spec.method ?? 'GET',
        ...(spec.headers ? { headers: { ...spec.headers } } : {}),
        ...(spec.body !== undefined ? { body: spec.body } : {}),
      },
      (error, result) => {
        clearTimeout(guard);
        if (error) {
          reject(error);
          return;
        }
        const [p50, p99, max] = samples.percentiles([50, 99, 100]);
        const seconds = result.duration - settleMs / 1000;
        resolve({
          connections: spec.connections,
          requests: ok,
          seconds,
          rps: seconds > 0 ? ok / seconds : 0,
          p50Ms: p50 ?? Number.NaN,
          p99Ms: p99 ?? Number.NaN,
          maxMs: max ?? Number.NaN,
          failures: result.non2xx + result.errors + result.timeouts,
        });
      },
    );
    const guard = setTimeout(() => instance.stop(), hardLimitMs);
    const countFrom = performance.now() + settleMs;
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
      if (statusCode >= 200 && statusCode < 300 && (settleMs === 0 || performance.now() >= countFrom)) {
        ok++;
        samples.add(responseTimeMs);
      }
    });
  });
}
