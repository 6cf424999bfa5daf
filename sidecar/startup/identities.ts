/**
 * The identities the sidecar serves: loaded once at start-up (dev mode's built-in ones plus the identity directory),
 * then, in entra mode, kept in step with the mounted Secrets by the rotation watcher.
 *
 * Problems are logged with the file and field they concern, never with contents. A real credential in dev mode
 * stops the start ({@link StartupFailure}); any other broken identity only leaves that identity out.
 */
import { watch as fsWatch } from 'node:fs';
import type { Config } from '../config.ts';
import { SIDECAR_ENV } from '../contract.ts';
import { ConfigError } from '../errors.ts';
import { boundedIdentityFs } from '../identity/bounded-read.ts';
import type { LoadedIdentity } from '../identity/identity.ts';
import { formatProblem, loadIdentities, noDefaultReason, type IdentityProblem, type LoadIdentitiesResult } from '../identity/load.ts';
import { IdentityWatcher, type WatchFn } from '../identity/watch.ts';
import type { Logger } from '../log.ts';
import type { SidecarMetrics } from '../metrics.ts';
import { systemScheduler } from '../token/caching-token-source.ts';
import type { EntraBackend } from '../token/entra-backend.ts';
import { devIdentities, DEV_IDENTITIES } from '../token/dev-issuer.ts';
import { StartupFailure } from './failure.ts';

export interface ServedIdentities {
  readonly identities: readonly LoadedIdentity[];
  /** The identity of requests without a selector, if one is chosen. */
  readonly defaultIdentity: LoadedIdentity | undefined;
  /** Identities whose directory exists but could not be loaded (for the identity-load metrics). */
  readonly failed: readonly string[];
}

/**
 * Loads the identities for the mode and logs what is served (ids are not secret; material is never logged).
 * @throws StartupFailure when the directory holds real credentials in dev mode.
 */
export async function loadIdentitiesToServe(config: Config, logger: Logger): Promise<ServedIdentities> {
  const builtIn = config.mode === 'dev' ? devIdentities(config.defaultIdentity ?? DEV_IDENTITIES.system.name) : [];
  const fromDir = await loadIdentityDirectory(config, builtIn);
  for (const p of fromDir.problems) logger.error({ identity: p.identity, file: p.file, field: p.field, problem: p.code }, formatProblem(p));
  const identities = [...builtIn, ...fromDir.identities];
  const defaultIdentity = identities.find((i) => i.descriptor.isDefault);
  if (defaultIdentity === undefined) logNoDefault(config, { loaded: identities.length, problems: fromDir.problems }, logger);
  refuseRealCredentialsInDevMode(fromDir.problems);
  logServed(identities, logger);
  return { identities, defaultIdentity, failed: failedNames(identities, fromDir.problems) };
}

function loadIdentityDirectory(config: Config, builtIn: readonly LoadedIdentity[]): Promise<LoadIdentitiesResult> {
  if (config.identityDir === undefined) return Promise.resolve({ identities: [], problems: [] });
  return loadIdentities({
    fs: boundedIdentityFs,
    dir: config.identityDir,
    defaultName: config.defaultIdentity,
    mode: config.mode,
    federatedTokenFile: config.federatedTokenFile,
    existing: builtIn,
  });
}

function logNoDefault(config: Config, found: { loaded: number; problems: readonly IdentityProblem[] }, logger: Logger): void {
  const why = noDefaultReason({
    defaultName: config.defaultIdentity,
    defaultSetting: SIDECAR_ENV.defaultIdentity,
    loaded: found.loaded,
    problems: found.problems,
    dir: config.identityDir,
  });
  logger.error({ problem: 'conflict' }, `no default identity (${why}): requests without a selector will get "Identity not found"`);
}

function refuseRealCredentialsInDevMode(problems: readonly IdentityProblem[]): void {
  const forbidden = problems.filter((p) => p.code === 'credential-forbidden').map(formatProblem);
  if (forbidden.length > 0) throw new StartupFailure(new ConfigError(forbidden).message, 2);
}

/** What is being served, for operators matching selectors to identities. */
function logServed(identities: readonly LoadedIdentity[], logger: Logger): void {
  for (const { descriptor: d } of identities) {
    logger.info(
      { identity: d.name, tenantId: d.tenantId, clientId: d.clientId, objectId: d.objectId, resourceId: d.resourceId, credentialKind: d.credentialKind, isDefault: d.isDefault },
      'identity loaded',
    );
  }
}

function failedNames(identities: readonly LoadedIdentity[], problems: readonly IdentityProblem[]): string[] {
  const loadedNames = new Set(identities.map((i) => i.descriptor.name));
  return [...new Set(problems.map((p) => p.identity))].filter((name) => name !== '' && !loadedNames.has(name));
}

export interface WatchIdentitiesOptions {
  readonly config: Config;
  readonly identities: readonly LoadedIdentity[];
  readonly entra: EntraBackend;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics;
}

/**
 * Entra mode's rotation watcher: reloads changed identities from the mounted Secrets without a restart and tells
 * the backend which credentials changed (their cached tokens are dropped). Undefined without an identity directory.
 */
export function watchIdentities(options: WatchIdentitiesOptions): IdentityWatcher | undefined {
  const { config, entra } = options;
  if (config.mode !== 'entra' || config.identityDir === undefined) return undefined;
  const watcher = new IdentityWatcher({
    fs: boundedIdentityFs,
    dir: config.identityDir,
    defaultName: config.defaultIdentity,
    mode: config.mode,
    federatedTokenFile: config.federatedTokenFile,
    initial: options.identities,
    watch: watchDirectory,
    scheduler: systemScheduler,
    onChange: (changes) => entra.applyChanges(changes),
    metrics: options.metrics,
    log: options.logger,
  });
  watcher.start();
  return watcher;
}

const watchDirectory: WatchFn = (path, onEvent) => {
  const watcher = fsWatch(path, { persistent: false }, () => onEvent());
  // A watched directory that disappears (identity removed) errors the watcher; reload instead of crashing.
  watcher.on('error', () => onEvent());
  return watcher;
};
