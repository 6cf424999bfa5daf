/**
 * Assembles entra mode's token path for `main.ts`: the msal-node source behind the sidecar's cache, its metrics,
 * and the rotation hooks (a credential change invalidates that identity's cached tokens and msal application, and
 * re-publishes the credential-expiry gauge). Kept out of `main.ts` so the composition root stays a list of parts and
 * tests can build exactly what production builds.
 */
import type { INetworkModule } from '@azure/msal-node';
import type { LoadedIdentity } from '../identity/identity.ts';
import type { IdentityChange } from '../identity/watch.ts';
import type { SidecarMetrics } from '../metrics.ts';
import { CachingTokenSource, systemScheduler, type CacheLog, type Scheduler } from './caching-token-source.ts';
import { credentialExpirySeconds, type ReadTextFile } from './client-credential.ts';
import { EntraTokenSource } from './entra-source.ts';
import type { CachePolicy } from './token-cache-policy.ts';
import type { TokenSource } from './token-source.ts';
import { AzureCliTokenSource, routeAzureCliIdentities, type AzureCliCredentialFactory } from './azure-cli-source.ts';
import type { CiAssertions } from './ci-oidc.ts';

export interface EntraBackendOptions {
  readonly authorityHost: string;
  readonly readFile: ReadTextFile;
  readonly nowMs: () => number;
  readonly metrics?: SidecarMetrics | undefined;
  readonly log?: CacheLog | undefined;
  readonly networkClient?: INetworkModule | undefined;
  readonly scheduler?: Scheduler | undefined;
  readonly random?: (() => number) | undefined;
  readonly policy?: Partial<CachePolicy> | undefined;
  /** Assertions of CI OIDC identities (`ci-oidc.ts`). */
  readonly ciAssertions?: CiAssertions | undefined;
  /** Developer (azure-cli) identities' credential; default: @azure/identity's AzureCliCredential, loaded on first use. */
  readonly azureCliCredential?: AzureCliCredentialFactory | undefined;
}

export interface EntraBackend {
  /** Cached Entra token source (serves `secret`, `certificate` and `federated` identities). */
  readonly source: TokenSource;
  readonly cache: CachingTokenSource;
  readonly entra: EntraTokenSource;
  /** Publishes credential expiry for the given identities (start-up). */
  publishCredentials(identities: readonly LoadedIdentity[]): void;
  /** Rotation hook for `IdentityWatcher.onChange`. */
  applyChanges(changes: readonly IdentityChange[]): void;
  close(): void;
}

export function createEntraBackend(options: EntraBackendOptions): EntraBackend {
  const metrics = options.metrics;
  const entra = new EntraTokenSource({
    authorityHost: options.authorityHost,
    networkClient: options.networkClient,
    readFile: options.readFile,
    nowMs: options.nowMs,
    onUpstream: metrics ? (identity, outcome, seconds) => metrics.upstreamRequest(identity, outcome, seconds) : undefined,
    log: options.log ? (_level, fields, message) => options.log?.warn(fields, message) : undefined,
    ciAssertions: options.ciAssertions,
  });
  // Developer identities share the cache (az is slow to start) but not msal.
  const cli = new AzureCliTokenSource({ nowMs: options.nowMs, credential: options.azureCliCredential });
  const cache = new CachingTokenSource({
    inner: routeAzureCliIdentities(entra, cli),
    nowMs: options.nowMs,
    scheduler: options.scheduler ?? systemScheduler,
    random: options.random ?? Math.random,
    policy: options.policy,
    metrics,
    log: options.log,
  });
  metrics?.observeCache(() => cache.entries());
  metrics?.observeUpstream(() => cache.upstreamLoad());

  const publish = (identity: LoadedIdentity | undefined, name: string): void => {
    if (!metrics) return;
    const expiry = identity ? credentialExpirySeconds(identity.material) : undefined;
    metrics.credentialExpiry(name, 'certificate', expiry);
  };

  return {
    source: cache,
    cache,
    entra,
    publishCredentials(identities) {
      for (const identity of identities) publish(identity, identity.descriptor.name);
    },
    applyChanges(changes) {
      for (const change of changes) {
        if (change.credentialChanged) {
          // Nothing for the new version can be cached yet (onChange runs right after the swap), so drop them all.
          cache.invalidateIdentity(change.name);
          entra.forget(change.name);
        }
        publish(change.next, change.name);
      }
    },
    close() {
      cache.close();
    },
  };
}
