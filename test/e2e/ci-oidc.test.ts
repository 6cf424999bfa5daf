/**
 * CI OIDC identities end to end: the real sidecar process, run as a CI job would run it (the platform's variables in
 * its environment), exchanges each platform's OIDC token for an Entra token at the test authority; the client is
 * @azure/identity's ManagedIdentityCredential in its own process, unchanged. The platforms are local stand-ins
 * (test/authority/ci-platforms.ts) issuing tokens with the real issuers and subject shapes; the authority accepts them
 * only for a matching federated credential and answers a mismatch with Entra's AADSTS code, which reaches the SDK
 * with the token's issuer, subject and audience named.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { startTestAuthority, type RegisteredApp, type TestAuthority } from '../authority/authority.ts';
import { GITHUB_ISSUER, GITLAB_ISSUER, AZURE_PIPELINES_ISSUER, startCiPlatforms, type CiPlatforms } from '../authority/ci-platforms.ts';
import { node24, REPO_ROOT, startSidecar, type SpawnedSidecar } from '../helpers/sidecar.ts';
import { registerSecret } from '../helpers/collected-logs.ts';
import { writeSecretDir } from '../helpers/kube-secret-dir.ts';

interface SdkAnswer {
  readonly ok: boolean;
  readonly token?: string;
  readonly name?: string;
  readonly message?: string;
}

/** Runs the SDK client with exactly the app-service profile the sidecar printed (nothing inherited). */
export function sdkToken(sidecar: SpawnedSidecar, scope: string, clientId?: string, kind: 'managed' | 'default' = 'managed'): Promise<SdkAnswer> {
  const profile = sidecar.profiles.get('app-service');
  assert.ok(profile, 'the sidecar printed an app-service profile');
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...profile, IDENTITY_HEADER: sidecar.identityHeader };
  const args = [join(REPO_ROOT, 'test', 'e2e', 'clients', 'sdk-token.ts'), scope, kind, ...(clientId ? [clientId] : [])];
  return new Promise((resolve, reject) => {
    const child = spawn(node24(), args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    child.once('error', reject);
    child.once('close', () => {
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as SdkAnswer);
      } catch {
        reject(new Error(`SDK client printed no result; stdout: ${out} stderr: ${err}`));
      }
    });
  });
}

describe('CI OIDC identities against the test authority', () => {
  let authority: TestAuthority;
  let platforms: CiPlatforms;
  let sidecar: SpawnedSidecar;
  let root: string;
  let gitlabToken: string;
  const apps: Record<string, RegisteredApp> = {};

  before(async () => {
    authority = await startTestAuthority();
    platforms = await startCiPlatforms();
    root = mkdtempSync(join(tmpdir(), 'mi-anywhere-ci-'));
    const identities = join(root, 'identities');
    const jwksUri = platforms.jwksUri;
    apps.github = authority.registerApp({ federatedCredentials: [{ issuer: GITHUB_ISSUER, subject: platforms.github.subject, jwksUri }] });
    apps.gitlab = authority.registerApp({ federatedCredentials: [{ issuer: GITLAB_ISSUER, subject: platforms.gitlab.subject, jwksUri }] });
    apps.pipelines = authority.registerApp({ federatedCredentials: [{ issuer: AZURE_PIPELINES_ISSUER, subject: platforms.azurePipelines.subject, jwksUri }] });
    apps.wrongSubject = authority.registerApp({ federatedCredentials: [{ issuer: GITHUB_ISSUER, subject: 'repo:octo-org/octo-repo:environment:production', jwksUri }] });
    apps.wrongIssuer = authority.registerApp({ federatedCredentials: [{ issuer: GITLAB_ISSUER, subject: platforms.github.subject, jwksUri }] });
    apps.wrongAudience = authority.registerApp({ federatedCredentials: [{ issuer: GITHUB_ISSUER, subject: platforms.github.subject, jwksUri }] });

    const ids = (app: RegisteredApp) => ({ tenantId: app.tenantId, clientId: app.clientId });
    writeSecretDir(identities, 'github', { ...ids(apps.github), credentialSource: 'github-actions\n' });
    writeSecretDir(identities, 'gitlab', { ...ids(apps.gitlab), credentialSource: 'gitlab-ci' });
    writeSecretDir(identities, 'pipelines', {
      ...ids(apps.pipelines),
      credentialSource: 'azure-pipelines',
      serviceConnectionId: platforms.azurePipelines.serviceConnectionId,
    });
    writeSecretDir(identities, 'wrong-subject', { ...ids(apps.wrongSubject), credentialSource: 'github-actions' });
    writeSecretDir(identities, 'wrong-issuer', { ...ids(apps.wrongIssuer), credentialSource: 'github-actions' });
    writeSecretDir(identities, 'wrong-audience', { ...ids(apps.wrongAudience), credentialSource: 'github-actions', federatedAudience: 'api://SomethingElse' });

    gitlabToken = await platforms.mintGitlab({ lifetimeSeconds: 3600 });
    registerSecret('GitHub Actions request token', platforms.github.requestToken);
    registerSecret('Azure Pipelines access token', platforms.azurePipelines.accessToken);
    registerSecret('GitLab ID token', gitlabToken);
    sidecar = await startSidecar({
      args: [],
      env: {
        MI_ANYWHERE_MODE: 'entra',
        MI_ANYWHERE_IDENTITY_DIR: identities,
        MI_ANYWHERE_DEFAULT_IDENTITY: 'github',
        MI_ANYWHERE_AUTHORITY_HOST: authority.url,
        NODE_EXTRA_CA_CERTS: authority.caFile,
        ACTIONS_ID_TOKEN_REQUEST_URL: platforms.github.requestUrl,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: platforms.github.requestToken,
        MI_ANYWHERE_GITLAB_ID_TOKEN: gitlabToken,
        SYSTEM_OIDCREQUESTURI: platforms.azurePipelines.oidcRequestUri,
        SYSTEM_ACCESSTOKEN: platforms.azurePipelines.accessToken,
      },
    });
  });

  after(async () => {
    await sidecar?.stop();
    await platforms?.stop();
    await authority?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const platformCases = [
    { name: 'GitHub Actions', app: 'github', issuer: GITHUB_ISSUER, subject: () => platforms.github.subject },
    { name: 'GitLab CI', app: 'gitlab', issuer: GITLAB_ISSUER, subject: () => platforms.gitlab.subject },
    { name: 'Azure Pipelines', app: 'pipelines', issuer: AZURE_PIPELINES_ISSUER, subject: () => platforms.azurePipelines.subject },
  ] as const;
  for (const tc of platformCases) {
    it(`${tc.name}: ManagedIdentityCredential gets a token exchanged with the platform's OIDC token`, async () => {
      const app = apps[tc.app]!;
      const answer = await sdkToken(sidecar, 'https://vault.azure.net/.default', app.clientId);
      assert.equal(answer.ok, true, answer.message);
      const claims = decodeJwt(answer.token!);
      assert.equal(claims.appid, app.clientId);
      assert.equal(claims.aud, 'https://vault.azure.net');
      // (The default identity also had a warm-up token for ARM.)
      const calls = authority.calls({ endpoint: 'token', clientId: app.clientId, status: 200 }).filter((c) => c.scope === 'https://vault.azure.net/.default');
      assert.equal(calls.length, 1);
      assert.equal(calls[0]!.credentialType, 'federated');
      assert.equal(calls[0]!.credentialId, `${tc.issuer}|${tc.subject()}`);
    });
  }

  it('asks GitHub for the identity\'s audience, and Azure Pipelines for its service connection, with the job\'s bearer tokens', () => {
    const requests = platforms.requests();
    const github = requests.filter((r) => r.platform === 'github-actions');
    assert.ok(github.length >= 1);
    assert.ok(github.every((r) => r.authorized && r.query['api-version'] === '2.0'));
    assert.ok(github.some((r) => r.query.audience === 'api://AzureADTokenExchange'));
    const pipelines = requests.filter((r) => r.platform === 'azure-pipelines');
    assert.ok(pipelines.length >= 1);
    assert.ok(pipelines.every((r) => r.authorized && r.method === 'POST' && r.query.serviceConnectionId === platforms.azurePipelines.serviceConnectionId));
  });

  const mismatches = [
    { name: 'subject', app: 'wrongSubject', aadsts: 'AADSTS700213', names: () => [`subject ${platforms.github.subject}`] },
    { name: 'issuer', app: 'wrongIssuer', aadsts: 'AADSTS700211', names: () => [`issuer ${GITHUB_ISSUER}`] },
    { name: 'audience', app: 'wrongAudience', aadsts: 'AADSTS700212', names: () => ['audience api://SomethingElse'] },
  ] as const;
  for (const tc of mismatches) {
    it(`a federated credential with another ${tc.name} is refused with ${tc.aadsts}, and the SDK's error names the token's ${tc.name}`, async () => {
      const app = apps[tc.app]!;
      const answer = await sdkToken(sidecar, 'https://management.azure.com/.default', app.clientId);
      assert.equal(answer.ok, false);
      assert.match(answer.message ?? '', new RegExp(tc.aadsts));
      for (const text of tc.names()) assert.ok(answer.message?.includes(text), `${answer.message} should name ${text}`);
      assert.equal(authority.calls({ endpoint: 'token', clientId: app.clientId }).at(-1)?.aadsts, tc.aadsts);
    });
  }

  it('never logs an assertion or a platform token', () => {
    const logs = sidecar.logs();
    for (const secret of [platforms.github.requestToken, platforms.azurePipelines.accessToken, gitlabToken]) assert.ok(!logs.includes(secret));
    assert.ok(!/eyJ[\w-]{10,}\.[\w-]{10,}\./.test(logs), 'no JWT in the sidecar output');
  });
});
