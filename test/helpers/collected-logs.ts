/**
 * Suite-wide log collection and the secret registry behind `test/security/secrets-in-logs.test.ts` (no secret or
 * token in any log line: CONTRIBUTING.md, "Nothing secret in logs").
 *
 * Every test helper that starts a program (the sidecar helpers, the security, reliability and soak suites) writes
 * what the program logged into one directory per test run, and registers every secret the tests hand out (identity
 * headers, client secrets, Arc keys). The last test of the run greps every collected log for the registered values
 * and for anything shaped like a token (a JWT) or a private key, and fails naming file and line — never the value.
 *
 * Directory: `$MI_ANYWHERE_TEST_LOG_DIR` when set (scripts/test.ts sets `${TMPDIR}/mi-anywhere-test-logs/<run id>/`
 * for `npm test`), else `${TMPDIR}/mi-anywhere-test-logs/adhoc/` for a single test file run by hand.
 *
 * Test code only: it reads `process.env` like every test helper; programs never import it.
 */
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Environment variable naming the run's log directory (set by scripts/test.ts). */
export const LOG_DIR_ENV = 'MI_ANYWHERE_TEST_LOG_DIR';
/** Registered secrets, one JSON object per line; never scanned itself. */
export const REGISTRY_FILE = 'secrets.registry.jsonl';
/** Shorter values would match by accident in unrelated text; every secret the tests use is longer. */
export const MIN_SECRET_LENGTH = 8;

/** Root of all runs' log directories. */
export const LOG_ROOT = join(tmpdir(), 'mi-anywhere-test-logs');
/** Runs kept under {@link LOG_ROOT} (older run directories are deleted by {@link pruneLogRoot}). */
export const KEPT_RUNS = 5;
/** Files of the by-hand directory older than this are deleted on first use in a process. */
const ADHOC_MAX_AGE_MS = 24 * 3600 * 1000;

let adhocPruned = false;

export function testLogDir(): string {
  const configured = process.env[LOG_DIR_ENV];
  const dir = configured ?? join(LOG_ROOT, 'adhoc');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (configured === undefined && !adhocPruned) {
    adhocPruned = true;
    const cutoff = Date.now() - ADHOC_MAX_AGE_MS;
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      try {
        if (statSync(p).mtimeMs < cutoff) rmSync(p, { force: true });
      } catch {
        // another process pruned it first
      }
    }
  }
  return dir;
}

/** Keeps the newest {@link KEPT_RUNS} run directories under {@link LOG_ROOT} (scripts/test.ts calls it per run). */
export function pruneLogRoot(keep: number = KEPT_RUNS): void {
  let names: string[];
  try {
    names = readdirSync(LOG_ROOT).filter((n) => n !== 'adhoc');
  } catch {
    return;
  }
  const runs = names.map((n) => ({ p: join(LOG_ROOT, n), t: statSync(join(LOG_ROOT, n)).mtimeMs })).sort((a, b) => b.t - a.t);
  for (const old of runs.slice(keep)) rmSync(old.p, { recursive: true, force: true });
}

/** Remembers a secret the tests use, so the final scan can look for it. `label` says what it is (it is printed). */
export function registerSecret(label: string, value: string, dir: string = testLogDir()): void {
  if (value.length < MIN_SECRET_LENGTH) return;
  appendFileSync(join(dir, REGISTRY_FILE), JSON.stringify({ label, value }) + '\n', { mode: 0o600 });
}

let logCounter = 0;

export interface TestLog {
  readonly path: string;
  /** Appends text exactly as the program produced it (synchronously: nothing is lost if the test crashes). */
  write(text: string): void;
}

/** A new log file in the run's directory for one program started by a test. */
export function createTestLog(name: string, dir: string = testLogDir()): TestLog {
  logCounter += 1;
  const safe = name.replace(/[^A-Za-z0-9_.-]+/g, '-').slice(0, 80);
  const path = join(dir, `${safe}.${process.pid}.${logCounter}.log`);
  appendFileSync(path, '', { mode: 0o600 });
  return { path, write: (text) => appendFileSync(path, text) };
}

export interface RegisteredSecret {
  readonly label: string;
  readonly value: string;
}

export function readRegistry(dir: string): RegisteredSecret[] {
  let text: string;
  try {
    text = readFileSync(join(dir, REGISTRY_FILE), 'utf8');
  } catch {
    return [];
  }
  const seen = new Set<string>();
  const out: RegisteredSecret[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const entry = JSON.parse(line) as RegisteredSecret;
    if (seen.has(entry.value)) continue;
    seen.add(entry.value);
    out.push(entry);
  }
  return out;
}

/**
 * Shapes that are secrets whoever produced them: a compact JWS (every access token, client assertion and
 * service-account token the tests see is one) and a PEM private key.
 */
export const SECRET_SHAPES: ReadonlyArray<{ readonly label: string; readonly pattern: RegExp }> = [
  { label: 'a JWT (access token, client assertion or service-account token)', pattern: /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}/ },
  { label: 'a PEM private key', pattern: /-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----/ },
];

export interface Finding {
  readonly file: string;
  readonly line: number;
  /** What was found (the label of the secret or shape), never the value. */
  readonly what: string;
}

/**
 * Lines a program prints on purpose for its operator: the dev-mode environment block, which carries the endpoint
 * secret so a developer can paste it (sidecar/main.ts; dev tokens are not accepted by Azure). Outside dev mode the
 * block names the variable (`$MI_ANYWHERE_IDENTITY_HEADER`) instead — test/security/secrets-output.test.ts pins that.
 */
function devEnvBlockLines(lines: readonly string[]): Set<number> {
  const exempt = new Set<number>();
  let inDevBlock = false;
  lines.forEach((line, index) => {
    if (line.startsWith('# mi-anywhere (dev mode')) inDevBlock = true;
    else if (line === '# end of profiles') inDevBlock = false;
    else if (inDevBlock && /^(IDENTITY_HEADER|MSI_SECRET)=/.test(line)) exempt.add(index);
  });
  return exempt;
}

/** Scans one text (a log file's content) for registered secrets and secret shapes. */
export function scanText(file: string, text: string, secrets: readonly RegisteredSecret[]): Finding[] {
  const findings: Finding[] = [];
  const lines = text.split('\n');
  const exempt = devEnvBlockLines(lines);
  lines.forEach((line, index) => {
    if (exempt.has(index)) return;
    for (const secret of secrets) if (line.includes(secret.value)) findings.push({ file, line: index + 1, what: secret.label });
    for (const shape of SECRET_SHAPES) if (shape.pattern.test(line)) findings.push({ file, line: index + 1, what: shape.label });
  });
  return findings;
}

/** Every `*.log` file under `dir` (recursively), scanned. */
export function scanLogDir(dir: string, secrets: readonly RegisteredSecret[] = readRegistry(dir)): { files: string[]; findings: Finding[] } {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.log')) files.push(p);
    }
  };
  walk(dir);
  const findings = files.flatMap((f) => scanText(f, readFileSync(f, 'utf8'), secrets));
  return { files, findings };
}

/** `file:line: what` lines for an assertion message (no secret values). */
export function formatFindings(findings: readonly Finding[]): string {
  return findings.map((f) => `${f.file}:${f.line}: ${f.what}`).join('\n');
}

/** Copies a spawned program's stdout/stderr into a new log of this run (for the final secret scan). */
export function collectChildOutput(child: { stdout?: NodeJS.ReadableStream | null; stderr?: NodeJS.ReadableStream | null }, name: string): void {
  const log = createTestLog(name);
  child.stdout?.on('data', (chunk: Buffer | string) => log.write(String(chunk)));
  child.stderr?.on('data', (chunk: Buffer | string) => log.write(String(chunk)));
}
