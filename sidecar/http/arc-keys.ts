/**
 * Key files of the Azure Arc challenge (protocols.md §7). Each challenge writes a fresh random secret into
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
  /** Random file name stem; must not contain `=` or `/` (the realm is split on `=` by three SDKs, §7). */
  readonly randomName: () => string;
  /** Random key contents (≤ 4096 bytes, no trailing newline: clients send the raw file, §7 step 4). */
  readonly randomKey: () => string;
  /** How long a challenge stays redeemable. The SDKs read the file immediately; 60 s absorbs slow starts. */
  readonly ttlMs?: number;
  /** Pending challenges at most; beyond that new challenges get 429 (bounds files written by a misbehaving client). */
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

interface Pending {
  readonly path: string;
  readonly key: string;
  readonly expiresAtMs: number;
}

export function createArcKeyStore(options: ArcKeyStoreOptions): ArcKeyStore {
  const ttlMs = options.ttlMs ?? 60_000;
  const maxPending = options.maxPending ?? 64;
  const realmDir = options.realmDir ?? ARC_TOKENS_DIR;
  const pending = new Map<string, Pending>();

  async function remove(name: string): Promise<void> {
    const entry = pending.get(name);
    if (entry === undefined) return;
    pending.delete(name);
    try {
      await options.fs.unlink(entry.path);
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'ENOENT') options.onError?.('could not delete an Arc key file', error);
    }
  }

  async function sweep(): Promise<void> {
    const now = options.nowMs();
    for (const [name, entry] of [...pending]) if (entry.expiresAtMs <= now) await remove(name);
  }

  return {
    async issue(): Promise<string> {
      await sweep();
      if (pending.size >= maxPending) throw new RateLimitedError(Math.ceil(ttlMs / 1000));
      const name = `${options.randomName()}.key`;
      const realm = arcRealm(realmDir, name);
      const key = options.randomKey();
      if (Buffer.byteLength(key) > ARC_KEY_MAX_BYTES) throw new Error('Arc key longer than the SDKs accept');
      const path = posix.join(options.keyDir, name);
      try {
        await options.fs.writeFile(path, key, { mode: options.fileMode, flag: 'wx' });
        pending.set(name, { path, key, expiresAtMs: options.nowMs() + ttlMs });
        await options.fs.chmod(path, options.fileMode);
      } catch (error) {
        await remove(name);
        throw new ArcKeyDirectoryError(options.keyDir, error);
      }
      return realm;
    },
    async redeem(presented: string): Promise<boolean> {
      await sweep();
      let match: string | undefined;
      // Compare against every pending key (constant-time each) rather than stopping at the first hit.
      for (const [name, entry] of pending) if (secretsEqual(presented, entry.key)) match = name;
      if (match === undefined) return false;
      await remove(match);
      return true;
    },
    sweep,
    async close(): Promise<void> {
      for (const name of [...pending.keys()]) await remove(name);
    },
    pendingCount: () => pending.size,
  };
}

/**
 * Deletes key files left in `keyDir` by an earlier run (a restarted sidecar container keeps the pod's shared volume).
 * They can never be redeemed (pending keys live in memory), so they are only readable leftovers. Only names this
 * module creates are touched. Returns how many were removed.
 */
export async function removeStaleKeyFiles(
  fs: Pick<ArcKeyFs, 'unlink'> & { readdir(path: string): Promise<string[]> },
  keyDir: string,
): Promise<number> {
  let removed = 0;
  for (const name of await fs.readdir(keyDir)) {
    if (!/^[A-Za-z0-9_-]+\.key$/.test(name)) continue;
    try {
      await fs.unlink(posix.join(keyDir, name));
      removed += 1;
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'ENOENT') throw error;
    }
  }
  return removed;
}
