import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { CredentialUnavailableError, UpstreamUnavailableError } from '../../../../sidecar/errors.ts';
import type { LoadedIdentity } from '../../../../sidecar/identity/identity.ts';
import { AZURE_CLI_CLIENT_ID, fingerprint } from '../../../../sidecar/identity/load.ts';
import { AzureCliTokenSource, routeAzureCliIdentities, type AzureCliCredentialFactory } from '../../../../sidecar/token/azure-cli-source.ts';
import type { TokenSource } from '../../../../sidecar/token/token-source.ts';

const T = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const NOW = Date.UTC(2026, 11, 4, 12);

function developer(tenantId?: string): LoadedIdentity {
  const material = { kind: 'azure-cli', tenantId } as const;
  return {
    descriptor: { name: 'developer', tenantId: tenantId ?? '', clientId: AZURE_CLI_CLIENT_ID, credentialKind: 'azure-cli', isDefault: true },
    material,
    credentialFingerprint: fingerprint(material),
  };
}

const jwt = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new Uint8Array(32));

/** A fake of the SDK credential: records what it was asked, answers or throws as told. */
function fakeCli(answer: () => Promise<{ token: string; expiresOnTimestamp: number }>) {
  const calls: { tenantId: string | undefined; scope: string | string[] }[] = [];
  const factory: AzureCliCredentialFactory = async ({ tenantId }) => ({
    getToken: async (scope) => {
      calls.push({ tenantId, scope });
      return answer();
    },
  });
  return { factory, calls };
}

describe('AzureCliTokenSource', () => {
  it('asks the CLI credential for <resource>/.default in the identity\'s tenant and echoes the token\'s client', async () => {
    const token = await jwt({ appid: 'e448392a-1a44-489d-a58b-4e9a9ca11b3d' });
    const cli = fakeCli(async () => ({ token, expiresOnTimestamp: NOW + 3_600_000 }));
    const source = new AzureCliTokenSource({ nowMs: () => NOW, credential: cli.factory });
    const issued = await source.getToken({ identity: developer(T), resource: 'https://vault.azure.net' });
    assert.deepEqual(cli.calls, [{ tenantId: T, scope: 'https://vault.azure.net/.default' }]);
    assert.deepEqual(issued, {
      accessToken: token,
      expiresOnSeconds: NOW / 1000 + 3600,
      notBeforeSeconds: NOW / 1000,
      resource: 'https://vault.azure.net',
      clientId: 'e448392a-1a44-489d-a58b-4e9a9ca11b3d',
    });
  });

  it('falls back to the descriptor\'s client id when the token is opaque', async () => {
    const source = new AzureCliTokenSource({ nowMs: () => NOW, credential: fakeCli(async () => ({ token: 'opaque', expiresOnTimestamp: NOW + 60_000 })).factory });
    assert.equal((await source.getToken({ identity: developer(), resource: 'https://management.azure.com/' })).clientId, AZURE_CLI_CLIENT_ID);
  });

  const failures = [
    {
      name: 'az not installed',
      thrown: new Error("Azure CLI could not be found. Please visit https://aka.ms/azure-cli for installation instructions and then, once installed, authenticate to your Azure account using 'az login'."),
      error: CredentialUnavailableError,
      message: /the Azure CLI \(az\) is not installed on the sidecar's host or not on its PATH: install it and run az login/,
    },
    {
      name: 'not logged in',
      thrown: new Error("Please run 'az login' from a command prompt to authenticate before using this credential."),
      error: CredentialUnavailableError,
      message: /is not logged in \(or its login expired\): run az login/,
    },
    { name: 'az hangs', thrown: new Error('Command timed out: SIGTERM'), error: UpstreamUnavailableError, message: /did not answer within 30 s/ },
    {
      name: 'anything else: az\'s first line',
      thrown: new Error('ERROR: AADSTS500011: The resource principal named https://nothing was not found.\nTrace ID: …'),
      error: CredentialUnavailableError,
      message: /^the Azure CLI could not get a token: ERROR: AADSTS500011: The resource principal named https:\/\/nothing was not found\.$/,
    },
  ];
  for (const tc of failures) {
    it(`maps a failure: ${tc.name}`, async () => {
      const source = new AzureCliTokenSource({ nowMs: () => NOW, credential: fakeCli(() => Promise.reject(tc.thrown)).factory });
      await assert.rejects(source.getToken({ identity: developer(), resource: 'https://management.azure.com/' }), (error: unknown) => {
        assert.ok(error instanceof tc.error);
        assert.match((error as Error).message, tc.message);
        return true;
      });
    });
  }

  it('loads the SDK credential once per tenant', async () => {
    let created = 0;
    const source = new AzureCliTokenSource({
      nowMs: () => NOW,
      credential: async () => {
        created += 1;
        return { getToken: async () => ({ token: 'x', expiresOnTimestamp: NOW + 60_000 }) };
      },
    });
    for (const tenant of [T, T, undefined, undefined]) await source.getToken({ identity: developer(tenant), resource: 'https://management.azure.com/' });
    assert.equal(created, 2);
  });

  it('routeAzureCliIdentities sends developer identities to the CLI and every other one to Entra', async () => {
    const seen: string[] = [];
    const named = (name: string): TokenSource => ({
      getToken: async (r) => {
        seen.push(`${name}:${r.identity.descriptor.name}`);
        return { accessToken: 'a', expiresOnSeconds: 1, notBeforeSeconds: 0, resource: r.resource, clientId: 'c' };
      },
    });
    const route = routeAzureCliIdentities(named('entra'), named('cli'));
    const secret = { ...developer(), descriptor: { ...developer().descriptor, name: 'app', credentialKind: 'secret' as const }, material: { kind: 'secret' as const, clientSecret: 'x' } };
    await route.getToken({ identity: developer(), resource: 'r' });
    await route.getToken({ identity: secret, resource: 'r' });
    assert.deepEqual(seen, ['cli:developer', 'entra:app']);
  });
});
