/**
 * The one configuration idiom of both programs: a small typed reader over environment variables that collects
 * every problem instead of stopping at the first, refuses settings it does not know (with a "did you mean" for
 * near misses), and accepts numbers only as plain decimals. `sidecar/config.ts` and `webhook/config.ts` describe
 * their settings with it; nothing else reads the environment.
 *
 * A plain parser rather than a schema library: for a program whose whole configuration is a few dozen flat strings,
 * zod was the largest library cost of the sidecar's start-up after the Entra backend (docs/performance.md, "Findings:
 * start-up and memory"), and its smaller `zod/mini` build costs about as much (each about 16 MiB of RSS and 65-75 ms
 * of CPU at import, measured when this reader replaced it).
 *
 * Pure: the environment is a parameter; no file, clock or process access. Imports nothing from either program.
 */

export type Env = Readonly<Record<string, string | undefined>>;

/** pino's levels, most severe first, then `silent`; both programs and the injected sidecar accept exactly these. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Freezes an object graph in place (the configuration is read by every module and written by none). */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/**
 * A plain decimal integer: optional minus sign, no leading zeros, no spaces, no `0x`, `0o`, `1e3`, `1_000` or
 * `.0`. `Number("0x10")`, `Number(" 80")` and `Number("1e3")` all succeed, which is how `0x0` once became a port.
 */
const DECIMAL = /^-?(?:0|[1-9]\d*)$/;

export function parseDecimal(value: string): number | undefined {
  if (!DECIMAL.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Variables Kubernetes adds for every Service of the pod's namespace (`<SERVICE>_SERVICE_HOST`,
 * `<SERVICE>_PORT=tcp://…`, `<SERVICE>_PORT_443_TCP_ADDR`, …; https://kubernetes.io/docs/concepts/services-networking/service/#environment-variables).
 * A Service named `mi-anywhere-…` therefore puts `MI_ANYWHERE_…` names into pods that never asked for them;
 * they are recognised by name *and* value shape, so a misspelt real setting is still reported.
 */
export function isServiceLinkVariable(name: string, value: string): boolean {
  if (/_SERVICE_HOST$/.test(name)) return /^[0-9a-fA-F.:]+$/.test(value);
  if (/_SERVICE_PORT(?:_[A-Z0-9_]+)?$/.test(name)) return DECIMAL.test(value);
  if (/_PORT_\d+_(?:TCP|UDP|SCTP)_(?:PROTO|PORT|ADDR)$/.test(name)) return value !== '';
  if (/_PORT$/.test(name) || /_PORT_\d+_(?:TCP|UDP|SCTP)$/.test(name)) return /^(?:tcp|udp|sctp):\/\//.test(value);
  return false;
}

/** Edit distance (insertions, deletions, substitutions, adjacent swaps) between two names. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      let best = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, ((d[i - 2] as number[])[j - 2] as number) + 1);
      row[j] = best;
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}

/** The known name closest to `name`, if it is close enough to be a typo (or a word left out or added). */
export function suggestName(name: string, known: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(name, candidate);
    if (best === undefined || distance < best.distance) best = { name: candidate, distance };
  }
  if (best === undefined) return undefined;
  // Names share a long prefix, so compare what differs with the length of the part after it.
  const tail = Math.max(name.length, best.name.length) - commonPrefixLength(name, best.name);
  const contained = best.name.endsWith(name.slice(commonPrefixLength(name, best.name))) || name.endsWith(best.name.slice(commonPrefixLength(name, best.name)));
  return best.distance <= Math.max(2, Math.floor(tail / 2)) || contained ? best.name : undefined;
}

function commonPrefixLength(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

export interface Namespace {
  /** Every variable starting with this prefix is this program's: a name it does not know is an error. */
  readonly prefix: string;
  /** The program's settings (for "did you mean"). */
  readonly known: readonly string[];
  /** Names under the prefix that belong to someone else and are skipped (another program, the repository's tools). */
  readonly foreign?: (name: string) => boolean;
  /** Where the settings are documented, named in the message for an unknown name without a close match. */
  readonly docs: string;
}

/**
 * Reads settings from an environment and collects problems; every reader returns a usable fallback so that
 * reading goes on and one run reports everything. Problems read `NAME: what is wrong` (values of settings that
 * may hold a secret are never echoed: `secret` readers do not quote them).
 */
export class SettingsReader {
  readonly problems: string[] = [];
  private readonly env: Env;

  constructor(env: Env, namespace?: Namespace) {
    this.env = env;
    if (namespace !== undefined) this.checkNames(namespace);
  }

  private checkNames(ns: Namespace): void {
    const known = new Set(ns.known);
    for (const [name, value] of Object.entries(this.env)) {
      if (!name.startsWith(ns.prefix) || known.has(name) || value === undefined) continue;
      if (ns.foreign?.(name) === true || isServiceLinkVariable(name, value)) continue;
      const suggestion = suggestName(name, ns.known);
      this.problems.push(
        suggestion === undefined
          ? `${name}: unknown setting (the settings are listed in ${ns.docs})`
          : `${name}: unknown setting; did you mean ${suggestion}?`,
      );
    }
  }

  private fail(name: string, message: string): void {
    this.problems.push(`${name}: ${message}`);
  }

  /** The value with surrounding whitespace removed; unset or blank (`FOO=` in compose, an empty Helm value) = undefined. */
  raw(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  }

  /** Whether the variable exists at all, blank included (`FOO=` can mean "none" where a setting allows it). */
  isPresent(name: string): boolean {
    return this.env[name] !== undefined;
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  /** An optional value checked by `valid`; `message` says what a valid one looks like. */
  optional(name: string, valid: (value: string) => boolean = () => true, message = ''): string | undefined {
    const value = this.raw(name);
    if (value === undefined || valid(value)) return value;
    this.fail(name, message);
    return undefined;
  }

  required(name: string, why: string): string {
    const value = this.raw(name);
    if (value === undefined) this.problems.push(`${name} is required (${why})`);
    return value ?? '';
  }

  /**
   * A plain decimal integer within [min, max]. Surrounding whitespace is an error here (not trimmed): ` 80` is
   * a quoting mistake worth seeing. `rangeMessage` replaces the default "must be between min and max".
   */
  integer(name: string, fallback: number, range: { readonly min: number; readonly max: number; readonly rangeMessage?: string }): number {
    const value = this.env[name];
    if (value === undefined || value.trim() === '') return fallback;
    const n = parseDecimal(value);
    if (n === undefined) {
      this.fail(name, `must be a number: a plain decimal integer (got ${JSON.stringify(value)})`);
      return fallback;
    }
    if (n < range.min || n > range.max) {
      this.fail(name, `${range.rangeMessage ?? `must be between ${range.min} and ${range.max}`} (got ${value})`);
      return fallback;
    }
    return n;
  }

  port(name: string, fallback: number, min = 0): number {
    return this.integer(name, fallback, { min, max: 65535 });
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(value)) {
      this.fail(name, `must be one of ${allowed.join(', ')} (got ${JSON.stringify(value)})`);
      return fallback;
    }
    return value as T;
  }

  boolean(name: string, fallback: boolean): boolean {
    const value = this.raw(name)?.toLowerCase();
    if (value === undefined) return fallback;
    if (['true', '1', 'yes'].includes(value)) return true;
    if (['false', '0', 'no'].includes(value)) return false;
    this.fail(name, 'must be true or false');
    return fallback;
  }

  /** Comma-separated, blanks dropped. */
  list(name: string): string[] {
    const value = this.raw(name);
    if (value === undefined) return [];
    return value
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
  }

  /** A JSON array of strings (command lines contain spaces and commas, so a plain list would be ambiguous). */
  stringArray(name: string, fallback: readonly string[]): readonly string[] {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    try {
      const parsed: unknown = JSON.parse(value);
      if (Array.isArray(parsed) && parsed.every((item) => typeof item === 'string')) return parsed;
    } catch {
      // reported below
    }
    this.fail(name, 'must be a JSON array of strings, e.g. ["node"]');
    return fallback;
  }

  /** An http(s) URL without credentials, query or fragment; trailing slashes removed. */
  url(name: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    if (!isPlainHttpUrl(value)) {
      this.fail(name, 'must be an http(s) URL without credentials, query or fragment');
      return undefined;
    }
    return value.replace(/\/+$/, '');
  }
}

function isPlainHttpUrl(value: string): boolean {
  try {
    const u = new URL(value);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.username === '' && u.password === '' && u.search === '' && u.hash === '';
  } catch {
    return false;
  }
}
