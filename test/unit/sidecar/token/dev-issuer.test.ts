import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { SidecarError } from '../../../../sidecar/errors.ts';
import { createDevIssuer, devIdentities, generateDevSigningKey, DEV_IDENTITIES, DEV_TENANT_ID, DEV_TOKEN_LIFETIME_SECONDS, type DevSigningKey } from '../../../../sidecar/token/dev-issuer.ts';

const BASE = 'http://127.0.0.1:50342';

describe('dev issuer', () => {
  it('built-in identities: documented ids, dev-system is the default', () => {
    const ids = devIdentities();
    assert.deepEqual(
      ids.map((i) => [i.descriptor.name, i.descriptor.clientId, i.descriptor.objectId, i.descriptor.isDefault, i.descriptor.credentialKind]),
      [
        ['dev-system', '22222222-2222-4222-8222-222222222222', '33333333-3333-4333-8333-333333333333', true, 'dev'],
        ['dev-user', '44444444-4444-4444-8444-444444444444', '55555555-5555-4555-8555-555555555555', false, 'dev'],
      ],
    );
    assert.equal(DEV_TENANT_ID, '11111111-1111-4111-8111-111111111111');
    assert.equal(devIdentities('dev-user').find((i) => i.descriptor.isDefault)?.descriptor.name, 'dev-user');
  });

  it('mints RS256 JWTs that verify against its JWKS with the documented claims', async () => {
    let now = Date.UTC(2026, 10, 26, 12);
    const issuer = createDevIssuer({ baseUrl: `${BASE}/`, nowMs: () => now });
    const user = devIdentities()[1];
    assert.ok(user);
    const token = await issuer.getToken({ identity: user, resource: 'https://vault.azure.net' });
    const { payload, protectedHeader } = await jwtVerify(token.accessToken, createLocalJWKSet(await issuer.jwks()), {
      issuer: `${BASE}/dev-issuer`,
      audience: 'https://vault.azure.net',
      currentDate: new Date(now),
    });
    assert.equal(protectedHeader.alg, 'RS256');
    assert.equal(payload.tid, DEV_TENANT_ID);
    assert.equal(payload.appid, DEV_IDENTITIES.user.clientId);
    assert.equal(payload.azp, DEV_IDENTITIES.user.clientId);
    assert.equal(payload.oid, DEV_IDENTITIES.user.objectId);
    assert.equal(payload.sub, DEV_IDENTITIES.user.objectId);
    assert.equal(payload.iat, now / 1000);
    assert.ok((payload.nbf ?? Infinity) <= now / 1000);
    assert.equal(payload.exp, now / 1000 + DEV_TOKEN_LIFETIME_SECONDS);
    assert.equal(token.expiresOnSeconds, payload.exp);
    assert.equal(token.notBeforeSeconds, payload.nbf);
    assert.equal(token.clientId, DEV_IDENTITIES.user.clientId);
    assert.equal(token.resource, 'https://vault.azure.net');
    assert.ok(DEV_TOKEN_LIFETIME_SECONDS > 300);
    now += 1000;
  });

  it('re-uses a token until half its lifetime, then mints a new one', async () => {
    let now = Date.UTC(2026, 10, 26, 12);
    const issuer = createDevIssuer({ baseUrl: BASE, nowMs: () => now });
    const system = devIdentities()[0];
    assert.ok(system);
    const first = await issuer.getToken({ identity: system, resource: 'r' });
    now += (DEV_TOKEN_LIFETIME_SECONDS / 2 - 1) * 1000;
    assert.equal((await issuer.getToken({ identity: system, resource: 'r' })).accessToken, first.accessToken);
    assert.notEqual((await issuer.getToken({ identity: system, resource: 'other' })).accessToken, first.accessToken);
    now += 2000;
    assert.notEqual((await issuer.getToken({ identity: system, resource: 'r' })).accessToken, first.accessToken);
  });

  it('concurrent first requests share one token (IMDS returns identical tokens, docs/protocols.md §11 item 19)', async () => {
    const issuer = createDevIssuer({ baseUrl: BASE, nowMs: () => Date.UTC(2026, 10, 26, 12) });
    const system = devIdentities()[0];
    assert.ok(system);
    const tokens = await Promise.all(Array.from({ length: 10 }, () => issuer.getToken({ identity: system, resource: 'r' })));
    assert.equal(new Set(tokens.map((t) => t.accessToken)).size, 1);
  });

  it('publishes OIDC discovery pointing at its JWKS', async () => {
    const issuer = createDevIssuer({ baseUrl: BASE, nowMs: () => 0 });
    assert.deepEqual(issuer.discovery(), {
      issuer: `${BASE}/dev-issuer`,
      jwks_uri: `${BASE}/dev-issuer/jwks`,
      id_token_signing_alg_values_supported: ['RS256'],
      token_endpoint_auth_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['token'],
      subject_types_supported: ['public'],
    });
    const [key] = (await issuer.jwks()).keys;
    assert.equal(key?.kty, 'RSA');
    assert.equal(key?.d, undefined, 'no private part in the JWKS');
  });

  it('is created before its key pair exists: requests wait for the key, and a key that fails fails them', async () => {
    let resolveKey: (key: DevSigningKey) => void = () => undefined;
    const pending = new Promise<DevSigningKey>((resolve) => (resolveKey = resolve));
    const issuer = createDevIssuer({ baseUrl: BASE, nowMs: () => 0, signingKey: pending });
    const system = devIdentities()[0];
    assert.ok(system);
    let settled = false;
    const token = issuer.getToken({ identity: system, resource: 'r' }).finally(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(settled, false, 'waits for the key');
    resolveKey(await generateDevSigningKey());
    await jwtVerify((await token).accessToken, createLocalJWKSet(await issuer.jwks()), { currentDate: new Date(0) });

    const failing = createDevIssuer({ baseUrl: BASE, nowMs: () => 0, signingKey: Promise.reject(new Error('key generation failed')) });
    await assert.rejects(failing.getToken({ identity: system, resource: 'r' }), /key generation failed/);
    await assert.rejects(failing.jwks(), /key generation failed/);
  });

  it('refuses identities with real credentials', async () => {
    const issuer = createDevIssuer({ baseUrl: BASE, nowMs: () => 0 });
    const dev = devIdentities()[0];
    assert.ok(dev);
    const real = { ...dev, material: { kind: 'secret' as const, clientSecret: 'x' } };
    await assert.rejects(issuer.getToken({ identity: real, resource: 'r' }), (e: unknown) => e instanceof SidecarError && /only serves dev identities/.test(e.message));
  });
});
