/**
 * Benchmark 5: what one sidecar costs a pod, and what the webhook costs the cluster. Start-up to ready (spawn ->
 * first 200 from the readiness endpoint, polled every 5 ms), resident memory idle and peak under load, with the
 * Node flags and the compile cache of the image, next to a bare node:http process started and loaded the same way
 * in the same run (interleaved: sidecar dev, bare, sidecar entra, webhook, round after round).
 *
 * - dev mode: the built-in dev issuer, no upstream;
 * - entra mode with one identity: ready means the first token is cached (the sidecar's warm-up token from the test
 *   authority); the time the sidecar spent waiting for the authority is read from its own upstream histogram and
 *   reported apart, and subtracted for the comparison with the bare process;
 * - the webhook as the chart runs it with mounted certificate files and a fixed sidecar form (no API server).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCertificateAuthority, issueServerCertificate } from '../../test/authority/pki.ts';
import type { AuthorityHost } from '../lib/authority.ts';
import { runLoad } from '../lib/load.ts';
import { freePort, scratchDir, spawnServer, type Server } from '../lib/processes.ts';
import { warmCompileCache, type Programs } from '../lib/programs.ts';
import { imdsRequest, startSidecarProcess } from '../lib/sidecar.ts';
import { median } from '../lib/stats.ts';
import { startEntraSidecar } from './entra.ts';
import { TYPICAL_POD_FIXTURE } from './webhook.ts';
import { loopbackWebhookListeners } from '../../test/helpers/webhook-env.ts';

export interface FootprintFigures {
  readonly startupMs: number;
  readonly startupRuns: readonly number[];
  readonly idleRssBytes: number;
  readonly loadedRssBytes: number;
}

export interface EntraFootprintFigures extends FootprintFigures {
  /** Start-up to ready minus the time spent waiting for the authority (median of the per-run differences). */
  readonly startupWithoutUpstreamMs: number;
  /** The first token's upstream time, as the sidecar measured it (median). */
  readonly firstTokenUpstreamMs: number;
}

export interface WebhookFootprintFigures extends FootprintFigures {
  readonly nativeSidecar: 'always';
  readonly certMode: 'files';
}

export interface FootprintResult {
  /** Dev mode. */
  readonly sidecar: FootprintFigures;
  readonly bare: FootprintFigures;
  /** Entra mode with one identity; a string says why it was not measured. */
  readonly entra: EntraFootprintFigures | string;
  readonly webhook: WebhookFootprintFigures | string;
  /** The runs used a compile cache warmed as the image build warms it. */
  readonly compileCache: boolean;
}

export interface FootprintOptions {
  readonly root: string;
  readonly programs: Programs;
  readonly nodeFlags: readonly string[];
  readonly compileCache: boolean;
  readonly bodyFile: string;
  readonly authority: AuthorityHost | undefined;
  readonly authorityError?: string;
  readonly quick: boolean;
  readonly log: (line: string) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Peak RSS of a process while `work` runs, sampled every 50 ms. */
export async function peakRssDuring(server: Server, work: () => Promise<unknown>): Promise<number> {
  let peak = server.rssBytes();
  const timer = setInterval(() => {
    peak = Math.max(peak, server.rssBytes());
  }, 50);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return Math.max(peak, server.rssBytes());
}

interface LoadTarget {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly method?: 'GET' | 'POST';
  readonly body?: string;
}

/**
 * Idle RSS: after a few requests (so first-request code is loaded, as in a pod that has served its app once)
 * and a settle period. Under load: peak while 50 connections hammer it.
 */
export async function measureMemory(server: Server, target: LoadTarget, options: { readonly quick: boolean }): Promise<{ idle: number; loaded: number }> {
  await runLoad({ ...target, connections: 1, amount: 20, durationSeconds: 10 });
  await sleep(options.quick ? 200 : 2000);
  const idle = server.rssBytes();
  const loaded = await peakRssDuring(server, () => runLoad({ ...target, connections: 50, durationSeconds: options.quick ? 0.5 : 5 }));
  return { idle, loaded };
}

/** Sum of the sidecar's upstream-call histogram (all identities and outcomes), in milliseconds. */
async function upstreamMs(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^mi_anywhere_upstream_request_duration_seconds_sum(?:\{[^}]*\})? ([0-9.eE+-]+)$/.exec(line);
    if (match) sum += Number(match[1]);
  }
  return sum * 1000;
}

interface WebhookSetup {
  readonly dir: string;
  readonly review: string;
}

async function webhookSetup(root: string): Promise<WebhookSetup> {
  const dir = scratchDir('webhook-footprint');
  const ca = await createTestCertificateAuthority('mi-anywhere bench footprint CA');
  const serving = await issueServerCertificate(ca, ['127.0.0.1', 'localhost']);
  writeFileSync(join(dir, 'tls.crt'), serving.certPem);
  writeFileSync(join(dir, 'tls.key'), serving.keyPem);
  return { dir, review: readFileSync(join(root, TYPICAL_POD_FIXTURE), 'utf8') };
}

async function startWebhook(options: FootprintOptions, setup: WebhookSetup): Promise<{ server: Server; url: string }> {
  const [port, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const server = await spawnServer({
    name: 'webhook',
    command: process.execPath,
    args: [...options.nodeFlags, options.programs.webhookMain],
    env: {
      ...loopbackWebhookListeners({ port, healthPort, metricsPort }),
      MI_ANYWHERE_WEBHOOK_CERT_MODE: 'files',
      MI_ANYWHERE_WEBHOOK_TLS_CERT_FILE: join(setup.dir, 'tls.crt'),
      MI_ANYWHERE_WEBHOOK_TLS_KEY_FILE: join(setup.dir, 'tls.key'),
      MI_ANYWHERE_WEBHOOK_NATIVE_SIDECAR: 'always',
      MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'registry.example/mi-anywhere:bench',
      MI_ANYWHERE_WEBHOOK_LOG_LEVEL: 'info',
    },
    readyUrl: `http://127.0.0.1:${healthPort}/readyz`,
    logFile: join(scratchDir('webhook-log'), 'webhook.log'),
    timeoutMs: 30_000,
  });
  return { server, url: `https://127.0.0.1:${port}/mutate` };
}

function figures(runs: readonly number[], memory: { idle: number; loaded: number }): FootprintFigures {
  return { startupMs: median(runs), startupRuns: runs, idleRssBytes: memory.idle, loadedRssBytes: memory.loaded };
}

const NOT_MEASURED = { idle: Number.NaN, loaded: Number.NaN };

interface Samples {
  readonly dev: number[];
  readonly bare: number[];
  readonly entra: number[];
  readonly entraUpstream: number[];
  readonly webhook: number[];
  devMemory: { idle: number; loaded: number };
  bareMemory: { idle: number; loaded: number };
  entraMemory: { idle: number; loaded: number };
  webhookMemory: { idle: number; loaded: number };
  entraError: string | undefined;
  webhookError: string | undefined;
}

async function roundDev(options: FootprintOptions, s: Samples, last: boolean): Promise<void> {
  const imds = imdsRequest();
  const sidecar = await startSidecarProcess({ program: options.programs.sidecarMain, nodeFlags: options.nodeFlags, mode: { kind: 'dev' } });
  try {
    s.dev.push(sidecar.server.readyMs);
    if (last) s.devMemory = await measureMemory(sidecar.server, { url: sidecar.baseUrl + imds.path, headers: imds.headers }, options);
  } finally {
    await sidecar.server.stop();
  }
}

async function roundBare(options: FootprintOptions, s: Samples, last: boolean): Promise<void> {
  const imds = imdsRequest();
  const port = await freePort();
  const bare = await spawnServer({
    name: 'bare-http',
    command: process.execPath,
    args: [...options.nodeFlags, options.programs.reference('bare-http'), options.bodyFile, String(port)],
    readyUrl: `http://127.0.0.1:${port}/`,
  });
  try {
    s.bare.push(bare.readyMs);
    if (last) s.bareMemory = await measureMemory(bare, { url: `http://127.0.0.1:${port}${imds.path}`, headers: imds.headers }, options);
  } finally {
    await bare.stop();
  }
}

async function roundEntra(options: FootprintOptions, authority: AuthorityHost, s: Samples, last: boolean): Promise<void> {
  const sidecar = await startEntraSidecar({ programs: options.programs, nodeFlags: options.nodeFlags, authority, name: 'sidecar-entra-footprint' });
  try {
    s.entra.push(sidecar.server.readyMs);
    s.entraUpstream.push(await upstreamMs(sidecar.metricsUrl));
    // The warm-up token is the cached one; the load asks for the same resource (a cached answer).
    const imds = imdsRequest('https://management.azure.com/');
    if (last) s.entraMemory = await measureMemory(sidecar.server, { url: sidecar.baseUrl + imds.path, headers: imds.headers }, options);
  } finally {
    await sidecar.server.stop();
  }
}

async function roundWebhook(options: FootprintOptions, setup: WebhookSetup, s: Samples, last: boolean): Promise<void> {
  const { server, url } = await startWebhook(options, setup);
  try {
    s.webhook.push(server.readyMs);
    if (last) s.webhookMemory = await measureMemory(server, { url, headers: { 'content-type': 'application/json' }, method: 'POST', body: setup.review }, options);
  } finally {
    await server.stop();
  }
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? 'failed';

export async function runFootprint(options: FootprintOptions): Promise<FootprintResult> {
  const runs = options.quick ? 1 : 5;
  const cacheDir = options.compileCache ? mkdtempSync(join(tmpdir(), 'mi-anywhere-bench-compile-cache-')) : undefined;
  const previousCache = process.env['NODE_COMPILE_CACHE'];
  const s: Samples = {
    dev: [], bare: [], entra: [], entraUpstream: [], webhook: [],
    devMemory: NOT_MEASURED, bareMemory: NOT_MEASURED, entraMemory: NOT_MEASURED, webhookMemory: NOT_MEASURED,
    entraError: options.authority === undefined ? (options.authorityError ?? 'no test authority') : undefined,
    webhookError: undefined,
  };
  try {
    // Every process of this section (the bare reference too) starts as the image starts it.
    if (cacheDir !== undefined && warmCompileCache(options.programs, options.nodeFlags, cacheDir) !== undefined) process.env['NODE_COMPILE_CACHE'] = cacheDir;
    const setup = await webhookSetup(options.root);
    for (let i = 0; i < runs; i++) {
      const last = i === runs - 1;
      await roundDev(options, s, last);
      await roundBare(options, s, last);
      if (options.authority !== undefined && s.entraError === undefined) await roundEntra(options, options.authority, s, last).catch((e: unknown) => (s.entraError = message(e)));
      if (s.webhookError === undefined) await roundWebhook(options, setup, s, last).catch((e: unknown) => (s.webhookError = message(e)));
      options.log(
        `  start-up run ${i + 1}: sidecar dev ${s.dev.at(-1)?.toFixed(0)} ms, bare ${s.bare.at(-1)?.toFixed(0)} ms, ` +
          `sidecar entra ${s.entra.at(-1)?.toFixed(0) ?? '-'} ms (upstream ${s.entraUpstream.at(-1)?.toFixed(0) ?? '-'} ms), webhook ${s.webhook.at(-1)?.toFixed(0) ?? '-'} ms`,
      );
    }
  } finally {
    if (previousCache === undefined) delete process.env['NODE_COMPILE_CACHE'];
    else process.env['NODE_COMPILE_CACHE'] = previousCache;
    if (cacheDir !== undefined) rmSync(cacheDir, { recursive: true, force: true });
  }
  const entra: EntraFootprintFigures | string =
    s.entraError ??
    {
      ...figures(s.entra, s.entraMemory),
      startupWithoutUpstreamMs: median(s.entra.map((ready, i) => ready - (s.entraUpstream[i] ?? 0))),
      firstTokenUpstreamMs: median(s.entraUpstream),
    };
  const webhook: WebhookFootprintFigures | string = s.webhookError ?? { ...figures(s.webhook, s.webhookMemory), nativeSidecar: 'always', certMode: 'files' };
  return { sidecar: figures(s.dev, s.devMemory), bare: figures(s.bare, s.bareMemory), entra, webhook, compileCache: cacheDir !== undefined && options.programs.runtime === 'compiled' };
}
