/**
 * Rotation watcher on a real temp directory laid out as kubelet lays out Secret volumes (`..data` symlink swaps),
 * with simulated time for the poll and debounce timers and an injected watch function to deliver events.
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdentityWatcher, type IdentityChange, type WatchFn } from '../../../../sidecar/identity/watch.ts';
import { loadIdentities, type IdentityFs } from '../../../../sidecar/identity/load.ts';
import type { LoadedIdentity } from '../../../../sidecar/identity/identity.ts';
import { rotateSecretDir, writeSecretDir } from '../../../helpers/kube-secret-dir.ts';
import { FakeTime } from '../../../helpers/fake-time.ts';

const TENANT = '11111111-1111-4111-8111-111111111111';
const CLIENT_A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const CLIENT_B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

interface Harness {
  root: string;
  time: FakeTime;
  watcher: IdentityWatcher;
  changes: IdentityChange[][];
  logs: string[];
  loads: string[];
  rootReads: () => number;
  fire: () => void;
}

async function start(root: string, options: { watch?: boolean } = {}): Promise<Harness> {
  let rootReadCount = 0;
  const fs: IdentityFs = {
    readdir: (p) => {
      if (p === root) rootReadCount++;
      return readdir(p);
    },
    readFile: (p) => readFile(p),
    stat: (p) => stat(p),
  };
  const initial = await loadIdentities({ fs, dir: root, defaultName: 'a', mode: 'entra' });
  const listeners: Array<() => void> = [];
  const watch: WatchFn = (_path, onEvent) => {
    listeners.push(onEvent);
    return { close: () => undefined };
  };
  const time = new FakeTime();
  const changes: IdentityChange[][] = [];
  const logs: string[] = [];
  const loads: string[] = [];
  const watcher = new IdentityWatcher({
    fs,
    dir: root,
    defaultName: 'a',
    mode: 'entra',
    initial: initial.identities,
    watch: options.watch === false ? undefined : watch,
    scheduler: time.scheduler,
    onChange: (c) => changes.push([...c]),
    metrics: { identityLoad: (name, result) => loads.push(`${name}:${result}`), identities: () => undefined },
    log: {
      info: (fields, message) => logs.push(`${message} ${JSON.stringify(fields)}`),
      warn: (fields, message) => logs.push(`${message} ${JSON.stringify(fields)}`),
    },
  });
  watcher.start();
  return { root, time, watcher, changes, logs, loads, rootReads: () => rootReadCount, fire: () => listeners.forEach((l) => l()) };
}

function byName(identities: readonly LoadedIdentity[], name: string): LoadedIdentity | undefined {
  return identities.find((i) => i.descriptor.name === name);
}

describe('IdentityWatcher', () => {
  let root: string;
  let h: Harness | undefined;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'mi-anywhere-watch-'));
    writeSecretDir(root, 'a', { tenantId: TENANT, clientId: CLIENT_A, clientSecret: 'secret-one' });
    writeSecretDir(root, 'b', { tenantId: TENANT, clientId: CLIENT_B, clientSecret: 'secret-b' });
  });

  afterEach(() => {
    h?.watcher.stop();
    h = undefined;
    rmSync(root, { recursive: true, force: true });
  });

  it('reloads a rotated Secret (..data swap) and reports the credential change', async () => {
    h = await start(root);
    const before = byName(h.watcher.current(), 'a')!;
    rotateSecretDir(root, 'a', { tenantId: TENANT, clientId: CLIENT_A, clientSecret: 'secret-two' });
    h.fire();
    await h.time.advance(1000);
    await h.watcher.settled();
    const after = byName(h.watcher.current(), 'a')!;
    assert.notEqual(after.credentialFingerprint, before.credentialFingerprint);
    assert.deepEqual(after.material, { kind: 'secret', clientSecret: 'secret-two' });
    assert.equal(h.changes.length, 1);
    assert.deepEqual(h.changes[0]!.map((c) => [c.name, c.credentialChanged]), [['a', true]]);
    assert.ok(after.descriptor.isDefault);
    assert.deepEqual(h.loads, ['a:success']);
  });

  it('coalesces the burst of events one update produces into one reload', async () => {
    h = await start(root);
    const reads = h.rootReads();
    for (let i = 0; i < 10; i++) h.fire();
    await h.time.advance(1000);
    await h.watcher.settled();
    assert.equal(h.rootReads() - reads, 1);
  });

  it('polls, so a rotation is picked up even when no event arrives', async () => {
    h = await start(root, { watch: false });
    rotateSecretDir(root, 'a', { tenantId: TENANT, clientId: CLIENT_A, clientSecret: 'secret-three' });
    await h.time.advance(9_000);
    assert.equal(h.changes.length, 0);
    await h.time.advance(1_500);
    await h.watcher.settled();
    assert.deepEqual(byName(h.watcher.current(), 'a')!.material, { kind: 'secret', clientSecret: 'secret-three' });
  });

  it('keeps the last good identity when an update is broken, logs why once (never the secret), and recovers', async () => {
    h = await start(root);
    const good = byName(h.watcher.current(), 'a')!;
    rotateSecretDir(root, 'a', { tenantId: TENANT, clientId: 'not-a-guid', clientSecret: 'leaky-secret-value' });
    await h.watcher.reload();
    await h.watcher.reload();
    assert.equal(byName(h.watcher.current(), 'a'), good, 'still serving the last good version');
    assert.equal(h.changes.length, 0);
    assert.deepEqual(h.loads, ['a:failure'], 'counted once, not on every poll');
    const rejected = h.logs.filter((l) => l.startsWith('identity update rejected'));
    assert.equal(rejected.length, 1);
    assert.match(rejected[0]!, /clientId must be a GUID/);
    assert.ok(!h.logs.join('\n').includes('leaky-secret-value'));
    rotateSecretDir(root, 'a', { tenantId: TENANT, clientId: CLIENT_A, clientSecret: 'fixed-secret' });
    await h.watcher.reload();
    assert.deepEqual(byName(h.watcher.current(), 'a')!.material, { kind: 'secret', clientSecret: 'fixed-secret' });
    assert.deepEqual(h.loads, ['a:failure', 'a:success']);
  });

  it('adds new identity directories and removes deleted ones', async () => {
    h = await start(root);
    const clientC = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
    writeSecretDir(root, 'c', { tenantId: TENANT, clientId: clientC, clientSecret: 'secret-c' });
    rmSync(join(root, 'b'), { recursive: true });
    await h.watcher.reload();
    assert.deepEqual(h.watcher.current().map((i) => i.descriptor.name).sort(), ['a', 'c']);
    const change = h.changes[0]!;
    assert.deepEqual(change.map((c) => [c.name, c.previous === undefined, c.next === undefined]).sort(), [['b', false, true], ['c', true, false]]);
  });

  it('applies a descriptor-only change without marking the credential as changed', async () => {
    h = await start(root);
    rotateSecretDir(root, 'b', { tenantId: TENANT, clientId: CLIENT_B, clientSecret: 'secret-b', objectId: 'dddddddd-dddd-4ddd-8ddd-dddddddddddd' });
    await h.watcher.reload();
    assert.deepEqual(h.changes[0]!.map((c) => [c.name, c.credentialChanged]), [['b', false]]);
    assert.equal(byName(h.watcher.current(), 'b')!.descriptor.objectId, 'dddddddd-dddd-4ddd-8ddd-dddddddddddd');
  });

  it('treats a new client id with the same secret as a credential change (cached tokens belong to the old app)', async () => {
    h = await start(root);
    rotateSecretDir(root, 'b', { tenantId: TENANT, clientId: 'eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee', clientSecret: 'secret-b' });
    await h.watcher.reload();
    assert.deepEqual(h.changes[0]!.map((c) => [c.name, c.credentialChanged]), [['b', true]]);
  });

  it('does nothing when nothing changed', async () => {
    h = await start(root);
    const list = h.watcher.current();
    await h.watcher.reload();
    assert.equal(h.watcher.current(), list);
    assert.equal(h.changes.length, 0);
  });

  it('stops its timers on stop()', async () => {
    h = await start(root);
    h.watcher.stop();
    assert.equal(h.time.pendingTimers, 0);
  });
});
