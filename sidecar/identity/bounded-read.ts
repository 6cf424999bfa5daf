/**
 * Reads credential files the way a mounted Secret or projected token can legitimately look, and nothing else:
 *
 * - **Inside its directory.** Kubernetes mounts a Secret (or a projected token) as `<dir>/<key>` ->
 *   `..data/<key>`, `..data` -> `..2024_01_01_00_00_00.123456789` (atomic rotation). A symlink is therefore
 *   accepted only when the file it finally resolves to lies inside the same mounted directory. A symlink that
 *   leaves it (`clientSecret` -> `/proc/self/environ`) is refused: it would send whatever it names upstream.
 * - **A regular file.** The file is opened with `O_NONBLOCK` (a FIFO or device opens without blocking the file I/O
 *   pool) and checked with `fstat` on the descriptor actually read (no check-then-open race on the final file).
 * - **Bounded.** At most `maxBytes` are read, whatever `stat` claims (`/proc`-like files report size 0).
 *
 * Failures are {@link IdentityFileError}s with a stable `reason` and a message naming the file.
 */
import { constants, type Stats } from 'node:fs';
import { open, readdir, realpath, stat, type FileHandle } from 'node:fs/promises';
import { dirname, sep } from 'node:path';

/**
 * The filesystem operations the identity loader needs (`load.ts`); node:fs/promises satisfies it, tests pass an
 * in-memory tree, and {@link boundedIdentityFs} is the production one.
 */
export interface IdentityFs {
  readdir(path: string): Promise<string[]>;
  readFile(path: string): Promise<Buffer>;
  /** Follows symlinks (Kubernetes Secret keys are symlinks). */
  stat(path: string): Promise<{ isDirectory(): boolean; isFile(): boolean; size: number }>;
}

/** Largest identity file (a PFX with a long chain is a few KiB; a 1 MiB file is certainly not a credential). */
export const MAX_IDENTITY_FILE_BYTES = 1024 * 1024;
/** Largest federated token (projected service-account tokens and CI OIDC tokens are 1-4 KiB). */
export const MAX_FEDERATED_TOKEN_BYTES = 64 * 1024;

export type IdentityFileProblem =
  /** Missing, unreadable, or not permitted. */
  | 'unreadable'
  /** A symlink (or a chain of them) that resolves outside the file's own directory. */
  | 'outside-directory'
  /** A directory, FIFO, socket or device. */
  | 'not-regular'
  | 'too-large';

export class IdentityFileError extends Error {
  readonly reason: IdentityFileProblem;
  readonly path: string;
  /** The message without the path (for reports that name the file already). */
  readonly detail: string;
  constructor(reason: IdentityFileProblem, path: string, detail: string, options?: { cause?: unknown }) {
    super(`${path} ${detail}`, options);
    this.name = 'IdentityFileError';
    this.reason = reason;
    this.path = path;
    this.detail = detail;
  }
}

function errnoText(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'is not readable by the sidecar (permission denied)';
  return typeof code === 'string' ? `cannot be read (${code})` : 'cannot be read';
}

/**
 * Reads `path` under the rules above; `path`'s parent directory is the mounted directory it must stay in.
 * @throws IdentityFileError
 */
export async function readBoundedFile(path: string, maxBytes: number): Promise<Buffer> {
  const resolved = await resolveInsideDirectory(path);
  const handle = await openExactly(resolved, path);
  try {
    return await readRegularFile(handle, path, maxBytes);
  } catch (error) {
    if (error instanceof IdentityFileError) throw error;
    throw new IdentityFileError('unreadable', path, errnoText(error), { cause: error });
  } finally {
    await handle.close();
  }
}

/** The file `path` finally names, after every symlink, provided it lies inside `path`'s own directory. */
async function resolveInsideDirectory(path: string): Promise<string> {
  let resolved: string;
  let root: string;
  try {
    root = await realpath(dirname(path));
    resolved = await realpath(path);
  } catch (error) {
    throw new IdentityFileError('unreadable', path, errnoText(error), { cause: error });
  }
  if (!resolved.startsWith(root + sep)) {
    throw new IdentityFileError(
      'outside-directory',
      path,
      `is a symlink leading outside its directory (${root}); only the Kubernetes Secret-volume layout (..data/<key>) is accepted`,
    );
  }
  return resolved;
}

/** Opens the resolved file itself, without blocking on a FIFO or device. */
async function openExactly(resolved: string, path: string): Promise<FileHandle> {
  try {
    // O_NOFOLLOW: the resolved path must itself be the file (a symlink swapped in since realpath is refused).
    return await open(resolved, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (error) {
    throw new IdentityFileError('unreadable', path, errnoText(error), { cause: error });
  }
}

/** The contents of the opened file, checked on the descriptor: a regular file of at most `maxBytes`. */
async function readRegularFile(handle: FileHandle, path: string, maxBytes: number): Promise<Buffer> {
  const info: Stats = await handle.stat();
  if (!info.isFile()) throw new IdentityFileError('not-regular', path, 'is not a regular file');
  if (info.size > maxBytes) throw new IdentityFileError('too-large', path, `is larger than ${maxBytes} bytes`);
  // Read one byte more than allowed, so a file that grows (or lies about its size) is still caught.
  const contents = await readUpTo(handle, maxBytes + 1);
  if (contents.length > maxBytes) throw new IdentityFileError('too-large', path, `is larger than ${maxBytes} bytes`);
  return contents;
}

/** At most `limit` bytes from the start of the file, whatever its size claims (`/proc`-like files report 0). */
async function readUpTo(handle: FileHandle, limit: number): Promise<Buffer> {
  const buffer = Buffer.alloc(limit);
  let length = 0;
  while (length < limit) {
    const { bytesRead } = await handle.read(buffer, length, limit - length, null);
    if (bytesRead === 0) break;
    length += bytesRead;
  }
  return buffer.subarray(0, length);
}

/** The federated token, bounded and inside its mounted directory, as text. @throws IdentityFileError */
export async function readFederatedTokenFile(path: string): Promise<string> {
  return (await readBoundedFile(path, MAX_FEDERATED_TOKEN_BYTES)).toString('utf8');
}

/** The production filesystem of the identity loader: listing and directory checks as usual, file reads bounded. */
export const boundedIdentityFs: IdentityFs = {
  readdir: (path) => readdir(path),
  stat: (path) => stat(path),
  readFile: (path) => readBoundedFile(path, MAX_IDENTITY_FILE_BYTES),
};
