/**
 * CPU profile of the sidecar's cached-token path: starts the sidecar (dev mode, log level info, stdout to a file)
 * with `--cpu-prof`, loads one dialect, stops it, and prints where the CPU went as Markdown (self time by area and
 * the top functions). The profile tables in docs/performance.md come from this.
 *
 *   node bench/profile.ts [--dialect imds|app-service] [--connections 50] [--seconds 8] [--tree DIR] [--top 25]
 *                         [--compiled]
 *
 * `--compiled` profiles the tsc output as the image runs it (no type-stripping work in the profile).
 * `--tree` profiles another copy of the repository (e.g. with a patch applied); the .cpuprofile file is kept and
 * its path printed, for Chrome DevTools or `node --cpu-prof` viewers.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summariseProfile } from './lib/cpu-profile.ts';
import { runLoad } from './lib/load.ts';
import { preparePrograms } from './lib/programs.ts';
import { appServiceRequest, imdsRequest, startSidecarProcess } from './lib/sidecar.ts';

const root = join(import.meta.dirname, '..');

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const option = (name: string, fallback: string): string => {
    const index = argv.indexOf(`--${name}`);
    return index >= 0 ? (argv[index + 1] ?? fallback) : fallback;
  };
  const dialect = option('dialect', 'imds');
  const connections = Number(option('connections', '50'));
  const seconds = Number(option('seconds', '8'));
  const tree = option('tree', root);
  const top = Number(option('top', '25'));
  const dir = mkdtempSync(join(tmpdir(), 'mi-anywhere-profile-'));
  const program = argv.includes('--compiled') ? (await preparePrograms(tree, 'compiled')).sidecarMain : join(tree, 'sidecar/main.ts');
  const sidecar = await startSidecarProcess({
    program,
    nodeFlags: [],
    extraNodeFlags: ['--cpu-prof', `--cpu-prof-dir=${dir}`],
    mode: { kind: 'dev' },
  });
  let result;
  try {
    const request = dialect === 'app-service' ? appServiceRequest(sidecar.identityHeader) : imdsRequest();
    await runLoad({ url: sidecar.baseUrl + request.path, headers: request.headers, connections: 10, durationSeconds: 1 });
    result = await runLoad({ url: sidecar.baseUrl + request.path, headers: request.headers, connections, durationSeconds: seconds });
  } finally {
    // The profile is written when the process exits (SIGTERM -> graceful drain -> process.exit).
    await sidecar.server.stop();
  }
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
  const summary = summariseProfile(join(dir, file), argv.includes('--compiled') ? join(tree, '.cache', 'bench-dist') : tree, top);
  const out: string[] = [
    `Profile: ${dialect}, ${connections} connections, ${seconds} s: ${result.rps.toFixed(0)} req/s, p99 ${result.p99Ms.toFixed(2)} ms; busy ${summary.busyMs.toFixed(0)} ms of ${summary.totalMs.toFixed(0)} ms sampled.`,
    '',
    '| area | self ms | share of busy |',
    '|---|---:|---:|',
    ...summary.areas.map((a) => `| ${a.name} | ${a.selfMs.toFixed(0)} | ${(a.share * 100).toFixed(1)} % |`),
    '',
    '| function | self ms | share of busy |',
    '|---|---:|---:|',
    ...summary.topFunctions.map((f) => `| ${f.name} | ${f.selfMs.toFixed(0)} | ${(f.share * 100).toFixed(1)} % |`),
    '',
    `Profile file: ${join(dir, file)}`,
  ];
  process.stdout.write(out.join('\n') + '\n');
}

await main();
