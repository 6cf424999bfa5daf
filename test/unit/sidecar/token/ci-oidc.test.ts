import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import type { CiEnvironment } from '../../../../sidecar/config.ts';
import { CredentialUnavailableError, UpstreamRejectedError, UpstreamUnavailableError } from '../../../../sidecar/errors.ts';
import type { CredentialMaterial } from '../../../../sidecar/identity/identity.ts';
import { ASSERTION_REFRESH_MARGIN_MS, CiAssertions } from '../../../../sidecar/token/ci-oidc.ts';
import { startCiPlatforms, type CiPlatforms } from '../../../authority/ci-platforms.ts';

type CiMaterial = Extract<CredentialMaterial, { kind: 'ci-oidc' }>;
const AUD = 'api://AzureADTokenExchange';
const github: CiMaterial = { kind: 'ci-oidc', platform: 'github-actions', audience: AUD };

describe('CiAssertions against local stand-ins of the platforms', () => {
  let platforms: CiPlatforms;
  let now = Date.UTC(2026, 11, 4, 12);
  const clock = () => now;
  let env: CiEnvironment;

  before(async () => {
    platforms = await startCiPlatforms({ nowMs: clock });
    env = {
      githubActions: { requestUrl: platforms.github.requestUrl, requestToken: platforms.github.requestToken },
      gitlabIdToken: undefined,
      azurePipelines: { oidcRequestUri: platforms.azurePipelines.oidcRequestUri, accessToken: platforms.azurePipelines.accessToken },
    };
  });
  after(() => platforms.stop());

  it('GitHub: asks for the identity\'s audience, reuses the token until it nears expiry, then fetches a fresh one', async () => {
    const assertions = new CiAssertions({ env, nowMs: clock });
    const callback = assertions.callbackFor(github);
    const before = platforms.requests().length;
    const first = await callback({ clientId: 'c', tokenEndpoint: 't' });
    assert.equal(decodeJwt(first).aud, AUD);
    assert.equal(decodeJwt(first).iss, 'https://token.actions.githubusercontent.com');
    now += 300_000 - ASSERTION_REFRESH_MARGIN_MS - 1_000; // still more than the margin left
    assert.equal(await callback({ clientId: 'c', tokenEndpoint: 't' }), first);
    assert.equal(platforms.requests().length - before, 1);
    now += 2_000; // now within the margin
    const second = await callback({ clientId: 'c', tokenEndpoint: 't' });
    assert.notEqual(second, first);
    assert.equal(platforms.requests().length - before, 2);
    const last = platforms.requests().at(-1)!;
    assert.equal(last.query.audience, AUD);
    assert.equal(last.authorized, true);
  });

  it('concurrent exchanges share one request to the platform', async () => {
    const assertions = new CiAssertions({ env, nowMs: clock });
    const callback = assertions.callbackFor({ kind: 'ci-oidc', platform: 'azure-pipelines', audience: AUD, serviceConnectionId: platforms.azurePipelines.serviceConnectionId });
    const before = platforms.requests().length;
    const tokens = await Promise.all(Array.from({ length: 10 }, () => callback({ clientId: 'c', tokenEndpoint: 't' })));
    assert.equal(new Set(tokens).size, 1);
    assert.equal(platforms.requests().length - before, 1);
  });

  const failures: { name: string; env: () => CiEnvironment; material: () => CiMaterial; status?: number; error: typeof CredentialUnavailableError | typeof UpstreamUnavailableError; message: RegExp }[] = [
    {
      name: 'GitHub variables missing (no id-token: write, or a service container)',
      env: () => ({ ...env, githubActions: undefined }),
      material: () => github,
      error: CredentialUnavailableError,
      message: /ACTIONS_ID_TOKEN_REQUEST_URL \/ ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set: give the job permissions: id-token: write/,
    },
    {
      name: 'GitHub refuses the request token',
      env: () => ({ ...env, githubActions: { requestUrl: platforms.github.requestUrl, requestToken: 'wrong' } }),
      material: () => github,
      error: CredentialUnavailableError,
      message: /the GitHub Actions OIDC endpoint refused the request \(HTTP 401\): the job needs permissions: id-token: write/,
    },
    {
      name: 'Azure Pipelines: unknown service connection',
      env: () => env,
      material: () => ({ kind: 'ci-oidc', platform: 'azure-pipelines', audience: AUD, serviceConnectionId: '00000000-0000-4000-8000-000000000000' }),
      error: CredentialUnavailableError,
      message: /the Azure Pipelines OIDC endpoint refused the request \(HTTP 404\): check serviceConnectionId/,
    },
    {
      name: 'Azure Pipelines variables missing',
      env: () => ({ ...env, azurePipelines: undefined }),
      material: () => ({ kind: 'ci-oidc', platform: 'azure-pipelines', audience: AUD, serviceConnectionId: platforms.azurePipelines.serviceConnectionId }),
      error: CredentialUnavailableError,
      message: /SYSTEM_OIDCREQUESTURI \/ SYSTEM_ACCESSTOKEN are not set: map SYSTEM_ACCESSTOKEN: \$\(System.AccessToken\)/,
    },
    {
      name: 'the platform fails (503): retryable',
      env: () => env,
      material: () => github,
      status: 503,
      error: UpstreamUnavailableError,
      message: /the GitHub Actions OIDC endpoint answered HTTP 503; retry later/,
    },
    {
      name: 'GitLab token missing',
      env: () => env,
      material: () => ({ kind: 'ci-oidc', platform: 'gitlab-ci', audience: AUD }),
      error: CredentialUnavailableError,
      message: /MI_ANYWHERE_GITLAB_ID_TOKEN is not set: declare it in the job's id_tokens \(aud: api:\/\/AzureADTokenExchange\)/,
    },
  ];
  for (const tc of failures) {
    it(`fails clearly: ${tc.name}`, async () => {
      platforms.setFailure(tc.status);
      try {
        const callback = new CiAssertions({ env: tc.env(), nowMs: clock }).callbackFor(tc.material());
        await assert.rejects(callback({ clientId: 'c', tokenEndpoint: 't' }), (error: unknown) => {
          assert.ok(error instanceof tc.error, String(error));
          assert.match((error as Error).message, tc.message);
          assert.ok(!(error as Error).message.includes(platforms.github.requestToken));
          return true;
        });
      } finally {
        platforms.setFailure(undefined);
      }
    });
  }

  it('GitLab: the job\'s token is used while valid; an expired one or one for another audience is refused, not sent', async () => {
    const material: CiMaterial = { kind: 'ci-oidc', platform: 'gitlab-ci', audience: AUD };
    const token = await platforms.mintGitlab({ lifetimeSeconds: 3600 });
    assert.equal(await new CiAssertions({ env: { ...env, gitlabIdToken: token }, nowMs: clock }).callbackFor(material)({ clientId: 'c', tokenEndpoint: 't' }), token);
    const expired = await platforms.mintGitlab({ lifetimeSeconds: 60 });
    const later = () => now + 120_000;
    await assert.rejects(new CiAssertions({ env: { ...env, gitlabIdToken: expired }, nowMs: later }).callbackFor(material)({ clientId: 'c', tokenEndpoint: 't' }), {
      message: /the GitLab ID token in MI_ANYWHERE_GITLAB_ID_TOKEN has expired/,
    });
    const otherAudience = await platforms.mintGitlab({ audience: 'https://gitlab.com' });
    await assert.rejects(new CiAssertions({ env: { ...env, gitlabIdToken: otherAudience }, nowMs: clock }).callbackFor(material)({ clientId: 'c', tokenEndpoint: 't' }), {
      message: /is for audience \["https:\/\/gitlab.com"\], but the identity expects "api:\/\/AzureADTokenExchange": set aud: api:\/\/AzureADTokenExchange on the id_tokens entry/,
    });
  });

  it('explain: a federated-credential mismatch names the token\'s issuer, subject and audience; other errors pass unchanged', async () => {
    const assertions = new CiAssertions({ env, nowMs: clock });
    await assertions.callbackFor(github)({ clientId: 'c', tokenEndpoint: 't' });
    const mismatch = new UpstreamRejectedError({ oauthError: 'invalid_client', aadsts: 'AADSTS700213', hint: 'generic' });
    const explained = assertions.explain(mismatch, github);
    assert.ok(explained instanceof UpstreamRejectedError);
    assert.equal(explained.message, `AADSTS700213: no federated credential on the app matches the GitHub Actions OIDC token's subject: add one with issuer https://token.actions.githubusercontent.com, subject ${platforms.github.subject}, audience ${AUD}`);
    const other = new UpstreamRejectedError({ oauthError: 'invalid_client', aadsts: 'AADSTS700016', hint: 'app not found' });
    assert.equal(assertions.explain(other, github), other);
    assert.equal(assertions.explain(mismatch, { kind: 'secret', clientSecret: 'x' }), mismatch);
  });
});
