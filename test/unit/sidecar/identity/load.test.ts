import assert from 'node:assert/strict';
import { posix } from 'node:path';
import { describe, it } from 'node:test';
import { AZURE_CLI_CLIENT_ID, fingerprint, loadIdentities, loadIdentityDir, noDefaultReason, type IdentityFs, type IdentityProblem } from '../../../../sidecar/identity/load.ts';
import { createClientCertificate, thumbprints, toPfx } from '../../../authority/pki.ts';

/** A real client certificate, for the PKCS#12 cases (the loader opens certificate.pfx when it reads it). */
const CLIENT = await createClientCertificate();

/** In-memory filesystem: keys are file paths; directories are implied by their files (or listed with a trailing "/"). */
function memoryFs(files: Record<string, string | Buffer>): IdentityFs {
  const dirs = new Set<string>();
  for (const path of Object.keys(files)) {
    let dir = posix.dirname(path.replace(/\/$/, ''));
    while (dir !== '/' && dir !== '.') {
      dirs.add(dir);
      dir = posix.dirname(dir);
    }
    if (path.endsWith('/')) dirs.add(path.slice(0, -1));
  }
  const enoent = (path: string): Error => Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
  return {
    async readdir(path) {
      if (!dirs.has(path)) throw enoent(path);
      const names = new Set<string>();
      for (const p of [...Object.keys(files).map((f) => f.replace(/\/$/, '')), ...dirs]) {
        if (posix.dirname(p) === path) names.add(posix.basename(p));
      }
      return [...names];
    },
    async readFile(path) {
      const content = files[path];
      if (content === undefined) throw enoent(path);
      return Buffer.from(content);
    },
    async stat(path) {
      if (dirs.has(path)) return { isDirectory: () => true, isFile: () => false, size: 0 };
      const content = files[path];
      if (content === undefined) throw enoent(path);
      return { isDirectory: () => false, isFile: () => true, size: Buffer.byteLength(content) };
    },
  };
}

const T = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const C1 = 'a1b2c3d4-0000-4000-8000-000000000001';
const C2 = 'a1b2c3d4-0000-4000-8000-000000000002';
const O1 = 'b1b2c3d4-0000-4000-8000-000000000001';
const ARM = '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app';
const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n';

const only = (problems: readonly IdentityProblem[]) => problems.map((p) => ({ identity: p.identity, field: p.field, message: p.message, code: p.code }));

describe('loadIdentityDir: credential kinds', () => {
  const cases: { name: string; files: Record<string, string | Buffer>; kind: string; material: string; federated?: string }[] = [
    { name: 'client secret (trimmed)', files: { clientSecret: '  s3cret\n' }, kind: 'secret', material: 'secret' },
    { name: 'PEM certificate', files: { 'tls.crt': CERT, 'tls.key': KEY }, kind: 'certificate', material: 'certificate' },
    { name: 'PFX certificate (opened into the PEM pair)', files: { 'certificate.pfx': toPfx(CLIENT) }, kind: 'certificate', material: 'certificate' },
    { name: 'PFX certificate with a password (trimmed)', files: { 'certificate.pfx': toPfx(CLIENT, { password: 'pw' }), 'certificate.pfx.password': ' pw\n' }, kind: 'certificate', material: 'certificate' },
    { name: 'no credential = federated', files: {}, kind: 'federated', material: 'federated', federated: '/var/run/secrets/token' },
  ];
  for (const tc of cases) {
    it(tc.name, async () => {
      const files: Record<string, string | Buffer> = { '/ids/app/tenantId': `${T}\n`, '/ids/app/clientId': ` ${C1} `, '/ids/app/objectId': O1, '/ids/app/resourceId': ARM };
      for (const [k, v] of Object.entries(tc.files)) files[`/ids/app/${k}`] = v;
      const result = await loadIdentityDir({ fs: memoryFs(files), dir: '/ids/app', name: 'app', isDefault: true, mode: 'entra', federatedTokenFile: tc.federated });
      assert.deepEqual(result.problems, []);
      const identity = result.identity;
      assert.ok(identity);
      assert.deepEqual(identity.descriptor, { name: 'app', tenantId: T, clientId: C1, objectId: O1, resourceId: ARM, credentialKind: tc.kind, isDefault: true });
      assert.equal(identity.material.kind, tc.material);
      if (identity.material.kind === 'secret') assert.equal(identity.material.clientSecret, 's3cret');
      if (tc.files['certificate.pfx'] !== undefined && identity.material.kind === 'certificate') {
        assert.equal(thumbprints(identity.material.certificatePem).thumbprintSha256, CLIENT.thumbprintSha256);
        assert.match(identity.material.privateKeyPem, /-----BEGIN RSA PRIVATE KEY-----/);
      }
      if (identity.material.kind === 'federated') assert.deepEqual(identity.material, { kind: 'federated', tokenFile: '/var/run/secrets/token', audience: 'api://AzureADTokenExchange' });
      assert.match(identity.credentialFingerprint, /^[0-9a-f]{64}$/);
    });
  }
  it('federated audience from the federatedAudience file', async () => {
    const fs = memoryFs({ '/i/a/tenantId': T, '/i/a/clientId': C1, '/i/a/federatedAudience': 'api://custom\n' });
    const r = await loadIdentityDir({ fs, dir: '/i/a', name: 'a', isDefault: false, mode: 'entra', federatedTokenFile: '/tok' });
    assert.deepEqual(r.identity?.material, { kind: 'federated', tokenFile: '/tok', audience: 'api://custom' });
  });
  it('tenant given as a domain name', async () => {
    const fs = memoryFs({ '/i/a/tenantId': 'contoso.onmicrosoft.com', '/i/a/clientId': C1, '/i/a/clientSecret': 'x' });
    const r = await loadIdentityDir({ fs, dir: '/i/a', name: 'a', isDefault: false, mode: 'entra' });
    assert.equal(r.identity?.descriptor.tenantId, 'contoso.onmicrosoft.com');
  });
  it('fingerprint changes with the secret and hides it', () => {
    const a = fingerprint({ kind: 'secret', clientSecret: 'one' });
    assert.notEqual(a, fingerprint({ kind: 'secret', clientSecret: 'two' }));
    assert.ok(!a.includes('one'));
  });
});

describe('loadIdentityDir: problems name the file and the field', () => {
  const cases: { name: string; files: Record<string, string | Buffer>; mode?: 'dev' | 'entra'; federated?: string; want: { field: string | undefined; message: RegExp; code: string }[] }[] = [
    { name: 'missing tenantId and clientId', files: { clientSecret: 'x' }, want: [
      { field: 'tenantId', message: /is missing/, code: 'invalid' },
      { field: 'clientId', message: /is missing/, code: 'invalid' },
    ] },
    { name: 'malformed GUIDs', files: { tenantId: 'not a tenant', clientId: 'abc', objectId: 'xyz', clientSecret: 'x' }, want: [
      { field: 'tenantId', message: /tenant id \(GUID\) or a verified domain/, code: 'invalid' },
      { field: 'clientId', message: /must be a GUID/, code: 'invalid' },
      { field: 'objectId', message: /must be a GUID/, code: 'invalid' },
    ] },
    { name: 'malformed resourceId', files: { tenantId: T, clientId: C1, resourceId: 'app', clientSecret: 'x' }, want: [{ field: 'resourceId', message: /must look like \/subscriptions/, code: 'invalid' }] },
    { name: 'empty client secret', files: { tenantId: T, clientId: C1, clientSecret: '\n' }, want: [{ field: 'clientSecret', message: /is empty/, code: 'invalid' }] },
    { name: 'certificate without key', files: { tenantId: T, clientId: C1, 'tls.crt': CERT }, want: [{ field: 'tls.key', message: /is missing \(tls.crt is present/, code: 'invalid' }] },
    { name: 'key without certificate', files: { tenantId: T, clientId: C1, 'tls.key': KEY }, want: [{ field: 'tls.crt', message: /is missing \(tls.key is present/, code: 'invalid' }] },
    { name: 'not PEM', files: { tenantId: T, clientId: C1, 'tls.crt': 'hello', 'tls.key': 'world' }, want: [
      { field: 'tls.crt', message: /not a PEM certificate/, code: 'invalid' },
      { field: 'tls.key', message: /not a PEM private key/, code: 'invalid' },
    ] },
    { name: 'two credentials', files: { tenantId: T, clientId: C1, clientSecret: 'x', 'certificate.pfx': 'y' }, want: [{ field: undefined, message: /more than one credential/, code: 'invalid' }] },
    { name: 'PFX that is not PKCS#12', files: { tenantId: T, clientId: C1, 'certificate.pfx': 'not a pfx' }, want: [{ field: 'certificate.pfx', message: /cannot be opened: not PKCS#12, or protected by a password/, code: 'invalid' }] },
    { name: 'PFX with a password the identity does not have', files: { tenantId: T, clientId: C1, 'certificate.pfx': toPfx(CLIENT, { password: 'p@ss' }) }, want: [{ field: 'certificate.pfx', message: /cannot be opened/, code: 'invalid' }] },
    { name: 'PFX password without PFX', files: { tenantId: T, clientId: C1, 'certificate.pfx.password': 'pw' }, want: [{ field: 'certificate.pfx.password', message: /is present without certificate.pfx/, code: 'invalid' }] },
    { name: 'federated without token file', files: { tenantId: T, clientId: C1 }, want: [{ field: undefined, message: /MI_ANYWHERE_FEDERATED_TOKEN_FILE is not set/, code: 'invalid' }] },
    { name: 'dev mode refuses credential files', mode: 'dev', files: { tenantId: T, clientId: C1, clientSecret: 'x', 'tls.crt': CERT }, want: [
      { field: 'clientSecret', message: /dev mode never uses real credentials/, code: 'credential-forbidden' },
      { field: 'tls.crt', message: /dev mode never uses real credentials/, code: 'credential-forbidden' },
    ] },
  ];
  for (const tc of cases) {
    it(tc.name, async () => {
      const files: Record<string, string | Buffer> = {};
      for (const [k, v] of Object.entries(tc.files)) files[`/ids/app/${k}`] = v;
      files['/ids/app/'] = '';
      const r = await loadIdentityDir({ fs: memoryFs(files), dir: '/ids/app', name: 'app', isDefault: false, mode: tc.mode ?? 'entra', federatedTokenFile: tc.federated });
      assert.equal(r.identity, undefined);
      assert.equal(r.problems.length, tc.want.length, JSON.stringify(only(r.problems)));
      tc.want.forEach((w, i) => {
        const p = r.problems[i];
        assert.ok(p);
        assert.equal(p.field, w.field);
        assert.match(p.message, w.message);
        assert.equal(p.code, w.code);
        assert.equal(p.identity, 'app');
        assert.equal(p.file, w.field === undefined ? '/ids/app' : `/ids/app/${w.field}`);
      });
      // Secret values never appear in problem texts.
      assert.ok(!JSON.stringify(r.problems).includes('"x"'));
    });
  }
  it('dev mode accepts a credential-free identity as a dev identity', async () => {
    const r = await loadIdentityDir({ fs: memoryFs({ '/i/a/tenantId': T, '/i/a/clientId': C1 }), dir: '/i/a', name: 'a', isDefault: false, mode: 'dev' });
    assert.equal(r.identity?.descriptor.credentialKind, 'dev');
  });
});

describe('loadIdentities: directory of identities', () => {
  it('skips Kubernetes dot-entries, keeps good identities next to bad ones, picks the only good default', async () => {
    const fs = memoryFs({
      '/ids/..data/': '',
      '/ids/good/tenantId': T,
      '/ids/good/clientId': C1,
      '/ids/good/clientSecret': 's',
      '/ids/good/..data/': '',
      '/ids/good/..2026_11_26/clientSecret': 'old',
      '/ids/bad/tenantId': T,
      '/ids/bad/clientId': 'nope',
      '/ids/bad/clientSecret': 's',
    });
    const r = await loadIdentities({ fs, dir: '/ids', defaultName: 'good', mode: 'entra' });
    assert.deepEqual(r.identities.map((i) => [i.descriptor.name, i.descriptor.isDefault]), [['good', true]]);
    assert.deepEqual(only(r.problems), [{ identity: 'bad', field: 'clientId', message: 'must be a GUID (the application (client) id)', code: 'invalid' }]);
  });
  it('the only identity is the default when none is named', async () => {
    const fs = memoryFs({ '/ids/a/tenantId': T, '/ids/a/clientId': C1, '/ids/a/clientSecret': 's' });
    const r = await loadIdentities({ fs, dir: '/ids', defaultName: undefined, mode: 'entra' });
    assert.equal(r.identities[0]?.descriptor.isDefault, true);
  });
  it('no default among several unless named', async () => {
    const fs = memoryFs({
      '/ids/a/tenantId': T, '/ids/a/clientId': C1, '/ids/a/clientSecret': 's',
      '/ids/b/tenantId': T, '/ids/b/clientId': C2, '/ids/b/clientSecret': 's',
    });
    const r = await loadIdentities({ fs, dir: '/ids', defaultName: undefined, mode: 'entra' });
    assert.deepEqual(r.identities.map((i) => i.descriptor.isDefault), [false, false]);
  });
  it('rejects a second identity with the same client id', async () => {
    const fs = memoryFs({
      '/ids/a/tenantId': T, '/ids/a/clientId': C1, '/ids/a/clientSecret': 's',
      '/ids/b/tenantId': T, '/ids/b/clientId': C1.toUpperCase(), '/ids/b/clientSecret': 's',
    });
    const r = await loadIdentities({ fs, dir: '/ids', defaultName: 'a', mode: 'entra' });
    assert.deepEqual(r.identities.map((i) => i.descriptor.name), ['a']);
    assert.deepEqual(only(r.problems), [{ identity: 'b', field: 'clientId', message: 'has the same clientId as identity "a"; selectors must name one identity', code: 'conflict' }]);
  });
  it('a Secret mounted directly at the top level gets a hint', async () => {
    const fs = memoryFs({ '/ids/tenantId': T, '/ids/clientId': C1 });
    const r = await loadIdentities({ fs, dir: '/ids', defaultName: undefined, mode: 'entra' });
    assert.equal(r.identities.length, 0);
    assert.match(r.problems[0]?.message ?? '', /mount each identity's Secret in its own subdirectory/);
    assert.equal(r.problems[0]?.code, 'layout');
  });
  it('an unreadable directory is one problem', async () => {
    const r = await loadIdentities({ fs: memoryFs({}), dir: '/missing', defaultName: undefined, mode: 'entra' });
    assert.deepEqual(only(r.problems), [{ identity: '', field: undefined, message: 'cannot read the identity directory: ENOENT', code: 'layout' }]);
  });
});

describe('loadIdentityDir: credentialSource (developer and CI identities)', () => {
  const SC = 'c1b2c3d4-0000-4000-8000-0000000000aa';
  const good: { name: string; files: Record<string, string>; descriptor: { tenantId: string; clientId: string; credentialKind: string }; material: unknown }[] = [
    {
      name: 'azure-cli with nothing else: the CLI login decides tenant and client',
      files: { credentialSource: 'azure-cli\n' },
      descriptor: { tenantId: '', clientId: AZURE_CLI_CLIENT_ID, credentialKind: 'azure-cli' },
      material: { kind: 'azure-cli', tenantId: undefined },
    },
    {
      name: 'azure-cli pinned to a tenant, with a client id for selectors',
      files: { credentialSource: 'azure-cli', tenantId: T, clientId: C1 },
      descriptor: { tenantId: T, clientId: C1, credentialKind: 'azure-cli' },
      material: { kind: 'azure-cli', tenantId: T },
    },
    {
      name: 'github-actions',
      files: { credentialSource: 'github-actions', tenantId: T, clientId: C1 },
      descriptor: { tenantId: T, clientId: C1, credentialKind: 'federated' },
      material: { kind: 'ci-oidc', platform: 'github-actions', audience: 'api://AzureADTokenExchange' },
    },
    {
      name: 'gitlab-ci with its own audience',
      files: { credentialSource: 'gitlab-ci', tenantId: T, clientId: C1, federatedAudience: 'api://custom' },
      descriptor: { tenantId: T, clientId: C1, credentialKind: 'federated' },
      material: { kind: 'ci-oidc', platform: 'gitlab-ci', audience: 'api://custom' },
    },
    {
      name: 'azure-pipelines with its service connection',
      files: { credentialSource: 'azure-pipelines', tenantId: T, clientId: C1, serviceConnectionId: SC },
      descriptor: { tenantId: T, clientId: C1, credentialKind: 'federated' },
      material: { kind: 'ci-oidc', platform: 'azure-pipelines', audience: 'api://AzureADTokenExchange', serviceConnectionId: SC },
    },
  ];
  for (const tc of good) {
    it(tc.name, async () => {
      const files = Object.fromEntries(Object.entries(tc.files).map(([k, v]) => [`/ids/dev/${k}`, v]));
      const r = await loadIdentityDir({ fs: memoryFs(files), dir: '/ids/dev', name: 'dev', isDefault: true, mode: 'entra' });
      assert.deepEqual(r.problems, []);
      assert.deepEqual(r.identity?.descriptor, { name: 'dev', objectId: undefined, resourceId: undefined, isDefault: true, ...tc.descriptor });
      assert.deepEqual(r.identity?.material, tc.material);
    });
  }

  const bad: { name: string; files: Record<string, string>; mode?: 'dev'; want: { field: string | undefined; message: RegExp; code?: string }[] }[] = [
    { name: 'unknown source', files: { credentialSource: 'jenkins', tenantId: T, clientId: C1 }, want: [{ field: 'credentialSource', message: /must be one of azure-cli, github-actions, gitlab-ci, azure-pipelines \(found "jenkins"\)/ }] },
    { name: 'a CI source needs tenantId and clientId', files: { credentialSource: 'github-actions' }, want: [
      { field: 'tenantId', message: /is missing/ },
      { field: 'clientId', message: /is missing/ },
    ] },
    { name: 'a source and a credential file', files: { credentialSource: 'github-actions', tenantId: T, clientId: C1, clientSecret: 'x' }, want: [{ field: undefined, message: /names credentialSource github-actions and also holds clientSecret; keep one credential/ }] },
    { name: 'azure-pipelines without serviceConnectionId', files: { credentialSource: 'azure-pipelines', tenantId: T, clientId: C1 }, want: [{ field: 'serviceConnectionId', message: /is missing \(the id of the workload-identity service connection/ }] },
    { name: 'azure-pipelines with a malformed serviceConnectionId', files: { credentialSource: 'azure-pipelines', tenantId: T, clientId: C1, serviceConnectionId: 'my-connection' }, want: [{ field: 'serviceConnectionId', message: /must be a GUID/ }] },
    { name: 'serviceConnectionId on another source', files: { credentialSource: 'github-actions', tenantId: T, clientId: C1, serviceConnectionId: SC }, want: [{ field: 'serviceConnectionId', message: /only azure-pipelines identities use it/ }] },
    { name: 'serviceConnectionId on a secret identity', files: { tenantId: T, clientId: C1, clientSecret: 'x', serviceConnectionId: SC }, want: [{ field: 'serviceConnectionId', message: /only azure-pipelines identities use it/ }] },
    { name: 'federatedAudience on azure-cli', files: { credentialSource: 'azure-cli', federatedAudience: 'api://x' }, want: [{ field: 'federatedAudience', message: /azure-cli identities have no federated assertion/ }] },
    { name: 'every problem at once', files: { credentialSource: 'azure-pipelines', tenantId: 'nope', clientId: 'nope', serviceConnectionId: 'nope' }, want: [
      { field: 'tenantId', message: /tenant id/ },
      { field: 'clientId', message: /must be a GUID/ },
      { field: 'serviceConnectionId', message: /must be a GUID/ },
    ] },
    { name: 'dev mode refuses a credential source', mode: 'dev', files: { credentialSource: 'azure-cli', tenantId: T, clientId: C1 }, want: [{ field: 'credentialSource', message: /dev mode never uses real credentials/, code: 'credential-forbidden' }] },
  ];
  for (const tc of bad) {
    it(`problem: ${tc.name}`, async () => {
      const files = Object.fromEntries(Object.entries(tc.files).map(([k, v]) => [`/ids/ci/${k}`, v]));
      const r = await loadIdentityDir({ fs: memoryFs(files), dir: '/ids/ci', name: 'ci', isDefault: false, mode: tc.mode ?? 'entra' });
      assert.equal(r.identity, undefined);
      assert.deepEqual(
        r.problems.map((p) => p.field),
        tc.want.map((w) => w.field),
        JSON.stringify(only(r.problems)),
      );
      tc.want.forEach((w, i) => {
        const p = r.problems[i]!;
        assert.match(p.message, w.message);
        assert.equal(p.code, w.code ?? 'invalid');
        assert.equal(p.file, w.field === undefined ? '/ids/ci' : `/ids/ci/${w.field}`);
      });
    });
  }
});

describe('noDefaultReason: the start-up message names the real cause', () => {
  const setting = 'MI_ANYWHERE_DEFAULT_IDENTITY';
  const cases: { name: string; files: Record<string, string>; dir: string; defaultName?: string; want: string }[] = [
    { name: 'the identity directory does not exist', files: {}, dir: '/nowhere', want: 'the identity directory /nowhere does not exist' },
    { name: 'no usable identity', files: { '/ids/a/tenantId': T }, dir: '/ids', want: 'no usable identity in /ids (see the problems above)' },
    { name: 'a default naming nothing', files: { '/ids/a/tenantId': T, '/ids/a/clientId': C1, '/ids/a/clientSecret': 'x' }, dir: '/ids', defaultName: 'b', want: `${setting}=b names no loaded identity` },
    {
      name: 'several identities',
      files: { '/ids/a/tenantId': T, '/ids/a/clientId': C1, '/ids/a/clientSecret': 'x', '/ids/b/tenantId': T, '/ids/b/clientId': C2, '/ids/b/clientSecret': 'y' },
      dir: '/ids',
      want: `several identities and no ${setting}`,
    },
  ];
  for (const tc of cases) {
    it(tc.name, async () => {
      const r = await loadIdentities({ fs: memoryFs(tc.files), dir: tc.dir, defaultName: tc.defaultName, mode: 'entra' });
      assert.equal(noDefaultReason({ defaultName: tc.defaultName, defaultSetting: setting, loaded: r.identities.length, problems: r.problems, dir: tc.dir }), tc.want);
    });
  }
});
