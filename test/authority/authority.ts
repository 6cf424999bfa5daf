/**
 * The test authority: a local, Entra-ID-compatible token service for tests, benchmarks and the compatibility
 * matrix. It is a real component, not a stub: it verifies client secrets, certificate client assertions
 * (signature, `x5t`/`x5t#S256`, `aud`, `iss`/`sub`, expiry) and federated assertions (against the issuer's JWKS),
 * issues real RS256 JWT access tokens that can be verified through its OIDC discovery, and answers failures
 * with Entra's error shape and AADSTS codes. Tests steer it through the returned handle (register apps, inject
 * latency / 5xx / 429 / resets / outages, count calls); processes steer it through `/_test/*` (see README.md).
 *
 * Wire format followed (Microsoft identity platform v2.0):
 * - instance discovery `GET /common/discovery/instance?api-version=1.1&authorization_endpoint=...`
 * - OIDC discovery `GET /<tenant>/v2.0/.well-known/openid-configuration`, keys `GET /<tenant>/discovery/v2.0/keys`
 * - token `POST /<tenant>/oauth2/v2.0/token`, `grant_type=client_credentials` with `client_secret` or
 *   `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` + `client_assertion`
 * - errors `{error, error_description: "AADSTSnnn: ...\r\nTrace ID: ...", error_codes, timestamp, trace_id,
 *   correlation_id, error_uri}` as Entra sends them.
 *
 * Listens on 127.0.0.1 only, HTTPS with its own CA (written to a temp file for NODE_EXTRA_CA_CERTS).
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { X509Certificate, createHash, createPublicKey, randomUUID, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SignJWT,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  type JWK,
  type JWTVerifyGetKey,
} from 'jose';
import { createTestCertificateAuthority, issueServerCertificate, thumbprints } from './pki.ts';
import { registerSecret } from '../helpers/collected-logs.ts';

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Audience Entra expects on federated (workload identity) assertions unless the credential says otherwise. */
export const DEFAULT_FEDERATED_AUDIENCE = 'api://AzureADTokenExchange';

export interface FederatedCredentialInput {
  readonly name?: string;
  /** `iss` the assertion must carry (the cluster's service-account issuer URL). */
  readonly issuer: string;
  /** `sub` the assertion must carry, e.g. `system:serviceaccount:default:app`. */
  readonly subject: string;
  /** Accepted `aud` values; default `[api://AzureADTokenExchange]`. */
  readonly audiences?: readonly string[];
  /** Where to fetch the issuer's signing keys (kube-apiserver: `<issuer>/openid/v1/jwks`). */
  readonly jwksUri: string;
}

export interface SecretInput {
  /** Label shown in `calls()` as `credentialId` (`secret:<id>`), so tests can tell which secret was used. */
  readonly id: string;
  readonly value: string;
}

export interface AppRegistrationInput {
  readonly clientId?: string;
  /** Default: the authority's default tenant. */
  readonly tenantId?: string;
  /** Object id of the service principal (the `oid` claim). Default: random. */
  readonly objectId?: string;
  readonly displayName?: string;
  /** Plain strings get the id `s<index>`. */
  readonly secrets?: ReadonlyArray<string | SecretInput>;
  /** PEM certificates whose keys may sign client assertions. */
  readonly certificates?: readonly string[];
  readonly federatedCredentials?: readonly FederatedCredentialInput[];
}

export interface RegisteredApp {
  readonly clientId: string;
  readonly tenantId: string;
  readonly objectId: string;
}

export type EndpointKind = 'instance-discovery' | 'openid-configuration' | 'keys' | 'token' | 'other';

export interface FaultSpec {
  /** Endpoints the fault applies to: only the token endpoint (default) or every Entra endpoint. */
  readonly scope?: 'token' | 'all';
  /** Delay before answering (applied before any other fault). */
  readonly latencyMs?: number;
  /** Answer with this status instead: 429 (throttled) or 5xx (Entra-shaped server error). */
  readonly status?: number;
  /** `Retry-After` seconds sent with `status`. */
  readonly retryAfterSeconds?: number;
  /** Destroy the connection without an answer (the client sees ECONNRESET / "socket hang up"). */
  readonly reset?: boolean;
  /**
   * Answer at once with the status line and headers, then drip the body one byte per this many ms (a stalling proxy
   * or a sick front end): an Entra-shaped error body with `status` (default 503). The drip stops when the client
   * goes away or the authority stops.
   */
  readonly dripIntervalMs?: number;
  /** Only for the next N matching requests; default: until cleared. */
  readonly times?: number;
  /** Only for this client id (token endpoint). */
  readonly clientId?: string;
}

export interface CallRecord {
  readonly seq: number;
  readonly atMs: number;
  readonly endpoint: EndpointKind;
  readonly method: string;
  readonly path: string;
  readonly tenantId?: string | undefined;
  readonly clientId?: string | undefined;
  readonly scope?: string | undefined;
  readonly credentialType?: 'secret' | 'certificate' | 'federated' | undefined;
  /** `secret:<id>`, the certificate's hex SHA-256 thumbprint, or `<iss>|<sub>` for federated assertions. */
  readonly credentialId?: string | undefined;
  /** HTTP status answered; 0 when the connection was reset. */
  readonly status: number;
  /** `AADSTSnnn` of an error answer. */
  readonly aadsts?: string | undefined;
  readonly fault?: string | undefined;
}

export interface StartTestAuthorityOptions {
  /** Default tenant (GUID). Default: random. */
  readonly tenantId?: string;
  readonly extraTenants?: readonly string[];
  /** Lifetime of issued access tokens. Default 3600 s (Entra issues 60–90 minutes). */
  readonly tokenLifetimeSeconds?: number;
  /** Clock for token times and assertion checks (ms). Default `Date.now`. */
  readonly nowMs?: () => number;
  /** Default 0 (ephemeral). */
  readonly port?: number;
  /** Where to write `ca.pem`; default a fresh temp directory removed by `stop()`. */
  readonly caFile?: string;
  /**
   * Port to publish in `url` and in discovery documents instead of the listening port, when clients reach the
   * authority through a TCP forwarder on that port (test/helpers/tcp-forwarder.ts). Default: the listening port.
   */
  readonly advertisedPort?: number;
}

export interface TestAuthority {
  /** `https://127.0.0.1:<port>`: use as MI_ANYWHERE_AUTHORITY_HOST / AZURE_AUTHORITY_HOST. */
  readonly url: string;
  /** `127.0.0.1:<port>` (what msal's knownAuthorities wants). */
  readonly host: string;
  readonly caPem: string;
  /** PEM file of the CA, for `NODE_EXTRA_CA_CERTS` in child processes. */
  readonly caFile: string;
  readonly tenantId: string;
  addTenant(tenantId: string): void;
  registerApp(input?: AppRegistrationInput): RegisteredApp;
  /** Replaces the given credential lists of an app (lists not given stay). */
  updateApp(clientId: string, patch: Pick<AppRegistrationInput, 'secrets' | 'certificates' | 'federatedCredentials'>): void;
  removeApp(clientId: string): void;
  setFault(fault: FaultSpec | undefined): void;
  setTokenLifetime(seconds: number): void;
  calls(filter?: Partial<Pick<CallRecord, 'endpoint' | 'clientId' | 'scope' | 'status' | 'credentialType' | 'credentialId'>>): CallRecord[];
  /** Successful and failed token-endpoint calls for a client (and scope). */
  tokenCalls(clientId?: string, scope?: string): number;
  resetCalls(): void;
  /** OIDC issuer of tokens for a tenant (`<url>/<tenant>/v2.0`). */
  issuer(tenantId?: string): string;
  jwksUri(tenantId?: string): string;
  stop(): Promise<void>;
}

interface AppState {
  clientId: string;
  tenantId: string;
  objectId: string;
  displayName: string;
  secrets: SecretInput[];
  certificates: Array<{ pem: string; sha1: string; sha256: string; notAfterMs: number; notBeforeMs: number }>;
  federated: FederatedCredentialInput[];
}

interface EntraErrorSpec {
  readonly status: number;
  readonly error: string;
  readonly code: number;
  readonly description: string;
}

/** Thrown inside the token handler; rendered as an Entra error body. */
class EntraError extends Error {
  readonly spec: EntraErrorSpec;
  constructor(spec: EntraErrorSpec) {
    super(spec.description);
    this.spec = spec;
  }
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_BODY_BYTES = 64 * 1024;

function b64urlOfHex(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64url');
}

/** Entra formats timestamps as `2024-01-01 12:00:00Z` in error bodies. */
function entraTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function toCertificateState(pem: string): AppState['certificates'][number] {
  const cert = new X509Certificate(pem);
  const t = thumbprints(pem);
  return { pem, sha1: t.thumbprintSha1, sha256: t.thumbprintSha256, notAfterMs: Date.parse(cert.validTo), notBeforeMs: Date.parse(cert.validFrom) };
}

function toSecrets(secrets: AppRegistrationInput['secrets']): SecretInput[] {
  const list = (secrets ?? []).map((s, i) => (typeof s === 'string' ? { id: `s${i}`, value: s } : { id: s.id, value: s.value }));
  // The suite-wide log scan (test/security/secrets-in-logs.test.ts) looks for every client secret the tests use.
  for (const s of list) registerSecret(`test authority client secret ${s.id}`, s.value);
  return list;
}

function secretsEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store, no-cache', ...headers });
  res.end(text);
}

/** Sends `body` one byte per `intervalMs` after the headers; stops when the connection closes. */
function drip(res: ServerResponse, status: number, body: string, intervalMs: number): void {
  const bytes = Buffer.from(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(bytes.length) });
  let sent = 0;
  const timer = setInterval(() => {
    if (sent >= bytes.length) {
      clearInterval(timer);
      res.end();
      return;
    }
    res.write(bytes.subarray(sent, sent + 1));
    sent += 1;
  }, intervalMs);
  res.on('close', () => clearInterval(timer));
}

export async function startTestAuthority(options: StartTestAuthorityOptions = {}): Promise<TestAuthority> {
  const nowMs = options.nowMs ?? Date.now;
  const defaultTenant = (options.tenantId ?? randomUUID()).toLowerCase();
  const tenants = new Set<string>([defaultTenant, ...(options.extraTenants ?? []).map((t) => t.toLowerCase())]);
  let tokenLifetimeSeconds = options.tokenLifetimeSeconds ?? 3600;
  const apps = new Map<string, AppState>(); // key: `${tenant}/${clientId}`
  const callLog: CallRecord[] = [];
  let seq = 0;
  let fault: (FaultSpec & { remaining: number | undefined }) | undefined;
  const jwksCache = new Map<string, JWTVerifyGetKey>();

  const ca = await createTestCertificateAuthority('mi-anywhere test authority CA');
  const serverCert = await issueServerCertificate(ca);
  const ownedCaDir = options.caFile ? undefined : mkdtempSync(join(tmpdir(), 'mi-anywhere-authority-'));
  const caFile = options.caFile ?? join(ownedCaDir!, 'ca.pem');
  writeFileSync(caFile, ca.certPem);

  const signing = await generateKeyPair('RS256', { extractable: true });
  const kid = createHash('sha256').update(JSON.stringify(await exportJWK(signing.publicKey))).digest('base64url').slice(0, 27);
  const publicJwk: JWK = { ...(await exportJWK(signing.publicKey)), kid, use: 'sig', kty: 'RSA', alg: 'RS256' };

  let url = '';
  let host = '';
  const sockets = new Set<Socket>();

  const issuerOf = (tenant: string): string => `${url}/${tenant}/v2.0`;
  const tokenEndpointOf = (tenant: string): string => `${url}/${tenant}/oauth2/v2.0/token`;

  function record(entry: Omit<CallRecord, 'seq' | 'atMs'>): void {
    callLog.push({ seq: ++seq, atMs: nowMs(), ...entry });
  }

  function errorBody(spec: EntraErrorSpec): Record<string, unknown> {
    const traceId = randomUUID();
    const correlationId = randomUUID();
    const timestamp = entraTimestamp(nowMs());
    return {
      error: spec.error,
      error_description: `AADSTS${spec.code}: ${spec.description} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
      error_codes: [spec.code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `${url}/error?code=${spec.code}`,
    };
  }

  function tenantNotFound(tenant: string): EntraErrorSpec {
    return {
      status: 400,
      error: 'invalid_request',
      code: 90002,
      description: `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
    };
  }

  function openIdConfiguration(tenant: string, v2: boolean): Record<string, unknown> {
    const base = `${url}/${tenant}`;
    return {
      token_endpoint: v2 ? `${base}/oauth2/v2.0/token` : `${base}/oauth2/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: v2 ? `${base}/discovery/v2.0/keys` : `${base}/discovery/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: v2 ? `${base}/v2.0` : `${url}/${tenant}/`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: `${url}/oidc/userinfo`,
      authorization_endpoint: v2 ? `${base}/oauth2/v2.0/authorize` : `${base}/oauth2/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: v2 ? `${base}/oauth2/v2.0/logout` : `${base}/oauth2/logout`,
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'tid', 'oid', 'appid', 'azp'],
      tenant_region_scope: 'EU',
      cloud_instance_name: host,
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: 'graph.microsoft.com',
      rbac_url: 'https://pas.windows.net',
    };
  }

  function findApp(tenant: string, clientId: string): AppState | undefined {
    return apps.get(`${tenant}/${clientId.toLowerCase()}`);
  }

  /** Verifies a certificate-signed client assertion (msal-node: PS256 + `x5t#S256`, older: RS256 + `x5t`). */
  async function verifyCertificateAssertion(app: AppState, tenant: string, assertion: string): Promise<string> {
    const header = decodeProtectedHeader(assertion);
    const x5tS256 = typeof header['x5t#S256'] === 'string' ? header['x5t#S256'] : undefined;
    const x5t = typeof header.x5t === 'string' ? header.x5t : undefined;
    const presented = x5tS256 ?? x5t ?? '';
    const cert = app.certificates.find((c) => (x5tS256 ? b64urlOfHex(c.sha256) === x5tS256 : b64urlOfHex(c.sha1) === x5t));
    const presentedHex = Buffer.from(presented, 'base64url').toString('hex').toUpperCase();
    if (!cert) {
      throw new EntraError({
        status: 401,
        error: 'invalid_client',
        code: 700027,
        description: `Client assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: '${presentedHex}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${app.clientId}'.]`,
      });
    }
    const now = nowMs();
    if (cert.notAfterMs < now || cert.notBeforeMs > now) {
      throw new EntraError({
        status: 401,
        error: 'invalid_client',
        code: 700027,
        description: `Client assertion failed signature validation. [Reason - The key used is expired., Thumbprint of key used by client: '${presentedHex}', Found key 'Start=${new Date(cert.notBeforeMs).toISOString()}, End=${new Date(cert.notAfterMs).toISOString()}']`,
      });
    }
    try {
      await jwtVerify(assertion, createPublicKey(cert.pem), {
        algorithms: ['RS256', 'PS256'],
        // Entra accepts the v2.0 token endpoint, the v1 endpoint and the bare tenant authority as `aud`.
        audience: [tokenEndpointOf(tenant), `${url}/${tenant}/oauth2/token`, `${url}/${tenant}/v2.0`, `${url}/${tenant}/`],
        issuer: app.clientId,
        subject: app.clientId,
        currentDate: new Date(now),
        clockTolerance: 300,
      });
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) {
        throw new EntraError({ status: 401, error: 'invalid_client', code: 700024, description: 'Client assertion is not within its valid time range.' });
      }
      if (error instanceof joseErrors.JWTClaimValidationFailed) {
        throw new EntraError({
          status: 401,
          error: 'invalid_client',
          code: 700027,
          description: `Client assertion failed signature validation. [Reason - The claim '${error.claim}' is invalid (${error.reason}).]`,
        });
      }
      throw new EntraError({ status: 401, error: 'invalid_client', code: 700027, description: 'Client assertion contains an invalid signature. [Reason - The key used to sign the assertion does not match the registered certificate.]' });
    }
    return cert.sha256;
  }

  function jwksFor(jwksUri: string): JWTVerifyGetKey {
    let set = jwksCache.get(jwksUri);
    if (!set) {
      set = createRemoteJWKSet(new URL(jwksUri), { cooldownDuration: 0 });
      jwksCache.set(jwksUri, set);
    }
    return set;
  }

  /** Verifies a federated assertion (workload identity): issuer, signature via the issuer's JWKS, subject, audience. */
  async function verifyFederatedAssertion(app: AppState, assertion: string): Promise<string> {
    let claims: ReturnType<typeof decodeJwt>;
    try {
      claims = decodeJwt(assertion);
    } catch {
      throw new EntraError({ status: 400, error: 'invalid_request', code: 50027, description: 'JWT token is invalid or malformed.' });
    }
    const iss = claims.iss ?? '';
    const sub = claims.sub ?? '';
    const auds = Array.isArray(claims.aud) ? claims.aud : claims.aud === undefined ? [] : [claims.aud];
    const byIssuer = app.federated.filter((f) => f.issuer === iss);
    if (byIssuer.length === 0) {
      throw new EntraError({
        status: 400,
        error: 'invalid_client',
        code: 700211,
        description: `No matching federated identity record found for presented assertion issuer '${iss}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.`,
      });
    }
    const [first] = byIssuer;
    try {
      await jwtVerify(assertion, jwksFor(first!.jwksUri), { issuer: iss, currentDate: new Date(nowMs()), clockTolerance: 300 });
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) {
        throw new EntraError({ status: 400, error: 'invalid_client', code: 700024, description: 'Client assertion is not within its valid time range.' });
      }
      throw new EntraError({ status: 400, error: 'invalid_client', code: 50013, description: 'Assertion failed signature validation. [Reason - The key was not found in the issuer\'s JWKS.]' });
    }
    const bySubject = byIssuer.filter((f) => f.subject === sub);
    if (bySubject.length === 0) {
      throw new EntraError({
        status: 400,
        error: 'invalid_client',
        code: 700213,
        description: `No matching federated identity record found for presented assertion subject '${sub}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.`,
      });
    }
    const match = bySubject.find((f) => (f.audiences ?? [DEFAULT_FEDERATED_AUDIENCE]).some((a) => auds.includes(a)));
    if (!match) {
      throw new EntraError({
        status: 400,
        error: 'invalid_client',
        code: 700212,
        description: `No matching federated identity record found for presented assertion audience '${auds.join(',')}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.`,
      });
    }
    return `${iss}|${sub}`;
  }

  async function issueAccessToken(app: AppState, scope: string, acr: '1' | '2'): Promise<{ token: string; expiresIn: number }> {
    const nowSeconds = Math.floor(nowMs() / 1000);
    const audience = scope.slice(0, -'/.default'.length);
    const token = await new SignJWT({
      tid: app.tenantId,
      oid: app.objectId,
      appid: app.clientId,
      azp: app.clientId,
      appidacr: acr,
      azpacr: acr,
      idtyp: 'app',
      ver: '2.0',
      uti: randomUUID().replace(/-/g, '').slice(0, 22),
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid })
      .setIssuer(issuerOf(app.tenantId))
      .setSubject(app.objectId)
      .setAudience(audience)
      .setIssuedAt(nowSeconds)
      .setNotBefore(nowSeconds)
      .setExpirationTime(nowSeconds + tokenLifetimeSeconds)
      .sign(signing.privateKey);
    return { token, expiresIn: tokenLifetimeSeconds };
  }

  interface TokenOutcome {
    clientId?: string | undefined;
    scope?: string | undefined;
    credentialType?: CallRecord['credentialType'];
    credentialId?: string | undefined;
  }

  async function handleToken(tenant: string, body: string, outcome: TokenOutcome): Promise<Record<string, unknown>> {
    const form = new URLSearchParams(body);
    const clientId = form.get('client_id') ?? '';
    const scope = form.get('scope') ?? '';
    outcome.clientId = clientId || undefined;
    outcome.scope = scope || undefined;
    if (!tenants.has(tenant)) throw new EntraError(tenantNotFound(tenant));
    if (form.get('grant_type') !== 'client_credentials') {
      throw new EntraError({ status: 400, error: 'unsupported_grant_type', code: 70003, description: `The app requested an unsupported grant type '${form.get('grant_type') ?? ''}'.` });
    }
    if (!clientId) {
      throw new EntraError({ status: 400, error: 'invalid_request', code: 900144, description: "The request body must contain the following parameter: 'client_id'." });
    }
    const scopes = scope.split(' ').filter(Boolean);
    if (scopes.length !== 1 || !scopes[0]!.endsWith('/.default')) {
      throw new EntraError({
        status: 400,
        error: 'invalid_scope',
        code: 1002012,
        description: `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      });
    }
    const app = findApp(tenant, clientId);
    if (!app) {
      throw new EntraError({
        status: 400,
        error: 'unauthorized_client',
        code: 700016,
        description: `Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
      });
    }
    const secret = form.get('client_secret');
    const assertion = form.get('client_assertion');
    if (secret !== null) {
      outcome.credentialType = 'secret';
      const match = app.secrets.find((s) => secretsEqual(s.value, secret));
      if (!match) {
        throw new EntraError({
          status: 401,
          error: 'invalid_client',
          code: 7000215,
          description: `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${app.clientId}'.`,
        });
      }
      outcome.credentialId = `secret:${match.id}`;
      const { token, expiresIn } = await issueAccessToken(app, scopes[0]!, '1');
      return { token_type: 'Bearer', expires_in: expiresIn, ext_expires_in: expiresIn, access_token: token };
    }
    if (assertion !== null) {
      if (form.get('client_assertion_type') !== CLIENT_ASSERTION_TYPE) {
        throw new EntraError({ status: 400, error: 'invalid_request', code: 700023, description: `Client assertion type must be '${CLIENT_ASSERTION_TYPE}'.` });
      }
      let header: ReturnType<typeof decodeProtectedHeader>;
      try {
        header = decodeProtectedHeader(assertion);
      } catch {
        throw new EntraError({ status: 400, error: 'invalid_request', code: 50027, description: 'JWT token is invalid or malformed.' });
      }
      let payloadIss: string | undefined;
      try {
        payloadIss = decodeJwt(assertion).iss;
      } catch {
        payloadIss = undefined;
      }
      const isCertificate = (header.x5t !== undefined || header['x5t#S256'] !== undefined) && payloadIss === app.clientId;
      if (isCertificate) {
        outcome.credentialType = 'certificate';
        outcome.credentialId = await verifyCertificateAssertion(app, tenant, assertion);
      } else {
        outcome.credentialType = 'federated';
        outcome.credentialId = await verifyFederatedAssertion(app, assertion);
      }
      const { token, expiresIn } = await issueAccessToken(app, scopes[0]!, '2');
      return { token_type: 'Bearer', expires_in: expiresIn, ext_expires_in: expiresIn, access_token: token };
    }
    throw new EntraError({
      status: 401,
      error: 'invalid_client',
      code: 7000218,
      description: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    });
  }

  function classify(method: string, segments: readonly string[]): { kind: EndpointKind; tenant?: string } {
    if (method === 'GET' && segments[0] === 'common' && segments[1] === 'discovery' && segments[2] === 'instance') return { kind: 'instance-discovery' };
    const [tenant, ...rest] = segments;
    const tail = rest.join('/');
    if (method === 'GET' && (tail === 'v2.0/.well-known/openid-configuration' || tail === '.well-known/openid-configuration')) return { kind: 'openid-configuration', tenant };
    if (method === 'GET' && (tail === 'discovery/v2.0/keys' || tail === 'discovery/keys')) return { kind: 'keys', tenant };
    if (method === 'POST' && (tail === 'oauth2/v2.0/token' || tail === 'oauth2/token')) return { kind: 'token', tenant };
    return { kind: 'other' };
  }

  /** Applies the injected fault, if any; returns true when the request was fully handled by it. */
  async function applyFault(kind: EndpointKind, req: IncomingMessage, res: ServerResponse, entry: Omit<CallRecord, 'seq' | 'atMs' | 'status'>): Promise<boolean> {
    const f = fault;
    if (!f) return false;
    if ((f.scope ?? 'token') === 'token' && kind !== 'token') return false;
    if (f.clientId !== undefined && entry.clientId?.toLowerCase() !== f.clientId.toLowerCase()) return false;
    if (f.remaining !== undefined) {
      if (f.remaining <= 0) return false;
      f.remaining -= 1;
      if (f.remaining === 0) fault = undefined;
    }
    if (f.latencyMs) await new Promise((resolve) => setTimeout(resolve, f.latencyMs));
    if (f.dripIntervalMs !== undefined) {
      const status = f.status ?? 503;
      record({ ...entry, status, fault: 'drip' });
      drip(res, status, JSON.stringify(errorBody({ status, error: 'temporarily_unavailable', code: 90033, description: 'A transient error has occurred. Please try again.' })), f.dripIntervalMs);
      return true;
    }
    if (f.reset) {
      record({ ...entry, status: 0, fault: 'reset' });
      req.socket.destroy();
      return true;
    }
    if (f.status !== undefined) {
      const headers: Record<string, string> = f.retryAfterSeconds !== undefined ? { 'retry-after': String(f.retryAfterSeconds) } : {};
      const spec: EntraErrorSpec =
        f.status === 429
          ? { status: 429, error: 'temporarily_unavailable', code: 90055, description: 'The request has been throttled: too many requests from this application. Retry after the interval in the Retry-After header.' }
          : { status: f.status, error: 'temporarily_unavailable', code: 90033, description: 'A transient error has occurred. Please try again.' };
      record({ ...entry, status: f.status, aadsts: `AADSTS${spec.code}`, fault: `status-${f.status}` });
      sendJson(res, f.status, errorBody(spec), headers);
      return true;
    }
    return false;
  }

  async function handleAdmin(req: IncomingMessage, res: ServerResponse, segments: readonly string[]): Promise<void> {
    const body = req.method === 'GET' || req.method === 'DELETE' ? '' : await readBody(req);
    const json = body ? (JSON.parse(body) as unknown) : undefined;
    const what = segments[1];
    if (what === 'apps' && req.method === 'POST') return sendJson(res, 201, handle.registerApp(json as AppRegistrationInput));
    if (what === 'apps' && req.method === 'PATCH' && segments[2]) {
      handle.updateApp(decodeURIComponent(segments[2]), json as AppRegistrationInput);
      return sendJson(res, 200, { ok: true });
    }
    if (what === 'apps' && req.method === 'DELETE' && segments[2]) {
      handle.removeApp(decodeURIComponent(segments[2]));
      return sendJson(res, 200, { ok: true });
    }
    if (what === 'tenants' && req.method === 'POST') {
      handle.addTenant((json as { tenantId: string }).tenantId);
      return sendJson(res, 201, { ok: true });
    }
    if (what === 'fault' && (req.method === 'PUT' || req.method === 'POST')) {
      const spec = json as FaultSpec | null | undefined;
      handle.setFault(spec && Object.keys(spec).length > 0 ? spec : undefined);
      return sendJson(res, 200, { ok: true });
    }
    if (what === 'fault' && req.method === 'DELETE') {
      handle.setFault(undefined);
      return sendJson(res, 200, { ok: true });
    }
    if (what === 'token-lifetime' && req.method === 'PUT') {
      handle.setTokenLifetime((json as { seconds: number }).seconds);
      return sendJson(res, 200, { ok: true });
    }
    if (what === 'calls' && req.method === 'GET') return sendJson(res, 200, callLog);
    if (what === 'calls' && req.method === 'DELETE') {
      handle.resetCalls();
      return sendJson(res, 200, { ok: true });
    }
    return sendJson(res, 404, { error: 'not_found' });
  }

  async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const parsed = new URL(req.url ?? '/', url);
    const segments = parsed.pathname.split('/').filter(Boolean).map((s) => decodeURIComponent(s));
    if (segments[0] === '_test') return handleAdmin(req, res, segments);
    const { kind, tenant: rawTenant } = classify(method, segments);
    const tenant = rawTenant?.toLowerCase();
    const body = method === 'POST' ? await readBody(req) : '';
    const form = kind === 'token' ? new URLSearchParams(body) : undefined;
    const entry = { endpoint: kind, method, path: parsed.pathname, tenantId: tenant, clientId: form?.get('client_id') ?? undefined, scope: form?.get('scope') ?? undefined };
    if (await applyFault(kind, req, res, entry)) return;

    switch (kind) {
      case 'instance-discovery': {
        // msal asks with `authorization_endpoint=<authority>/oauth2/v2.0/authorize`; answer for that tenant.
        const authz = parsed.searchParams.get('authorization_endpoint') ?? '';
        const t = /\/([^/]+)\/oauth2\//.exec(authz)?.[1] ?? defaultTenant;
        record({ ...entry, tenantId: t, status: 200 });
        return sendJson(res, 200, {
          tenant_discovery_endpoint: `${url}/${t}/v2.0/.well-known/openid-configuration`,
          'api-version': '1.1',
          metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
        });
      }
      case 'openid-configuration': {
        if (!tenant || !tenants.has(tenant)) {
          const spec = tenantNotFound(rawTenant ?? '');
          record({ ...entry, status: spec.status, aadsts: `AADSTS${spec.code}` });
          return sendJson(res, spec.status, errorBody(spec));
        }
        record({ ...entry, status: 200 });
        return sendJson(res, 200, openIdConfiguration(tenant, parsed.pathname.includes('/v2.0/')));
      }
      case 'keys':
        record({ ...entry, status: 200 });
        return sendJson(res, 200, { keys: [publicJwk] });
      case 'token': {
        const outcome: TokenOutcome = {};
        try {
          const answer = await handleToken(tenant ?? '', body, outcome);
          record({ ...entry, ...outcome, status: 200 });
          return sendJson(res, 200, answer);
        } catch (error) {
          if (!(error instanceof EntraError)) throw error;
          record({ ...entry, ...outcome, status: error.spec.status, aadsts: `AADSTS${error.spec.code}` });
          return sendJson(res, error.spec.status, errorBody(error.spec));
        }
      }
      case 'other':
        record({ ...entry, status: 404 });
        return sendJson(res, 404, { error: 'not_found', error_description: `No such endpoint: ${method} ${parsed.pathname}` });
    }
  }

  const server: Server = createServer({ key: serverCert.keyPem, cert: serverCert.certPem }, (req, res) => {
    handleRequest(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: `test authority: ${String(error)}` });
      else res.destroy();
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  // A TCP forwarder in front (test/reliability: outages, TLS failures) must also be in the URLs we publish.
  host = `127.0.0.1:${options.advertisedPort ?? port}`;
  url = `https://${host}`;

  const handle: TestAuthority = {
    url,
    host,
    caPem: ca.certPem,
    caFile,
    tenantId: defaultTenant,
    addTenant(tenantId) {
      tenants.add(tenantId.toLowerCase());
    },
    registerApp(input = {}) {
      const tenantId = (input.tenantId ?? defaultTenant).toLowerCase();
      tenants.add(tenantId);
      const clientId = (input.clientId ?? randomUUID()).toLowerCase();
      if (!GUID.test(clientId)) throw new Error(`clientId must be a GUID: ${clientId}`);
      const state: AppState = {
        clientId,
        tenantId,
        objectId: (input.objectId ?? randomUUID()).toLowerCase(),
        displayName: input.displayName ?? `app-${clientId.slice(0, 8)}`,
        secrets: toSecrets(input.secrets),
        certificates: (input.certificates ?? []).map(toCertificateState),
        federated: [...(input.federatedCredentials ?? [])],
      };
      apps.set(`${tenantId}/${clientId}`, state);
      return { clientId, tenantId, objectId: state.objectId };
    },
    updateApp(clientId, patch) {
      const state = [...apps.values()].find((a) => a.clientId === clientId.toLowerCase());
      if (!state) throw new Error(`no such app: ${clientId}`);
      if (patch.secrets) state.secrets = toSecrets(patch.secrets);
      if (patch.certificates) state.certificates = patch.certificates.map(toCertificateState);
      if (patch.federatedCredentials) state.federated = [...patch.federatedCredentials];
    },
    removeApp(clientId) {
      for (const [key, state] of apps) if (state.clientId === clientId.toLowerCase()) apps.delete(key);
    },
    setFault(spec) {
      fault = spec ? { ...spec, remaining: spec.times } : undefined;
    },
    setTokenLifetime(seconds) {
      tokenLifetimeSeconds = seconds;
    },
    calls(filter = {}) {
      return callLog.filter((c) => Object.entries(filter).every(([k, v]) => v === undefined || c[k as keyof CallRecord] === v));
    },
    tokenCalls(clientId, scope) {
      return callLog.filter((c) => c.endpoint === 'token' && (clientId === undefined || c.clientId === clientId) && (scope === undefined || c.scope === scope)).length;
    },
    resetCalls() {
      callLog.length = 0;
    },
    issuer: (tenantId = defaultTenant) => issuerOf(tenantId),
    jwksUri: (tenantId = defaultTenant) => `${url}/${tenantId}/discovery/v2.0/keys`,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (ownedCaDir) rmSync(ownedCaDir, { recursive: true, force: true });
    },
  };
  return handle;
}
