/**
 * Local stand-ins of the CI platforms' OIDC token services, for the CI identities of the sidecar
 * (`credentialSource` github-actions, gitlab-ci, azure-pipelines). Each mints RS256 JWTs with the platform's real
 * issuer string and claim shapes (documented by each platform, links below), signs them with a key published at
 * `jwksUri` (register that as the federated credential's JWKS in the test authority: the issuer string stays the
 * real one, only the keys are local), and serves the platform's token request the way a job sees it:
 *
 * - GitHub Actions (https://docs.github.com/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect):
 *   `GET <ACTIONS_ID_TOKEN_REQUEST_URL>&audience=<aud>` + `Authorization: Bearer <ACTIONS_ID_TOKEN_REQUEST_TOKEN>`
 *   -> `{"count":…,"value":"<jwt>"}`; `iss: https://token.actions.githubusercontent.com`,
 *   `sub: repo:<owner>/<repo>:ref:refs/heads/<branch>`.
 * - Azure Pipelines (https://learn.microsoft.com/rest/api/azure/devops/distributedtask/oidctoken/create):
 *   `POST <SYSTEM_OIDCREQUESTURI>?api-version=7.1&serviceConnectionId=<id>` + `Authorization: Bearer
 *   <SYSTEM_ACCESSTOKEN>` -> `{"oidcToken":"<jwt>"}`; `iss: https://vstoken.dev.azure.com/<organization id>`,
 *   `sub: sc://<organization>/<project>/<service connection name>`, `aud: api://AzureADTokenExchange`.
 * - GitLab CI (https://docs.gitlab.com/ci/secrets/id_token_authentication/): no request at all, the job gets the
 *   token in the variable its `id_tokens:` entry names; `iss: https://gitlab.com`,
 *   `sub: project_path:<group>/<project>:ref_type:branch:ref:<branch>`.
 *
 * Plain HTTP on 127.0.0.1. Every request is recorded (path, query, whether the bearer token matched).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';

export const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';
export const GITLAB_ISSUER = 'https://gitlab.com';
export const AZURE_DEVOPS_ORGANIZATION_ID = '5e0e4d1a-7d0a-4c3a-9a61-3c0d2b1f0a11';
export const AZURE_PIPELINES_ISSUER = `https://vstoken.dev.azure.com/${AZURE_DEVOPS_ORGANIZATION_ID}`;
export const DEFAULT_AUDIENCE = 'api://AzureADTokenExchange';

export interface CiPlatformRequest {
  readonly platform: 'github-actions' | 'azure-pipelines';
  readonly method: string;
  readonly query: Readonly<Record<string, string>>;
  readonly authorized: boolean;
}

export interface MintOptions {
  readonly subject?: string | undefined;
  readonly audience?: string | undefined;
  readonly lifetimeSeconds?: number | undefined;
}

export interface CiPlatforms {
  /** Publishes the keys of every platform's tokens (register as the federated credential's `jwksUri`). */
  readonly jwksUri: string;
  /** What a GitHub Actions job with `id-token: write` has in its environment. */
  readonly github: { readonly requestUrl: string; readonly requestToken: string; readonly subject: string };
  /** What an Azure Pipelines job has (SYSTEM_ACCESSTOKEN mapped) and the service connection it may use. */
  readonly azurePipelines: { readonly oidcRequestUri: string; readonly accessToken: string; readonly serviceConnectionId: string; readonly subject: string };
  readonly gitlab: { readonly subject: string };
  /** A GitLab `id_tokens:` token as the runner would put it into the job. */
  mintGitlab(options?: MintOptions): Promise<string>;
  /** Tokens issued from now on get this lifetime (default 300 s, GitHub's). */
  setLifetimeSeconds(seconds: number): void;
  /** Status to answer token requests with instead of a token (undefined = normal). */
  setFailure(status: number | undefined): void;
  requests(): readonly CiPlatformRequest[];
  stop(): Promise<void>;
}

export async function startCiPlatforms(options: { nowMs?: () => number } = {}): Promise<CiPlatforms> {
  const nowMs = options.nowMs ?? Date.now;
  const key = await generateKeyPair('RS256', { extractable: true });
  const kid = randomUUID();
  const jwk: JWK = { ...(await exportJWK(key.publicKey)), kid, use: 'sig', alg: 'RS256' };
  const githubRequestToken = `gh-request-${randomUUID()}`;
  const pipelinesAccessToken = `ado-access-${randomUUID()}`;
  const serviceConnectionId = randomUUID();
  const subjects = {
    github: 'repo:octo-org/octo-repo:ref:refs/heads/main',
    gitlab: 'project_path:my-group/my-project:ref_type:branch:ref:main',
    azurePipelines: 'sc://my-org/my-project/my-service-connection',
  };
  let lifetimeSeconds = 300;
  let failure: number | undefined;
  const log: CiPlatformRequest[] = [];

  const mint = (issuer: string, subject: string, audience: string, extra: Record<string, unknown>, lifetime = lifetimeSeconds): Promise<string> => {
    const now = Math.floor(nowMs() / 1000);
    return new SignJWT(extra)
      .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
      .setIssuer(issuer)
      .setSubject(subject)
      .setAudience(audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + lifetime)
      .setJti(randomUUID())
      .sign(key.privateKey);
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const query = Object.fromEntries(url.searchParams);
    const bearer = req.headers.authorization?.replace(/^Bearer /, '');
    res.setHeader('content-type', 'application/json');
    const answer = (status: number, body: unknown): void => {
      res.statusCode = status;
      res.end(JSON.stringify(body));
    };
    req.resume();
    if (url.pathname === '/keys') return answer(200, { keys: [jwk] });
    if (url.pathname === '/github/token' && req.method === 'GET') {
      const authorized = bearer === githubRequestToken;
      log.push({ platform: 'github-actions', method: 'GET', query, authorized });
      if (failure !== undefined) return answer(failure, { message: 'failure injected' });
      if (!authorized) return answer(401, { message: 'Bad credentials' });
      void mint(GITHUB_ISSUER, subjects.github, query.audience ?? 'https://github.com/octo-org', {
        repository: 'octo-org/octo-repo',
        repository_owner: 'octo-org',
        ref: 'refs/heads/main',
        ref_type: 'branch',
        workflow: 'ci',
        event_name: 'push',
        job_workflow_ref: 'octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main',
        runner_environment: 'github-hosted',
      }).then((value) => answer(200, { count: value.length, value }));
      return;
    }
    if (url.pathname.endsWith('/oidctoken') && req.method === 'POST') {
      const authorized = bearer === pipelinesAccessToken;
      log.push({ platform: 'azure-pipelines', method: 'POST', query, authorized });
      if (failure !== undefined) return answer(failure, { message: 'failure injected' });
      if (!authorized) return answer(401, { message: 'TF400813: The user is not authorized to access this resource.' });
      if (query.serviceConnectionId !== serviceConnectionId) {
        return answer(404, { message: `TF10000: service connection ${query.serviceConnectionId ?? ''} not found` });
      }
      void mint(AZURE_PIPELINES_ISSUER, subjects.azurePipelines, DEFAULT_AUDIENCE, {}).then((oidcToken) => answer(200, { oidcToken }));
      return;
    }
    answer(404, { message: 'Not Found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const planPath = `/my-org/${randomUUID()}/_apis/distributedtask/hubs/build/plans/${randomUUID()}/jobs/${randomUUID()}/oidctoken`;

  return {
    jwksUri: `${base}/keys`,
    github: { requestUrl: `${base}/github/token?api-version=2.0`, requestToken: githubRequestToken, subject: subjects.github },
    azurePipelines: { oidcRequestUri: `${base}${planPath}`, accessToken: pipelinesAccessToken, serviceConnectionId, subject: subjects.azurePipelines },
    gitlab: { subject: subjects.gitlab },
    mintGitlab: (o = {}) =>
      mint(GITLAB_ISSUER, o.subject ?? subjects.gitlab, o.audience ?? DEFAULT_AUDIENCE, {
        namespace_path: 'my-group',
        project_path: 'my-group/my-project',
        ref: 'main',
        ref_type: 'branch',
        pipeline_source: 'push',
      }, o.lifetimeSeconds),
    setLifetimeSeconds(seconds) {
      lifetimeSeconds = seconds;
    },
    setFailure(status) {
      failure = status;
    },
    requests: () => [...log],
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
