import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  boundedIdentityFs,
  IdentityFileError,
  MAX_FEDERATED_TOKEN_BYTES,
  MAX_IDENTITY_FILE_BYTES,
  readBoundedFile,
  readFederatedTokenFile,
  type IdentityFileProblem,
} from '../../../../sidecar/identity/bounded-read.ts';
import { loadIdentities } from '../../../../sidecar/identity/load.ts';

const T = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const C = 'a1b2c3d4-0000-4000-8000-000000000001';

describe('readBoundedFile: regular files inside their directory, bounded', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'mi-anywhere-bounded-'));
    // A kubelet Secret volume: <key> -> ..data/<key>, ..data -> ..<timestamp>/
    const secret = join(root, 'secret');
    mkdirSync(join(secret, '..2026_12_04_12_00_00.1'), { recursive: true });
    writeFileSync(join(secret, '..2026_12_04_12_00_00.1', 'clientSecret'), 's3cret\n');
    symlinkSync('..2026_12_04_12_00_00.1', join(secret, '..data'));
    symlinkSync(join('..data', 'clientSecret'), join(secret, 'clientSecret'));
    // Hostile or broken entries.
    writeFileSync(join(root, 'outside'), 'not part of the secret');
    symlinkSync(join(root, 'outside'), join(secret, 'escape-absolute'));
    symlinkSync(join('..', 'outside'), join(secret, 'escape-relative'));
    symlinkSync('/proc/self/environ', join(secret, 'environ'));
    symlinkSync('does-not-exist', join(secret, 'dangling'));
    mkdirSync(join(secret, 'a-directory'));
    execFileSync('mkfifo', [join(secret, 'fifo')]);
    writeFileSync(join(secret, 'big'), '');
    truncateSync(join(secret, 'big'), MAX_IDENTITY_FILE_BYTES + 1);
    writeFileSync(join(secret, 'just-fits'), Buffer.alloc(MAX_IDENTITY_FILE_BYTES, 0x61));
    // A projected token volume with the same layout.
    const projected = join(root, 'projected');
    mkdirSync(join(projected, '..2026_12_04_12_00_00.2'), { recursive: true });
    writeFileSync(join(projected, '..2026_12_04_12_00_00.2', 'token'), 'eyJ.token.sig');
    symlinkSync('..2026_12_04_12_00_00.2', join(projected, '..data'));
    symlinkSync(join('..data', 'token'), join(projected, 'token'));
    writeFileSync(join(projected, 'huge'), Buffer.alloc(MAX_FEDERATED_TOKEN_BYTES + 1, 0x61));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('reads a key through the Kubernetes Secret-volume symlinks', async () => {
    assert.equal((await readBoundedFile(join(root, 'secret', 'clientSecret'), 100)).toString(), 's3cret\n');
  });
  it('reads a file of exactly the limit', async () => {
    assert.equal((await readBoundedFile(join(root, 'secret', 'just-fits'), MAX_IDENTITY_FILE_BYTES)).length, MAX_IDENTITY_FILE_BYTES);
  });

  const refused: { name: string; file: string; reason: IdentityFileProblem; message: RegExp }[] = [
    { name: 'a symlink to an absolute path outside', file: 'escape-absolute', reason: 'outside-directory', message: /symlink leading outside its directory/ },
    { name: 'a relative symlink climbing out', file: 'escape-relative', reason: 'outside-directory', message: /symlink leading outside its directory/ },
    { name: 'a symlink to /proc/self/environ (the environment would go upstream)', file: 'environ', reason: 'outside-directory', message: /outside its directory/ },
    { name: 'a FIFO (opened without blocking, then refused)', file: 'fifo', reason: 'not-regular', message: /not a regular file/ },
    { name: 'a directory', file: 'a-directory', reason: 'not-regular', message: /not a regular file/ },
    { name: 'a file over the limit', file: 'big', reason: 'too-large', message: new RegExp(`larger than ${MAX_IDENTITY_FILE_BYTES} bytes`) },
    { name: 'a dangling symlink', file: 'dangling', reason: 'unreadable', message: /does not exist/ },
    { name: 'a missing file', file: 'missing', reason: 'unreadable', message: /does not exist/ },
  ];
  for (const tc of refused) {
    it(`refuses ${tc.name}`, async () => {
      const path = join(root, 'secret', tc.file);
      await assert.rejects(readBoundedFile(path, MAX_IDENTITY_FILE_BYTES), (error: unknown) => {
        assert.ok(error instanceof IdentityFileError);
        assert.equal(error.reason, tc.reason);
        assert.equal(error.path, path);
        assert.match(error.message, tc.message);
        assert.ok(error.message.startsWith(path), 'the message names the file');
        return true;
      });
    });
  }

  it('reads the federated token through the projected-volume symlinks, and refuses one over 64 KiB', async () => {
    assert.equal(await readFederatedTokenFile(join(root, 'projected', 'token')), 'eyJ.token.sig');
    await assert.rejects(readFederatedTokenFile(join(root, 'projected', 'huge')), { name: 'IdentityFileError', reason: 'too-large' });
    await assert.rejects(readFederatedTokenFile(join(root, 'secret', 'fifo')), { name: 'IdentityFileError', reason: 'not-regular' });
    await assert.rejects(readFederatedTokenFile(join(root, 'secret', 'environ')), { name: 'IdentityFileError', reason: 'outside-directory' });
  });

  it('the loader reports each refused file as a problem of its identity and field, and loads nothing from it', async () => {
    const ids = join(root, 'ids');
    mkdirSync(join(ids, 'app'), { recursive: true });
    writeFileSync(join(ids, 'app', 'tenantId'), T);
    writeFileSync(join(ids, 'app', 'clientId'), C);
    symlinkSync('/proc/self/environ', join(ids, 'app', 'clientSecret'));
    const result = await loadIdentities({ fs: boundedIdentityFs, dir: ids, defaultName: undefined, mode: 'entra' });
    assert.deepEqual(result.identities, []);
    assert.equal(result.problems.length, 1);
    const [p] = result.problems;
    assert.equal(p?.identity, 'app');
    assert.equal(p?.field, 'clientSecret');
    assert.equal(p?.file, join(ids, 'app', 'clientSecret'));
    assert.match(p?.message ?? '', /^is a symlink leading outside its directory/);
  });
});
