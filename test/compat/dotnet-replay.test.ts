/**
 * .NET (`Azure.Identity`) replayed from its source: no .NET SDK can be installed here, so each managed-identity
 * source of Azure.Identity 1.5 and 1.10 (its own sources) and of the newest release (which delegates to MSAL.NET's
 * ManagedIdentity sources) is modelled as data — which variables select it, the exact request it builds, and what
 * it parses from the answer — as recorded in docs/compatibility.md (".NET (Azure.Identity), replayed from source",
 * test/compat/doc/40-dotnet.md, with links to the source files). Each request is sent to a running dev-mode sidecar
 * with the environment the webhook injects for the profile, and the answer must satisfy that source's parser.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ARC_TOKENS_DIR, profileEnv, type Profile } from '../../sidecar/contract.ts';
import { startSidecar, type SpawnedSidecar } from '../helpers/sidecar.ts';
import { IDENTITIES, RESOURCE } from './matrix.ts';

/** `ScopeUtilities.ScopesToResource`: the single scope without its `/.default`. */
const SCOPE = `${RESOURCE}/.default`;
const resourceOf = (scope: string): string => scope.slice(0, -'/.default'.length);
/** `Uri.AppendQuery` / `Uri.EscapeDataString`: RFC 3986 escaping, like encodeURIComponent. */
const q = (pairs: ReadonlyArray<readonly [string, string]>): string => pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');

type Env = Readonly<Record<string, string>>;

interface WireRequest {
  readonly method: 'GET' | 'POST';
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
}

interface WireResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/** What the .NET source hands back: an AccessToken (token + absolute expiry). */
interface ParsedToken {
  readonly token: string;
  readonly expiresOnS: number;
}

type UserId = { readonly clientId: string } | undefined;

interface Source {
  /** e.g. `1.5 / 1.10 AppServiceV2019ManagedIdentitySource`. */
  readonly name: string;
  readonly profile: Profile;
  /** The variables that select this source (all must be set in the profile's environment). */
  readonly selectedBy: readonly string[];
  /** Whether the source accepts a user-assigned client id (else it throws before sending). */
  readonly userAssigned: boolean;
  request(env: Env, user: UserId): WireRequest;
  /**
   * Arc: the challenge round trip; returns the second request. `readKey` reads the file the realm names (the path
   * as the app sees it).
   */
  challenge?(first: WireResponse, readKey: (appPath: string) => string, env: Env, user: UserId): WireRequest;
  parse(res: WireResponse): ParsedToken;
}

// ---------------------------------------------------------------------------------------------------
// Parsers, as the sources read the answer
// ---------------------------------------------------------------------------------------------------

function json(res: WireResponse): Record<string, unknown> {
  const parsed: unknown = JSON.parse(res.text);
  assert.ok(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed), 'the body is a JSON object');
  return parsed as Record<string, unknown>;
}

/**
 * Azure.Identity 1.x `ManagedIdentitySource.GetTokenFromResponse`: status 200, `access_token` string, `expires_on`
 * as an int64 JSON number or a string `long.TryParse` accepts (else `DateTimeOffset.TryParse`, invariant culture).
 * `expires_in` is ignored.
 */
function parseAzureIdentity1x(res: WireResponse): ParsedToken {
  assert.equal(res.status, 200, `status 200 (got ${String(res.status)}: ${res.text})`);
  const body = json(res);
  assert.equal(typeof body['access_token'], 'string', 'access_token is a string');
  const on = body['expires_on'];
  let expiresOnS: number;
  if (typeof on === 'number' && Number.isSafeInteger(on)) expiresOnS = on;
  else if (typeof on === 'string' && /^[+-]?\d+$/.test(on.trim())) expiresOnS = Number(on.trim());
  else if (typeof on === 'string' && !Number.isNaN(Date.parse(on))) expiresOnS = Math.floor(Date.parse(on) / 1000);
  else throw new Error(`expires_on ${JSON.stringify(on)} is neither an integer nor a date: AuthenticationResponseInvalidFormatError`);
  return { token: body['access_token'] as string, expiresOnS };
}

/** 1.x `AppServiceV2019ManagedIdentitySource.GetAccessTokenFromJson`: `expires_on` must be an epoch integer (no date). */
function parseAppService2019_1x(res: WireResponse): ParsedToken {
  const parsed = parseAzureIdentity1x(res);
  const on = json(res)['expires_on'];
  assert.ok(typeof on === 'number' || /^[+-]?\d+$/.test(String(on)), 'App Service 2019 expires_on is an epoch integer');
  return parsed;
}

/**
 * MSAL.NET `ManagedIdentityResponse` + `AbstractManagedIdentity.GetSuccessfulResponse`: status exactly 200,
 * `access_token`, and `expires_on` or `expires_in` (both set the same property; the one later in the document
 * wins), as a JSON number or numeric string; an integer >= 978307200 is an absolute epoch, a smaller one relative
 * seconds; a non-integer fails; the lifetime must be positive.
 */
function parseMsalNet(res: WireResponse, nowS: number): ParsedToken {
  assert.equal(res.status, 200, `status 200 (got ${String(res.status)}: ${res.text})`);
  const body = json(res);
  assert.equal(typeof body['access_token'], 'string', 'access_token is a string');
  let raw: unknown;
  for (const [k, v] of Object.entries(body)) if (k === 'expires_on' || k === 'expires_in') raw = v;
  const text = typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw : '';
  assert.match(text, /^\d+$/, `expires_on/expires_in is an integer (got ${JSON.stringify(raw)})`);
  const n = Number(text);
  const expiresOnS = n >= 978_307_200 ? n : nowS + n;
  assert.ok(expiresOnS > nowS, 'positive lifetime');
  return { token: body['access_token'] as string, expiresOnS };
}

// ---------------------------------------------------------------------------------------------------
// Arc challenge, as each generation reads WWW-Authenticate
// ---------------------------------------------------------------------------------------------------

/** 1.x: split on '=' (empty entries removed) must give exactly two parts; the second is the file path. */
function arcKeyPath1x(first: WireResponse): string {
  assert.equal(first.status, 401, 'the first Arc request is challenged');
  const challenge = first.headers.get('www-authenticate');
  assert.ok(challenge, 'WWW-Authenticate present');
  const parts = challenge.split('=').filter((p) => p !== '');
  assert.equal(parts.length, 2, `"${challenge}" splits into exactly two parts on "="`);
  return parts[1] as string;
}

/** MSAL.NET additionally requires, on Linux, a `.key` file directly under /var/opt/azcmagent/tokens. */
function arcKeyPathMsalNet(first: WireResponse): string {
  const path = arcKeyPath1x(first);
  assert.equal(dirname(path), ARC_TOKENS_DIR, `the key file is in ${ARC_TOKENS_DIR}`);
  assert.equal(path.endsWith('.key'), true, 'the key file ends in .key');
  return path;
}

/** MSAL.NET reads at most 4096 bytes of key. */
function checkKeySize(key: string): string {
  assert.ok(Buffer.byteLength(key) <= 4096, 'the key is at most 4096 bytes');
  return key;
}

// ---------------------------------------------------------------------------------------------------
// The sources
// ---------------------------------------------------------------------------------------------------

const must = (env: Env, name: string): string => {
  const v = env[name];
  assert.ok(v !== undefined && v !== '', `${name} is set`);
  return v;
};

function azureIdentity1xSources(label: string): Source[] {
  return [
    {
      name: `${label} AppServiceV2019ManagedIdentitySource`,
      profile: 'app-service',
      selectedBy: ['IDENTITY_ENDPOINT', 'IDENTITY_HEADER'],
      userAssigned: true,
      request: (env, user) => ({
        method: 'GET',
        url: `${must(env, 'IDENTITY_ENDPOINT')}?${q([['api-version', '2019-08-01'], ['resource', resourceOf(SCOPE)], ...(user ? [['client_id', user.clientId] as const] : [])])}`,
        headers: { 'X-IDENTITY-HEADER': must(env, 'IDENTITY_HEADER') },
      }),
      parse: parseAppService2019_1x,
    },
    {
      name: `${label} AppServiceV2017ManagedIdentitySource`,
      profile: 'msi-secret',
      selectedBy: ['MSI_ENDPOINT', 'MSI_SECRET'],
      userAssigned: true,
      request: (env, user) => ({
        method: 'GET',
        url: `${must(env, 'MSI_ENDPOINT')}?${q([['api-version', '2017-09-01'], ['resource', resourceOf(SCOPE)], ...(user ? [['clientid', user.clientId] as const] : [])])}`,
        headers: { secret: must(env, 'MSI_SECRET') },
      }),
      parse: parseAzureIdentity1x,
    },
    {
      name: `${label} CloudShellManagedIdentitySource`,
      profile: 'msi-endpoint',
      selectedBy: ['MSI_ENDPOINT'],
      userAssigned: true,
      request: (env, user) => ({
        method: 'POST',
        url: must(env, 'MSI_ENDPOINT'),
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Metadata: 'true' },
        body: `resource=${encodeURIComponent(resourceOf(SCOPE))}${user ? `&client_id=${encodeURIComponent(user.clientId)}` : ''}`,
      }),
      parse: parseAzureIdentity1x,
    },
    {
      name: `${label} AzureArcManagedIdentitySource`,
      profile: 'arc',
      selectedBy: ['IDENTITY_ENDPOINT', 'IMDS_ENDPOINT'],
      // 1.x sends client_id on Arc; the sidecar serves it like every Arc selector.
      userAssigned: true,
      request: (env, user) => ({
        method: 'GET',
        url: `${must(env, 'IDENTITY_ENDPOINT')}?${q([['api-version', '2019-11-01'], ['resource', resourceOf(SCOPE)], ...(user ? [['client_id', user.clientId] as const] : [])])}`,
        headers: { Metadata: 'true' },
      }),
      challenge(first, readKey, env, user) {
        const second = this.request(env, user);
        return { ...second, headers: { ...second.headers, Authorization: `Basic ${readKey(arcKeyPath1x(first))}` } };
      },
      parse: parseAzureIdentity1x,
    },
    {
      name: `${label} ImdsManagedIdentitySource (AZURE_POD_IDENTITY_AUTHORITY_HOST)`,
      profile: 'pod-identity',
      selectedBy: ['AZURE_POD_IDENTITY_AUTHORITY_HOST'],
      userAssigned: true,
      request: (env, user) => ({
        method: 'GET',
        url: `${new URL('/metadata/identity/oauth2/token', must(env, 'AZURE_POD_IDENTITY_AUTHORITY_HOST')).href}?${q([['api-version', '2018-02-01'], ['resource', resourceOf(SCOPE)], ...(user ? [['client_id', user.clientId] as const] : [])])}`,
        headers: { Metadata: 'true' },
      }),
      parse: parseAzureIdentity1x,
    },
  ];
}

const MSAL_HEADERS = { 'x-client-SKU': 'MSAL.NetCore', 'x-client-Ver': '4.92.0.0', 'x-ms-client-request-id': '00000000-0000-4000-8000-000000000000' };

function newestSources(nowS: () => number): Source[] {
  return [
    {
      name: 'newest (MSAL.NET) AppServiceManagedIdentitySource',
      profile: 'app-service',
      selectedBy: ['IDENTITY_ENDPOINT', 'IDENTITY_HEADER'],
      userAssigned: true,
      request: (env, user) => ({
        method: 'GET',
        url: `${must(env, 'IDENTITY_ENDPOINT')}?${q([['api-version', '2019-08-01'], ['resource', resourceOf(SCOPE)], ...(user ? [['client_id', user.clientId] as const] : [])])}`,
        headers: { ...MSAL_HEADERS, 'X-IDENTITY-HEADER': must(env, 'IDENTITY_HEADER') },
      }),
      parse: (res) => parseMsalNet(res, nowS()),
    },
    {
      name: 'newest (MSAL.NET) MachineLearningManagedIdentitySource',
      profile: 'msi-secret',
      selectedBy: ['MSI_ENDPOINT', 'MSI_SECRET'],
      userAssigned: true,
      // System-assigned: clientid = DEFAULT_IDENTITY_CLIENT_ID (MSAL.NET throws when it is unset).
      request: (env, user) => ({
        method: 'GET',
        url: `${must(env, 'MSI_ENDPOINT')}?${q([['api-version', '2017-09-01'], ['resource', resourceOf(SCOPE)], ['clientid', user ? user.clientId : must(env, 'DEFAULT_IDENTITY_CLIENT_ID')]])}`,
        headers: { ...MSAL_HEADERS, Metadata: 'true', secret: must(env, 'MSI_SECRET') },
      }),
      parse: (res) => parseMsalNet(res, nowS()),
    },
    {
      name: 'newest (MSAL.NET) CloudShellManagedIdentitySource',
      profile: 'msi-endpoint',
      selectedBy: ['MSI_ENDPOINT'],
      // MSAL.NET throws for a user-assigned identity on Cloud Shell before sending anything.
      userAssigned: false,
      request: (env) => ({
        method: 'POST',
        url: must(env, 'MSI_ENDPOINT'),
        // A literal header named "ContentType" (sic) and the form body.
        headers: { ...MSAL_HEADERS, Metadata: 'true', ContentType: 'application/x-www-form-urlencoded' },
        body: `resource=${encodeURIComponent(resourceOf(SCOPE))}`,
      }),
      parse: (res) => parseMsalNet(res, nowS()),
    },
    {
      name: 'newest (MSAL.NET) AzureArcManagedIdentitySource',
      profile: 'arc',
      selectedBy: ['IDENTITY_ENDPOINT', 'IMDS_ENDPOINT'],
      // MSAL.NET refuses a user-assigned identity on Arc.
      userAssigned: false,
      request: (env) => ({
        method: 'GET',
        url: `${must(env, 'IDENTITY_ENDPOINT')}?${q([['api-version', '2019-11-01'], ['resource', resourceOf(SCOPE)]])}`,
        headers: { ...MSAL_HEADERS, Metadata: 'true' },
      }),
      challenge(first, readKey, env, user) {
        const second = this.request(env, user);
        return { ...second, headers: { ...second.headers, Authorization: `Basic ${checkKeySize(readKey(arcKeyPathMsalNet(first)))}` } };
      },
      parse: (res) => parseMsalNet(res, nowS()),
    },
    {
      name: 'newest (MSAL.NET) ImdsManagedIdentitySource (AZURE_POD_IDENTITY_AUTHORITY_HOST)',
      profile: 'pod-identity',
      selectedBy: ['AZURE_POD_IDENTITY_AUTHORITY_HOST'],
      userAssigned: true,
      request: (env, user) => ({
        method: 'GET',
        url: `${new URL('/metadata/identity/oauth2/token', must(env, 'AZURE_POD_IDENTITY_AUTHORITY_HOST')).href}?${q([['api-version', '2018-02-01'], ['resource', resourceOf(SCOPE)], ...(user ? [['client_id', user.clientId] as const] : [])])}`,
        headers: { ...MSAL_HEADERS, Metadata: 'true' },
      }),
      parse: (res) => parseMsalNet(res, nowS()),
    },
  ];
}

/**
 * The newest Azure.Identity's DefaultAzureCredential probe (`ImdsManagedIdentityProbeSource`): the IMDS request
 * without `Metadata`; a 400 counts as "IMDS is there, retry through MSAL" only if the request went to host
 * 169.254.169.254 at the IMDS path and the body does not contain "Identity not found"; any other 400 means
 * "identity unavailable" and the chain moves on.
 */
function probeContinues(appHost: string, path: string, res: WireResponse): boolean {
  return res.status === 400 && appHost === '169.254.169.254' && path === '/metadata/identity/oauth2/token' && !res.text.includes('Identity not found');
}

// ---------------------------------------------------------------------------------------------------

async function send(req: WireRequest): Promise<WireResponse> {
  const res = await fetch(req.url, { method: req.method, headers: req.headers, ...(req.body === undefined ? {} : { body: req.body }), signal: AbortSignal.timeout(10_000) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

function claims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('.NET Azure.Identity, replayed from source against the sidecar', () => {
  let sidecar: SpawnedSidecar | undefined;
  let arcDir: string | undefined;
  const nowS = (): number => Math.floor(Date.now() / 1000);

  before(async () => {
    arcDir = mkdtempSync(join(tmpdir(), 'mi-dotnet-arc-'));
    // The key files go to a private directory; the realm names them as the app sees them (ARC_TOKENS_DIR).
    sidecar = await startSidecar({ env: { MI_ANYWHERE_ARC_KEY_DIR: arcDir } });
  });
  after(async () => {
    await sidecar?.stop();
    if (arcDir !== undefined) rmSync(arcDir, { recursive: true, force: true });
  });

  const envFor = (profile: Profile): Env => {
    assert.ok(sidecar, 'the sidecar started');
    return Object.fromEntries(profileEnv(profile, { baseUrl: sidecar.tokenUrl, secret: sidecar.identityHeader, defaultClientId: IDENTITIES.system.clientId }));
  };

  /** The app's ARC_TOKENS_DIR is the sidecar's key directory (a shared volume in the pod). */
  const readKey = (appPath: string): string => {
    assert.ok(arcDir, 'the key directory exists');
    return readFileSync(join(arcDir, basename(appPath)), 'utf8');
  };

  const sources = [...azureIdentity1xSources('1.5 / 1.10'), ...newestSources(nowS)];
  for (const source of sources) {
    for (const user of [undefined, { clientId: IDENTITIES.user.clientId }] as const) {
      if (user !== undefined && !source.userAssigned) continue;
      test(`${source.name}, ${user ? 'user-assigned by client id' : 'system-assigned'} (profile ${source.profile})`, async () => {
        const env = envFor(source.profile);
        for (const name of source.selectedBy) assert.ok(env[name], `the ${source.profile} profile sets ${name}, which selects this source`);
        let res = await send(source.request(env, user));
        if (source.challenge !== undefined) res = await send(source.challenge(res, readKey, env, user));
        const token = source.parse(res);
        const c = claims(token.token);
        assert.equal(c['aud'], RESOURCE);
        assert.equal(c['appid'], user ? IDENTITIES.user.clientId : IDENTITIES.system.clientId);
        assert.ok(Math.abs(token.expiresOnS - Number(c['exp'])) <= 1, 'the parsed expiry is the token\'s exp');
        assert.ok(token.expiresOnS > nowS() + 300, 'the expiry is in the future');
      });
    }
  }

  test('the default profile: every generation picks App Service 2019 (IDENTITY_ENDPOINT + IDENTITY_HEADER win)', async () => {
    const env = envFor('default');
    for (const source of sources.filter((s) => s.profile === 'app-service')) {
      const res = await send(source.request(env, undefined));
      assert.equal(claims(source.parse(res).token)['appid'], IDENTITIES.system.clientId, source.name);
    }
  });

  test('newest DefaultAzureCredential IMDS probe: continues through the IMDS address, refuses through AZURE_POD_IDENTITY_AUTHORITY_HOST', async () => {
    const env = envFor('pod-identity');
    const url = new URL('/metadata/identity/oauth2/token', must(env, 'AZURE_POD_IDENTITY_AUTHORITY_HOST'));
    url.search = q([['api-version', '2018-02-01'], ['resource', resourceOf(SCOPE)]]);
    const res = await send({ method: 'GET', url: url.href, headers: {} });
    assert.equal(res.status, 400, 'the probe (no Metadata header) is answered 400 like real IMDS');
    // Through the webhook's redirect of 169.254.169.254 the app's URL host is the IMDS address: the probe succeeds.
    assert.equal(probeContinues('169.254.169.254', url.pathname, res), true);
    // Through AZURE_POD_IDENTITY_AUTHORITY_HOST the host differs: .NET reads the same 400 as "identity unavailable"
    // (the documented limitation of the pod-identity profile for .NET's DefaultAzureCredential).
    assert.equal(probeContinues(url.hostname, url.pathname, res), false);
  });
});
