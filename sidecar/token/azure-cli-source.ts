/**
 * The developer identity (`credentialSource: azure-cli`, docs/identities.md): tokens from the Azure CLI login of
 * the machine the sidecar runs on, through @azure/identity's AzureCliCredential (it runs `az account
 * get-access-token --resource <resource> [--tenant <id>]`; no parsing of az's files here). The SDK is imported on
 * the first request for such an identity only, so sidecars without one never load it.
 *
 * `az` runs with the sidecar's environment (PATH, AZURE_CONFIG_DIR, proxy and CA settings); the cache in front of
 * this source (`caching-token-source.ts`) keeps az from being started for every request.
 */
import type { TokenCredential } from '@azure/identity';
import { decodeJwt } from 'jose';
import { CredentialUnavailableError, UpstreamUnavailableError } from '../errors.ts';
import { resourceToScope } from './authority.ts';
import type { IssuedToken, TokenSource, TokenSourceRequest } from './token-source.ts';

/** Bound on one `az account get-access-token` run (az refreshes through Entra when its cached token expired). */
export const AZURE_CLI_TIMEOUT_MS = 30_000;
/** Longest piece of az's error output passed on (it names the problem in its first line). */
const MAX_ERROR_TEXT = 300;

export type AzureCliCredentialFactory = (options: { tenantId: string | undefined; processTimeoutInMs: number }) => Promise<TokenCredential>;

/** Production factory: @azure/identity, loaded on first use. */
export const sdkAzureCliCredential: AzureCliCredentialFactory = async (options) => {
  const { AzureCliCredential } = await import('@azure/identity');
  return new AzureCliCredential(options);
};

/** `appid` (v1) / `azp` (v2) of the token: the client the CLI signed in with, echoed as `client_id`. */
function clientIdOf(accessToken: string): string | undefined {
  try {
    const claims = decodeJwt(accessToken);
    const id = claims.appid ?? claims.azp;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

/** az's first output line, shortened; az prints no secrets in its errors, this only keeps the message readable. */
function firstLine(text: string): string {
  const line = text.split(/\r?\n/).find((l) => l.trim() !== '') ?? '';
  return line.length > MAX_ERROR_TEXT ? `${line.slice(0, MAX_ERROR_TEXT)}…` : line;
}

function mapCliFailure(error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  if (/could not be found/i.test(message)) {
    return new CredentialUnavailableError('the Azure CLI (az) is not installed on the sidecar\'s host or not on its PATH: install it and run az login', { cause: error });
  }
  if (/az login/i.test(message) && !/--scope/.test(message)) {
    return new CredentialUnavailableError('the Azure CLI on the sidecar\'s host is not logged in (or its login expired): run az login', { cause: error });
  }
  if (/timed out|ETIMEDOUT|SIGTERM/i.test(message)) {
    return new UpstreamUnavailableError(`the Azure CLI did not answer within ${AZURE_CLI_TIMEOUT_MS / 1000} s; retry later`, { cause: error });
  }
  return new CredentialUnavailableError(`the Azure CLI could not get a token: ${firstLine(message)}`, { cause: error });
}

export interface AzureCliTokenSourceOptions {
  readonly nowMs: () => number;
  readonly credential?: AzureCliCredentialFactory | undefined;
}

export class AzureCliTokenSource implements TokenSource {
  readonly #options: AzureCliTokenSourceOptions;
  /** One credential per tenant (the SDK object is stateless apart from its options). */
  readonly #credentials = new Map<string, Promise<TokenCredential>>();

  constructor(options: AzureCliTokenSourceOptions) {
    this.#options = options;
  }

  #credential(tenantId: string | undefined): Promise<TokenCredential> {
    const key = tenantId ?? '';
    let credential = this.#credentials.get(key);
    if (credential === undefined) {
      credential = (this.#options.credential ?? sdkAzureCliCredential)({ tenantId, processTimeoutInMs: AZURE_CLI_TIMEOUT_MS });
      this.#credentials.set(key, credential);
    }
    return credential;
  }

  async getToken(request: TokenSourceRequest): Promise<IssuedToken> {
    const { identity, resource } = request;
    const material = identity.material;
    if (material.kind !== 'azure-cli') throw new CredentialUnavailableError(`identity "${identity.descriptor.name}" is not an azure-cli identity`);
    const started = this.#options.nowMs();
    let token;
    try {
      token = await (await this.#credential(material.tenantId)).getToken(resourceToScope(resource), { abortSignal: request.signal });
    } catch (error) {
      throw mapCliFailure(error);
    }
    if (!token?.token) throw new UpstreamUnavailableError('the Azure CLI answered without an access token; retry later');
    return {
      accessToken: token.token,
      expiresOnSeconds: Math.floor(token.expiresOnTimestamp / 1000),
      notBeforeSeconds: Math.floor(started / 1000),
      resource,
      clientId: clientIdOf(token.token) ?? identity.descriptor.clientId,
    };
  }
}

/** Sends developer (azure-cli) identities to `cli`, every other identity to `entra`. */
export function routeAzureCliIdentities(entra: TokenSource, cli: TokenSource): TokenSource {
  return {
    getToken(request) {
      return (request.identity.material.kind === 'azure-cli' ? cli : entra).getToken(request);
    },
  };
}
