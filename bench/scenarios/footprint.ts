/**
 * Benchmark 5: what one sidecar costs a pod. Start-up to ready (spawn -> first 200 from the readiness endpoint,
 * polled every 5 ms), resident memory idle and peak under load, with the Node flags the image uses, next to a
 * bare node:http process started and loaded the same way; the peer's figures come from the peer benchmark.
 */
import { runLoad } from '../lib/load.ts';
import { freePort, spawnServer, type Server } from '../lib/processes.ts';
import type { Programs } from '../lib/programs.ts';
import { imdsRequest, startSidecarProcess } from '../lib/sidecar.ts';
import { median } from '../lib/stats.ts';

export interface FootprintFigures {
  readonly startupMs: number;
  readonly startupRuns: readonly number[];
  readonly idleRssBytes: number;
  readonly loadedRssBytes: number;
}

export interface FootprintResult {
  readonly sidecar: FootprintFigures;
  readonly bare: FootprintFigures;
}

export interface FootprintOptions {
  readonly programs: Programs;
  readonly nodeFlags: readonly string[];
  readonly bodyFile: string;
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

/**
 * Idle RSS: after a few requests (so first-request code is loaded, as in a pod that has served its app once)
 * and a settle period. Under load: peak while 50 connections hammer it.
 */
export async function measureMemory(
  server: Server,
  url: string,
  headers: Readonly<Record<string, string>>,
  options: { readonly quick: boolean },
): Promise<{ idle: number; loaded: number }> {
  for (let i = 0; i < 20; i++) await (await fetch(url, { headers: { ...headers } })).arrayBuffer();
  await sleep(options.quick ? 200 : 2000);
  const idle = server.rssBytes();
  const loaded = await peakRssDuring(server, () => runLoad({ url, headers, connections: 50, durationSeconds: options.quick ? 0.5 : 5 }));
  return { idle, loaded };
}

export async function runFootprint(options: FootprintOptions): Promise<FootprintResult> {
  const runs = options.quick ? 1 : 5;
  const imds = imdsRequest();
  const sidecarStarts: number[] = [];
  const bareStarts: number[] = [];
  let sidecarMemory = { idle: Number.NaN, loaded: Number.NaN };
  let bareMemory = { idle: Number.NaN, loaded: Number.NaN };
  for (let i = 0; i < runs; i++) {
    const sidecar = await startSidecarProcess({ program: options.programs.sidecarMain, nodeFlags: options.nodeFlags, mode: { kind: 'dev' } });
    try {
      sidecarStarts.push(sidecar.server.readyMs);
      if (i === runs - 1) sidecarMemory = await measureMemory(sidecar.server, sidecar.baseUrl + imds.path, imds.headers, options);
    } finally {
      await sidecar.server.stop();
    }
    const port = await freePort();
    const bare = await spawnServer({
      name: 'bare-http',
      command: process.execPath,
      args: [...options.nodeFlags, options.programs.reference('bare-http'), options.bodyFile, String(port)],
      readyUrl: `http://127.0.0.1:${port}/`,
    });
    try {
      bareStarts.push(bare.readyMs);
      if (i === runs - 1) bareMemory = await measureMemory(bare, `http://127.0.0.1:${port}${imds.path}`, imds.headers, options);
    } finally {
      await bare.stop();
    }
    options.log(`  start-up run ${i + 1}: sidecar ${sidecarStarts.at(-1)?.toFixed(0)} ms, bare ${bareStarts.at(-1)?.toFixed(0)} ms`);
  }
  return {
    sidecar: { startupMs: median(sidecarStarts), startupRuns: sidecarStarts, idleRssBytes: sidecarMemory.idle, loadedRssBytes: sidecarMemory.loaded },
    bare: { startupMs: median(bareStarts), startupRuns: bareStarts, idleRssBytes: bareMemory.idle, loadedRssBytes: bareMemory.loaded },
  };
}
