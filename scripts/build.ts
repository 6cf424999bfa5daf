/**
 * `npm run build`: the image's programs, each bundled by esbuild into `dist/<program>/main.js` plus the chunks
 * its lazy imports load (`dist/<program>/chunks/`), for Node 24 as ES modules.
 *
 * Why a bundle (docs/performance.md, "Start-up and memory"): every opted-in pod starts one sidecar, and most of
 * its start-up went to Node resolving, reading and instantiating some 300 files of express, pino, prom-client and
 * jose one by one. One file per program is ready sooner and idles smaller; the lazy imports (the Entra backend,
 * the Azure CLI credential, the webhook's Kubernetes client and certificate tooling) stay separate chunks, so a
 * path that is not taken is still not loaded. The bundle is built from the TypeScript sources directly (esbuild
 * strips types the way Node does for `npm start`); type checking is `tsc`'s job (`npm run typecheck`, and the
 * Dockerfile's build stage).
 *
 *   node scripts/build.ts [--outdir DIR]     (default: dist/ of this checkout)
 */
import { rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { build, type Metafile } from 'esbuild';

const ROOT = join(import.meta.dirname, '..');
export const PROGRAMS = ['sidecar', 'webhook'] as const;
export type Program = (typeof PROGRAMS)[number];

/**
 * CommonJS dependencies inside an ES module bundle still call `require` for Node's built-in modules (and node-forge
 * is required on first use, see sidecar/token/client-credential.ts); an ES module has no `require`, so each output
 * file makes one for itself.
 */
const REQUIRE_SHIM = "import { createRequire as __miAnywhereCreateRequire } from 'node:module'; const require = __miAnywhereCreateRequire(import.meta.url);";

export interface BuiltProgram {
  readonly program: Program;
  readonly entry: string;
  /** Every output file (entry and chunks) with its size in bytes. */
  readonly outputs: ReadonlyArray<{ readonly file: string; readonly bytes: number }>;
}

/** Bundles one program into `outdir/<program>/`. */
export async function buildProgram(program: Program, outdir: string): Promise<BuiltProgram> {
  const programDir = join(outdir, program);
  rmSync(programDir, { recursive: true, force: true });
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: { main: join(ROOT, program, 'main.ts') },
    outdir: programDir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    chunkNames: 'chunks/[name]-[hash]',
    banner: { js: REQUIRE_SHIM },
    // Readable stack traces in logs: names and lines are kept (minifying saved ~1 MiB and no measurable time).
    minify: false,
    legalComments: 'eof',
    metafile: true,
    logLevel: 'warning',
  });
  if (result.errors.length > 0) throw new Error(`esbuild failed for ${program}`);
  return { program, entry: join(programDir, 'main.js'), outputs: outputsOf(result.metafile) };
}

function outputsOf(metafile: Metafile): BuiltProgram['outputs'] {
  return Object.entries(metafile.outputs).map(([file, output]) => ({ file, bytes: output.bytes }));
}

/**
 * The image build's compile-cache step (common/warm-compile-cache.ts) as `outdir/warm-compile-cache.js`: it finds
 * the programs' files next to itself.
 */
async function buildCompileCacheWarmer(outdir: string): Promise<void> {
  await build({
    absWorkingDir: ROOT,
    entryPoints: [join(ROOT, 'common', 'warm-compile-cache.ts')],
    outfile: join(outdir, 'warm-compile-cache.js'),
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    logLevel: 'warning',
  });
}

/** Both programs and the compile-cache warmer into `outdir` (dist/ by default). */
export async function buildAll(outdir: string): Promise<BuiltProgram[]> {
  const built: BuiltProgram[] = [];
  for (const program of PROGRAMS) built.push(await buildProgram(program, outdir));
  await buildCompileCacheWarmer(outdir);
  return built;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { outdir: { type: 'string' } } });
  const outdir = values.outdir ?? join(ROOT, 'dist');
  for (const built of await buildAll(outdir)) {
    const total = built.outputs.reduce((sum, output) => sum + output.bytes, 0);
    process.stdout.write(`${built.program}: ${relative(process.cwd(), built.entry)} and ${built.outputs.length - 1} chunks, ${(total / 2 ** 20).toFixed(1)} MiB\n`);
  }
}

if (import.meta.main) await main();
