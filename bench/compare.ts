/**
 * A/B comparison of sidecar variants on the cached-token path, side by side in one run (interleaved rounds, so load
 * from other work on the machine spreads over all variants). Used to decide hot-path changes with numbers; the
 * decisions and their figures are in docs/performance.md.
 *
 *   node bench/compare.ts --variant base=/path/to/tree --variant patched=/other/tree[:ENV=VALUE,...]
 *                         [--connections 1,10,50] [--rounds 3] [--seconds 3] [--dialect imds|app-service]
 *
 * A tree is a directory containing `sidecar/main.ts` (e.g. a copy of the repository with a patch applied; link its
 * node_modules). `:ENV=VALUE,...` adds environment for that variant (e.g. `:MI_ANYWHERE_LOG_LEVEL=warn`); each pair
 * splits at its first `=`, so a value may contain `=` (or `:`), but not `,` (bench/lib/variant.ts).
 */
import { join } from 'node:path';
import { appServiceRequest, imdsRequest, startSidecarProcess, type SidecarProcess } from './lib/sidecar.ts';
import { runMatrix } from './scenarios/load-matrix.ts';
import { parseVariant, type Variant } from './lib/variant.ts';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const variants: Variant[] = [];
  let connections = [1, 10, 50];
  let rounds = 3;
  let seconds = 3;
  let dialect: 'imds' | 'app-service' = 'imds';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = argv[++i] ?? '';
    if (arg === '--variant') variants.push(parseVariant(value));
    else if (arg === '--connections') connections = value.split(',').map(Number);
    else if (arg === '--rounds') rounds = Number(value);
    else if (arg === '--seconds') seconds = Number(value);
    else if (arg === '--dialect') dialect = value === 'app-service' ? 'app-service' : 'imds';
    else throw new Error(`unknown argument ${arg}`);
  }
  if (variants.length < 2) throw new Error('give at least two --variant name=path');
  const started: SidecarProcess[] = [];
  try {
    for (const v of variants) {
      started.push(await startSidecarProcess({ program: join(v.tree, 'sidecar/main.ts'), nodeFlags: [], mode: { kind: 'dev' }, name: v.name, env: v.env }));
    }
    const targets = variants.map((v, i) => {
      const sidecar = started[i];
      if (!sidecar) throw new Error('sidecar missing');
      const request = dialect === 'imds' ? imdsRequest() : appServiceRequest(sidecar.identityHeader);
      return { name: v.name, url: sidecar.baseUrl + request.path, headers: request.headers, pid: sidecar.server.pid };
    });
    const cells = await runMatrix({ targets, connections, rounds, secondsPerRun: seconds, warmupSeconds: 1 });
    const base = variants[0]?.name ?? '';
    process.stdout.write(
      `| connections | variant | server CPU µs/request | vs ${base} | req/s (median) | best round req/s | p50 ms | p99 ms |\n|---:|---|---:|---:|---:|---:|---:|---:|\n`,
    );
    for (const c of connections) {
      const reference = cells.find((x) => x.connections === c && x.target === base);
      for (const cell of cells.filter((x) => x.connections === c)) {
        const vs = reference ? (cell.cpuUsPerRequest / reference.cpuUsPerRequest).toFixed(2) : 'n/a';
        process.stdout.write(
          `| ${c} | ${cell.target} | ${cell.cpuUsPerRequest.toFixed(1)} | ${vs}x | ${cell.rps.toFixed(0)} | ${cell.bestRps.toFixed(0)} | ${cell.p50Ms.toFixed(3)} | ${cell.p99Ms.toFixed(3)} |\n`,
        );
      }
    }
  } finally {
    for (const s of started) await s.server.stop();
  }
}

await main();
