/**
 * The webhook's composition root: reads the configuration once, builds the logger, metrics and Kubernetes
 * client, decides the sidecar form from the API server version, obtains a serving certificate (mounted files or
 * self-managed), starts the three listeners (admission HTTPS, health, metrics), keeps the certificate fresh, and
 * shuts down gracefully on SIGTERM/SIGINT/SIGHUP. The only file of the webhook that touches `process`; nothing
 * imports it.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import pkg from '../package.json' with { type: 'json' };
import { closeGracefully, startListening, type Listening } from '../common/http-server.ts';
import { handleReview } from './admission/handler.ts';
import type { LoadedCertificate } from './cert/files.ts';
import { openCertificateSource, type CertificateSource } from './cert/source.ts';
import { loadProcessConfig, type Config } from './config.ts';
import { ConfigError } from './errors.ts';
import { createAdmissionServer, createHealthServer, createMetricsServer, type AdmissionServer } from './http/server.ts';
import { supportsNativeSidecar } from './inject/native.ts';
import { createLogger, type Logger } from './log.ts';
import { readServerVersion, type ServerVersion } from './server-version.ts';
import { createWebhookMetrics, type WebhookMetrics } from './metrics.ts';

/** After SIGTERM: time for in-flight reviews (sub-millisecond work) and the API server to notice the endpoint is gone. */
const SHUTDOWN_GRACE_MS = 10_000;

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
async function serverVersion(config: Config, kubeConfig: () => Promise<KubeConfig>): Promise<ServerVersion> {
  if (config.kubeconfig === undefined && config.apiServer !== undefined) return readServerVersion(config.apiServer);
  const { VersionApi } = await import('@kubernetes/client-node');
  return (await kubeConfig()).makeApiClient(VersionApi).getCode();
}

/**
 * The sidecar form this cluster gets: as configured, or with `auto` native sidecars (an init container with
 * restartPolicy Always) when the API server's version supports them.
 */
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

/** Where a listener is bound, for the log. */
function boundAddress({ address, port }: Listening): { address: string; port: number } {
  return { address, port };
}

/** The Kubernetes client configuration, loaded on first use and then kept. */
function lazyKubeConfig(config: Config): () => Promise<KubeConfig> {
  let kube: KubeConfig | undefined;
  return async () => (kube ??= await loadKubeConfig(config));
}

/** `--version`: answered before the configuration is read, on any machine, whatever the environment holds. */
function printVersion(): number {
  process.stdout.write(`mi-anywhere webhook ${pkg.version}\n`);
  return 0;
}

/** The configuration, or undefined once every problem with it is on stderr. */
function readConfig(): Config | undefined {
  try {
    return loadProcessConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`mi-anywhere webhook: ${error.message}\n`);
    return undefined;
  }
}

/** The health and metrics listeners, and the readiness `/readyz` reports. */
interface ProbeListeners {
  readonly health: Listening;
  readonly metrics: Listening;
  setReady(ready: boolean): void;
}

/** Up before the certificate is: meanwhile kubelet sees the process alive and not ready, and metrics are served. */
async function startProbeListeners(config: Config, register: Registry, logger: Logger): Promise<ProbeListeners> {
  let ready = false;
  const health = await startListening(createHealthServer(() => ready), config.health);
  const metrics = await startListening(createMetricsServer(register, logger), config.metrics);
  return {
    health,
    metrics,
    setReady: (value) => {
      ready = value;
    },
  };
}

interface AdmissionParts {
  readonly certificate: LoadedCertificate;
  /** The sidecar form this cluster gets (see decideNative). */
  readonly native: boolean;
  readonly logger: Logger;
  readonly metrics: WebhookMetrics;
}

/** The HTTPS admission server, answering with the pure handler bound to this webhook's sidecar settings. */
function createAdmission(config: Config, { certificate, native, logger, metrics }: AdmissionParts): AdmissionServer {
  return createAdmissionServer({
    certificate,
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
    nowSeconds: () => performance.now() / 1000,
    requestTimeoutSeconds: config.requestTimeoutSeconds,
  });
}

/** Serves each new certificate on new connections, and keeps the expiry metric on the certificate served. */
function followCertificate(certificates: CertificateSource, admission: AdmissionServer, { metrics, logger }: Pick<AdmissionParts, 'metrics' | 'logger'>): void {
  metrics.certificateExpiry(certificates.first.notAfterSeconds);
  certificates.onChange((certificate) => {
    admission.updateCertificate(certificate);
    metrics.certificateExpiry(certificate.notAfterSeconds);
    logger.info({ notAfter: new Date(certificate.notAfterSeconds * 1000).toISOString() }, 'serving certificate reloaded');
  });
}

/** What runs until shutdown. */
interface RunningWebhook {
  readonly admission: AdmissionServer;
  readonly probes: ProbeListeners;
  readonly certificates: CertificateSource;
}

/** Everything from the configuration to "listening", in the order readiness depends on. */
async function start(config: Config, logger: Logger): Promise<RunningWebhook> {
  const register = new Registry();
  const metrics = createWebhookMetrics({ register, version: pkg.version });
  const kubeConfig = lazyKubeConfig(config);
  const probes = await startProbeListeners(config, register, logger);
  const native = await decideNative(config, kubeConfig, logger);
  // Readiness stays false until the admission listener serves the first certificate.
  const certificates = await openCertificateSource(config.cert, kubeConfig, logger);
  const admission = createAdmission(config, { certificate: certificates.first, native, logger, metrics });
  followCertificate(certificates, admission, { metrics, logger });
  const webhook = await startListening(admission.server, config.webhook);
  probes.setReady(true);
  // The bound addresses, not the configured ones: with port 0 (tests) only these say where to connect.
  logger.info({ webhook: boundAddress(webhook), health: boundAddress(probes.health), metrics: boundAddress(probes.metrics), nativeSidecar: native }, 'listening');
  return { admission, probes, certificates };
}

/** Resolves with the exit code once a signal asked to stop and the listeners drained. */
function stopOnSignal({ admission, probes, certificates }: RunningWebhook, logger: Logger): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down');
      probes.setReady(false);
      certificates.stop();
      void closeGracefully([admission.server, probes.health.server, probes.metrics.server], SHUTDOWN_GRACE_MS).then(() => resolve(0));
    };
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(signal, () => shutdown(signal));
  });
}

async function main(): Promise<number> {
  if (process.argv.includes('--version')) return printVersion();
  const config = readConfig();
  if (config === undefined) return 2;
  const logger = createLogger({ level: config.logLevel, destination: pino.destination({ dest: 1, sync: true }) });
  logger.info({ config, version: pkg.version }, 'starting');
  return stopOnSignal(await start(config, logger), logger);
}

/**
 * One line an operator can act on when the webhook cannot start (a port in use, an unreachable API server, a
 * refused certificate Secret): never a stack trace.
 */
function cannotStart(error: unknown): string {
  const e = error as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e instanceof Error && e.syscall === 'listen') {
    const hint =
      e.code === 'EADDRINUSE'
        ? '; another process uses it — set MI_ANYWHERE_WEBHOOK_PORT, MI_ANYWHERE_WEBHOOK_HEALTH_PORT or MI_ANYWHERE_WEBHOOK_METRICS_PORT to a free port'
        : '';
    return `cannot listen on ${e.address ?? '?'}:${e.port ?? '?'} (${e.code ?? e.message})${hint}`;
  }
  return error instanceof Error ? error.message : String(error);
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`mi-anywhere webhook: cannot start: ${cannotStart(error)}\n`);
    process.exit(1);
  },
);
