import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SidecarError } from '../../../../sidecar/errors.ts';
import { createArcKeyStore, removeStaleKeyFiles } from '../../../../sidecar/http/arc-keys.ts';
import { createMemoryArcFs } from '../../../helpers/sidecar.ts';

function setup(overrides: { maxPending?: number } = {}) {
  const fs = createMemoryArcFs();
  let now = 1_000_000;
  let n = 0;
  const store = createArcKeyStore({
    fs,
    keyDir: '/shared/arc',
    fileMode: 0o640,
    nowMs: () => now,
    randomName: () => `name-${++n}`,
    randomKey: () => `key-${n}`,
    ttlMs: 60_000,
    ...overrides,
  });
  return { fs, store, advance: (ms: number) => (now += ms) };
}

describe('Arc key store', () => {
  it('writes the key file where the sidecar sees it and returns the realm the app sees', async () => {
    const { fs, store } = setup();
    const realm = await store.issue();
    assert.equal(realm, '/var/opt/azcmagent/tokens/mi-anywhere-name-1.key');
    assert.deepEqual(fs.files.get('/shared/arc/mi-anywhere-name-1.key'), { data: 'key-1', mode: 0o640 });
  });
  it('a key is redeemed once and its file deleted', async () => {
    const { fs, store } = setup();
    await store.issue();
    assert.equal(await store.redeem('key-1'), true);
    assert.equal(fs.files.size, 0);
    assert.equal(await store.redeem('key-1'), false);
  });
  it('a wrong key is refused and the right one still works', async () => {
    const { store } = setup();
    await store.issue();
    assert.equal(await store.redeem('key-2'), false);
    assert.equal(await store.redeem('key-1'), true);
  });
  it('expired keys are refused and their files deleted', async () => {
    const { fs, store, advance } = setup();
    await store.issue();
    advance(60_000);
    assert.equal(await store.redeem('key-1'), false);
    assert.equal(fs.files.size, 0);
  });
  it('sweep deletes only expired keys', async () => {
    const { fs, store, advance } = setup();
    await store.issue();
    advance(30_000);
    await store.issue();
    advance(30_000);
    await store.sweep();
    assert.deepEqual([...fs.files.keys()], ['/shared/arc/mi-anywhere-name-2.key']);
  });
  it('a key file that cannot be written is a clear error naming the directory, and leaves nothing pending', async () => {
    const fs = createMemoryArcFs();
    const store = createArcKeyStore({
      fs: { ...fs, writeFile: () => Promise.reject(Object.assign(new Error('no such directory'), { code: 'ENOENT' })) },
      keyDir: '/missing/arc',
      fileMode: 0o640,
      nowMs: () => 0,
      randomName: () => 'name',
      randomKey: () => 'key',
    });
    await assert.rejects(store.issue(), (error: unknown) => {
      assert.ok(error instanceof SidecarError);
      assert.equal(error.code, 'SIDECAR_ERR_ARC_KEY_DIR');
      assert.equal(error.httpStatus, 500);
      assert.equal(error.expose, true);
      assert.match(error.message, /MI_ANYWHERE_ARC_KEY_DIR \(\/missing\/arc\): ENOENT/);
      return true;
    });
    assert.equal(store.pendingCount(), 0);
  });
  it('bounds pending key files by dropping the oldest challenge (a flood cannot lock clients out)', async () => {
    const { fs, store } = setup({ maxPending: 2 });
    await store.issue();
    await store.issue();
    await store.issue();
    assert.deepEqual([...fs.files.keys()].sort(), ['/shared/arc/mi-anywhere-name-2.key', '/shared/arc/mi-anywhere-name-3.key']);
    assert.equal(await store.redeem('key-1'), false, 'the dropped challenge is no longer redeemable');
    assert.equal(await store.redeem('key-3'), true, 'the newest challenge is');
  });
  it('holds the limit under any concurrency: 1000 simultaneous challenges leave at most maxPending files, at every moment', async () => {
    const memory = createMemoryArcFs();
    let most = 0;
    let n = 0;
    const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    const store = createArcKeyStore({
      // Slow, interleaving I/O, as a real disk under load: every operation yields to the others first.
      fs: {
        writeFile: async (path, data, options) => {
          await tick();
          await memory.writeFile(path, data, options);
          most = Math.max(most, memory.files.size);
        },
        chmod: async (path, mode) => {
          await tick();
          await memory.chmod(path, mode);
        },
        unlink: async (path) => {
          await tick();
          await memory.unlink(path);
        },
      },
      keyDir: '/shared/arc',
      fileMode: 0o640,
      nowMs: () => 0,
      randomName: () => `name-${++n}`,
      randomKey: () => `key-${n}`,
      maxPending: 64,
    });
    const results = await Promise.allSettled(Array.from({ length: 1000 }, () => store.issue()));
    assert.ok(most <= 64, `${most} key files at once`);
    assert.ok(memory.files.size <= 64, `${memory.files.size} key files left`);
    assert.equal(store.pendingCount(), memory.files.size);
    const refused = results.filter((r) => r.status === 'rejected');
    for (const r of refused) assert.equal((r.reason as SidecarError).httpStatus, 429);
    assert.ok(results.length - refused.length >= 64, `${results.length - refused.length} challenges answered`);
  });
  it('close deletes every pending file', async () => {
    const { fs, store } = setup();
    await store.issue();
    await store.issue();
    await store.close();
    assert.equal(fs.files.size, 0);
    assert.equal(store.pendingCount(), 0);
  });
});

describe('removeStaleKeyFiles', () => {
  it('deletes key files of an earlier run (its own naming scheme) and nothing else', async () => {
    const fs = createMemoryArcFs();
    fs.files.set('/shared/arc/mi-anywhere-0b7c-old.key', { data: 'k', mode: 0o640 });
    fs.files.set('/shared/arc/app-own.key', { data: 'x', mode: 0o600 });
    fs.files.set('/shared/arc/notes.txt', { data: 'x', mode: 0o644 });
    fs.files.set('/shared/arc/sub/other.key', { data: 'x', mode: 0o644 });
    assert.equal(await removeStaleKeyFiles(fs, '/shared/arc'), 1);
    assert.deepEqual([...fs.files.keys()].sort(), ['/shared/arc/app-own.key', '/shared/arc/notes.txt', '/shared/arc/sub/other.key']);
  });
});
