/**
 * Helpers shared by the image tests: copy exactly the files the Dockerfile's build stage copies into a fresh
 * directory and run the same build (`npm run build`: type check, then scripts/build.ts bundles both programs), so
 * the tests see the image's dist/ without an image; plus TLS material and free ports for starting the compiled programs.
 *
 * Test helper: file system and child processes.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './sidecar.ts';

/** What the Dockerfile's build stage COPYs (the static test checks this list against the Dockerfile). */
export const BUILD_INPUTS = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'LICENSE', 'scripts/build.ts', 'common', 'sidecar', 'webhook'] as const;

/** The two programs' entry points in the build output (the chart and the webhook's sidecar args use them). */
export const ENTRY_FILES = { sidecar: 'dist/sidecar/main.js', webhook: 'dist/webhook/main.js' } as const;

export function run(command: string, args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): string {
  const result = spawnSync(command, args, { cwd: options.cwd, env: options.env ?? process.env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${String(result.status ?? result.error)}):\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

/** Runs the build stage's `npm run build` in a copy of the build inputs; returns that directory. */
export function buildInCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mi-anywhere-build-'));
  for (const input of BUILD_INPUTS) cpSync(join(REPO_ROOT, input), join(dir, input), { recursive: true });
  // The build stage's `npm ci` installs the locked dev dependencies; the repository's node_modules are the same.
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'));
  run('npm', ['run', '--silent', 'build'], { cwd: dir });
  return dir;
}

/** A self-signed serving certificate for 127.0.0.1 (PEM files in `dir`), made with openssl. */
export function makeServingCertificate(dir: string): { certFile: string; keyFile: string; caPem: string } {
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-addext', 'basicConstraints=critical,CA:FALSE',
    '-keyout', keyFile, '-out', certFile,
  ], { cwd: dir });
  return { certFile, keyFile, caPem: readFileSync(certFile, 'utf8') };
}
