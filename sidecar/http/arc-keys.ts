/**
 * Key files of the Azure Arc challenge (docs/protocols.md §7). Each challenge writes a fresh random secret into
 * `<keyDir>/<random>.key`; the app sees the same file at `/var/opt/azcmagent/tokens/<random>.key` (a shared volume)
 * and sends its contents back. A key is valid once, for a short time; its file is deleted after use or expiry.
 *
 * I/O at the edge: filesystem, clock and randomness are injected.
 */
import { posix } from 'node:path';
import { ARC_TOKENS_DIR } from '../contract.ts';
import { ArcKeyDirectoryError, RateLimitedError } from '../errors.ts';
import { arcRealm, ARC_KEY_MAX_BYTES } from '../protocol/arc.ts';
import { secretsEqual } from '../protocol/common.ts';

export interface ArcKeyFs {
  /** Must fail if the file exists (`flag: 'wx'`): a name is never reused. */
  writeFile(path: string, data: string, options: { mode: number; flag: 'wx' }): Promise<void>;
  /** Applied after writing, because the process umask may have narrowed the creation mode. */
  chmod(path: string, mode: number): Promise<void>;
  unlink(path: string): Promise<void>;
}

export interface ArcKeyStoreOptions {
  readonly fs: ArcKeyFs;
  /** Directory the sidecar writes to (`MI_ANYWHERE_ARC_KEY_DIR`). */
  readonly keyDir: string;
  /** Directory the app sees the files in; the SDKs only accept {@link ARC_TOKENS_DIR}. */
  readonly realmDir?: string;
  /**
   * File mode. The app runs as another user than the sidecar, so the file must be readable by it: 0640 works when
   * both share a group (Kubernetes `fsGroup` makes emptyDir files group-owned by it); 0644 when they do not. The
   * directory is private to the pod either way.
   */
  readonly fileMode: number;
  readonly nowMs: () => number;
  /** Random part of the file name (after {@link KEY_FILE_PREFIX}); `[A-Za-z0-9_-]` only (three SDKs split the realm on `=`). */
  readonly randomName: () => string;
  /** Random key contents (≤ 4096 bytes, no trailing newline: clients send the raw file, §7 step 4). */
  readonly randomKey: () => string;
  /** How long a challenge stays redeemable. The SDKs read the file immediately; 60 s absorbs slow starts. */
  readonly ttlMs?: number;
  /** Pending challenges (key files) at most; beyond that the oldest is dropped (bounds files a flood can make us write). */
  readonly maxPending?: number;
  readonly onError?: (message: string, error: unknown) => void;
}

export interface ArcKeyStore {
  /** Writes a new key file and returns the realm path to put in `WWW-Authenticate`. */
  issue(): Promise<string>;
  /** True if `presented` equals a pending key; that key is consumed and its file deleted. */
  redeem(presented: string): Promise<boolean>;
  /** Deletes expired keys. */
  sweep(): Promise<void>;
  /** Deletes every pending key file (shutdown). */
  close(): Promise<void>;
  pendingCount(): number;
}

/** Every key file this module writes is named `mi-anywhere-<random>.key`; start-up cleanup removes only those. */
export const KEY_FILE_PREFIX = 'mi-anywhere-';
const OWN_KEY_FILE = /^mi-anywhere-[A-Za-z0-9_-]+\.key$/;

interface Pending {
  readonly path: string;
  readonly key: string;
  readonly expiresAtMs: number;
  /** The file is on disk (false while it is being written). */
  written: boolean;
}

/**
 * The pending-key limit holds under any concurrency: a slot is reserved synchronously, before any file I/O, and
 * files still being deleted count against the limit, so at no moment are there more than `maxPending` key files.
 * When the store is full, the oldest pending challenge is dropped (its file deleted) to make room: a flood of
 * challenges cannot lock legitimate Arc clients out, it can only displace challenges older than the last
 * `maxPending` ones (a legitimate client redeems its key within milliseconds). Only when every slot is still being
 * written is the challenge refused (429, Retry-After 1).
 */
export function createArcKeyStore(options: ArcKeyStoreOptions): ArcKeyStore {
  const ttlMs = options.ttlMs ?? 60_000;
  const maxPending = options.maxPending ?? 64;
  const realmDir = options.realmDir ?? ARC_TOKENS_DIR;
  const pending = new Map<string, Pending>();
  /** Deletions in flight (their files still exist). */
  let deleting = 0;
  let deleted: Array<() => void> = [];

  /** Forgets a key at once (synchronously) and deletes its file; resolves when the file is gone. */
  function remove(name: string): Promise<void> {
    const entry = pending.get(name);
    if (entry === undefined) return Promise.resolve();
    pending.delete(name);
    deleting += 1;
    return options.fs.unlink(entry.path).then(
      () => undefined,
      (error: unknown) => {
        if ((error as { code?: unknown }).code !== 'ENOENT') options.onError?.('could not delete an Arc key file', error);
      },
    ).finally(() => {
      deleting -= 1;
      const waiting = deleted;
      deleted = [];
      for (const wake of waiting) wake();
    });
  }

  function removeExpired(): Promise<void>[] {
    const now = options.nowMs();
    const removals: Promise<void>[] = [];
    for (const [name, entry] of pending) if (entry.expiresAtMs <= now && entry.written) removals.push(remove(name));
    return removals;
  }

  async function sweep(): Promise<void> {
    await Promise.all(removeExpired());
  }

  /** Waits until a slot is free (dropping the oldest written key when full) and reserves it synchronously. */
  async function reserve(name: string, path: string, key: string): Promise<Pending> {
    void removeExpired();
    while (pending.size + deleting >= maxPending) {
      const oldest = [...pending].find(([, entry]) => entry.written);
      if (oldest === undefined && deleting === 0) throw new RateLimitedError(1);
      if (oldest !== undefined) void remove(oldest[0]);
      await new Promise<void>((resolve) => deleted.push(resolve));
    }
    const entry: Pending = { path, key, expiresAtMs: options.nowMs() + ttlMs, written: false };
    pending.set(name, entry);
    return entry;
  }

  return {
    async issue(): Promise<string> {
      const name = `${KEY_FILE_PREFIX}${options.randomName()}.key`;
      const realm = arcRealm(realmDir, name);
      const key = options.randomKey();
      if (Buffer.byteLength(key) > ARC_KEY_MAX_BYTES) throw new Error('Arc key longer than the SDKs accept');
      const path = posix.join(options.keyDir, name);
      const entry = await reserve(name, path, key);
      try {
        await options.fs.writeFile(path, key, { mode: options.fileMode, flag: 'wx' });
        entry.written = true;
        await options.fs.chmod(path, options.fileMode);
      } catch (error) {
        if (entry.written) await remove(name);
        else pending.delete(name);
        throw new ArcKeyDirectoryError(options.keyDir, error);
      }
      // Dropped to make room while being written: the file must not outlive its entry.
      if (pending.get(name) !== entry) await options.fs.unlink(path).catch(() => undefined);
      return realm;
    },
    async redeem(presented: string): Promise<boolean> {
      await sweep();
      let match: string | undefined;
      // Compare against every pending key (constant-time each) rather than stopping at the first hit.
      for (const [name, entry] of pending) if (entry.written && secretsEqual(presented, entry.key)) match = name;
      if (match === undefined) return false;
      await remove(match);
      return true;
    },
    sweep,
    async close(): Promise<void> {
      await Promise.all([...pending.keys()].map((name) => remove(name)));
    },
    pendingCount: () => pending.size,
  };
}

/**
 * Deletes key files left in `keyDir` by an earlier run (a restarted sidecar container keeps the pod's shared volume).
 * They can never be redeemed (pending keys live in memory), so they are only readable leftovers. Only names this
 * module creates (`mi-anywhere-<random>.key`) are touched: the directory is shared with the app, whose own files
 * stay. Returns how many were removed.
 */
export async function removeStaleKeyFiles(
  fs: Pick<ArcKeyFs, 'unlink'> & { readdir(path: string): Promise<string[]> },
  keyDir: string,
): Promise<number> {
  let removed = 0;
  for (const name of await fs.readdir(keyDir)) {
    if (!OWN_KEY_FILE.test(name)) continue;
    try {
      await fs.unlink(posix.join(keyDir, name));
      removed += 1;
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'ENOENT') throw error;
    }
  }
  return removed;
}
