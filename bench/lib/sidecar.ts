/**
 * Starts the sidecar as users run it — `node [image flags] sidecar/main.ts`, log level info, metrics on — on
 * loopback ports picked here, and knows the two dialect requests the benchmarks send.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { freePort, scratchDir, spawnServer, type Server } from './processes.ts';

export interface SidecarProcess {
  readonly server: Server;
  readonly baseUrl: string;
  readonly healthUrl: string;
  readonly metricsUrl: string;
  readonly identityHeader: string;
}

export interface StartSidecarOptions {
  /** The sidecar's entry file (compiled main.js or sidecar/main.ts, see programs.ts). */
  readonly program: string;
  readonly nodeFlags: readonly string[];
  /** `--dev` (built-in dev issuer) or entra mode with the given identity directory. */
  readonly mode: { readonly kind: 'dev' } | { readonly kind: 'entra'; readonly env: Readonly<Record<string, string>> };
  readonly extraNodeFlags?: readonly string[];
  readonly name?: string;
  /** Overrides of the sidecar environment (e.g. a log level, to measure what logging costs). */
  readonly env?: Readonly<Record<string, string>>;
  /** Where the sidecar's stdout/stderr go (default: a file in a fresh temporary directory). */
  readonly logFile?: string;
}

export async function startSidecarProcess(options: StartSidecarOptions): Promise<SidecarProcess> {
  const [tokenPort, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const identityHeader = randomBytes(24).toString('hex');
  const healthUrl = `http://127.0.0.1:${healthPort}/readyz`;
  const server = await spawnServer({
    name: options.name ?? 'sidecar',
    command: process.execPath,
    args: [...options.nodeFlags, ...(options.extraNodeFlags ?? []), options.program, ...(options.mode.kind === 'dev' ? ['--dev'] : [])],
    env: {
      MI_ANYWHERE_TOKEN_ADDRESS: '127.0.0.1',
      MI_ANYWHERE_TOKEN_PORT: String(tokenPort),
      MI_ANYWHERE_HEALTH_ADDRESS: '127.0.0.1',
      MI_ANYWHERE_HEALTH_PORT: String(healthPort),
      MI_ANYWHERE_METRICS_ADDRESS: '127.0.0.1',
      MI_ANYWHERE_METRICS_PORT: String(metricsPort),
      MI_ANYWHERE_IDENTITY_HEADER: identityHeader,
      // The configuration users run: one info line per token request, metrics collected.
      MI_ANYWHERE_LOG_LEVEL: 'info',
      ...(options.mode.kind === 'entra' ? { MI_ANYWHERE_MODE: 'entra', ...options.mode.env } : {}),
      ...options.env,
    },
    logFile: options.logFile ?? join(scratchDir('sidecar'), 'sidecar.log'),
    readyUrl: healthUrl,
    timeoutMs: 30_000,
  });
  return {
    server,
    baseUrl: `http://127.0.0.1:${tokenPort}`,
    healthUrl,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    identityHeader,
  };
}

export const BENCH_RESOURCE = 'https://vault.azure.net';

export interface DialectRequest {
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** IMDS as `ManagedIdentityCredential` sends it (docs/protocols.md §2.1). */
export function imdsRequest(resource = BENCH_RESOURCE, clientId?: string): DialectRequest {
  const query = new URLSearchParams({ 'api-version': '2018-02-01', resource, ...(clientId ? { client_id: clientId } : {}) });
  return { path: `/metadata/identity/oauth2/token?${query.toString()}`, headers: { Metadata: 'true' } };
}

/** App Service 2019-08-01 as `ManagedIdentityCredential` sends it with IDENTITY_ENDPOINT/IDENTITY_HEADER. */
export function appServiceRequest(identityHeader: string, resource = BENCH_RESOURCE): DialectRequest {
  const query = new URLSearchParams({ 'api-version': '2019-08-01', resource });
  return { path: `/msi/token?${query.toString()}`, headers: { 'X-IDENTITY-HEADER': identityHeader } };
}
