/**
 * Runs the matrix: one driver process per client, row and column, each behind its own counting proxy, with exactly
 * the environment the webhook injects for the column's profile (plus PATH/HOME and what the runtime needs), bounded
 * parallelism and a hard timeout per process. Returns the cells; rendering and assertions live elsewhere.
 *
 * Why a process per row and not one per client and column: the SDKs keep process-wide state. msal-node picks its
 * managed-identity source once per process (static `ManagedIdentityClient.identitySource`), so a user-assigned
 * ManagedIdentityApplication created after a system-assigned one in `MSI_ENDPOINT` mode silently reuses the Cloud
 * Shell source and gets the system identity's token instead of refusing; and @azure/identity's credentials share
 * msal-node's token cache, so a ManagedIdentityCredential created after DefaultAzureCredential never calls the
 * endpoint. One application configuration per process is what a pod is, so each cell gets a fresh process.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { profileEnv } from '../../sidecar/contract.ts';
import { startCountingProxy } from './counting-proxy.ts';
import { axisKey, type ClientVersion } from './versions.ts';
import type { DriverInput, DriverResult } from './drivers/protocol.ts';
import {
  CLIENTS,
  IDENTITIES,
  RESOURCE,
  cellKey,
  classify,
  expectation,
  expectedAppId,
  selectorValue,
  type Backend,
  type Cell,
  type Client,
  type ClientId,
  type Column,
  type Row,
  type ExpectationTable,
  type MatrixRun,
} from './matrix.ts';

const REPO = join(import.meta.dirname, '..', '..');

/** Where the provisioning steps put the clients (scripts/provision.d/2*-*.sh). */
export interface Toolchain {
  readonly cache: string;
  readonly node: string;
}

export function toolchain(cacheOverride: string | undefined, node: string): Toolchain {
  return { cache: cacheOverride ?? join(homedir(), '.cache', 'mi-anywhere'), node };
}

interface Command {
  readonly argv: readonly string[];
  /** Files that must exist (else every cell of the client fails with "not provisioned"). */
  readonly needs: readonly string[];
  readonly path: string;
}

const SYSTEM_PATH = '/usr/local/bin:/usr/bin:/bin';

/** The Debian-packaged Azure CLI runs on Debian's own Python, where `az` sits next to the interpreter. */
const DEBIAN_PYTHON = '/usr/bin/python3';

function command(client: ClientId, tc: Toolchain, version?: ClientVersion): Command {
  if (version !== undefined) return versionCommand(client, tc, version);
  const python = join(tc.cache, 'python', 'venv', 'bin', 'python');
  const py = (script: string): Command => ({
    argv: [python, join(REPO, 'test', 'compat', 'python', script)],
    needs: [python],
    path: SYSTEM_PATH,
  });
  switch (client) {
    case 'js-identity':
    case 'js-msal':
      return {
        argv: [tc.node, join(REPO, 'test', 'compat', 'drivers', `${client}.ts`)],
        needs: [tc.node],
        path: `${dirname(tc.node)}:${SYSTEM_PATH}`,
      };
    case 'py-identity':
      return py('driver_identity.py');
    case 'py-msal':
      return py('driver_msal.py');
    case 'az':
      return py('driver_az.py');
    case 'go': {
      const bin = join(tc.cache, 'bin', 'mi-anywhere-compat-go');
      return { argv: [bin], needs: [bin], path: SYSTEM_PATH };
    }
    case 'java': {
      const dir = join(tc.cache, 'java');
      const cpFile = join(dir, 'classpath.txt');
      const cp = existsSync(cpFile) ? `${join(dir, 'classes')}:${readFileSync(cpFile, 'utf8').trim()}` : '';
      // Short-lived JVMs on 2 shared cores: serial GC and the C1 compiler start fastest.
      return {
        argv: ['java', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-cp', cp, 'compat.Driver'],
        needs: [cpFile, join(dir, 'classes')],
        path: SYSTEM_PATH,
      };
    }
  }
}

/** An older release of the version axis: the same drivers, pointed at that release's install. */
function versionCommand(client: ClientId, tc: Toolchain, cv: ClientVersion): Command {
  const at = join(tc.cache, cv.install);
  const script = { 'py-identity': 'driver_identity.py', 'py-msal': 'driver_msal.py', az: 'driver_az.py' } as const;
  switch (client) {
    case 'js-identity':
    case 'js-msal': {
      const base = command(client, tc);
      return { ...base, needs: [...base.needs, join(at, 'package.json')] };
    }
    case 'py-identity':
    case 'py-msal':
    case 'az': {
      const python = cv.install === 'debian' ? DEBIAN_PYTHON : join(at, 'bin', 'python');
      const needs = cv.install === 'debian' ? [python, '/usr/bin/az'] : [python];
      return { argv: [python, join(REPO, 'test', 'compat', 'python', script[client])], needs, path: SYSTEM_PATH };
    }
    case 'go':
      return { argv: [at], needs: [at], path: SYSTEM_PATH };
    case 'java': {
      const cpFile = join(at, 'classpath.txt');
      const cp = existsSync(cpFile) ? `${join(at, 'classes')}:${readFileSync(cpFile, 'utf8').trim()}` : '';
      return {
        argv: ['java', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-cp', cp, 'compat.Driver'],
        needs: [cpFile, join(at, 'classes')],
        path: SYSTEM_PATH,
      };
    }
  }
}

export interface SidecarEndpoint {
  readonly tokenUrl: string;
  readonly identityHeader: string;
}

export interface RunOptions {
  readonly columns: readonly Column[];
  readonly sidecars: Readonly<Record<Backend, SidecarEndpoint | string>>;
  readonly expectations: ExpectationTable;
  readonly toolchain: Toolchain;
  readonly concurrency: number;
  readonly processTimeoutMs: number;
  readonly callTimeoutMs: number;
  readonly clients?: readonly ClientId[];
  /** Older releases to run beside the newest (the version axis); their cells are keyed `<client>@<version>/...`. */
  readonly axis?: readonly ClientVersion[];
  /** Columns that cannot run here, by column id, with the reason (their cells FAIL with it). */
  readonly columnFailures?: Readonly<Record<string, string>>;
  readonly onProgress?: (line: string) => void;
}

interface ProcessOutcome {
  readonly results: DriverResult[];
  readonly error?: string;
}

function tail(text: string, max = 800): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `…${flat.slice(-max)}`;
}

function runProcess(argv: readonly string[], env: Record<string, string>, timeoutMs: number): Promise<ProcessOutcome> {
  return new Promise((resolve) => {
    const [exe, ...args] = argv;
    if (exe === undefined) throw new Error('empty command');
    const child = spawn(exe, args, { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: env['HOME'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const finish = (code: number | null, spawnError?: Error): void => {
      clearTimeout(timer);
      const results: DriverResult[] = [];
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          results.push(JSON.parse(line) as DriverResult);
        } catch {
          // a library printed a JSON-looking line; ignore
        }
      }
      let error: string | undefined;
      if (spawnError) error = `could not start ${exe}: ${spawnError.message}`;
      else if (timedOut) error = `driver process killed after ${String(timeoutMs)} ms; stderr: ${tail(stderr)}`;
      else if (code !== 0) error = `driver exited with ${String(code)}; stderr: ${tail(stderr)}`;
      resolve(error === undefined ? { results } : { results, error });
    };
    child.once('error', (err) => finish(null, err));
    child.once('close', (code) => finish(code));
  });
}

async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  });
  await Promise.all(workers);
}

export async function runMatrix(options: RunOptions): Promise<MatrixRun> {
  const started = Date.now();
  const cells = new Map<string, Cell>();
  const versions = new Map<string, Record<string, string>>();
  const clients = CLIENTS.filter((c) => options.clients === undefined || options.clients.includes(c.id));
  const jobs: Array<{ client: Client; row: Row; column: Column; version?: ClientVersion }> = [];
  for (const column of options.columns) for (const client of clients) for (const row of client.rows) jobs.push({ client, row, column });
  // The version axis runs the dev-issuer columns (the token source does not change what a client sends).
  for (const version of options.axis ?? []) {
    const client = CLIENTS.find((c) => c.id === version.client);
    if (client === undefined || !clients.includes(client)) continue;
    for (const column of options.columns.filter((c) => c.backend === 'dev')) {
      for (const row of client.rows.filter((r) => version.rows.includes(r.id))) jobs.push({ client, row, column, version });
    }
  }
  // Slowest first (JVM and CLI start-up), so the tail of the run is short processes.
  const weight: Record<ClientId, number> = { az: 0, java: 1, 'py-identity': 2, 'py-msal': 3, 'js-identity': 4, 'js-msal': 5, go: 6 };
  jobs.sort((a, b) => weight[a.client.id] - weight[b.client.id]);

  await pool(jobs, options.concurrency, async ({ client, row, column, version }) => {
    const t0 = Date.now();
    const clientKey = version === undefined ? client.id : axisKey(version);
    const key = cellKey(clientKey, row.id, column.id);
    const fail = (text: string): void => {
      cells.set(key, { kind: 'fail', text });
    };
    const sidecar = options.sidecars[column.backend];
    if (typeof sidecar === 'string') {
      fail(sidecar);
      return;
    }
    const columnFailure = options.columnFailures?.[column.id];
    if (columnFailure !== undefined) {
      fail(columnFailure);
      return;
    }
    const cmd = command(client.id, options.toolchain, version);
    const missing = cmd.needs.filter((f) => !existsSync(f));
    if (missing.length > 0) {
      fail(`not provisioned (missing ${missing.join(', ')}): run scripts/provision.sh`);
      return;
    }
    const proxy = await startCountingProxy(sidecar.tokenUrl);
    const home = mkdtempSync(join(tmpdir(), `mi-compat-${client.id}-`));
    try {
      const env: Record<string, string> = {
        ...Object.fromEntries(
          profileEnv(column.profile, {
            baseUrl: proxy.url,
            secret: sidecar.identityHeader,
            defaultClientId: IDENTITIES.system.clientId,
          }),
        ),
        PATH: cmd.path,
        HOME: home,
      };
      if (client.language === 'Python') env['PYTHONDONTWRITEBYTECODE'] = '1';
      const input: DriverInput = {
        resource: RESOURCE,
        counterUrl: proxy.counterUrl,
        callTimeoutMs: options.callTimeoutMs,
        variants: [
          {
            id: row.id,
            credential: row.credential,
            ...(row.selector === undefined ? {} : { selector: { kind: row.selector, value: selectorValue(row.selector) } }),
            expectedAppId: expectedAppId(row),
          },
        ],
        ...(client.id === 'az' ? { azureConfigDir: join(home, '.azure'), tenantId: IDENTITIES.tenantId } : {}),
        ...(version !== undefined && client.language === 'JavaScript' ? { jsPackageDir: join(options.toolchain.cache, version.install) } : {}),
        ...(version?.clientCache === false ? { clientCache: false } : {}),
      };
      const outcome = await runProcess([...cmd.argv, JSON.stringify(input)], env, options.processTimeoutMs);
      const result = outcome.results.find((r) => r.variant === row.id);
      if (result !== undefined && !versions.has(clientKey)) versions.set(clientKey, { ...result.versions });
      // An older release has its own entries (`<client>@<version>/...`): what the newest refuses, an older one may
      // serve, and the other way round.
      const expected = expectation(options.expectations, clientKey, row.id, column.profile);
      let cell = classify(result, expected, outcome.error, proxy.requests().length);
      if (cell.kind === 'fail') {
        // What reached the sidecar, for the diagnosis (paths with their query: resource and selectors, no secret).
        const seen = proxy.requests().slice(0, 4).map((r) => `${r.method} ${r.path} → ${String(r.status)}${r.appid ? ` appid ${r.appid}` : ''}`);
        cell = { ...cell, text: `${cell.text ?? ''} — requests that reached the sidecar: ${seen.length === 0 ? 'none' : seen.join('; ')}` };
      }
      const apiVersions = [...new Set(proxy.requests().map((r) => new URLSearchParams(r.path.split('?')[1] ?? '').get('api-version') ?? '(none)'))];
      cells.set(key, { ...cell, apiVersions });
      options.onProgress?.(`${key}: ${cell.kind} (${String(Date.now() - t0)} ms)`);
    } finally {
      await proxy.stop();
      rmSync(home, { recursive: true, force: true });
    }
  });

  return {
    columns: options.columns,
    cells,
    versions,
    generatedAt: new Date(started).toISOString().replace(/\.\d+Z$/, 'Z'),
    durationS: Math.round((Date.now() - started) / 1000),
  };
}
