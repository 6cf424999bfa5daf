/**
 * The README is enough to start: following only the README, a user gets a token with curl and with
 * @azure/identity's ManagedIdentityCredential through IDENTITY_ENDPOINT/IDENTITY_HEADER, MSI_ENDPOINT and
 * AZURE_POD_IDENTITY_AUTHORITY_HOST.
 *
 * The sidecar is started with the README's own start command (`npm start`, taken from the Quickstart block; the
 * `npm ci` half has already run in any checkout that runs tests). The only deviation: ports are 0, because tests
 * run in parallel on a shared machine. The curl commands are read from the README and executed as written (shell
 * variables from the printed `default` profile). The SDK runs in child processes whose environment is exactly one
 * printed profile and nothing else.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { SIDECAR_ENV } from '../../../sidecar/contract.ts';
import { DEV_IDENTITIES, DEV_TENANT_ID } from '../../../sidecar/token/dev-issuer.ts';
import { node24, REPO_ROOT, startSidecar, type SpawnedSidecar } from '../../helpers/sidecar.ts';

const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

/** The fenced code block that follows a heading. */
function codeBlockAfter(heading: string): string {
  const at = README.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `README has no heading "${heading}"`);
  const match = /```[a-z]*\n([\s\S]*?)```/.exec(README.slice(at));
  assert.ok(match?.[1], `no code block after "${heading}"`);
  return match[1];
}

/** Splits a shell command line into words (double-quoted strings, `$NAME` expansion; enough for the README). */
function shellWords(line: string, vars: Readonly<Record<string, string>>): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of line.matchAll(re)) {
    const word = m[1] ?? m[2] ?? '';
    words.push(word.replace(/\$([A-Z_][A-Z0-9_]*)/g, (_, name: string) => {
      const value = vars[name];
      assert.ok(value !== undefined, `README uses $${name}, which the profile does not define`);
      return value;
    }));
  }
  return words;
}

/** Executes a README `curl` line with fetch: -s, -H "Name: value", -d data (POST form, as curl does), URL. */
async function curl(line: string, vars: Readonly<Record<string, string>>): Promise<Response> {
  const words = shellWords(line, vars);
  assert.equal(words.shift(), 'curl');
  const headers: Record<string, string> = {};
  let body: string | undefined;
  let url: string | undefined;
  while (words.length > 0) {
    const word = words.shift() as string;
    if (word === '-s') continue;
    if (word === '-H') {
      const [name, ...rest] = (words.shift() ?? '').split(':');
      headers[(name ?? '').trim()] = rest.join(':').trim();
    } else if (word === '-d') {
      body = words.shift();
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
    } else if (word.startsWith('-')) {
      assert.fail(`the README test does not know curl option ${word}`);
    } else {
      url = word;
    }
  }
  assert.ok(url, line);
  return fetch(url, { method: body === undefined ? 'GET' : 'POST', headers, body });
}

/** Sum of every token request the sidecar has answered (from its metrics; updated before the next request is read). */
async function tokenRequestCount(sc: SpawnedSidecar): Promise<number> {
  const text = await (await fetch(`${sc.metricsUrl}/metrics`)).text();
  let total = 0;
  for (const m of text.matchAll(/^mi_anywhere_token_requests_total\{[^}]*\} (\d+)$/gm)) total += Number(m[1]);
  return total;
}

interface ClientResult {
  ok: boolean;
  token?: string;
  expiresOnTimestamp?: number;
  sameToken?: boolean;
  error?: string;
}

/**
 * The expiry the SDK reports matches the token's `exp` as far as the protocol allows: msal-node re-bases `expires_on`
 * on the time it sent the request, in whole seconds (docs/protocols.md §3.1), so the SDK's expiry is `exp` less the
 * request's round trip, rounded to the second. The client run (process start and both getToken calls) encloses that
 * round trip, so it bounds how far below `exp` the SDK's expiry may be.
 */
function assertSdkReadExpiresOn(sdkExpiresOnMs: number | undefined, token: string, clientRunMs: number): void {
  const expMs = (decodeJwt(token).exp ?? 0) * 1000;
  const earliestMs = expMs - clientRunMs - 1000;
  assert.ok(
    sdkExpiresOnMs !== undefined && sdkExpiresOnMs >= earliestMs && sdkExpiresOnMs <= expMs,
    `SDK read expires_on: ${sdkExpiresOnMs} should be within [${earliestMs}, ${expMs}] (exp less a client run of ${clientRunMs} ms, rounded to the second)`,
  );
}

/** Runs mi-client.ts with exactly the given environment. */
function runClient(env: Readonly<Record<string, string>>, args: readonly string[]): ClientResult & { runMs: number } {
  const startedMs = Date.now();
  const r = spawnSync(node24(), [join(import.meta.dirname, '..', '..', 'helpers', 'mi-client.ts'), ...args], { env: { ...env }, encoding: 'utf8', timeout: 60_000, cwd: REPO_ROOT });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  assert.ok(line.startsWith('{'), `client printed no result (status ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { ...(JSON.parse(line) as ClientResult), runMs: Date.now() - startedMs };
}

describe('README quickstart', () => {
  it('has exactly two set-up commands: start with the dev identity, and run all tests', () => {
    const commands = codeBlockAfter('## Quickstart')
      .split('\n')
      .map((l) => l.replace(/#.*$/, '').trim())
      .filter((l) => l !== '');
    assert.deepEqual(commands, ['npm ci && npm start', 'npm ci && npm test']);
  });

  it('documents every sidecar environment variable', () => {
    for (const name of Object.values(SIDECAR_ENV)) assert.ok(README.includes(`\`${name}\``), `${name} missing from the README configuration table`);
  });

  it('documents the built-in dev identities with the ids the code uses', () => {
    for (const d of Object.values(DEV_IDENTITIES)) {
      for (const value of [d.name, d.clientId, d.objectId, d.resourceId]) if (value) assert.ok(README.includes(value), `${value} missing`);
    }
    assert.ok(README.includes(DEV_TENANT_ID));
  });
});

describe('README: a token with curl and with @azure/identity (npm start, dev mode)', () => {
  let sc: SpawnedSidecar;
  before(async () => {
    const startLine = codeBlockAfter('## Quickstart').split('\n').find((l) => l.includes('npm start')) ?? '';
    const command = startLine.replace(/#.*$/, '').split('&&').map((s) => s.trim()).find((s) => s.startsWith('npm start'));
    assert.equal(command, 'npm start');
    sc = await startSidecar({
      command: ['npm', 'start', '--silent'],
      // Deviations from the README, for a shared test machine: ports 0 and health/metrics on 127.0.0.1 (the
      // helper's defaults). The identity header stays random per start, as for a user.
      env: { MI_ANYWHERE_IDENTITY_HEADER: undefined },
    });
  });
  after(() => sc?.stop());

  const resource = 'https://vault.azure.net';
  const checkToken = (token: string, clientId: string): void => {
    const claims = decodeJwt(token);
    assert.equal(claims.aud, resource);
    assert.equal(claims.appid, clientId);
    assert.equal(claims.tid, DEV_TENANT_ID);
    assert.equal(claims.iss, `${sc.tokenUrl}/dev-issuer`);
  };

  it('prints a default profile with a fresh identity header', () => {
    const profile = sc.profiles.get('default');
    assert.ok(profile);
    assert.deepEqual(Object.keys(profile), ['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'MSI_ENDPOINT', 'MSI_SECRET', 'DEFAULT_IDENTITY_CLIENT_ID', 'AZURE_POD_IDENTITY_AUTHORITY_HOST']);
    assert.match(profile['IDENTITY_HEADER'] ?? '', /^[0-9a-f]{48}$/);
  });

  it('every curl command of the README returns a token', async () => {
    const lines = codeBlockAfter('### Get a token with curl').split('\n').filter((l) => l.startsWith('curl '));
    assert.ok(lines.length >= 4, 'README shows curl commands');
    const vars = sc.profiles.get('default') ?? {};
    for (const line of lines) {
      const r = await curl(line, vars);
      const text = await r.text();
      assert.equal(r.status, 200, `${line}\n→ ${text}`);
      assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
      const body = JSON.parse(text) as Record<string, string>;
      const wanted = /client_id=([0-9a-f-]+)/.exec(line)?.[1] ?? DEV_IDENTITIES.system.clientId;
      assert.equal(body['client_id'], wanted);
      assert.equal(body['resource'], resource);
      checkToken(body['access_token'] ?? '', wanted);
    }
  });

  const sdkCases: { profile: 'app-service' | 'msi-endpoint' | 'pod-identity' | 'msi-secret' | 'default'; clientId?: string }[] = [
    { profile: 'app-service' },
    { profile: 'app-service', clientId: DEV_IDENTITIES.user.clientId },
    { profile: 'msi-endpoint' },
    { profile: 'pod-identity' },
    { profile: 'pod-identity', clientId: DEV_IDENTITIES.user.clientId },
    { profile: 'msi-secret' },
    { profile: 'default' },
  ];
  for (const tc of sdkCases) {
    it(`ManagedIdentityCredential with only the "${tc.profile}" profile${tc.clientId ? ' (user-assigned)' : ''}; second call from the SDK cache`, async () => {
      const env = sc.profiles.get(tc.profile);
      assert.ok(env, `profile ${tc.profile} printed`);
      const before = await tokenRequestCount(sc);
      const result = runClient(env, [`${resource}/.default`, ...(tc.clientId ? [tc.clientId] : [])]);
      assert.equal(result.ok, true, result.error);
      checkToken(result.token ?? '', tc.clientId ?? DEV_IDENTITIES.system.clientId);
      assert.equal(result.sameToken, true);
      assertSdkReadExpiresOn(result.expiresOnTimestamp, result.token ?? '', result.runMs);
      assert.equal(await tokenRequestCount(sc), before + 1, 'two getToken calls, one request: the second came from the SDK cache');
    });
  }
});
