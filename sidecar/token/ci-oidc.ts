/**
 * Client assertions for federated identities whose token comes from the CI platform running the job
 * (`credentialSource` github-actions, gitlab-ci, azure-pipelines; docs/identities.md):
 *
 * - GitHub Actions: `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=<aud>` with `Authorization: Bearer
 *   $ACTIONS_ID_TOKEN_REQUEST_TOKEN` answers `{"value": "<jwt>"}` (the job needs `permissions: id-token: write`).
 * - Azure Pipelines: `POST $SYSTEM_OIDCREQUESTURI?api-version=7.1&serviceConnectionId=<id>` with `Authorization:
 *   Bearer $SYSTEM_ACCESSTOKEN` answers `{"oidcToken": "<jwt>"}` (what @azure/identity's AzurePipelinesCredential
 *   sends; the audience is always api://AzureADTokenExchange).
 * - GitLab CI: the job's `id_tokens:` entry, handed to the sidecar as MI_ANYWHERE_GITLAB_ID_TOKEN. GitLab issues it
 *   once per job and it cannot be fetched again; an expired one is reported, not sent.
 *
 * The exchange itself stays msal-node's (the assertion is the `clientAssertion` callback of the identity's msal
 * application, `client-credential.ts`), so CI identities share the sidecar's one Entra path: cache, upstream budget,
 * metrics and AADSTS error mapping. A fetched assertion is reused until it is within {@link ASSERTION_REFRESH_MARGIN_MS}
 * of its expiry, then fetched fresh. Assertions and platform tokens are never logged nor put into messages; the
 * issuer, subject and audience of the last assertion are (they are what the federated credential must match).
 */
import { decodeJwt, type JWTPayload } from 'jose';
import type { ClientAssertionCallback } from '@azure/msal-node';
import { CI_ENV, SIDECAR_ENV, type CiPlatform } from '../contract.ts';
import type { CiEnvironment } from '../config.ts';
import type { CredentialMaterial } from '../identity/identity.ts';
import { CredentialUnavailableError, UpstreamRejectedError, UpstreamUnavailableError, type SidecarError } from '../errors.ts';

type CiMaterial = Extract<CredentialMaterial, { kind: 'ci-oidc' }>;

/** An assertion is fetched again when it expires within this margin (Entra must see it valid at the exchange). */
export const ASSERTION_REFRESH_MARGIN_MS = 60_000;
/** Bound on one call to the platform's OIDC endpoint. */
export const OIDC_REQUEST_TIMEOUT_MS = 10_000;
/** Largest OIDC endpoint answer read (a token is a few KiB). */
const MAX_RESPONSE_BYTES = 64 * 1024;

export const PLATFORM_NAMES: Readonly<Record<CiPlatform, string>> = {
  'github-actions': 'GitHub Actions',
  'gitlab-ci': 'GitLab CI',
  'azure-pipelines': 'Azure Pipelines',
};

/** The claims a federated credential is matched on (not secret). */
export interface AssertionClaims {
  readonly issuer: string;
  readonly subject: string;
  readonly audiences: readonly string[];
  readonly expiresAtMs: number;
}

export interface CiAssertionsOptions {
  readonly env: CiEnvironment;
  /** `globalThis.fetch` in production; tests may inject one. */
  readonly fetch?: typeof globalThis.fetch | undefined;
  readonly nowMs: () => number;
}

interface Held {
  token: string;
  claims: AssertionClaims;
}

function claimsOf(token: string, platform: CiPlatform): AssertionClaims {
  let payload: JWTPayload;
  try {
    payload = decodeJwt(token);
  } catch {
    throw new CredentialUnavailableError(`${PLATFORM_NAMES[platform]} returned an OIDC token that is not a JWT`);
  }
  const aud = payload.aud;
  return {
    issuer: typeof payload.iss === 'string' ? payload.iss : '',
    subject: typeof payload.sub === 'string' ? payload.sub : '',
    audiences: Array.isArray(aud) ? aud : typeof aud === 'string' ? [aud] : [],
    expiresAtMs: typeof payload.exp === 'number' ? payload.exp * 1000 : 0,
  };
}

/** Reads a JSON answer of at most MAX_RESPONSE_BYTES; the body is never echoed (it may hold a token). */
async function readJson(response: Response, platform: CiPlatform): Promise<Record<string, unknown>> {
  const text = await response.text();
  if (text.length > MAX_RESPONSE_BYTES) throw new UpstreamUnavailableError(`the ${PLATFORM_NAMES[platform]} OIDC endpoint answered with an oversized body`);
  try {
    const json: unknown = JSON.parse(text);
    if (json !== null && typeof json === 'object') return json as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new UpstreamUnavailableError(`the ${PLATFORM_NAMES[platform]} OIDC endpoint answered with something that is not JSON`);
}

/** The error for a non-2xx answer of a platform's OIDC endpoint: its failures are retryable, refusals are not. */
function refusal(platform: Exclude<CiPlatform, 'gitlab-ci'>, status: number): Error {
  if (status >= 500 || status === 429) {
    return new UpstreamUnavailableError(`the ${PLATFORM_NAMES[platform]} OIDC endpoint answered HTTP ${status}; retry later`);
  }
  return new CredentialUnavailableError(
    `the ${PLATFORM_NAMES[platform]} OIDC endpoint refused the request (HTTP ${status})` +
      (platform === 'github-actions'
        ? ': the job needs permissions: id-token: write'
        : `: check serviceConnectionId and that ${CI_ENV.azurePipelinesAccessToken} is mapped from $(System.AccessToken)`),
  );
}

/** Fetches and caches one identity's CI assertions; one instance per credential version. */
class CiAssertionProvider {
  readonly #material: CiMaterial;
  readonly #options: CiAssertionsOptions;
  #held: Held | undefined;
  #pending: Promise<Held> | undefined;
  /** Claims of the last assertion handed to msal (for explaining Entra's answer). */
  lastClaims: AssertionClaims | undefined;

  constructor(material: CiMaterial, options: CiAssertionsOptions) {
    this.#material = material;
    this.#options = options;
  }

  readonly callback: ClientAssertionCallback = async () => {
    const held = this.#held;
    if (held !== undefined && held.claims.expiresAtMs - this.#options.nowMs() > ASSERTION_REFRESH_MARGIN_MS) {
      this.lastClaims = held.claims;
      return held.token;
    }
    this.#pending ??= this.#obtain().finally(() => {
      this.#pending = undefined;
    });
    const fresh = await this.#pending;
    this.#held = fresh;
    this.lastClaims = fresh.claims;
    return fresh.token;
  };

  async #obtain(): Promise<Held> {
    const platform = this.#material.platform;
    const token = platform === 'gitlab-ci' ? this.#gitlabToken() : await this.#request();
    const claims = claimsOf(token, platform);
    if (!claims.audiences.includes(this.#material.audience)) {
      throw new CredentialUnavailableError(
        `the ${PLATFORM_NAMES[platform]} OIDC token is for audience ${JSON.stringify(claims.audiences)}, but the identity expects "${this.#material.audience}"` +
          (platform === 'gitlab-ci' ? `: set aud: ${this.#material.audience} on the id_tokens entry` : ': set federatedAudience to match'),
      );
    }
    if (claims.expiresAtMs <= this.#options.nowMs()) {
      throw new CredentialUnavailableError(
        platform === 'gitlab-ci'
          ? `the GitLab ID token in ${SIDECAR_ENV.gitlabIdToken} has expired (GitLab issues it once per job, valid for the job's timeout)`
          : `${PLATFORM_NAMES[platform]} returned an OIDC token that has already expired`,
      );
    }
    return { token, claims };
  }

  #gitlabToken(): string {
    const token = this.#options.env.gitlabIdToken;
    if (token === undefined) {
      throw new CredentialUnavailableError(
        `${SIDECAR_ENV.gitlabIdToken} is not set: declare it in the job's id_tokens (aud: ${this.#material.audience}) and pass it to the sidecar`,
      );
    }
    return token;
  }

  async #request(): Promise<string> {
    const platform = this.#material.platform;
    if (platform === 'gitlab-ci') return this.#gitlabToken();
    const { url, init, field } = this.#requestFor(platform);
    const fetchFn = this.#options.fetch ?? globalThis.fetch;
    let response: Response;
    try {
      response = await fetchFn(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(OIDC_REQUEST_TIMEOUT_MS) });
    } catch (error) {
      const reason = (error as { name?: unknown }).name === 'TimeoutError' ? `no answer within ${OIDC_REQUEST_TIMEOUT_MS / 1000} s` : 'unreachable';
      throw new UpstreamUnavailableError(`the ${PLATFORM_NAMES[platform]} OIDC endpoint is ${reason}; retry later`, { cause: error });
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw refusal(platform, response.status);
    }
    const token = (await readJson(response, platform))[field];
    if (typeof token !== 'string' || token === '') {
      throw new UpstreamUnavailableError(`the ${PLATFORM_NAMES[platform]} OIDC endpoint answered without a token`);
    }
    return token;
  }

  #requestFor(platform: Exclude<CiPlatform, 'gitlab-ci'>): { url: URL; init: RequestInit; field: string } {
    if (platform === 'github-actions') {
      const github = this.#options.env.githubActions;
      if (github === undefined) {
        throw new CredentialUnavailableError(
          `${CI_ENV.githubRequestUrl} / ${CI_ENV.githubRequestToken} are not set: give the job permissions: id-token: write and run the sidecar as a step of that job (service containers do not get them)`,
        );
      }
      const url = new URL(github.requestUrl);
      url.searchParams.set('audience', this.#material.audience);
      return { url, init: { method: 'GET', headers: { authorization: `Bearer ${github.requestToken}`, accept: 'application/json' } }, field: 'value' };
    }
    const pipelines = this.#options.env.azurePipelines;
    if (pipelines === undefined) {
      throw new CredentialUnavailableError(
        `${CI_ENV.azurePipelinesOidcUri} / ${CI_ENV.azurePipelinesAccessToken} are not set: map SYSTEM_ACCESSTOKEN: $(System.AccessToken) into the sidecar step's env`,
      );
    }
    const url = new URL(pipelines.oidcRequestUri);
    url.searchParams.set('api-version', '7.1');
    url.searchParams.set('serviceConnectionId', this.#material.serviceConnectionId ?? '');
    return {
      url,
      init: { method: 'POST', headers: { authorization: `Bearer ${pipelines.accessToken}`, 'content-type': 'application/json', accept: 'application/json' } },
      field: 'oidcToken',
    };
  }
}

/** Federated-credential mismatches (issuer, subject, audience) and what to do about each. */
const MISMATCH_CODES = new Set(['AADSTS70021', 'AADSTS700211', 'AADSTS700212', 'AADSTS700213']);

/**
 * The CI assertion providers of a process. `callbackFor` gives msal the assertion callback of an identity;
 * `explain` turns Entra's "no matching federated identity record" into a message naming the CI token's issuer,
 * subject and audience — exactly the values the federated credential must hold.
 */
export class CiAssertions {
  readonly #options: CiAssertionsOptions;
  readonly #providers = new Map<string, CiAssertionProvider>();

  constructor(options: CiAssertionsOptions) {
    this.#options = options;
  }

  #provider(material: CiMaterial): CiAssertionProvider {
    const key = [material.platform, material.audience, material.serviceConnectionId ?? ''].join('\u0000');
    let provider = this.#providers.get(key);
    if (provider === undefined) {
      provider = new CiAssertionProvider(material, this.#options);
      this.#providers.set(key, provider);
    }
    return provider;
  }

  callbackFor(material: CiMaterial): ClientAssertionCallback {
    return this.#provider(material).callback;
  }

  explain(error: SidecarError, material: CredentialMaterial): SidecarError {
    if (material.kind !== 'ci-oidc' || !(error instanceof UpstreamRejectedError) || !MISMATCH_CODES.has(error.aadsts ?? '')) return error;
    const claims = this.#provider(material).lastClaims;
    if (claims === undefined) return error;
    const what =
      error.aadsts === 'AADSTS700211' ? 'issuer' : error.aadsts === 'AADSTS700212' ? 'audience' : error.aadsts === 'AADSTS700213' ? 'subject' : 'issuer, subject and audience';
    return new UpstreamRejectedError(
      {
        oauthError: error.oauthError,
        aadsts: error.aadsts,
        hint:
          `no federated credential on the app matches the ${PLATFORM_NAMES[material.platform]} OIDC token's ${what}: ` +
          `add one with issuer ${claims.issuer}, subject ${claims.subject}, audience ${material.audience}`,
      },
      { cause: error },
    );
  }
}
