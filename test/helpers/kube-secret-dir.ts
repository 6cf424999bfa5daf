/**
 * Writes and rotates a Secret volume the way kubelet's AtomicWriter does
 * (https://github.com/kubernetes/kubernetes/blob/master/pkg/volume/util/atomic_writer.go):
 * payload in a timestamped `..<ts>` directory, a `..data` symlink to it, one `<key> -> ..data/<key>` symlink per key;
 * an update writes a new timestamped directory, points a `..data_tmp` symlink at it, renames `..data_tmp` over
 * `..data` (the atomic step), fixes the key symlinks and removes the old directory.
 */
import { mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

let counter = 0;

function timestampDir(): string {
  counter += 1;
  return `..${new Date().toISOString().replace(/[-:]/g, '_').replace('T', '_').replace(/\..*$/, '')}.${process.pid}${counter}`;
}

/** Creates `<root>/<name>` as a fresh Secret volume with the given keys. */
export function writeSecretDir(root: string, name: string, files: Readonly<Record<string, string | Buffer>>): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const payload = timestampDir();
  mkdirSync(join(dir, payload));
  for (const [key, value] of Object.entries(files)) writeFileSync(join(dir, payload, key), value, { mode: 0o644 });
  symlinkSync(payload, join(dir, '..data'));
  for (const key of Object.keys(files)) symlinkSync(join('..data', key), join(dir, key));
  return dir;
}

/** Replaces the Secret's content atomically, as kubelet does when the Secret object changes. */
export function rotateSecretDir(root: string, name: string, files: Readonly<Record<string, string | Buffer>>): void {
  const dir = join(root, name);
  const oldPayload = readlinkSync(join(dir, '..data'));
  const payload = timestampDir();
  mkdirSync(join(dir, payload));
  for (const [key, value] of Object.entries(files)) writeFileSync(join(dir, payload, key), value, { mode: 0o644 });
  symlinkSync(payload, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  const keys = new Set(Object.keys(files));
  for (const entry of readdirSync(dir)) {
    if (entry.startsWith('..')) continue;
    if (!keys.has(entry)) unlinkSync(join(dir, entry));
  }
  for (const key of keys) {
    try {
      symlinkSync(join('..data', key), join(dir, key));
    } catch {
      // Already linked through ..data.
    }
  }
  rmSync(join(dir, oldPayload), { recursive: true, force: true });
}
