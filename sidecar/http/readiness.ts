/**
 * Readiness of the sidecar: ready when its default identity is loaded and it can serve a token for it — in dev mode
 * at once, in entra mode once a token for the default identity has been obtained (by a warm-up fetch or by any
 * request). The Entra engineer's cache/warm-up calls {@link Readiness.tokenObtained}; the identity loader and
 * rotation watcher call {@link Readiness.defaultIdentityLoaded}.
 *
 * Pure state; no I/O.
 */

export interface ReadinessStatus {
  readonly ready: boolean;
  /** Why not ready (human-readable, never secret). Empty when ready. */
  readonly reasons: readonly string[];
}

export interface Readiness {
  /** Records whether the default identity is currently loaded (false after it fails to reload). */
  defaultIdentityLoaded(loaded: boolean): void;
  /** Records that a token for the default identity was obtained. */
  tokenObtained(): void;
  status(): ReadinessStatus;
}

export interface ReadinessOptions {
  /** Whether a first token must be obtained before ready (entra mode) or not (dev mode: the issuer is local). */
  readonly requireToken: boolean;
}

export function createReadiness(options: ReadinessOptions): Readiness {
  let loaded = false;
  let obtained = !options.requireToken;
  return {
    defaultIdentityLoaded(value: boolean): void {
      loaded = value;
    },
    tokenObtained(): void {
      obtained = true;
    },
    status(): ReadinessStatus {
      const reasons: string[] = [];
      if (!loaded) reasons.push('the default identity is not loaded');
      if (!obtained) reasons.push('no token has been obtained for the default identity yet');
      return { ready: reasons.length === 0, reasons };
    },
  };
}
