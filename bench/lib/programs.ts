/**
 * Which files the benchmark runs. The image runs each program bundled by esbuild (`npm run build`,
 * scripts/build.ts; see the Dockerfile and CONTRIBUTING.md, "The image"), and that is what a full run measures:
 * Node's TypeScript type stripping costs start-up time and about 17 MB of RSS (measured here: a bare node:http
 * server is 61 MB as .mjs, 78 MB as .ts), and loading some 300 separate files costs more, neither of which a pod
 * pays. The quick smoke run uses the sources directly to stay well under a minute. The references are compiled the same
 * way as the programs they are compared with (Node's own `stripTypeScriptTypes`).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { join } from 'node:path';
import { buildAll } from '../../scripts/build.ts';

export type Runtime = 'compiled' | 'sources';
export type ReferenceKind = 'bare-http' | 'express-route';

export interface Programs {
  readonly runtime: Runtime;
  readonly sidecarMain: string;
  readonly webhookMain: string;
  reference(kind: ReferenceKind): string;
  /** One line for the report. */
  readonly description: string;
}

/** Build output of the benchmark, inside the repository so `node_modules` resolves (`.cache/` is git-ignored). */
export function benchDist(root: string): string {
  return join(root, '.cache', 'bench-dist');
}

/**
 * A compile cache warmed the way the image build warms it (common/warm-compile-cache.ts over the bundled programs),
 * for runs that measure the image's start-up. Undefined for the sources runtime (the image never runs them).
 */
export function warmCompileCache(programs: Programs, nodeFlags: readonly string[], dir: string): string | undefined {
  if (programs.runtime !== 'compiled') return undefined;
  const script = join(programs.sidecarMain, '..', '..', 'warm-compile-cache.js');
  const warm = spawnSync(process.execPath, [...nodeFlags, script], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, NODE_COMPILE_CACHE: dir } });
  if (warm.status !== 0) throw new Error(`warming the compile cache failed (${warm.status ?? warm.signal}): ${warm.stdout}${warm.stderr}`);
  return dir;
}

export async function preparePrograms(root: string, runtime: Runtime): Promise<Programs> {
  if (runtime === 'sources') {
    return {
      runtime,
      sidecarMain: join(root, 'sidecar/main.ts'),
      webhookMain: join(root, 'webhook/main.ts'),
      reference: (kind) => join(root, 'bench/references', `${kind}.ts`),
      description: 'TypeScript sources run directly (Node type stripping; adds start-up time and ~17 MB RSS the image does not have)',
    };
  }
  const out = benchDist(root);
  await buildAll(out);
  const referenceDir = join(out, 'bench', 'references');
  mkdirSync(referenceDir, { recursive: true });
  for (const kind of ['bare-http', 'express-route'] as const) {
    const source = readFileSync(join(root, 'bench/references', `${kind}.ts`), 'utf8');
    writeFileSync(join(referenceDir, `${kind}.mjs`), stripTypeScriptTypes(source, { mode: 'strip' }));
  }
  return {
    runtime,
    sidecarMain: join(out, 'sidecar/main.js'),
    webhookMain: join(out, 'webhook/main.js'),
    reference: (kind) => join(referenceDir, `${kind}.mjs`),
    description: 'bundled JavaScript as in the image (scripts/build.ts; references type-stripped to .mjs)',
  };
}
