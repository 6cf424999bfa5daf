/**
 * Loads the client package a JavaScript driver runs: the project's own (newest) release, or an older one of the
 * version axis from the directory the harness names ({@link DriverInput.jsPackageDir}), with the versions to
 * report read from the package.json files actually loaded (the older releases bring their own msal-node).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = join(import.meta.dirname, '..', '..', '..');

function packageJsonOf(entry: string, name: string): { version: string } {
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version: string };
      if (pkg.name === name) return pkg;
    } catch {
      // no package.json at this level
    }
  }
  throw new Error(`driver: no package.json of ${name} above ${entry}`);
}

export interface Loaded<M> {
  readonly module: M;
  /** Versions of the package and of @azure/msal-node as resolved from it. */
  readonly versions: Record<string, string>;
}

/**
 * @param name the package (`@azure/identity` or `@azure/msal-node`)
 * @param dir the version axis' package directory (the aliased package itself), or undefined for the project's own
 */
export async function loadPackage<M>(name: string, dir: string | undefined): Promise<Loaded<M>> {
  // An aliased package is resolved by its alias from the install root (<root>/node_modules/<alias>), so that its
  // package exports apply (msal-node 2.x has no `main`).
  const entry =
    dir === undefined
      ? createRequire(join(ROOT, 'package.json')).resolve(name)
      : createRequire(join(dirname(dirname(dir)), 'package.json')).resolve(basename(dir));
  const versions: Record<string, string> = { [name]: packageJsonOf(entry, name).version };
  if (name !== '@azure/msal-node') {
    const msal = createRequire(entry).resolve('@azure/msal-node');
    versions['@azure/msal-node'] = packageJsonOf(msal, '@azure/msal-node').version;
  }
  versions['node'] = process.versions.node;
  // The project's own release through its package exports (ESM); an older one through its main (CommonJS), whose
  // named exports Node may only expose on `default`.
  const loaded = (dir === undefined ? await import(name) : await import(pathToFileURL(entry).href)) as M & { default?: M };
  return { module: dir === undefined || loaded.default === undefined ? loaded : loaded.default, versions };
}
