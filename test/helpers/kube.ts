/**
 * A real Kubernetes control plane for tests: etcd + kube-apiserver (built by scripts/provision.d/30-kube.sh into
 * `$MI_ANYWHERE_CACHE/bin`), started on 127.0.0.1 with random ports and temp directories, torn down by `stop()`.
 * No kubelet, scheduler or controller-manager: pods are stored (after admission, defaulting and validation) but
 * never run — exactly what admission and `helm install` tests need.
 *
 * Usage (webhook e2e, chart tests):
 *
 *   const cluster = await startKubeApiServer();           // throws with the reason when binaries are missing
 *   after(() => cluster.stop());
 *   const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
 *   await cluster.createNamespace('demo');                // also creates the "default" ServiceAccount
 *   // helm: `helm --kubeconfig ${cluster.kubeconfigPath} install ...`
 *
 * Access: a static bearer token for user "admin" in group system:masters (all permissions under RBAC), and
 * `cluster.userKubeConfig(name, groups)` for least-privilege checks (e.g. the webhook's own RBAC). Service
 * account tokens are signed with a per-run RSA key, so projected serviceAccountToken volumes validate.
 * The ServiceAccount admission plugin stays on (as in real clusters), which is why namespaces need their
 * "default" ServiceAccount created explicitly (no controller-manager does it here).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { renewCertificates } from '../../webhook/cert/authority.ts';
import { freePort } from './ports.ts';

export type KubeJson = any;

export interface KubeCluster {
  /** Admin client configuration (system:masters) for @kubernetes/client-node. */
  readonly kubeConfig: KubeConfig;
  /** The same, written as a kubeconfig file (for helm, kubectl, or MI_ANYWHERE_WEBHOOK_KUBECONFIG). */
  readonly kubeconfigPath: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** PEM of the CA that signed the API server's serving certificate. */
  readonly caPem: string;
  /** Working directory (logs: etcd.log, kube-apiserver.log). Removed by stop() unless KEEP_KUBE_DIR=1. */
  readonly dir: string;
  /** Kubernetes version reported by the binary (e.g. v1.36.3). */
  readonly version: string;
  /** A kubeconfig for another static-token user (for RBAC tests). */
  userKubeConfig(user: string, groups?: readonly string[]): KubeConfig;
  /** Creates a namespace and its "default" ServiceAccount (pods need it: ServiceAccount admission plugin). */
  createNamespace(name: string, labels?: Record<string, string>): Promise<void>;
  /**
   * Raw JSON request as the admin (no ObjectSerializer: timestamps stay strings, so stored objects can be compared
   * byte for byte). `path` like `/api/v1/namespaces/x/pods?dryRun=All`. `headers` override the JSON defaults
   * (e.g. `accept: application/jwk-set+json` for `/openid/v1/jwks`).
   */
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; json: KubeJson }>;
  /** Last lines of the API server log, for assertion messages. */
  tail(lines?: number): Promise<string>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Extra kube-apiserver flags (e.g. `--feature-gates=...`). */
  readonly extraArgs?: readonly string[];
  /** Seconds to wait for /readyz (default 180: two loaded cores make a cold start slow). */
  readonly readyTimeoutSeconds?: number;
}

/** Where 30-kube.sh puts the binaries. */
export function kubeBinDir(): string {
  return join(process.env.MI_ANYWHERE_CACHE ?? join(homedir(), '.cache', 'mi-anywhere'), 'bin');
}

/**
 * Starts a binary with stdout and stderr appended to one log file. Neither pipe may end the file (`end: false`):
 * the first of the two to finish would otherwise close it under the other's late write
 * (ERR_STREAM_WRITE_AFTER_END). The file is closed once the process and both of its streams are done ('close').
 */
export function startProcess(binary: string, args: readonly string[], logFile: string): ChildProcess & { readonly logClosed: Promise<void> } {
  const log = createWriteStream(logFile);
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  child.once('close', () => log.end());
  const logClosed = new Promise<void>((resolve) => log.once('close', () => resolve()));
  return Object.assign(child, { logClosed });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    // 'close', not 'exit': the log file is complete (and closed) before the directory is removed.
    child.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function makeKubeConfig(server: string, caPem: string, user: string, token: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'test', server, caData: Buffer.from(caPem).toString('base64'), skipTLSVerify: false }],
    users: [{ name: user, token }],
    contexts: [{ name: 'test', cluster: 'test', user }],
    currentContext: 'test',
  });
  return kubeConfig;
}

/** GET /readyz with the admin credentials; resolves the HTTP status. */
async function readyz(kubeConfig: KubeConfig): Promise<number> {
  const options: RequestOptions = {};
  await kubeConfig.applyToHTTPSOptions(options);
  const cluster = kubeConfig.getCurrentCluster();
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${cluster?.server ?? ''}/readyz`, options, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Polls `/readyz` with the admin token until it answers 200, the process dies, or the timeout passes. */
async function waitReady(kubeConfig: KubeConfig, child: ChildProcess, timeoutSeconds: number, log: string): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let last = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`kube-apiserver exited with ${child.exitCode}:\n${(await readFile(log, 'utf8')).slice(-4000)}`);
    try {
      const core = kubeConfig.makeApiClient(CoreV1Api);
      // Listing namespaces needs storage, RBAC bootstrap and authn: a stronger signal than /readyz alone.
      await core.listNamespace();
      if ((await readyz(kubeConfig)) === 200) return;
      last = '/readyz not 200 yet';
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`kube-apiserver not ready after ${timeoutSeconds}s (last error: ${last}):\n${(await readFile(log, 'utf8')).slice(-4000)}`);
}

export async function startKubeApiServer(options: StartOptions = {}): Promise<KubeCluster> {
  const bin = kubeBinDir();
  const apiserverBin = join(bin, 'kube-apiserver');
  const etcdBin = join(bin, 'etcd');
  for (const binary of [apiserverBin, etcdBin]) {
    try {
      await readFile(`${binary}.version`, 'utf8');
    } catch {
      throw new Error(`${binary} is missing: run scripts/provision.d/30-kube.sh (npm test provisions it)`);
    }
  }
  const version = (await readFile(`${apiserverBin}.version`, 'utf8')).trim();
  const dir = await mkdtemp(join(tmpdir(), 'mi-anywhere-kube-'));
  const [etcdClient, etcdPeer, securePort] = [await freePort(), await freePort(), await freePort()];

  // Serving certificate for 127.0.0.1/localhost from a throw-away CA (the webhook's own CA code, reused).
  const pki = await renewCertificates(
    { action: 'renew-ca', reason: 'test cluster' },
    {
      names: { dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'], ipAddresses: ['127.0.0.1'] },
      policy: { certValidityDays: 2, certRenewBeforeDays: 1, caValidityDays: 3, caRenewBeforeDays: 1 },
      now: Date.now(),
    },
  );
  const saKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const adminToken = randomBytes(24).toString('hex');
  const users = new Map<string, { token: string; groups: readonly string[] }>([['admin', { token: adminToken, groups: ['system:masters'] }]]);
  // Extra users are fixed at start (the token file is read once): a few generic ones for RBAC tests.
  for (const user of ['user1', 'user2', 'user3']) users.set(user, { token: randomBytes(24).toString('hex'), groups: [] });
  const tokenLines = [...users].map(([user, { token, groups }]) => `${token},${user},${user}-uid,"${groups.join(',')}"`);
  await Promise.all([
    writeFile(join(dir, 'serving.crt'), pki.cert + pki.caBundle),
    writeFile(join(dir, 'serving.key'), pki.key, { mode: 0o600 }),
    writeFile(join(dir, 'sa.key'), saKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 }),
    writeFile(join(dir, 'sa.pub'), saKeys.publicKey.export({ type: 'spki', format: 'pem' }) as string),
    writeFile(join(dir, 'tokens.csv'), `${tokenLines.join('\n')}\n`, { mode: 0o600 }),
  ]);

  const etcd = startProcess(
    etcdBin,
    [
      '--name=test',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=test=http://127.0.0.1:${etcdPeer}`,
      '--log-level=warn',
      // Tests do not need durability; skipping fsync keeps a loaded 2-core machine responsive.
      '--unsafe-no-fsync',
    ],
    join(dir, 'etcd.log'),
  );
  const server = `https://127.0.0.1:${securePort}`;
  const apiserverLog = join(dir, 'kube-apiserver.log');
  const apiserver = startProcess(
    apiserverBin,
    [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${securePort}`,
      `--tls-cert-file=${join(dir, 'serving.crt')}`,
      `--tls-private-key-file=${join(dir, 'serving.key')}`,
      `--cert-dir=${join(dir, 'certs')}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      '--allow-privileged=true',
      '--profiling=false',
      '--v=1',
      ...(options.extraArgs ?? []),
    ],
    apiserverLog,
  );
  const kubeConfig = makeKubeConfig(server, pki.caBundle, 'admin', adminToken);
  const stop = async (): Promise<void> => {
    await stopProcess(apiserver);
    await stopProcess(etcd);
    if (process.env.KEEP_KUBE_DIR !== '1') await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(kubeConfig, apiserver, options.readyTimeoutSeconds ?? 180, apiserverLog);
  } catch (error) {
    await stop();
    throw error;
  }
  const kubeconfigPath = join(dir, 'kubeconfig');
  await writeFile(
    kubeconfigPath,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server, 'certificate-authority-data': Buffer.from(pki.caBundle).toString('base64') } }],
      users: [{ name: 'admin', user: { token: adminToken } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'admin' } }],
      'current-context': 'test',
    }),
    { mode: 0o600 },
  );

  return {
    kubeConfig,
    kubeconfigPath,
    server,
    caPem: pki.caBundle,
    dir,
    version,
    userKubeConfig(user, groups = []) {
      const entry = users.get(user);
      if (entry === undefined) throw new Error(`unknown test user ${user}; available: ${[...users.keys()].join(', ')}`);
      if (groups.length > 0) throw new Error('groups are fixed at start: bind RBAC roles to the user instead');
      return makeKubeConfig(server, pki.caBundle, user, entry.token);
    },
    async createNamespace(name, labels = {}) {
      const core = kubeConfig.makeApiClient(CoreV1Api);
      await core.createNamespace({ body: { metadata: { name, labels } } });
      await core.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: 'default' } } });
    },
    async request(method, path, body, headers = {}) {
      const options: RequestOptions = { method, headers: { accept: 'application/json', 'content-type': 'application/json', ...headers } };
      await kubeConfig.applyToHTTPSOptions(options);
      return new Promise((resolve, reject) => {
        const req = httpsRequest(`${server}${path}`, options, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = JSON.parse(text);
            } catch {
              json = text;
            }
            resolve({ status: res.statusCode ?? 0, json });
          });
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body === undefined ? undefined : JSON.stringify(body));
      });
    },
    async tail(lines = 40) {
      return (await readFile(apiserverLog, 'utf8')).split('\n').slice(-lines).join('\n');
    },
    stop,
  };
}
