import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ciEnvironment, describeConfig, loadConfig } from '../../../sidecar/config.ts';

const ENV = {
  ACTIONS_ID_TOKEN_REQUEST_URL: 'https://pipelines.actions.githubusercontent.com/abc/idtoken?api-version=2.0',
  ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'gh-request-token-value',
  SYSTEM_OIDCREQUESTURI: 'https://dev.azure.com/org/project/_apis/distributedtask/hubs/build/plans/p/jobs/j/oidctoken',
  SYSTEM_ACCESSTOKEN: 'ado-access-token-value',
  MI_ANYWHERE_GITLAB_ID_TOKEN: 'eyJhbGciOiJSUzI1NiJ9.gitlab.sig',
};

describe('config: CI platforms\' OIDC variables', () => {
  it('reads each platform\'s pair (or the GitLab token) and nothing of a half pair', () => {
    assert.deepEqual(ciEnvironment(ENV), {
      githubActions: { requestUrl: ENV.ACTIONS_ID_TOKEN_REQUEST_URL, requestToken: ENV.ACTIONS_ID_TOKEN_REQUEST_TOKEN },
      gitlabIdToken: ENV.MI_ANYWHERE_GITLAB_ID_TOKEN,
      azurePipelines: { oidcRequestUri: ENV.SYSTEM_OIDCREQUESTURI, accessToken: ENV.SYSTEM_ACCESSTOKEN },
    });
    assert.deepEqual(ciEnvironment({ ACTIONS_ID_TOKEN_REQUEST_URL: ENV.ACTIONS_ID_TOKEN_REQUEST_URL, SYSTEM_ACCESSTOKEN: ' ' }), {
      githubActions: undefined,
      gitlabIdToken: undefined,
      azurePipelines: undefined,
    });
  });
  it('the logged configuration names the platforms present, never their tokens', () => {
    const described = JSON.stringify(describeConfig(loadConfig({ ...ENV, MI_ANYWHERE_MODE: 'dev' }, [])));
    assert.match(described, /"ci":\["githubActions","gitlabIdToken","azurePipelines"\]/);
    for (const secret of [ENV.ACTIONS_ID_TOKEN_REQUEST_TOKEN, ENV.SYSTEM_ACCESSTOKEN, ENV.MI_ANYWHERE_GITLAB_ID_TOKEN]) assert.ok(!described.includes(secret));
  });
});
