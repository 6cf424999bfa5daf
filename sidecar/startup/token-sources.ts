/**
 * The token sources of this process, one per credential kind, and the dispatcher in front of them. Dev mode: the
 * dev issuer for `dev` identities. Entra mode: the msal-node backed, cached Entra backend (`token/entra-backend.ts`)
 * for `secret`, `certificate`, `federated` and `azure-cli`. A new credential kind is registered in
 * {@link sourcesByKind}; an identity whose kind has no source makes the sidecar refuse to start, naming it.
 */
import type { Config } from '../config.ts';
import { SIDECAR_ENV } from '../contract.ts';
import { CredentialUnavailableError } from '../errors.ts';
import { readFederatedTokenFile } from '../identity/bounded-read.ts';
import type { CredentialKind, LoadedIdentity } from '../identity/identity.ts';
import type { Logger } from '../log.ts';
import type { SidecarMetrics } from '../metrics.ts';
import { CiAssertions } from '../token/ci-oidc.ts';
import { createDevIssuer, type DevIssuer, type DevSigningKey } from '../token/dev-issuer.ts';
import type { EntraBackend } from '../token/entra-backend.ts';
import type { TokenSource } from '../token/token-source.ts';
import { StartupFailure } from './failure.ts';

/** Resource of the entra-mode warm-up token (ARM: every service principal can get a token for it). */
const WARM_UP_RESOURCE = 'https://management.azure.com/';
const WARM_UP_RETRY_MS = 30_000;

type SourcesByKind = Partial<Record<CredentialKind, TokenSource>>;

/** Dispatches to the token source registered for the identity's credential kind. */
export function byCredentialKind(sources: SourcesByKind): TokenSource {
  return {
    getToken(request) {
      const source = sources[request.identity.descriptor.credentialKind];
      if (source === undefined) {
        throw new CredentialUnavailableError(`No token backend for ${request.identity.descriptor.credentialKind} credentials in this build`);
      }
      return source.getToken(request);
    },
  };
}

export interface TokenBackendOptions {
  readonly config: Config;
  /** Base URL of the token listener (the dev issuer's `iss`). */
  readonly baseUrl: string;
  readonly identities: readonly LoadedIdentity[];
  readonly metrics: SidecarMetrics;
  readonly logger: Logger;
  readonly nowMs: () => number;
  /** Dev mode: the dev issuer's key pair, whose generation main.ts started early. */
  readonly devSigningKey?: Promise<DevSigningKey> | undefined;
}

export interface TokenBackends {
  /** Every identity's tokens, dispatched by credential kind. */
  readonly tokenSource: TokenSource;
  /** Dev mode: also serves the dev issuer's OIDC documents. */
  readonly devIssuer: DevIssuer | undefined;
  /** Entra mode: also told about rotated credentials, and closed on shutdown. */
  readonly entra: EntraBackend | undefined;
}

/**
 * The backends of the configured mode, serving every loaded identity.
 * @throws StartupFailure when the authority host is unusable or an identity's credential kind has no backend.
 */
export async function createTokenBackends(options: TokenBackendOptions): Promise<TokenBackends> {
  const devIssuer = options.config.mode === 'dev' ? createDevIssuer({ baseUrl: options.baseUrl, nowMs: options.nowMs, signingKey: options.devSigningKey }) : undefined;
  const entra = options.config.mode === 'entra' ? await createEntra(options) : undefined;
  entra?.publishCredentials(options.identities);
  const sources = sourcesByKind({ devIssuer, entra });
  refuseUnserved(options.identities, sources, options.logger);
  return { tokenSource: byCredentialKind(sources), devIssuer, entra };
}

async function createEntra(options: TokenBackendOptions): Promise<EntraBackend> {
  const { config, nowMs } = options;
  // msal-node (and what it pulls in) is loaded only in entra mode: dev mode never talks to Entra, and the import
  // is most of the difference between a dev-mode sidecar and a bare Node process (docs/performance.md).
  const { createEntraBackend } = await import('../token/entra-backend.ts');
  try {
    return createEntraBackend({
      authorityHost: config.authorityHost,
      readFile: readFederatedTokenFile,
      nowMs,
      metrics: options.metrics,
      log: options.logger,
      ciAssertions: new CiAssertions({ env: config.ci, nowMs }),
    });
  } catch (error) {
    throw new StartupFailure(`${SIDECAR_ENV.authorityHost}=${config.authorityHost} is unusable (${(error as Error).message})`, 2);
  }
}

function sourcesByKind(backends: { devIssuer: DevIssuer | undefined; entra: EntraBackend | undefined }): SourcesByKind {
  if (backends.devIssuer !== undefined) return { dev: backends.devIssuer };
  const entra = backends.entra?.source;
  if (entra !== undefined) return { secret: entra, certificate: entra, federated: entra, 'azure-cli': entra };
  return {};
}

function refuseUnserved(identities: readonly LoadedIdentity[], sources: SourcesByKind, logger: Logger): void {
  const unserved = identities.filter((i) => sources[i.descriptor.credentialKind] === undefined);
  if (unserved.length === 0) return;
  const list = unserved.map((i) => `identity "${i.descriptor.name}" (${i.descriptor.credentialKind} credential)`).join(', ');
  logger.fatal({ identities: unserved.map((i) => i.descriptor.name) }, `no token backend for: ${list}`);
  throw new StartupFailure(`this build has no Entra token backend yet for ${list}; use --dev for the dev issuer`, 2);
}

export interface WarmUpOptions {
  readonly tokenSource: TokenSource;
  /** The default identity; without one there is nothing to warm up. */
  readonly identity: LoadedIdentity | undefined;
  readonly onSuccess: () => void;
  readonly logger: Logger;
}

/** In entra mode, obtains a first token for the default identity so readiness reflects a working credential. */
export function warmUp({ tokenSource, identity, onSuccess, logger }: WarmUpOptions): void {
  if (identity === undefined) return;
  const attempt = (): void => {
    tokenSource.getToken({ identity, resource: WARM_UP_RESOURCE }).then(
      () => {
        onSuccess();
        logger.info({ identity: identity.descriptor.name }, 'obtained a first token for the default identity');
      },
      (error: unknown) => {
        logger.warn({ identity: identity.descriptor.name, err: error instanceof Error ? error.message : String(error) }, 'could not obtain a first token; retrying');
        setTimeout(attempt, WARM_UP_RETRY_MS).unref();
      },
    );
  };
  attempt();
}
