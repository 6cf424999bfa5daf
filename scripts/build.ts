/**
 * `npm run build`: the image's programs, each bundled by esbuild into `dist/<program>/main.js` plus the chunks
 * its lazy imports load (`dist/<program>/chunks/`), for Node 24 as ES modules. dist/ is all the image runs: no
 * node_modules beside it. It also holds `package.json` (the files are ES modules), the compile-cache warmer, this
 * project's `LICENSE`, and `THIRD-PARTY-NOTICES.md`: name, version, licence and licence text of every package the
 * bundles contain.
 *
 * Why a bundle (docs/performance.md, "Levers, measured"): every opted-in pod starts one sidecar, and most of
 * its start-up went to Node resolving, reading and instantiating some 300 files of express, pino, prom-client and
 * jose one by one. One file per program is ready sooner and idles smaller; the lazy imports (the Entra backend,
 * the Azure CLI credential, the webhook's Kubernetes client and certificate tooling) stay separate chunks, so a
 * path that is not taken is still not loaded. The bundle is built from the TypeScript sources directly (esbuild
 * strips types the way Node does for `npm start`); type checking is `tsc`'s job (`npm run typecheck`, and the
 * Dockerfile's build stage).
 *
 *   node scripts/build.ts [--outdir DIR]     (default: dist/ of this checkout)
 */
import { copyFileSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { build, type Metafile } from 'esbuild';

const ROOT = join(import.meta.dirname, '..');
const PROGRAMS = ['sidecar', 'webhook'] as const;
type Program = (typeof PROGRAMS)[number];

/**
 * CommonJS dependencies inside an ES module bundle still call `require` for Node's built-in modules; an ES module
 * has no `require`, so each output file makes one for itself.
 */
const REQUIRE_SHIM = "import { createRequire as __miAnywhereCreateRequire } from 'node:module'; const require = __miAnywhereCreateRequire(import.meta.url);";

interface BuiltProgram {
  readonly program: Program;
  readonly entry: string;
  /** Every output file (entry and chunks) with its size in bytes. */
  readonly outputs: ReadonlyArray<{ readonly file: string; readonly bytes: number }>;
  /** Directories of the packages bundled in (relative to the repository). */
  readonly packages: readonly string[];
}

/** Bundles one program into `outdir/<program>/`. */
async function buildProgram(program: Program, outdir: string): Promise<BuiltProgram> {
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
  return { program, entry: join(programDir, 'main.js'), outputs: outputsOf(result.metafile), packages: packagesOf(result.metafile) };
}

function outputsOf(metafile: Metafile): BuiltProgram['outputs'] {
  return Object.entries(metafile.outputs).map(([file, output]) => ({ file, bytes: output.bytes }));
}

/** `node_modules/express/index.js` -> `node_modules/express`; `.../node_modules/@azure/x/dist/y.js` -> `.../node_modules/@azure/x`. */
function packageDirOf(input: string): string | undefined {
  const match = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
  return match?.[1];
}

function packagesOf(metafile: Metafile): string[] {
  const dirs = new Set<string>();
  for (const input of Object.keys(metafile.inputs)) {
    const dir = packageDirOf(input);
    if (dir !== undefined) dirs.add(dir);
  }
  return [...dirs];
}

const LICENSE_FILE = /^(licen[cs]e|copying)(\.(md|txt))?$/i;

/** One section per bundled package: the licences ask that their notice travels with the code. */
function thirdPartyNotices(packageDirs: Iterable<string>): string {
  const sections = new Map<string, string>();
  for (const dir of packageDirs) {
    const manifest = JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')) as { name: string; version: string; license?: string };
    const id = `${manifest.name}@${manifest.version}`;
    const licenseFile = readdirSync(join(ROOT, dir)).find((name) => LICENSE_FILE.test(name));
    const text = licenseFile === undefined ? '(no licence file in the package)' : readFileSync(join(ROOT, dir, licenseFile), 'utf8').trim();
    sections.set(id, `## ${id}\n\nLicence: ${manifest.license ?? 'not declared'}\n\n\`\`\`\`text\n${text}\n\`\`\`\`\n`);
  }
  const ordered = [...sections.keys()].sort().map((id) => sections.get(id));
  return `# Third-party notices\n\nThe packages bundled into mi-anywhere's programs (scripts/build.ts), with their licences.\n\n${ordered.join('\n')}`;
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

/** Both programs, the compile-cache warmer, `package.json`, the licence and the notices into `outdir` (dist/ by default). */
export async function buildAll(outdir: string): Promise<BuiltProgram[]> {
  const built: BuiltProgram[] = [];
  for (const program of PROGRAMS) built.push(await buildProgram(program, outdir));
  await buildCompileCacheWarmer(outdir);
  // Without it Node would have to guess the module format of every file from its syntax.
  writeFileSync(join(outdir, 'package.json'), `${JSON.stringify({ type: 'module', private: true }, null, 2)}\n`);
  copyFileSync(join(ROOT, 'LICENSE'), join(outdir, 'LICENSE'));
  writeFileSync(join(outdir, 'THIRD-PARTY-NOTICES.md'), thirdPartyNotices(built.flatMap((b) => b.packages)));
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
