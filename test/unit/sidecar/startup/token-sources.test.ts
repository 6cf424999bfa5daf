import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SidecarError } from '../../../../sidecar/errors.ts';
import { byCredentialKind } from '../../../../sidecar/startup/token-sources.ts';
import { devIdentities } from '../../../../sidecar/token/dev-issuer.ts';
import type { TokenSource } from '../../../../sidecar/token/token-source.ts';

describe('byCredentialKind', () => {
  const identity = devIdentities()[0];
  assert.ok(identity);
  it('dispatches on the credential kind', async () => {
    const dev: TokenSource = { getToken: async (r) => ({ accessToken: 'dev', expiresOnSeconds: 1, notBeforeSeconds: 0, resource: r.resource, clientId: 'c' }) };
    assert.equal((await byCredentialKind({ dev }).getToken({ identity, resource: 'r' })).accessToken, 'dev');
  });
  it('a kind without a source fails as an unavailable credential', () => {
    assert.throws(() => byCredentialKind({}).getToken({ identity, resource: 'r' }), (e: unknown) => e instanceof SidecarError && e.code === 'SIDECAR_ERR_CREDENTIAL_UNAVAILABLE');
  });
});
