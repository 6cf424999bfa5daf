/**
 * Rotation: keeps the loaded identities in step with the mounted Secrets, without a restart.
 *
 * Kubernetes (kubelet's AtomicWriter) updates a Secret volume by writing a new timestamped directory and
 * atomically renaming the `..data` symlink to point at it; every key file is a symlink through `..data`. So a
 * change shows up as a rename inside each identity's directory, and a reader sees either the whole old or the whole
 * new Secret. We watch the identity root and every identity directory with `fs.watch` (injected) and, because
 * inotify events can be lost (overlay filesystems, watch limits, some network volumes) and kubelet itself only syncs
 * every minute or so, also poll at a fixed interval.
 *
 * Each reload runs the core loader (`identity/load.ts`) over the whole directory, then merges with what is
 * currently served: a changed identity replaces the old one (and the caller invalidates its cached tokens when the
 * credential fingerprint changed); a broken update keeps the last good identity and logs why (problem texts name
 * files and fields, never contents); a removed directory removes the identity. Requests always read the current
 * list, so none fails because of a rotation.
 */
import { posix } from 'node:path';
import type { Scheduler } from '../token/caching-token-source.ts';
import type { LoadedIdentity } from './identity.ts';
import { formatProblem, loadIdentities, type IdentityFs, type IdentityProblem, type LoadIdentitiesResult } from './load.ts';

/** `fs.watch`-like seam: calls `onEvent` on any change below `path`; may throw when watching is unsupported. */
export type WatchFn = (path: string, onEvent: () => void) => { close(): void };

export interface IdentityChange {
  readonly name: string;
  readonly previous: LoadedIdentity | undefined;
  readonly next: LoadedIdentity | undefined;
  /**
   * True when the tokens cached for this identity are no longer right for it: the credential material changed, or
   * the app it authenticates as (tenant id, client id), or the identity was removed.
   */
  readonly credentialChanged: boolean;
}

export interface WatchLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface IdentityWatcherOptions {
  readonly fs: IdentityFs;
  readonly dir: string;
  readonly defaultName: string | undefined;
  readonly mode: 'entra' | 'dev';
  readonly federatedTokenFile?: string | undefined;
  /** Identities served right now (from the start-up load). */
  readonly initial: readonly LoadedIdentity[];
  /** Identities that are not from the directory (dev mode's built-ins): kept as they are. */
  readonly builtIn?: readonly LoadedIdentity[] | undefined;
  readonly watch?: WatchFn | undefined;
  readonly scheduler: Scheduler;
  /**
   * Poll interval. 10 s: kubelet's Secret sync period is about a minute, so polling faster only costs reads of a few
   * small files; it bounds how long a lost inotify event can delay a rotation.
   */
  readonly pollIntervalMs?: number | undefined;
  /** Coalesces the burst of events one atomic update produces (new dir, symlink rename, old dir removal). */
  readonly debounceMs?: number | undefined;
  readonly onChange?: ((changes: readonly IdentityChange[], identities: readonly LoadedIdentity[]) => void) | undefined;
  readonly metrics?: { identityLoad(identity: string, result: 'success' | 'failure'): void; identities(count: number): void } | undefined;
  readonly log?: WatchLog | undefined;
}

export const DEFAULT_POLL_INTERVAL_MS = 10_000;
export const DEFAULT_DEBOUNCE_MS = 200;

export class IdentityWatcher {
  readonly #o: IdentityWatcherOptions;
  #identities: readonly LoadedIdentity[];
  /** Last reported failure text per identity, so a broken identity is logged and counted once per new problem. */
  readonly #failures = new Map<string, string>();
  readonly #watchers = new Map<string, { close(): void }>();
  #pollTimer: unknown;
  #debounceTimer: unknown;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = true;

  constructor(options: IdentityWatcherOptions) {
    this.#o = options;
    this.#identities = options.initial;
  }

  /** The identities to serve now (read on every request). */
  current(): readonly LoadedIdentity[] {
    return this.#identities;
  }

  start(): void {
    this.#stopped = false;
    this.#syncWatchers();
    this.#schedulePoll();
  }

  stop(): void {
    this.#stopped = true;
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
    if (this.#pollTimer !== undefined) this.#o.scheduler.clearTimeout(this.#pollTimer);
    if (this.#debounceTimer !== undefined) this.#o.scheduler.clearTimeout(this.#debounceTimer);
    this.#pollTimer = undefined;
    this.#debounceTimer = undefined;
  }

  /** Resolves when no reload is running (tests, orderly shutdown). */
  async settled(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Reloads now (coalesced: a reload requested while one runs causes exactly one more). */
  reload(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      try {
        do {
          this.#again = false;
          await this.#reloadOnce();
        } while (this.#again);
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }

  #schedulePoll(): void {
    if (this.#stopped) return;
    this.#pollTimer = this.#o.scheduler.setTimeout(() => {
      this.#pollTimer = undefined;
      void this.reload().finally(() => this.#schedulePoll());
    }, this.#o.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS);
  }

  #onEvent(): void {
    if (this.#stopped) return;
    if (this.#debounceTimer !== undefined) this.#o.scheduler.clearTimeout(this.#debounceTimer);
    this.#debounceTimer = this.#o.scheduler.setTimeout(() => {
      this.#debounceTimer = undefined;
      void this.reload();
    }, this.#o.debounceMs ?? DEFAULT_DEBOUNCE_MS);
  }

  /** Watches the root (identities added/removed) and each identity directory (`..data` swaps). */
  #syncWatchers(): void {
    const watch = this.#o.watch;
    if (watch === undefined || this.#stopped) return;
    const wanted = new Set([this.#o.dir, ...this.#identities.filter((i) => !this.#isBuiltIn(i)).map((i) => posix.join(this.#o.dir, i.descriptor.name))]);
    for (const [path, w] of this.#watchers) {
      if (!wanted.has(path)) {
        w.close();
        this.#watchers.delete(path);
      }
    }
    for (const path of wanted) {
      if (this.#watchers.has(path)) continue;
      try {
        this.#watchers.set(path, watch(path, () => this.#onEvent()));
      } catch (error) {
        // Polling still covers this directory; say once why events are not used.
        this.#o.log?.warn({ path, err: error instanceof Error ? error.message : String(error) }, 'cannot watch directory; relying on polling');
      }
    }
  }

  #isBuiltIn(identity: LoadedIdentity): boolean {
    return (this.#o.builtIn ?? []).some((b) => b.descriptor.name === identity.descriptor.name);
  }

  /** One reload: the directory as it is now, merged with what is served (see the module header). */
  async #reloadOnce(): Promise<void> {
    const builtIn = this.#o.builtIn ?? [];
    const result = await loadIdentities({
      fs: this.#o.fs,
      dir: this.#o.dir,
      defaultName: this.#o.defaultName,
      mode: this.#o.mode,
      federatedTokenFile: this.#o.federatedTokenFile,
      existing: builtIn,
    });
    const found = foundInDirectory(result, this.#o.dir);
    const previous = new Map(this.#identities.filter((i) => !this.#isBuiltIn(i)).map((i) => [i.descriptor.name, i]));
    const next: LoadedIdentity[] = [...builtIn];
    const changes: IdentityChange[] = [];
    for (const name of new Set([...previous.keys(), ...found.loaded.keys(), ...found.problems.keys()])) {
      const { serve, change } = this.#reconcile(name, previous.get(name), found);
      if (serve !== undefined) next.push(serve);
      if (change !== undefined) changes.push(change);
    }
    if (changes.length > 0) this.#replace(next, changes);
  }

  /** What to serve under `name` after this reload, and the change to report, if any. */
  #reconcile(name: string, before: LoadedIdentity | undefined, found: FoundInDirectory): Reconciled {
    const after = found.loaded.get(name);
    if (after !== undefined) return this.#accept(name, before, after);
    const problems = found.problems.get(name);
    if (problems !== undefined || found.rootUnreadable) {
      // Broken update (half-written Secret, bad PEM, conflict): keep serving the last good version.
      this.#reportFailure(name, problems ?? [], before !== undefined);
      return { serve: before, change: undefined };
    }
    if (before === undefined) return { serve: undefined, change: undefined };
    this.#clearFailure(name);
    this.#o.log?.info({ identity: name }, 'identity removed (its directory is gone)');
    return { serve: undefined, change: { name, previous: before, next: undefined, credentialChanged: true } };
  }

  /** A good load of `name`: served from now on, and reported when it differs from what was served. */
  #accept(name: string, before: LoadedIdentity | undefined, after: LoadedIdentity): Reconciled {
    this.#clearFailure(name);
    if (before !== undefined && sameIdentity(before, after)) return { serve: after, change: undefined };
    const credentialChanged = before !== undefined && credentialChangedBetween(before, after);
    this.#o.metrics?.identityLoad(name, 'success');
    this.#o.log?.info({ identity: name, kind: after.descriptor.credentialKind, credentialChanged }, before ? 'identity reloaded' : 'identity added');
    return { serve: after, change: { name, previous: before, next: after, credentialChanged } };
  }

  #replace(next: readonly LoadedIdentity[], changes: readonly IdentityChange[]): void {
    this.#identities = next;
    this.#o.metrics?.identities(next.length);
    this.#syncWatchers();
    this.#o.onChange?.(changes, next);
  }

  #reportFailure(name: string, problems: readonly IdentityProblem[], keptLastGood: boolean): void {
    const text = problems.map(formatProblem).join('; ') || 'the identity directory is unreadable';
    if (this.#failures.get(name) === text) return;
    this.#failures.set(name, text);
    this.#o.metrics?.identityLoad(name, 'failure');
    this.#o.log?.warn(
      { identity: name, problems: problems.map((p) => ({ file: p.file, field: p.field, problem: p.code })), keptLastGood },
      `identity update rejected: ${text}${keptLastGood ? ' (still serving the last good version)' : ''}`,
    );
  }

  #clearFailure(name: string): void {
    this.#failures.delete(name);
  }
}

interface FoundInDirectory {
  /** The identities that loaded, by name. */
  readonly loaded: ReadonlyMap<string, LoadedIdentity>;
  /** The problems of each identity that did not load, by name. */
  readonly problems: ReadonlyMap<string, readonly IdentityProblem[]>;
  /** The identity root itself could not be read: nothing can be told about any identity. */
  readonly rootUnreadable: boolean;
}

interface Reconciled {
  readonly serve: LoadedIdentity | undefined;
  readonly change: IdentityChange | undefined;
}

function foundInDirectory(result: LoadIdentitiesResult, dir: string): FoundInDirectory {
  const problems = new Map<string, IdentityProblem[]>();
  for (const p of result.problems) {
    if (p.identity !== '') problems.set(p.identity, [...(problems.get(p.identity) ?? []), p]);
  }
  return {
    loaded: new Map(result.identities.map((i) => [i.descriptor.name, i])),
    problems,
    rootUnreadable: result.problems.some((p) => p.identity === '' && p.file === dir && p.code === 'layout'),
  };
}

/** The tokens cached for the identity no longer fit: other credential material, or another app (tenant, client). */
function credentialChangedBetween(before: LoadedIdentity, after: LoadedIdentity): boolean {
  return (
    before.credentialFingerprint !== after.credentialFingerprint ||
    before.descriptor.tenantId.toLowerCase() !== after.descriptor.tenantId.toLowerCase() ||
    before.descriptor.clientId.toLowerCase() !== after.descriptor.clientId.toLowerCase()
  );
}

/** Same credential and same descriptor fields: nothing to do. */
function sameIdentity(a: LoadedIdentity, b: LoadedIdentity): boolean {
  if (a.credentialFingerprint !== b.credentialFingerprint) return false;
  const x = a.descriptor;
  const y = b.descriptor;
  return (
    x.tenantId === y.tenantId &&
    x.clientId === y.clientId &&
    x.objectId === y.objectId &&
    x.resourceId === y.resourceId &&
    x.credentialKind === y.credentialKind &&
    x.isDefault === y.isDefault
  );
}
