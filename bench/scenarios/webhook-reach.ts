/**
 * Benchmark: what the webhook costs pods that did NOT opt in (docs/webhook.md "Reach and latency"). On a real
 * kube-apiserver (test/helpers/kube.ts), a plain pod (no label, no annotation) is created again and again in a
 * namespace without `mi-anywhere.io/injection=enabled`, and each create is timed end to end (HTTPS request to
 * 201), under five registrations:
 *
 *   none                  no MutatingWebhookConfiguration at all (the reference)
 *   scoped, healthy       the chart's registration with its defaults, the real webhook (`webhook/main.ts`) answering
 *   unscoped, healthy     the same with `webhook.annotationNamespaceSelector=null` (every namespace)
 *   scoped, black-holed   the chart's defaults, pointed at a TCP listener that accepts and never answers
 *   unscoped, black-holed the same, unscoped: every pod creation waits for `timeoutSeconds`, then `Ignore`
 *
 * The registration is `helm template` of the chart (test/helpers/webhook-reach.ts), switched between cases and
 * proven in force by probe pods before timing. Measurements only: nothing here asserts a duration.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ANNOTATIONS, INJECT_KEY } from '../../sidecar/contract.ts';
import { startKubeApiServer, type KubeCluster } from '../../test/helpers/kube.ts';
import {
  chartWebhookConfiguration,
  INJECTION_NAMESPACE_LABEL,
  loopbackServingCertificate,
  startBlackHole,
  type BlackHole,
  type Json,
} from '../../test/helpers/webhook-reach.ts';
import { freePort, scratchDir, spawnServer, type Server } from '../lib/processes.ts';
import type { Programs } from '../lib/programs.ts';
import { median, percentileOfSorted } from '../lib/stats.ts';
import { loopbackWebhookListeners } from '../../test/helpers/webhook-env.ts';

export interface ReachOptions {
  readonly root: string;
  readonly programs: Programs;
  readonly nodeFlags: readonly string[];
  readonly quick: boolean;
  readonly log: (line: string) => void;
}

export type Registration = 'none' | 'scoped' | 'unscoped';
export type WebhookState = 'absent' | 'healthy' | 'black-holed';

export interface ReachCase {
  readonly registration: Registration;
  readonly webhook: WebhookState;
  readonly samples: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly maxMs: number;
  /** Median minus the median with no registration. */
  readonly addedMs: number;
  /** Admission requests the webhook (or the black hole) received during the timed creates. */
  readonly webhookCalls: number;
}

export interface ReachResult {
  readonly kubernetesVersion: string;
  readonly timeoutSeconds: number;
  readonly cases: readonly ReachCase[];
}

const RELEASE_NS = 'mi-anywhere-system';
/** Where the timed pods are created: no injection label. */
const MEASURED_NS = 'bench-plain';
/** Labelled for annotation-only opt-in: used by the probes that show a scoped registration is in force. */
const ENABLED_NS = 'bench-enabled';
const MWC_NAME = 'mi-anywhere-bench-reach';
const MWC_PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';

function plainPod(name: string, extra: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): Json {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, ...extra },
    spec: { automountServiceAccountToken: false, containers: [{ name: 'app', image: 'registry.example/app:1.0' }] },
  };
}

const ANNOTATED = { annotations: { [INJECT_KEY]: 'true', [ANNOTATIONS.identities]: 'x' } };

interface Context {
  readonly cluster: KubeCluster;
  readonly blackHole: BlackHole;
  readonly webhook: Server;
  readonly webhookUrl: string;
  readonly webhookCaPem: string;
  /** Admission requests the real webhook answered so far (its own metrics). */
  readonly webhookReviews: () => Promise<number>;
  counter: number;
}

async function createPod(context: Context, namespace: string, extra: Parameters<typeof plainPod>[1] = {}, dryRun = false): Promise<Json> {
  context.counter += 1;
  const res = await context.cluster.request('POST', `/api/v1/namespaces/${namespace}/pods${dryRun ? '?dryRun=All' : ''}`, plainPod(`p${context.counter}`, extra));
  if (res.status !== 201) throw new Error(`pod create answered ${res.status}: ${JSON.stringify(res.json).slice(0, 300)}`);
  return res.json;
}

/** Polls `check` until true (the API server applies webhook configurations asynchronously). */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + 120_000;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`the API server never applied: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Replaces the registration and returns once probes show that exactly it is in force. */
async function register(context: Context, registration: Registration, webhook: WebhookState): Promise<number> {
  await context.cluster.request('DELETE', `${MWC_PATH}/${MWC_NAME}`);
  const reachesWebhook = async (namespace: string, extra: Parameters<typeof plainPod>[1] = {}): Promise<boolean> => {
    const before = webhook === 'black-holed' ? context.blackHole.connections() : await context.webhookReviews();
    await createPod(context, namespace, extra, true);
    return (webhook === 'black-holed' ? context.blackHole.connections() : await context.webhookReviews()) > before;
  };
  if (registration === 'none') {
    // Gone when an annotated pod in the enabled namespace (matched by every registration) reaches nobody.
    await until('no registration', async () => !(await reachesWebhook(ENABLED_NS, ANNOTATED)));
    return 0;
  }
  const url = webhook === 'black-holed' ? `https://127.0.0.1:${context.blackHole.port}/mutate` : context.webhookUrl;
  const mwc = chartWebhookConfiguration({ url, caPem: context.webhookCaPem, scoped: registration === 'scoped', releaseNamespace: RELEASE_NS, name: MWC_NAME }) as {
    webhooks: Array<{ timeoutSeconds: number }>;
  };
  const created = await context.cluster.request('POST', MWC_PATH, mwc);
  if (created.status !== 201) throw new Error(`registering the chart's webhook configuration: ${JSON.stringify(created.json).slice(0, 300)}`);
  await until(`${registration} ${webhook}: in force`, () => reachesWebhook(ENABLED_NS, ANNOTATED));
  // Scoped: annotation-only pods outside enabled namespaces must not reach it (one more probe, cheap when true).
  if (registration === 'scoped') await until(`${registration} ${webhook}: scope`, async () => !(await reachesWebhook(MEASURED_NS, ANNOTATED)));
  return Math.max(...mwc.webhooks.map((w) => w.timeoutSeconds));
}

async function measure(context: Context, registration: Registration, webhook: WebhookState, samples: number, warmup: number): Promise<Omit<ReachCase, 'addedMs'>> {
  for (let i = 0; i < warmup; i++) await createPod(context, MEASURED_NS);
  const callsBefore = webhook === 'black-holed' ? context.blackHole.connections() : await context.webhookReviews();
  const durations: number[] = [];
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    await createPod(context, MEASURED_NS);
    durations.push(performance.now() - started);
  }
  const callsAfter = webhook === 'black-holed' ? context.blackHole.connections() : await context.webhookReviews();
  const sorted = Float64Array.from(durations).sort();
  return {
    registration,
    webhook,
    samples,
    p50Ms: median(durations),
    p90Ms: percentileOfSorted(sorted, 90),
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
    webhookCalls: callsAfter - callsBefore,
  };
}

/** The real webhook, as the chart runs it (certificate files, info logs), on loopback. */
async function startWebhook(options: ReachOptions, certPem: string, keyPem: string): Promise<{ server: Server; url: string; metricsUrl: string }> {
  const dir = scratchDir('reach');
  writeFileSync(join(dir, 'tls.crt'), certPem);
  writeFileSync(join(dir, 'tls.key'), keyPem);
  const [port, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const server = await spawnServer({
    name: 'webhook',
    command: process.execPath,
    args: [...options.nodeFlags, options.programs.webhookMain],
    env: {
      ...loopbackWebhookListeners({ port, healthPort, metricsPort }),
      MI_ANYWHERE_WEBHOOK_CERT_MODE: 'files',
      MI_ANYWHERE_WEBHOOK_TLS_CERT_FILE: join(dir, 'tls.crt'),
      MI_ANYWHERE_WEBHOOK_TLS_KEY_FILE: join(dir, 'tls.key'),
      MI_ANYWHERE_WEBHOOK_NATIVE_SIDECAR: 'always',
      MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'registry.example/mi-anywhere:bench',
      MI_ANYWHERE_WEBHOOK_LOG_LEVEL: 'info',
    },
    readyUrl: `http://127.0.0.1:${healthPort}/readyz`,
    logFile: join(dir, 'webhook.log'),
    timeoutMs: 60_000,
  });
  return { server, url: `https://127.0.0.1:${port}/mutate`, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
}

/** Sum of the webhook's admission request counter (any outcome) from its Prometheus text. */
export function admissionRequests(metrics: string): number {
  let total = 0;
  for (const line of metrics.split('\n')) {
    const match = /^mi_anywhere_webhook_admission_requests_total(?:\{[^}]*\})? (\d+(?:\.\d+)?(?:e\+?\d+)?)$/.exec(line);
    if (match) total += Number(match[1]);
  }
  return total;
}

export async function runWebhookReach(options: ReachOptions): Promise<ReachResult> {
  const cluster = await startKubeApiServer();
  const blackHole = await startBlackHole();
  let webhook: Server | undefined;
  try {
    await cluster.createNamespace(RELEASE_NS);
    await cluster.createNamespace(MEASURED_NS);
    await cluster.createNamespace(ENABLED_NS, { ...INJECTION_NAMESPACE_LABEL });
    const pki = await loopbackServingCertificate();
    const started = await startWebhook(options, pki.certPem, pki.keyPem);
    webhook = started.server;
    const context: Context = {
      cluster,
      blackHole,
      webhook,
      webhookUrl: started.url,
      webhookCaPem: pki.caPem,
      webhookReviews: async () => admissionRequests(await (await fetch(started.metricsUrl)).text()),
      counter: 0,
    };
    const n = options.quick ? 5 : 40;
    // Warm-up creates first (connection set-up, the API server's caches), the first case most of all.
    const plan: Array<[Registration, WebhookState, number, number]> = [
      ['none', 'absent', n, options.quick ? 5 : 20],
      ['scoped', 'healthy', n, 5],
      ['unscoped', 'healthy', n, 5],
      ['scoped', 'black-holed', n, 5],
      // Each create waits the full timeout: few samples say it all.
      ['unscoped', 'black-holed', options.quick ? 1 : 4, 0],
    ];
    const cases: Array<Omit<ReachCase, 'addedMs'>> = [];
    let timeoutSeconds = 0;
    for (const [registration, state, samples, warmup] of plan) {
      timeoutSeconds = Math.max(timeoutSeconds, await register(context, registration, state));
      const result = await measure(context, registration, state, samples, warmup);
      options.log(`  reach ${registration}/${state}: p50 ${result.p50Ms.toFixed(1)} ms, p90 ${result.p90Ms.toFixed(1)} ms, max ${result.maxMs.toFixed(1)} ms, webhook calls ${result.webhookCalls}/${samples}`);
      cases.push(result);
    }
    const reference = cases[0]?.p50Ms ?? Number.NaN;
    return { kubernetesVersion: cluster.version, timeoutSeconds, cases: cases.map((c) => ({ ...c, addedMs: c.p50Ms - reference })) };
  } finally {
    await webhook?.stop();
    await blackHole.stop();
    await cluster.stop();
  }
}

export const REACH_BEGIN = '<!-- BEGIN GENERATED: npm run bench -- --only reach (bench/scenarios/webhook-reach.ts) -->';
export const REACH_END = '<!-- END GENERATED: reach -->';

/** The figures as the table docs/webhook.md "Reach and latency" shows. */
export function renderReach(result: ReachResult, context: { date: string; machine: string }): string {
  const rows = result.cases.map((c) => {
    const name = c.registration === 'none' ? 'no webhook registered' : `${c.registration}, webhook ${c.webhook}`;
    const added = c.registration === 'none' ? '—' : `${c.addedMs >= 0 ? '+' : ''}${c.addedMs.toFixed(1)} ms`;
    return `| ${name} | ${c.samples} | ${c.p50Ms.toFixed(1)} ms | ${c.p90Ms.toFixed(1)} ms | ${c.maxMs.toFixed(1)} ms | ${added} | ${c.webhookCalls} |`;
  });
  return [
    REACH_BEGIN,
    `Measured ${context.date} on ${context.machine}, kube-apiserver ${result.kubernetesVersion} with etcd on loopback, chart`,
    `defaults (\`timeoutSeconds: ${result.timeoutSeconds}\`); a plain pod created in a namespace without the injection label.`,
    '',
    '| registration | creates | p50 | p90 | max | added (p50) | webhook calls |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    REACH_END,
  ].join('\n');
}

/** Replaces the generated block in `file` (or appends it when absent). */
export function writeReachSection(file: string, block: string): void {
  const text = readFileSync(file, 'utf8');
  const start = text.indexOf(REACH_BEGIN);
  const end = text.indexOf(REACH_END);
  const next = start >= 0 && end > start ? `${text.slice(0, start)}${block}${text.slice(end + REACH_END.length)}` : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, next);
}
