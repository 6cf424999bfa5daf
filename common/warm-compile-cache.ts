/**
 * Fills Node's on-disk compile cache (`NODE_COMPILE_CACHE`, https://nodejs.org/api/module.html#module-compile-cache)
 * for every file of both bundled programs (scripts/build.ts), so that a container compiles nothing it could have
 * compiled at image build. Run once by the Dockerfile (and by the benchmark, which measures what the image runs)
 * with `NODE_COMPILE_CACHE` set and as the user the programs run as: Node keys the cache directory by Node
 * version, CPU architecture and uid.
 *
 *   NODE_COMPILE_CACHE=/dir node dist/warm-compile-cache.js
 *
 * Every chunk is imported (none has side effects at import; the lazily loaded Entra backend and Kubernetes client
 * are reached this way too); each entry file is then started in a way that stops at its configuration check,
 * before it listens, which compiles it.
 */
import { spawnSync } from 'node:child_process';
import { globSync } from 'node:fs';
import { flushCompileCache, getCompileCacheDir } from 'node:module';
import { join } from 'node:path';

const dist = import.meta.dirname;
const ENTRY_FILES = ['sidecar/main.js', 'webhook/main.js'];

async function warm(): Promise<number> {
  if (getCompileCacheDir() === undefined) {
    process.stderr.write('warm-compile-cache: NODE_COMPILE_CACHE is not set (or the cache could not be enabled); nothing to do\n');
    return 1;
  }
  const modules = globSync('{sidecar,webhook}/chunks/*.js', { cwd: dist });
  for (const file of modules) await import(join(dist, file));
  flushCompileCache();
  for (const entry of ENTRY_FILES) {
    // Without settings both stop at their configuration check (the sidecar needs an identity directory, the
    // webhook a sidecar image) after loading every static import; both exit non-zero by design. The child
    // inherits NODE_COMPILE_CACHE and NODE_OPTIONS.
    spawnSync(process.execPath, [join(dist, entry), ...(entry.startsWith('sidecar/') ? ['--probe'] : [])], { stdio: 'ignore', timeout: 30_000 });
  }
  process.stdout.write(`warm-compile-cache: ${modules.length + ENTRY_FILES.length} modules of ${dist} compiled into ${getCompileCacheDir() ?? '?'}\n`);
  return 0;
}

process.exitCode = await warm();
