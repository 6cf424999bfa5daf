/**
 * Benchmark 2: the peer, azure-workload-identity's proxy sidecar (`azwi proxy`, built from its Go module by
 * scripts/provision.d/60-azwi.sh), and the mi-anywhere sidecar in entra mode, both configured against the same
 * test authority with the same federated identity, answering the same IMDS request at 1, 10 and 50 connections.
 * Also: each one's upstream calls per request (the authority counts them), start-up to ready, idle and loaded RSS.
 *
 * The peer talks to Entra the way it does in a cluster: AZURE_CLIENT_ID / AZURE_TENANT_ID /
 * AZURE_FEDERATED_TOKEN_FILE / AZURE_AUTHORITY_HOST, the authority's CA through SSL_CERT_FILE, and HTTPS_PROXY
 * only so MSAL Go's instance-discovery call to login.microsoftonline.com is answered on loopback (see
 * bench/servers/authority-host.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { AuthorityHost } from '../lib/authority.ts';
import type { Programs } from '../lib/programs.ts';
import { freePort, spawnServer, type Server } from '../lib/processes.ts';
import { imdsRequest, type SidecarProcess } from '../lib/sidecar.ts';
import { peakRssDuring } from './footprint.ts';
import { runMatrix, type MatrixCell } from './load-matrix.ts';
import { startEntraSidecar } from './entra.ts';
import { runLoad } from '../lib/load.ts';

export interface ProcessFigures {
  readonly startupMs: number;
  readonly idleRssBytes: number;
  readonly loadedRssBytes: number;
  /** Token-endpoint calls at the authority per answered request during the load runs. */
  readonly upstreamTokenCallsPerRequest: number;
  /** All authority calls (instance discovery, OIDC discovery, token) per answered request. */
  readonly upstreamCallsPerRequest: number;
}

export interface PeerResult {
  readonly peerVersion: string;
  readonly cells: MatrixCell[];
  readonly peer: ProcessFigures;
  readonly sidecar: ProcessFigures;
}

export interface PeerOptions {
  readonly programs: Programs;
  readonly nodeFlags: readonly string[];
  readonly authority: AuthorityHost;
  readonly quick: boolean;
  readonly log: (line: string) => void;
}

export function azwiBinary(): string {
  const cache = process.env.MI_ANYWHERE_CACHE ?? join(homedir(), '.cache', 'mi-anywhere');
  return join(cache, 'bin', 'azwi-proxy');
}

async function startPeer(authority: AuthorityHost): Promise<Server & { port: number }> {
  const binary = azwiBinary();
  if (!existsSync(binary)) {
    const error = `${binary}.error`;
    const why = existsSync(error) ? `; its build failed: ${readFileSync(error, 'utf8').trim().split('\n').slice(-5).join(' | ')}` : '';
    throw new Error(`${binary} is missing: run scripts/provision.d/60-azwi.sh (npm test provisions it)${why}`);
  }
  const port = await freePort();
  const { info } = authority;
  const server = await spawnServer({
    name: 'azwi-proxy',
    command: binary,
    // Default log level (unset = warnings and errors), as the azwi webhook injects it by default.
    args: [`--proxy-port=${port}`],
    env: {
      AZURE_CLIENT_ID: info.clientId,
      AZURE_TENANT_ID: info.tenantId,
      AZURE_FEDERATED_TOKEN_FILE: info.tokenFile,
      AZURE_AUTHORITY_HOST: `${info.peerAuthorityUrl}/`,
      SSL_CERT_FILE: info.caBundleFile,
      HTTPS_PROXY: info.discoveryProxyUrl,
      https_proxy: info.discoveryProxyUrl,
      NO_PROXY: '',
      no_proxy: '',
    },
    readyUrl: `http://127.0.0.1:${port}/readyz`,
  });
  return Object.assign(server, { port });
}

async function idleRss(server: Server, url: string, headers: Readonly<Record<string, string>>, settleMs: number): Promise<number> {
  for (let i = 0; i < 20; i++) await (await fetch(url, { headers: { ...headers } })).arrayBuffer();
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  return server.rssBytes();
}

export async function runPeer(options: PeerOptions): Promise<PeerResult> {
  const started: Array<{ stop(): Promise<void> }> = [];
  try {
    const peer = await startPeer(options.authority);
    started.push(peer);
    const sidecar: SidecarProcess = await startEntraSidecar({ programs: options.programs, nodeFlags: options.nodeFlags, authority: options.authority });
    started.push(sidecar.server);
    const request = imdsRequest(undefined, options.authority.info.clientId);
    const peerUrl = `http://127.0.0.1:${peer.port}${request.path}`;
    const sidecarUrl = sidecar.baseUrl + request.path;
    const settleMs = options.quick ? 200 : 2000;
    const peerIdle = await idleRss(peer, peerUrl, request.headers, settleMs);
    const sidecarIdle = await idleRss(sidecar.server, sidecarUrl, request.headers, settleMs);

    const perTarget = { peer: { requests: 0, token: 0, all: 0 }, sidecar: { requests: 0, token: 0, all: 0 } };
    const targets = [
      { name: 'azwi-proxy', url: peerUrl, headers: request.headers, key: 'peer' as const, pid: peer.pid },
      { name: 'sidecar-entra', url: sidecarUrl, headers: request.headers, key: 'sidecar' as const, pid: sidecar.server.pid },
    ];
    // Count upstream calls around each run: the matrix runs one target at a time.
    let before = { token: 0, all: 0 };
    // The first request of the sidecar fetched its token before this point: later ones are cache hits.
    const snapshot = async (): Promise<{ token: number; all: number }> => ({
      token: await options.authority.calls({ endpoint: 'token' }),
      all: await options.authority.calls(),
    });
    before = await snapshot();
    const cells = await runMatrix({
      targets,
      connections: [1, 10, 50],
      rounds: options.quick ? 1 : 2,
      secondsPerRun: options.quick ? 0.5 : 3,
      warmupSeconds: options.quick ? 0.3 : 1,
      onResult: (name, result) => {
        options.log(`  ${name} c=${result.connections}: ${result.rps.toFixed(0)} req/s, p99 ${result.p99Ms.toFixed(3)} ms`);
      },
      afterRun: async (name, result) => {
        const now = await snapshot();
        const key = targets.find((t) => t.name === name)?.key;
        if (key) {
          perTarget[key].requests += result.requests;
          perTarget[key].token += now.token - before.token;
          perTarget[key].all += now.all - before.all;
        }
        before = now;
      },
      beforeRun: async () => {
        before = await snapshot();
      },
    });
    const loadSeconds = options.quick ? 0.5 : 3;
    const peerLoaded = await peakRssDuring(peer, () => runLoad({ url: peerUrl, headers: request.headers, connections: 50, durationSeconds: loadSeconds }));
    const sidecarLoaded = await peakRssDuring(sidecar.server, () =>
      runLoad({ url: sidecarUrl, headers: request.headers, connections: 50, durationSeconds: loadSeconds }),
    );
    const per = (k: 'peer' | 'sidecar', field: 'token' | 'all'): number => (perTarget[k].requests > 0 ? perTarget[k][field] / perTarget[k].requests : Number.NaN);
    return {
      peerVersion: peerVersionText(),
      cells,
      peer: {
        startupMs: peer.readyMs,
        idleRssBytes: peerIdle,
        loadedRssBytes: peerLoaded,
        upstreamTokenCallsPerRequest: per('peer', 'token'),
        upstreamCallsPerRequest: per('peer', 'all'),
      },
      sidecar: {
        startupMs: sidecar.server.readyMs,
        idleRssBytes: sidecarIdle,
        loadedRssBytes: sidecarLoaded,
        upstreamTokenCallsPerRequest: per('sidecar', 'token'),
        upstreamCallsPerRequest: per('sidecar', 'all'),
      },
    };
  } finally {
    for (const s of started.reverse()) await s.stop();
  }
}

/** The version stamp the provisioning script wrote next to the binary. */
function peerVersionText(): string {
  const file = `${azwiBinary()}.version`;
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : 'unknown';
}
