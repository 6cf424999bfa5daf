/**
 * The Azure Arc key directory at start-up: created if missing, checked writable, cleared of key files an earlier run
 * left behind, then handed to the key store (`http/arc-keys.ts`), whose expired keys are swept periodically.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { access, chmod, constants as fsConstants, mkdir, readdir, unlink, writeFile } from 'node:fs/promises';
import type { Config } from '../config.ts';
import { SIDECAR_ENV } from '../contract.ts';
import { createArcKeyStore, removeStaleKeyFiles, type ArcKeyStore } from '../http/arc-keys.ts';
import type { Logger } from '../log.ts';
import { StartupFailure } from './failure.ts';

const ARC_SWEEP_INTERVAL_MS = 30_000;

export interface ArcKeyOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly nowMs: () => number;
}

/**
 * The key store, or undefined when no key directory is configured (Arc is then not served).
 * @throws StartupFailure when the directory is not writable.
 */
export async function prepareArcKeys(options: ArcKeyOptions): Promise<ArcKeyStore | undefined> {
  const keyDir = options.config.arc.keyDir;
  if (keyDir === undefined) return undefined;
  try {
    return await openArcKeyStore(keyDir, options);
  } catch (error) {
    throw new StartupFailure(`${SIDECAR_ENV.arcKeyDir}=${keyDir} is not a writable directory (${(error as Error).message})`, 2);
  }
}

async function openArcKeyStore(keyDir: string, { config, logger, nowMs }: ArcKeyOptions): Promise<ArcKeyStore> {
  await mkdir(keyDir, { recursive: true });
  await access(keyDir, fsConstants.W_OK);
  const stale = await removeStaleKeyFiles({ readdir: (p) => readdir(p), unlink }, keyDir);
  if (stale > 0) logger.info({ removed: stale }, 'removed Arc key files left by an earlier run');
  return createArcKeyStore({
    fs: { writeFile, chmod, unlink },
    keyDir,
    fileMode: config.arc.keyFileMode,
    nowMs,
    randomName: () => randomUUID(),
    // 32 random bytes as hex: no `=` padding, no newline, far below the 4096-byte limit.
    randomKey: () => randomBytes(32).toString('hex'),
    onError: (message, error) => logger.warn({ err: error }, message),
  });
}

/** Deletes expired key files every 30 s, for as long as the process runs (the timer does not keep it alive). */
export function sweepArcKeysPeriodically(keys: ArcKeyStore): void {
  setInterval(() => void keys.sweep(), ARC_SWEEP_INTERVAL_MS).unref();
}
