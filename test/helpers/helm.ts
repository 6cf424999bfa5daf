/**
 * Runs the helm binary built by scripts/provision.d/31-helm.sh and parses what it renders. A missing binary is
 * a test failure that names the provisioning step, never a skip.
 *
 * Test helper: spawns helm; no other I/O.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CHART_DIR } from './chart-values.ts';

/** A rendered Kubernetes object, loosely typed: tests reach into it with optional chaining. */
export interface Manifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Record<string, string>; readonly annotations?: Record<string, string> };
  readonly [key: string]: unknown;
}

export function cacheDir(): string {
  return process.env['MI_ANYWHERE_CACHE'] ?? join(homedir(), '.cache', 'mi-anywhere');
}

export function helmPath(): string {
  const path = join(cacheDir(), 'bin', 'helm');
  if (!existsSync(path)) {
    throw new Error(`helm is not built: ${path} is missing (run: bash scripts/provision.d/31-helm.sh)`);
  }
  return path;
}

export interface HelmResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runHelm(args: readonly string[], env: Readonly<Record<string, string>> = {}): HelmResult {
  const result = spawnSync(helmPath(), args, {
    encoding: 'utf8',
    // helm keeps caches and its repository config under HOME-relative paths; point them at a temp-safe place
    // only through the caller's env (KUBECONFIG etc.).
    env: { ...process.env, ...env },
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export interface RenderOptions {
  readonly valuesFiles?: readonly string[];
  readonly set?: Readonly<Record<string, string>>;
  readonly release?: string;
  readonly namespace?: string;
}

export function templateArgs(options: RenderOptions): string[] {
  const args = ['template', options.release ?? 'mi', CHART_DIR, '--namespace', options.namespace ?? 'mi-anywhere'];
  for (const file of options.valuesFiles ?? []) args.push('--values', file);
  for (const [key, value] of Object.entries(options.set ?? {})) args.push('--set', `${key}=${value}`);
  return args;
}

/** `helm template` → parsed objects (empty documents dropped). Throws with helm's stderr on failure. */
export function renderChart(options: RenderOptions = {}): Manifest[] {
  const result = runHelm(templateArgs(options));
  if (result.status !== 0) throw new Error(`helm template failed (${String(result.status)}): ${result.stderr}`);
  return parseManifests(result.stdout);
}

export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors.map((e) => e.message).join('; ')}`);
      return doc.toJS() as unknown;
    })
    .filter((obj): obj is Manifest => typeof obj === 'object' && obj !== null);
}

export function findManifest(manifests: readonly Manifest[], kind: string, predicate: (m: Manifest) => boolean = () => true): Manifest {
  const found = manifests.find((m) => m.kind === kind && predicate(m));
  if (!found) throw new Error(`no ${kind} rendered (kinds: ${manifests.map((m) => m.kind).join(', ')})`);
  return found;
}
