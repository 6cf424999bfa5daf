/**
 * The built-in dev issuer: a {@link TokenSource} that mints RS256 JWTs locally, for `npm start`, tests and CI
 * pipelines that only need "a token". It publishes OIDC discovery and a JWKS (served on the token listener under
 * `/dev-issuer`) so a local resource emulator can verify the tokens. Azure never accepts them.
 *
 * Dev mode is explicit (`--dev` / `MI_ANYWHERE_MODE=dev`) and never mixes with real credentials (main.ts refuses
 * an identity directory holding credential files in dev mode).
 *
 * The key pair is generated per start and kept in memory only. Clock injected.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { BadRequestError } from '../errors.ts';
import type { IdentityDescriptor, LoadedIdentity } from '../identity/identity.ts';
import type { IssuedToken, TokenSource, TokenSourceRequest } from './token-source.ts';

/** Tenant of the built-in dev identities. Valid GUID v4 shape, obviously not a real tenant. */
export const DEV_TENANT_ID = '11111111-1111-4111-8111-111111111111';

/** The built-in dev identities (documented in README "Dev identities"). */
export const DEV_IDENTITIES = {
  /** Served to requests without a selector (the "system-assigned" role). */
  system: {
    name: 'dev-system',
    tenantId: DEV_TENANT_ID,
    clientId: '22222222-2222-4222-8222-222222222222',
    objectId: '33333333-3333-4333-8333-333333333333',
    resourceId: undefined,
  },
  /** A user-assigned identity reachable by client id, object id or resource id. */
  user: {
    name: 'dev-user',
    tenantId: DEV_TENANT_ID,
    clientId: '44444444-4444-4444-8444-444444444444',
    objectId: '55555555-5555-4555-8555-555555555555',
    resourceId:
      '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mi-anywhere-dev/providers/Microsoft.ManagedIdentity/userAssignedIdentities/dev-user',
  },
} as const;

/**
 * Token lifetime: 24 h like IMDS tokens (docs/protocols.md §3). Well above the 5-minute "treat as expired"
 * window of JS, msal-node, azure-identity and MSAL Python, and above 2 h so the SDKs' refresh-at-half-life logic
 * behaves as on Azure (docs/protocols.md §11 item 8).
 */
export const DEV_TOKEN_LIFETIME_SECONDS = 24 * 60 * 60;

/**
 * `nbf`/`iat` are back-dated by this much so a resource emulator whose clock is slightly behind still accepts a
 * freshly minted token.
 */
const CLOCK_SKEW_SECONDS = 5 * 60;

/**
 * A token is re-used until half its lifetime has passed (IMDS returns identical tokens while valid,
 * docs/protocols.md §11 item 19); SDK caches then refresh at their own half-life point and get a fresh one.
 */
const REUSE_FRACTION = 0.5;
/** Bound of the reuse map (identities × resources); cleared when exceeded. */
const MAX_REUSED_TOKENS = 1000;

/** Descriptors of the built-in identities; `defaultName` decides which one is the default. */
export function devIdentities(defaultName: string = DEV_IDENTITIES.system.name): LoadedIdentity[] {
  return Object.values(DEV_IDENTITIES).map((d) => {
    const descriptor: IdentityDescriptor = {
      name: d.name,
      tenantId: d.tenantId,
      clientId: d.clientId,
      objectId: d.objectId,
      resourceId: d.resourceId,
      credentialKind: 'dev',
      isDefault: d.name === defaultName,
    };
    return { descriptor, material: { kind: 'dev' }, credentialFingerprint: 'dev' };
  });
}

export interface OidcDiscovery {
  readonly issuer: string;
  readonly jwks_uri: string;
  readonly id_token_signing_alg_values_supported: readonly string[];
  readonly token_endpoint_auth_signing_alg_values_supported: readonly string[];
  readonly response_types_supported: readonly string[];
  readonly subject_types_supported: readonly string[];
}

export interface DevIssuer extends TokenSource {
  /** `iss` of every token: `<token listener base URL>/dev-issuer`. */
  readonly issuer: string;
  discovery(): OidcDiscovery;
  /** Waits for the key pair while it is still being generated. */
  jwks(): Promise<{ keys: JWK[] }>;
}

export interface DevIssuerOptions {
  /** Base URL of the token listener as apps and resource emulators reach it (no trailing slash). */
  readonly baseUrl: string;
  /** Current time in milliseconds. */
  readonly nowMs: () => number;
  /** The key pair, when its generation was started earlier ({@link generateDevSigningKey}); generated here otherwise. */
  readonly signingKey?: Promise<DevSigningKey>;
}

export type DevSigningKey = Awaited<ReturnType<typeof generateKeyPair>>;

/**
 * Generates the dev issuer's RS256 key pair in Node's thread pool. An RSA-2048 key takes 50-80 ms, the largest
 * single step of a dev-mode start, so main.ts starts it as soon as the mode is known (docs/performance.md,
 * "Levers, measured").
 */
export function generateDevSigningKey(): Promise<DevSigningKey> {
  return generateKeyPair('RS256', { extractable: true });
}

interface SigningKey {
  readonly privateKey: DevSigningKey['privateKey'];
  readonly kid: string;
  readonly jwk: JWK;
}

async function signingKeyOf(keyPair: Promise<DevSigningKey>): Promise<SigningKey> {
  const { privateKey, publicKey } = await keyPair;
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { privateKey, kid, jwk: { ...publicJwk, kid, alg: 'RS256', use: 'sig' } };
}

/**
 * Creates the dev issuer. It does not wait for its key pair: the sidecar is ready while the key is still being
 * generated, and a token or JWKS request that comes before it waits for it (tens of milliseconds at most), so an
 * app container started beside the sidecar overlaps its own start-up with the key generation.
 */
export function createDevIssuer(options: DevIssuerOptions): DevIssuer {
  const signingKey = signingKeyOf(options.signingKey ?? generateDevSigningKey());
  // A failure (out of memory, nothing else) is reported by the request that needs the key, not as an unhandled rejection.
  signingKey.catch(() => undefined);
  const issuer = `${options.baseUrl.replace(/\/+$/, '')}/dev-issuer`;
  /**
   * Tokens (or in-flight mints) per identity and resource; concurrent first requests share one mint. A settled entry
   * keeps its token beside the promise so a fresh one is handed out without awaiting it again (every dev-mode token
   * request passes here).
   */
  const reused = new Map<string, { readonly promise: Promise<IssuedToken>; token?: IssuedToken }>();
  const fresh = (token: IssuedToken): boolean =>
    options.nowMs() / 1000 < token.expiresOnSeconds - DEV_TOKEN_LIFETIME_SECONDS * REUSE_FRACTION;

  function reuseOrMint(identity: LoadedIdentity, resource: string): Promise<IssuedToken> {
    const key = `${identity.descriptor.clientId}\n${resource}`;
    const existing = reused.get(key);
    // In flight: share it. Settled and fresh: reuse it. Settled and stale: mint anew.
    if (existing !== undefined && (existing.token === undefined || fresh(existing.token))) return existing.promise;
    if (reused.size >= MAX_REUSED_TOKENS) reused.clear();
    const entry: { readonly promise: Promise<IssuedToken>; token?: IssuedToken } = { promise: mint(identity, resource) };
    reused.set(key, entry);
    entry.promise.then(
      (token) => {
        entry.token = token;
      },
      () => {
        if (reused.get(key) === entry) reused.delete(key);
      },
    );
    return entry.promise;
  }

  async function mint(identity: LoadedIdentity, resource: string): Promise<IssuedToken> {
    const { privateKey, kid } = await signingKey;
    const d = identity.descriptor;
    const now = Math.floor(options.nowMs() / 1000);
    const notBefore = now - CLOCK_SKEW_SECONDS;
    const expiresOn = now + DEV_TOKEN_LIFETIME_SECONDS;
    const oid = d.objectId ?? d.clientId;
    // Claims of an Entra v1 app-only access token, which is what managed identities receive: az login reads
    // `tid` (docs/protocols.md §10); resource servers check `aud`, `iss`, `oid`/`appid`.
    const accessToken = await new SignJWT({
      tid: d.tenantId,
      oid,
      appid: d.clientId,
      azp: d.clientId,
      appidacr: '2',
      idtyp: 'app',
      ver: '1.0',
      xms_mirid: d.resourceId,
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid })
      .setIssuer(issuer)
      .setAudience(resource)
      .setSubject(oid)
      .setIssuedAt(now)
      .setNotBefore(notBefore)
      .setExpirationTime(expiresOn)
      .setJti(randomUUID())
      .sign(privateKey);
    return { accessToken, expiresOnSeconds: expiresOn, notBeforeSeconds: notBefore, resource, clientId: d.clientId };
  }

  return {
    issuer,
    async getToken(request: TokenSourceRequest): Promise<IssuedToken> {
      if (request.identity.material.kind !== 'dev') {
        // Defence in depth: main.ts never wires the dev issuer to real identities.
        throw new BadRequestError(`The dev issuer only serves dev identities, not "${request.identity.descriptor.name}"`);
      }
      return reuseOrMint(request.identity, request.resource);
    },
    discovery(): OidcDiscovery {
      return {
        issuer,
        jwks_uri: `${issuer}/jwks`,
        id_token_signing_alg_values_supported: ['RS256'],
        token_endpoint_auth_signing_alg_values_supported: ['RS256'],
        response_types_supported: ['token'],
        subject_types_supported: ['public'],
      };
    },
    async jwks(): Promise<{ keys: JWK[] }> {
      return { keys: [(await signingKey).jwk] };
    },
  };
}
