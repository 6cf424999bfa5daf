/**
 * Child processes of the benchmark (servers under test, references, the peer, the test authority): spawn,
 * wait for readiness, read their memory, and always stop them — on success, on error, on SIGINT/SIGTERM and
 * on exit — so a benchmark never leaves a server behind on the shared machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Server {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Milliseconds from spawn to the first successful readiness check. */
  readonly readyMs: number;
  /** stdout + stderr so far (bounded), for error messages. */
  output(): string;
  /** Resident set size now, in bytes (from /proc, as `ps` and the kubelet's cAdvisor see it). */
  rssBytes(): number;
  stop(): Promise<void>;
}

export interface SpawnOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** Ready when this URL answers 2xx (polled every 5 ms) ... */
  readonly readyUrl?: string;
  readonly readyHeaders?: Readonly<Record<string, string>>;
  /** ... or when the output matches this (e.g. a "listening" line carrying the port). */
  readonly readyPattern?: RegExp;
  readonly timeoutMs?: number;
  /**
   * Send the child's stdout/stderr to this file instead of a pipe to the benchmark. Servers that log per request
   * must write to a file: in a pod their stdout is a pipe drained by the container runtime into a file, and a pipe
   * drained by the (busy) load generator here would make logging look slower than it is.
   */
  readonly logFile?: string;
}

const live = new Set<ChildProcess>();
let hooked = false;

let scratch: string | undefined;

/**
 * A fresh directory for this run's files (logs, token bodies, certificates), inside one per-process directory
 * that is removed when the benchmark exits.
 */
export function scratchDir(prefix: string): string {
  hookExit();
  scratch ??= mkdtempSync(join(tmpdir(), 'mi-anywhere-bench-'));
  return mkdtempSync(join(scratch, `${prefix}-`));
}

function killAll(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  live.clear();
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** Registers a child started elsewhere (e.g. with `fork`) so it is killed with the others on exit. */
export function track(child: ChildProcess): void {
  hookExit();
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** A port that was free a moment ago on 127.0.0.1 (for programs that cannot report a port 0 binding). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function rssOf(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return match?.[1] ? Number(match[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** CPU time (user + system) a process has used so far, in microseconds (from /proc/<pid>/stat, 10 ms ticks). */
export function cpuMicrosOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks / CLOCK_TICKS_PER_SECOND) * 1e6;
  } catch {
    return Number.NaN;
  }
}

/** USER_HZ: 100 on every Linux the benchmark targets (x86-64 and arm64 kernels report times in 1/100 s). */
const CLOCK_TICKS_PER_SECOND = 100;

async function probe(url: string, headers: Readonly<Record<string, string>> | undefined): Promise<boolean> {
  try {
    const response = await fetch(url, { headers: { ...headers }, signal: AbortSignal.timeout(500) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

const MAX_OUTPUT = 64 * 1024;

export async function spawnServer(options: SpawnOptions): Promise<Server & { match: RegExpExecArray | undefined }> {
  hookExit();
  const started = performance.now();
  const logFd = options.logFile !== undefined ? openSync(options.logFile, 'w') : undefined;
  const child = spawn(options.command, [...options.args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: logFd !== undefined ? ['ignore', logFd, logFd] : ['ignore', 'pipe', 'pipe'],
  });
  if (logFd !== undefined) closeSync(logFd);
  live.add(child);
  let output = '';
  let match: RegExpExecArray | undefined;
  const onData = (chunk: Buffer): void => {
    if (output.length < MAX_OUTPUT) output += chunk.toString('utf8');
    if (options.readyPattern && !match) match = options.readyPattern.exec(output) ?? undefined;
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const readOutput = (): string => {
    if (options.logFile === undefined) return output;
    try {
      return readFileSync(options.logFile, 'utf8').slice(-MAX_OUTPUT);
    } catch {
      return '';
    }
  };
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    live.delete(child);
  };
  const deadline = started + (options.timeoutMs ?? 20_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      live.delete(child);
      throw new Error(`${options.name} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${readOutput().slice(-4000)}`);
    }
    if (options.readyPattern && match) break;
    if (options.readyUrl && (await probe(options.readyUrl, options.readyHeaders))) break;
    if (performance.now() > deadline) {
      await stop();
      throw new Error(`${options.name} was not ready within ${options.timeoutMs ?? 20_000} ms:\n${readOutput().slice(-4000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const readyMs = performance.now() - started;
  const pid = child.pid ?? -1;
  return {
    name: options.name,
    pid,
    child,
    readyMs,
    match,
    output: readOutput,
    rssBytes: () => rssOf(pid),
    stop,
  };
}
