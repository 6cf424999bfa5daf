/**
 * A real Prometheus for tests: started on 127.0.0.1 with a temporary configuration that scrapes the given
 * targets every second and loads the given rule files, plus a small client for its HTTP API (instant queries,
 * label values, targets, rules). Everything lives in a temp directory removed by `stop()`.
 *
 * Test support only. Waits are bounded and event-driven (poll the API until a condition holds), never a sleep for
 * a clock.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { findTool } from './artifacts.ts';
import { freePort } from '../helpers/ports.ts';

export interface ScrapeTarget {
  readonly job: string;
  /** Base URL of the metrics listener, e.g. `http://127.0.0.1:41234` (path `/metrics` is scraped). */
  readonly url: string;
  /** Target labels, as a PodMonitor/ServiceMonitor would add them (`namespace`, `pod`). */
  readonly labels: Readonly<Record<string, string>>;
}

export interface StartPrometheusOptions {
  readonly targets: readonly ScrapeTarget[];
  readonly ruleFiles?: readonly string[];
  /** Give up on start-up after this long (default 60 s: the machine is shared). */
  readonly startTimeoutMs?: number;
}

export interface Sample {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: readonly [number, string];
}

export interface QueryAnswer {
  readonly status: 'success' | 'error';
  readonly errorType?: string;
  readonly error?: string;
  readonly data?: { readonly resultType: string; readonly result: readonly Sample[] | readonly [number, string] };
}

export interface TargetState {
  readonly labels: Readonly<Record<string, string>>;
  readonly health: 'up' | 'down' | 'unknown';
  readonly lastScrape: string;
  readonly lastError: string;
}

export interface RuleState {
  readonly name: string;
  readonly query: string;
  readonly health: string;
  readonly lastError?: string;
  readonly state?: 'inactive' | 'pending' | 'firing';
  readonly labels?: Readonly<Record<string, string>>;
  readonly lastEvaluation: string;
  readonly type: 'alerting' | 'recording';
}

export interface RunningPrometheus {
  readonly url: string;
  query(expr: string): Promise<QueryAnswer>;
  /** Values of `label` on series matching `selector` (what Grafana's `label_values(selector, label)` lists). */
  labelValues(label: string, selector?: string): Promise<string[]>;
  targets(): Promise<TargetState[]>;
  rules(): Promise<RuleState[]>;
  /** Resolves once every target was scraped successfully after `afterMs` (epoch ms). */
  waitForScrapesAfter(afterMs: number, timeoutMs?: number): Promise<void>;
  logs(): string;
  stop(): Promise<void>;
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return (await res.json()) as T;
}

export async function startPrometheus(options: StartPrometheusOptions): Promise<RunningPrometheus> {
  const binary = findTool('prometheus');
  const dir = mkdtempSync(join(tmpdir(), 'mi-anywhere-prometheus-'));
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: [...(options.ruleFiles ?? [])],
    scrape_configs: options.targets.map((t) => {
      const url = new URL(t.url);
      return { job_name: t.job, metrics_path: '/metrics', scheme: url.protocol.replace(':', ''), static_configs: [{ targets: [url.host], labels: t.labels }] };
    }),
  };
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, toYaml(config));

  let lastError: unknown;
  // The free port can be taken between probing and binding by another process: retry a few times.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      return await launch(binary, dir, configFile, port, options.startTimeoutMs ?? 60_000);
    } catch (error) {
      lastError = error;
      if (!String(error).includes('address already in use')) break;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastError;
}

async function launch(binary: string, dir: string, configFile: string, port: number, startTimeoutMs: number): Promise<RunningPrometheus> {
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    binary,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, `data-${port}`)}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));

  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (exited) throw new Error(`prometheus exited before it was ready:\n${output}`);
    try {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready within ${startTimeoutMs} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  const api = (path: string, params: Record<string, string | string[]> = {}): string => {
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) for (const value of Array.isArray(v) ? v : [v]) search.append(k, value);
    return `${url}/api/v1/${path}?${search.toString()}`;
  };

  const targets = async (): Promise<TargetState[]> =>
    (await getJson<{ data: { activeTargets: TargetState[] } }>(api('targets', { state: 'active' }))).data.activeTargets;

  return {
    url,
    query: (expr) => getJson<QueryAnswer>(api('query', { query: expr })),
    async labelValues(label, selector) {
      const answer = await getJson<{ status: string; data: string[] }>(api(`label/${encodeURIComponent(label)}/values`, selector ? { 'match[]': selector } : {}));
      return answer.data;
    },
    targets,
    async rules() {
      const answer = await getJson<{ data: { groups: Array<{ rules: RuleState[] }> } }>(api('rules'));
      return answer.data.groups.flatMap((g) => g.rules);
    },
    async waitForScrapesAfter(afterMs, timeoutMs = 60_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const states = await targets();
        if (states.length > 0 && states.every((t) => t.health === 'up' && Date.parse(t.lastScrape) > afterMs)) return;
        if (Date.now() > end) throw new Error(`targets not scraped within ${timeoutMs} ms: ${JSON.stringify(states)}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
    logs: () => output,
    stop,
  };
}
