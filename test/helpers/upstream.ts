/**
 * The reliability suites' upstream: the test authority behind a TCP forwarder that it advertises as its own address,
 * so a test can cut the network (outage), restore it (recovery), or route it to an untrusted TLS server (wrong CA)
 * while the authority keeps its state, CA and registered apps. Also writes kubelet-shaped identity directories.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestAuthority, type RegisteredApp, type StartTestAuthorityOptions, type TestAuthority } from '../authority/authority.ts';
import { writeSecretDir } from './kube-secret-dir.ts';
import { startSidecar, type SpawnedSidecar } from './sidecar.ts';
import { SIDECAR_ENV } from '../../sidecar/contract.ts';
import { freePort } from './ports.ts';
import { startTcpForwarder, type TcpForwarder } from './tcp-forwarder.ts';

export interface Upstream {
  readonly authority: TestAuthority;
  readonly forwarder: TcpForwarder;
  /** Listening port of the authority itself (the forwarder's normal target). */
  readonly authorityPort: number;
  stop(): Promise<void>;
}

export async function startUpstream(options: StartTestAuthorityOptions = {}): Promise<Upstream> {
  const authorityPort = await freePort();
  const forwarder = await startTcpForwarder(authorityPort);
  const authority = await startTestAuthority({ ...options, port: authorityPort, advertisedPort: forwarder.port });
  return {
    authority,
    forwarder,
    authorityPort,
    async stop() {
      await forwarder.stop();
      await authority.stop();
    },
  };
}

export interface EntraSidecar {
  readonly sidecar: SpawnedSidecar;
  /** Root of the identity directories (one kubelet-shaped Secret volume per identity). */
  readonly identityDir: string;
  cleanup(): Promise<void>;
}

/** Starts the real sidecar in entra mode with one client-secret identity per `apps` entry (first = default). */
export async function startEntraSidecar(
  upstream: Upstream,
  apps: ReadonlyArray<{ readonly name: string; readonly app: RegisteredApp; readonly secret: string }>,
  env: Readonly<Record<string, string>> = {},
): Promise<EntraSidecar> {
  const root = mkdtempSync(join(tmpdir(), 'mi-anywhere-reliability-'));
  const identityDir = join(root, 'identities');
  for (const a of apps) writeSecretDir(identityDir, a.name, { tenantId: a.app.tenantId, clientId: a.app.clientId, clientSecret: a.secret });
  const sidecar = await startSidecar({
    args: [],
    env: {
      [SIDECAR_ENV.mode]: 'entra',
      [SIDECAR_ENV.identityDir]: identityDir,
      [SIDECAR_ENV.defaultIdentity]: apps[0]?.name ?? '',
      [SIDECAR_ENV.authorityHost]: upstream.authority.url,
      NODE_EXTRA_CA_CERTS: upstream.authority.caFile,
      ...env,
    },
  });
  return {
    sidecar,
    identityDir,
    async cleanup() {
      await sidecar.stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
