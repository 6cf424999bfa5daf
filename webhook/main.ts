/**
 * The webhook's composition root: reads the configuration once, builds the logger, metrics and Kubernetes
 * client, decides the sidecar form from the API server version, obtains a serving certificate (mounted files or
 * self-managed), starts the three listeners (admission HTTPS, health, metrics), keeps the certificate fresh, and
 * shuts down gracefully on SIGTERM/SIGINT/SIGHUP. The only file of the webhook that touches `process`.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { performance } from 'node:perf_hooks';
import type { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import pkg from '../package.json' with { type: 'json' };
import { handleReview } from './admission/handler.ts';
import { watchCertificateFiles, type LoadedCertificate } from './cert/files.ts';
import { loadProcessConfig, type Config, type FilesCertConfig, type SelfManagedCertConfig } from './config.ts';
import { ConfigError } from './errors.ts';
import { closeGracefully, startListening } from '../common/http-server.ts';
import { createAdmissionServer, createHealthServer, createMetricsServer } from './http/server.ts';
import { supportsNativeSidecar } from './inject/native.ts';
import { createLogger, type Logger } from './log.ts';
import { readServerVersion } from './server-version.ts';
import { createWebhookMetrics } from './metrics.ts';

/** After SIGTERM: time for in-flight reviews (sub-millisecond work) and the API server to notice the endpoint is gone. */
const SHUTDOWN_GRACE_MS = 10_000;
/** Retry delay while no certificate is available yet (files not mounted, API server unreachable). */
const CERT_RETRY_MS = 2_000;

/**
 * The Kubernetes client (and, for self-managed certificates, the X.509 generator) are loaded on first use: with
 * mounted certificates and a fixed sidecar form the webhook never talks to the API server, and the client is the
 * largest module it has (docs/performance.md).
 */
async function loadKubeConfig(config: Config): Promise<KubeConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kubeConfig = new KubeConfig();
  if (config.kubeconfig !== undefined) kubeConfig.loadFromFile(config.kubeconfig);
  else kubeConfig.loadFromCluster();
  return kubeConfig;
}

/** `GET /version`: in-cluster with the service-account files (no client library), else through the kubeconfig. */
async function serverVersion(config: Config, kubeConfig: () => Promise<KubeConfig>): Promise<{ major: string; minor: string; gitVersion: string }> {
  if (config.kubeconfig === undefined && config.apiServer !== undefined) return readServerVersion(config.apiServer);
  const { VersionApi } = await import('@kubernetes/client-node');
  return (await kubeConfig()).makeApiClient(VersionApi).getCode();
}

async function decideNative(config: Config, kubeConfig: () => Promise<KubeConfig>, logger: Logger): Promise<boolean> {
  if (config.nativeSidecar !== 'auto') return config.nativeSidecar === 'always';
  try {
    const version = await serverVersion(config, kubeConfig);
    const native = supportsNativeSidecar(version);
    logger.info({ serverVersion: version.gitVersion, nativeSidecar: native }, 'sidecar form decided from the API server version');
    return native;
  } catch (error) {
    // A regular container works everywhere; guessing "native" wrongly on an old server would block pods forever.
    logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not read the API server version; injecting regular sidecar containers');
    return false;
  }
}

/** `{ address, port }` a listening server is bound to. */
function boundAddress(server: Server | HttpsServer): { address: string; port: number } {
  const bound = server.address();
  return typeof bound === 'object' && bound !== null ? { address: bound.address, port: bound.port } : { address: String(bound), port: 0 };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Where the serving certificate comes from: the first one (awaited before listening) and later changes. */
interface CertificateSource {
  readonly first: LoadedCertificate;
  onChange(listener: (certificate: LoadedCertificate) => void): void;
  stop(): void;
}

/**
 * Fan-out for certificate changes that may arrive before the admission server subscribes: the newest one is
 * delivered on subscription, so a rotation during start-up is never lost.
 */
function changeFeed(): { emit(certificate: LoadedCertificate): void; subscribe(listener: (certificate: LoadedCertificate) => void): void } {
  let listener: ((certificate: LoadedCertificate) => void) | undefined;
  let pending: LoadedCertificate | undefined;
  return {
    emit(certificate) {
      if (listener === undefined) pending = certificate;
      else listener(certificate);
    },
    subscribe(l) {
      listener = l;
      if (pending !== undefined) l(pending);
      pending = undefined;
    },
  };
}

/** Mounted files (cert-manager or a chart Secret), polled; waits until a valid pair exists. */
async function filesSource(cert: FilesCertConfig, logger: Logger): Promise<CertificateSource> {
  const feed = changeFeed();
  let first: LoadedCertificate | undefined;
  const watcher = watchCertificateFiles({
    certFile: cert.certFile,
    keyFile: cert.keyFile,
    intervalSeconds: cert.reloadIntervalSeconds,
    readFile: (path) => readFile(path, 'utf8'),
    onCertificate: (certificate) => {
      if (first === undefined) first = certificate;
      else feed.emit(certificate);
    },
    onError: (error) => logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'serving certificate files not usable yet; keeping the previous certificate'),
  });
  while (first === undefined) if (!(await watcher.check())) await sleep(CERT_RETRY_MS);
  return { first, onChange: (listener) => feed.subscribe(listener), stop: () => watcher.stop() };
}

/** Self-managed CA: reconciled until it works, then every checkIntervalSeconds (renewal, caBundle repair). */
async function selfManagedSource(cert: SelfManagedCertConfig, kubeConfig: KubeConfig, logger: Logger): Promise<CertificateSource> {
  const { kubernetesCertificateStore, reconcileCertificates, wantedNames } = await import('./cert/self-managed.ts');
  const store = kubernetesCertificateStore(kubeConfig, cert);
  const reconcile = (): Promise<LoadedCertificate> => reconcileCertificates({ store, names: wantedNames(cert), policy: cert, now: Date.now, logger });
  let first: LoadedCertificate | undefined;
  while (first === undefined) {
    try {
      first = await reconcile();
    } catch (error) {
      logger.error({ err: error }, 'could not obtain self-managed certificates; retrying');
      await sleep(CERT_RETRY_MS);
    }
  }
  const feed = changeFeed();
  let lastCert = first.cert;
  const timer = setInterval(() => {
    reconcile().then(
      (certificate) => {
        if (certificate.cert === lastCert) return;
        lastCert = certificate.cert;
        feed.emit(certificate);
      },
      (error: unknown) => logger.error({ err: error }, 'certificate reconcile failed; serving the current certificate'),
    );
  }, cert.checkIntervalSeconds * 1000);
  timer.unref();
  return { first, onChange: (listener) => feed.subscribe(listener), stop: () => clearInterval(timer) };
}

async function main(): Promise<number> {
  // Before the configuration: `--version` answers on any machine, whatever the environment holds.
  if (process.argv.includes('--version')) {
    process.stdout.write(`mi-anywhere webhook ${pkg.version}\n`);
    return 0;
  }
  let config: Config;
  try {
    config = loadProcessConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`mi-anywhere webhook: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel, destination: pino.destination({ dest: 1, sync: true }) });
  logger.info({ config, version: pkg.version }, 'starting');
  const register = new Registry();
  const metrics = createWebhookMetrics({ register, version: pkg.version });
  let kube: KubeConfig | undefined;
  const kubeConfig = async (): Promise<KubeConfig> => (kube ??= await loadKubeConfig(config));

  let ready = false;
  const health = createHealthServer(() => ready);
  const metricsServer = createMetricsServer(register, logger);
  await startListening(health, config.health);
  await startListening(metricsServer, config.metrics);

  const native = await decideNative(config, kubeConfig, logger);
  const nowSeconds = (): number => performance.now() / 1000;

  // First certificate: readiness stays false until the admission listener serves one.
  const certificates = config.cert.mode === 'files' ? await filesSource(config.cert, logger) : await selfManagedSource(config.cert, await kubeConfig(), logger);
  const first = certificates.first;

  const admission = createAdmissionServer({
    certificate: first,
    minVersion: config.tlsMinVersion,
    handle: (body) =>
      handleReview(body, {
        config: config.sidecar,
        native,
        // 24 random bytes, base64url: 32 characters, above the sidecar's 16-character minimum for a fixed header.
        newSecret: () => randomBytes(24).toString('base64url'),
      }),
    logger,
    metrics,
    nowSeconds,
    requestTimeoutSeconds: config.requestTimeoutSeconds,
  });
  metrics.certificateExpiry(first.notAfterSeconds);
  certificates.onChange((certificate) => {
    admission.updateCertificate(certificate);
    metrics.certificateExpiry(certificate.notAfterSeconds);
    logger.info({ notAfter: new Date(certificate.notAfterSeconds * 1000).toISOString() }, 'serving certificate reloaded');
  });
  await startListening(admission.server, config.webhook);
  ready = true;
  // The bound addresses, not the configured ones: with port 0 (tests) only these say where to connect.
  logger.info({ webhook: boundAddress(admission.server), health: boundAddress(health), metrics: boundAddress(metricsServer), nativeSidecar: native }, 'listening');

  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down');
      ready = false;
      certificates.stop();
      void closeGracefully([admission.server, health, metricsServer], SHUTDOWN_GRACE_MS).then(() => resolve(0));
    };
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(signal, () => shutdown(signal));
  });
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`mi-anywhere webhook: fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
