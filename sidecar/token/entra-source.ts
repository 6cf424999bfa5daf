/**
 * The Entra ID token source: client-credentials tokens for secret, certificate and federated identities through
 * `@azure/msal-node`'s ConfidentialClientApplication (no hand-written OAuth). One msal application per
 * (identity, credential fingerprint), so a rotated credential gets a fresh application and the old one is dropped.
 *
 * Caching is deliberately *not* msal's: every call passes `skipCache: true` and the application's in-memory cache is
 * cleared after each call (this also drops msal's process-wide throttling entries, which would otherwise block a
 * client for 60 s after any 5xx). The sidecar's token cache (`caching-token-source.ts`) is the only cache, so
 * expiry, refresh and invalidation on rotation have one owner.
 */
import { ConfidentialClientApplication, LogLevel, type AuthenticationResult, type INetworkModule } from '@azure/msal-node';
import type { LoadedIdentity } from '../identity/identity.ts';
import type { IssuedToken, TokenSource, TokenSourceRequest } from './token-source.ts';
import type { UpstreamOutcome } from '../metrics.ts';
import { authorityFor, resourceToScope } from './authority.ts';
import { buildClientCredential, type ReadTextFile } from './client-credential.ts';
import type { CiAssertions } from './ci-oidc.ts';
import { mapUpstreamFailure, type UpstreamObservation } from './entra-errors.ts';
import { createHttpsNetworkClient, observations, observingNetworkClient } from './network-client.ts';
import { UpstreamUnavailableError } from '../errors.ts';
import { decodeJwt } from 'jose';
import { msalLogLine, type MsalLogLine } from './msal-log.ts';

/** msal applications kept (one per identity and credential version); more identities than this is unusual. */
const MAX_APPLICATIONS = 256;

export interface EntraTokenSourceOptions {
  /** e.g. `https://login.microsoftonline.com`, a sovereign cloud host, or a test authority. */
  readonly authorityHost: string;
  /** Network client for msal (default: node:https with keep-alive). Tests inject one that trusts their CA. */
  readonly networkClient?: INetworkModule | undefined;
  /** Reads the federated token file (injected so tests and the watcher share one fs seam). */
  readonly readFile: ReadTextFile;
  /** Wall clock in ms (used for `not_before` and Retry-After dates). */
  readonly nowMs: () => number;
  /** Upstream metrics (`metrics.upstreamRequest`). */
  readonly onUpstream?: ((identity: string, outcome: UpstreamOutcome, durationSeconds: number) => void) | undefined;
  /** msal's own diagnostics (warnings and errors only; msal never logs PII with piiLoggingEnabled false). */
  readonly log?: ((level: 'warn' | 'error', fields: MsalLogLine['fields'], message: string) => void) | undefined;
  /** Assertions of CI OIDC identities (`ci-oidc.ts`); without it such identities are refused. */
  readonly ciAssertions?: CiAssertions | undefined;
}

/**
 * msal computes `expiresOn` as its own "now" (rounded) + `expires_in`, which can be a second or more later than
 * the token's real `exp`. When the token is a JWT (Entra's v1/v2 access tokens are) the earlier of the two is used,
 * so the sidecar never reports a token as living longer than it does.
 */
function expirySeconds(accessToken: string, expiresOn: Date): number {
  const byMsal = Math.floor(expiresOn.getTime() / 1000);
  try {
    const exp = decodeJwt(accessToken).exp;
    return typeof exp === 'number' ? Math.min(exp, byMsal) : byMsal;
  } catch {
    return byMsal;
  }
}

/** One msal application per identity name, credential version and app (tenant + client id). */
function keyOf(identity: LoadedIdentity): string {
  const d = identity.descriptor;
  return [d.name, identity.credentialFingerprint, d.tenantId.toLowerCase(), d.clientId.toLowerCase()].join('\u0000');
}

export class EntraTokenSource implements TokenSource {
  readonly #options: EntraTokenSourceOptions;
  readonly #network: INetworkModule;
  /** Map order = recency: the first key is the least recently used application. */
  readonly #apps = new Map<string, ConfidentialClientApplication>();

  constructor(options: EntraTokenSourceOptions) {
    this.#options = options;
    this.#network = observingNetworkClient(options.networkClient ?? createHttpsNetworkClient(), options.nowMs);
    // Fail at start-up, not on the first request, when the host is unusable.
    authorityFor(options.authorityHost, 'common');
  }

  /** Drops the msal applications of an identity (called when its credential changes or it is removed). */
  forget(identityName: string): void {
    for (const key of this.#apps.keys()) if (key.startsWith(`${identityName}\u0000`)) this.#apps.delete(key);
  }

  #application(identity: LoadedIdentity): ConfidentialClientApplication {
    const key = keyOf(identity);
    const existing = this.#apps.get(key);
    if (existing) {
      // Re-insert so Map order stays least-recently-used first.
      this.#apps.delete(key);
      this.#apps.set(key, existing);
      return existing;
    }
    // A new credential version replaces the previous ones of the same identity.
    this.forget(identity.descriptor.name);
    const { authority, knownAuthorities } = authorityFor(this.#options.authorityHost, identity.descriptor.tenantId);
    const log = this.#options.log;
    const app = new ConfidentialClientApplication({
      auth: {
        clientId: identity.descriptor.clientId,
        authority,
        knownAuthorities: [...knownAuthorities],
        ...buildClientCredential(identity.material, this.#options.readFile, this.#options.ciAssertions),
      },
      system: {
        networkClient: this.#network,
        loggerOptions: {
          piiLoggingEnabled: false,
          logLevel: LogLevel.Warning,
          loggerCallback: (level, message) => {
            if (!log || level > LogLevel.Warning) return;
            const line = msalLogLine(level === LogLevel.Error ? 'error' : 'warning', message);
            if (line) log(level === LogLevel.Error ? 'error' : 'warn', line.fields, line.message);
          },
        },
      },
    });
    this.#apps.set(key, app);
    while (this.#apps.size > MAX_APPLICATIONS) {
      const oldest = this.#apps.keys().next().value;
      if (oldest === undefined) break;
      this.#apps.delete(oldest);
    }
    return app;
  }

  async getToken(request: TokenSourceRequest): Promise<IssuedToken> {
    const { identity, resource } = request;
    const descriptor = identity.descriptor;
    const started = this.#options.nowMs();
    const observation: UpstreamObservation = { signal: request.signal };
    let app: ConfidentialClientApplication | undefined;
    let result: AuthenticationResult | null;
    try {
      app = this.#application(identity);
      const client = app;
      result = await observations.run(observation, () =>
        client.acquireTokenByClientCredential({ scopes: [resourceToScope(resource)], skipCache: true }),
      );
    } catch (error) {
      const mapped = mapUpstreamFailure(error, observation, { identity: descriptor.name, tenantId: descriptor.tenantId, clientId: descriptor.clientId });
      this.#options.onUpstream?.(descriptor.name, mapped.outcome, (this.#options.nowMs() - started) / 1000);
      throw this.#options.ciAssertions?.explain(mapped.error, identity.material) ?? mapped.error;
    } finally {
      app?.clearCache();
    }
    this.#options.onUpstream?.(descriptor.name, 'success', (this.#options.nowMs() - started) / 1000);
    if (!result?.accessToken || !result.expiresOn) {
      throw new UpstreamUnavailableError('Entra ID answered without an access token or expiry; retry later');
    }
    return {
      accessToken: result.accessToken,
      expiresOnSeconds: expirySeconds(result.accessToken, result.expiresOn),
      notBeforeSeconds: Math.floor(started / 1000),
      resource,
      clientId: descriptor.clientId,
    };
  }
}
