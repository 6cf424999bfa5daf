import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { routeTarget, type Route } from '../../../../sidecar/protocol/route.ts';

describe('routeTarget: path variants and absolute form', () => {
  const imds: Route = { kind: 'token', dialect: 'imds' };
  const cases: { name: string; target: string; route: Route; query?: string }[] = [
    { name: 'IMDS', target: '/metadata/identity/oauth2/token?api-version=2018-02-01', route: imds, query: 'api-version=2018-02-01' },
    { name: 'IMDS trailing slash (msal-node)', target: '/metadata/identity/oauth2/token/?a=1', route: imds, query: 'a=1' },
    { name: 'IMDS doubled slash (MSAL4J)', target: '//metadata/identity/oauth2/token?a=1', route: imds },
    { name: 'IMDS upper case', target: '/METADATA/Identity/OAuth2/Token', route: imds },
    { name: 'App Service', target: '/msi/token?x', route: { kind: 'token', dialect: 'app-service' } },
    { name: 'App Service docs casing with trailing slash', target: '/MSI/token/', route: { kind: 'token', dialect: 'app-service' } },
    { name: 'MSI_ENDPOINT', target: '/oauth2/token', route: { kind: 'token', dialect: 'msi-endpoint' } },
    { name: 'MSI_ENDPOINT az "/?resource=<raw>"', target: '/oauth2/token/?resource=https://vault.azure.net&api-version=2017-09-01', route: { kind: 'token', dialect: 'msi-endpoint' }, query: 'resource=https://vault.azure.net&api-version=2017-09-01' },
    { name: 'Arc', target: '/arc/metadata/identity/oauth2/token?api-version=2020-06-01', route: { kind: 'token', dialect: 'arc' } },
    { name: 'dev discovery', target: '/dev-issuer/.well-known/openid-configuration', route: { kind: 'dev-discovery' } },
    { name: 'dev JWKS', target: '/dev-issuer/jwks', route: { kind: 'dev-jwks' } },
    { name: 'unknown path', target: '/metadata/instance?api-version=2021-02-01', route: { kind: 'not-found' } },
    { name: 'root', target: '/', route: { kind: 'not-found' } },
    { name: 'absolute-form IMDS (HTTP_PROXY)', target: 'http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://x', route: imds, query: 'api-version=2018-02-01&resource=https://x' },
    { name: 'absolute-form IMDS with :80', target: 'http://169.254.169.254:80/metadata/identity/oauth2/token', route: imds },
    { name: 'absolute-form other IMDS path', target: 'http://169.254.169.254/metadata/instance', route: { kind: 'not-found' } },
    { name: 'absolute-form App Service path on IMDS host', target: 'http://169.254.169.254/msi/token', route: { kind: 'not-found' } },
    { name: 'absolute-form other host', target: 'http://example.com/metadata/identity/oauth2/token', route: { kind: 'not-a-proxy' } },
    { name: 'absolute-form other port', target: 'http://169.254.169.254:8080/metadata/identity/oauth2/token', route: { kind: 'not-a-proxy' } },
    { name: 'absolute-form https', target: 'https://169.254.169.254/metadata/identity/oauth2/token', route: { kind: 'not-a-proxy' } },
    { name: 'absolute-form with user info', target: 'http://u@169.254.169.254/metadata/identity/oauth2/token', route: { kind: 'not-a-proxy' } },
    { name: 'authority form (CONNECT target)', target: 'example.com:443', route: { kind: 'not-found' } },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const routed = routeTarget(tc.target);
      assert.deepEqual(routed.route, tc.route);
      if (tc.query !== undefined) assert.equal(routed.query, tc.query);
    });
  }
});
