/**
 * The API server's version, read in-cluster without the Kubernetes client library: one `GET /version` with the
 * pod's service-account token, TLS verified against the service-account CA — the same files and address the
 * client's `loadFromCluster()` uses
 * (https://kubernetes.io/docs/tasks/run-application/access-api-from-pod/#without-using-a-proxy).
 *
 * Why not the library: @kubernetes/client-node adds about 60 MiB to the webhook's RSS, and with mounted
 * certificates (the chart's default) this one request is all the webhook asks of the API server; the library is
 * still loaded where more is needed (a kubeconfig file, self-managed certificates). docs/performance.md.
 */
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';

/** Where kubelet mounts the service-account token and the cluster CA. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface ServerVersion {
  readonly major: string;
  readonly minor: string;
  readonly gitVersion: string;
}

export interface ApiServerAddress {
  readonly host: string;
  readonly port: number;
}

const MAX_BODY_BYTES = 64 * 1024;

function parseVersion(status: number | undefined, body: string): ServerVersion {
  if (status !== 200) throw new Error(`GET /version answered ${status ?? 'nothing'}`);
  const parsed = JSON.parse(body) as { major?: unknown; minor?: unknown; gitVersion?: unknown };
  if (typeof parsed.major !== 'string' || typeof parsed.minor !== 'string') throw new Error('GET /version: no major/minor in the answer');
  return { major: parsed.major, minor: parsed.minor, gitVersion: typeof parsed.gitVersion === 'string' ? parsed.gitVersion : '' };
}

export async function readServerVersion(api: ApiServerAddress, options: { readonly dir?: string; readonly timeoutMs?: number } = {}): Promise<ServerVersion> {
  const dir = options.dir ?? SERVICE_ACCOUNT_DIR;
  const [token, ca] = await Promise.all([readFile(join(dir, 'token'), 'utf8'), readFile(join(dir, 'ca.crt'), 'utf8')]);
  return new Promise<ServerVersion>((resolve, reject) => {
    const req = request(
      {
        host: api.host,
        port: api.port,
        path: '/version',
        method: 'GET',
        ca,
        headers: { authorization: `Bearer ${token.trim()}`, accept: 'application/json' },
        timeout: options.timeoutMs ?? 10_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (body.length < MAX_BODY_BYTES) body += chunk;
        });
        res.on('end', () => {
          try {
            resolve(parseVersion(res.statusCode, body));
          } catch (error) {
            reject(error instanceof Error ? error : new Error(String(error)));
          }
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('GET /version timed out')));
    req.on('error', reject);
    req.end();
  });
}
