/**
 * The webhook's configuration: the one module that knows environment variable names. `main.ts` calls
 * {@link loadConfig} once with `process.env`; every other module receives the typed, frozen result. All problems
 * are collected and thrown as one {@link ConfigError}, so a bad Deployment fails before listening, with every
 * mistake named at once. Defaults live here and nowhere else.
 *
 * Environment variables (the chart sets these; docs/webhook.md explains each):
 *
 *   MI_ANYWHERE_WEBHOOK_LOG_LEVEL                             webhook log level (fatal|error|warn|info|debug|trace|silent), default info
 *   MI_ANYWHERE_WEBHOOK_ADDRESS                               admission listener (HTTPS) address, default 0.0.0.0
 *   MI_ANYWHERE_WEBHOOK_PORT                                  admission listener port, default 8443
 *   MI_ANYWHERE_WEBHOOK_HEALTH_ADDRESS                        /healthz and /readyz (plain HTTP) address, default 0.0.0.0
 *   MI_ANYWHERE_WEBHOOK_HEALTH_PORT                           health port, default 8081
 *   MI_ANYWHERE_WEBHOOK_METRICS_ADDRESS                       /metrics (plain HTTP) address, default 0.0.0.0
 *   MI_ANYWHERE_WEBHOOK_METRICS_PORT                          metrics port, default 8080
 *   MI_ANYWHERE_WEBHOOK_REQUEST_TIMEOUT_SECONDS               per-request timeout of the admission listener, default 30
 *   MI_ANYWHERE_WEBHOOK_TLS_MIN_VERSION                       TLSv1.3 (default) | TLSv1.2
 *   MI_ANYWHERE_WEBHOOK_CERT_MODE                             files (default: cert-manager or any mounted Secret) | self-managed
 *   MI_ANYWHERE_WEBHOOK_TLS_CERT_FILE                         files mode: PEM certificate chain, default /etc/mi-anywhere/tls/tls.crt
 *   MI_ANYWHERE_WEBHOOK_TLS_KEY_FILE                          files mode: PEM key, default /etc/mi-anywhere/tls/tls.key
 *   MI_ANYWHERE_WEBHOOK_TLS_RELOAD_INTERVAL_SECONDS           files mode: poll interval for certificate changes, default 10
 *   MI_ANYWHERE_WEBHOOK_NAMESPACE                             self-managed: namespace of the webhook (required)
 *   MI_ANYWHERE_WEBHOOK_SERVICE_NAME                          self-managed: Service name, for the certificate's DNS names (required)
 *   MI_ANYWHERE_WEBHOOK_CERT_SECRET_NAME                      self-managed: Secret holding CA + serving cert (required)
 *   MI_ANYWHERE_WEBHOOK_CONFIGURATION_NAME                    self-managed: MutatingWebhookConfiguration whose caBundle is patched (required)
 *   MI_ANYWHERE_WEBHOOK_CERT_EXTRA_DNS_NAMES                  self-managed: extra DNS SANs, comma-separated
 *   MI_ANYWHERE_WEBHOOK_CERT_IP_ADDRESSES                     self-managed: IP SANs, comma-separated (e.g. 127.0.0.1 for url-based registrations)
 *   MI_ANYWHERE_WEBHOOK_CERT_VALIDITY_DAYS                    self-managed: serving certificate lifetime, default 365
 *   MI_ANYWHERE_WEBHOOK_CERT_RENEW_BEFORE_DAYS                self-managed: renew the serving cert this long before expiry, default 30
 *   MI_ANYWHERE_WEBHOOK_CA_VALIDITY_DAYS                      self-managed: CA lifetime, default 3650
 *   MI_ANYWHERE_WEBHOOK_CA_RENEW_BEFORE_DAYS                  self-managed: renew the CA this long before expiry, default 365
 *   MI_ANYWHERE_WEBHOOK_CERT_CHECK_INTERVAL_SECONDS           self-managed: how often Secret/caBundle/expiry are reconciled, default 300
 *   MI_ANYWHERE_WEBHOOK_KUBECONFIG                            kubeconfig path; unset = in-cluster service account
 *   MI_ANYWHERE_WEBHOOK_NATIVE_SIDECAR                        auto (default: API server >= 1.29) | always | never
 *   MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE                         image of the injected sidecar (required; the chart passes its own image)
 *   MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE_PULL_POLICY             Always | IfNotPresent (default) | Never
 *   MI_ANYWHERE_WEBHOOK_SIDECAR_COMMAND                       JSON array, default ["node"] (the image's ENTRYPOINT)
 *   MI_ANYWHERE_WEBHOOK_SIDECAR_ARGS                          JSON array, default ["dist/sidecar/main.js"]
 *   MI_ANYWHERE_WEBHOOK_SIDECAR_RUN_AS_USER                   numeric uid, default 65532
 *   MI_ANYWHERE_WEBHOOK_SIDECAR_RUN_AS_GROUP                  numeric gid, default 65532
 *   MI_ANYWHERE_WEBHOOK_SIDECAR_CPU_REQUEST                   default 10m
 *   MI_ANYWHERE_WEBHOOK_SIDECAR_CPU_LIMIT                     default 500m (empty: no limit)
 *   MI_ANYWHERE_WEBHOOK_SIDECAR_MEMORY_REQUEST                default 96Mi
 *   MI_ANYWHERE_WEBHOOK_SIDECAR_MEMORY_LIMIT                  default 256Mi (empty: no limit)
 *   MI_ANYWHERE_WEBHOOK_SIDECAR_TOKEN_PORT                    default 50342
 *   MI_ANYWHERE_WEBHOOK_SIDECAR_HEALTH_PORT                   default 50343
 *   MI_ANYWHERE_WEBHOOK_SIDECAR_METRICS_PORT                  default 50344
 *   MI_ANYWHERE_WEBHOOK_SIDECAR_PROBE_ADDRESS                 sidecar health/metrics bind address, default 0.0.0.0 (:: on IPv6-only clusters)
 *   MI_ANYWHERE_WEBHOOK_SIDECAR_AUTHORITY_HOST                Entra authority host given to sidecars (sovereign clouds); unset = sidecar default
 *   MI_ANYWHERE_WEBHOOK_DEFAULT_PROFILE                       env profile when a pod names none, default "default"
 *   MI_ANYWHERE_WEBHOOK_DEFAULT_LOG_LEVEL                     sidecar log level when a pod names none, default info
 *   MI_ANYWHERE_WEBHOOK_DEFAULT_FEDERATED_AUDIENCE            default api://AzureADTokenExchange
 *   MI_ANYWHERE_WEBHOOK_DEFAULT_FEDERATED_EXPIRATION_SECONDS  default 3600 (Kubernetes minimum 600)
 *   MI_ANYWHERE_WEBHOOK_IMDS_REDIRECT_IMAGE                   image with iptables for the optional IMDS redirect; unset = feature disabled
 *
 * Pure: takes the environment as a parameter, reads no files (paths only).
 */
import {
  DEFAULT_FEDERATED_AUDIENCE,
  DEFAULT_HEALTH_PORT,
  DEFAULT_METRICS_PORT,
  DEFAULT_TOKEN_PORT,
  DEFAULT_WEBHOOK_HEALTH_PORT,
  DEFAULT_WEBHOOK_METRICS_PORT,
  DEFAULT_WEBHOOK_PORT,
  PROFILES,
  type Profile,
} from '../sidecar/contract.ts';
import type { ListenerConfig } from '../common/http-server.ts';
import { deepFreeze, LOG_LEVELS, SettingsReader, type Env, type LogLevel } from '../common/settings.ts';
import { ConfigError } from './errors.ts';
import { parseQuantity } from './inject/quantity.ts';

export { LOG_LEVELS, type LogLevel } from '../common/settings.ts';

export const NATIVE_SIDECAR_MODES = ['auto', 'always', 'never'] as const;
export type NativeSidecarMode = (typeof NATIVE_SIDECAR_MODES)[number];

export const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;
export type PullPolicy = (typeof PULL_POLICIES)[number];

/** Resource quantities as Kubernetes strings (validated); empty string = not set (only allowed for limits). */
export interface SidecarResources {
  readonly cpuRequest: string;
  readonly cpuLimit: string;
  readonly memoryRequest: string;
  readonly memoryLimit: string;
}

/** Everything the pure injector needs from the webhook's configuration (no listener or TLS settings). */
export interface SidecarConfig {
  readonly image: string;
  readonly imagePullPolicy: PullPolicy;
  readonly command: readonly string[];
  readonly args: readonly string[];
  readonly runAsUser: number;
  readonly runAsGroup: number;
  readonly resources: SidecarResources;
  readonly tokenPort: number;
  readonly healthPort: number;
  readonly metricsPort: number;
  /** Address the sidecar's health and metrics listeners bind: all pod addresses, since kubelet and Prometheus dial the pod IP. */
  readonly probeAddress: string;
  readonly authorityHost: string | undefined;
  readonly defaultProfile: Profile;
  readonly defaultLogLevel: LogLevel;
  readonly defaultFederatedAudience: string;
  readonly defaultFederatedExpirationSeconds: number;
  /** Undefined: the IMDS redirect is disabled by the cluster admin and the annotation is refused. */
  readonly imdsRedirectImage: string | undefined;
}

export type TlsMinVersion = 'TLSv1.2' | 'TLSv1.3';

export interface FilesCertConfig {
  readonly mode: 'files';
  readonly certFile: string;
  readonly keyFile: string;
  readonly reloadIntervalSeconds: number;
}

export interface SelfManagedCertConfig {
  readonly mode: 'self-managed';
  readonly namespace: string;
  readonly serviceName: string;
  readonly secretName: string;
  readonly webhookConfigurationName: string;
  readonly extraDnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly certValidityDays: number;
  readonly certRenewBeforeDays: number;
  readonly caValidityDays: number;
  readonly caRenewBeforeDays: number;
  readonly checkIntervalSeconds: number;
}

export interface Config {
  readonly logLevel: LogLevel;
  readonly webhook: ListenerConfig;
  readonly health: ListenerConfig;
  readonly metrics: ListenerConfig;
  readonly requestTimeoutSeconds: number;
  readonly tlsMinVersion: TlsMinVersion;
  readonly cert: FilesCertConfig | SelfManagedCertConfig;
  readonly kubeconfig: string | undefined;
  /**
   * The API server as kubelet tells every pod (`KUBERNETES_SERVICE_HOST` / `_PORT`); undefined outside a cluster.
   * Used with the service-account files when no kubeconfig is given.
   */
  readonly apiServer: { readonly host: string; readonly port: number } | undefined;
  readonly nativeSidecar: NativeSidecarMode;
  readonly sidecar: SidecarConfig;
}

const P = 'MI_ANYWHERE_WEBHOOK_';

/** Every variable name this module reads (docs/webhook.md lists the same set; a test keeps them in sync). */
export const WEBHOOK_ENV = {
  logLevel: `${P}LOG_LEVEL`,
  address: `${P}ADDRESS`,
  port: `${P}PORT`,
  healthAddress: `${P}HEALTH_ADDRESS`,
  healthPort: `${P}HEALTH_PORT`,
  metricsAddress: `${P}METRICS_ADDRESS`,
  metricsPort: `${P}METRICS_PORT`,
  requestTimeoutSeconds: `${P}REQUEST_TIMEOUT_SECONDS`,
  tlsMinVersion: `${P}TLS_MIN_VERSION`,
  certMode: `${P}CERT_MODE`,
  tlsCertFile: `${P}TLS_CERT_FILE`,
  tlsKeyFile: `${P}TLS_KEY_FILE`,
  tlsReloadIntervalSeconds: `${P}TLS_RELOAD_INTERVAL_SECONDS`,
  namespace: `${P}NAMESPACE`,
  serviceName: `${P}SERVICE_NAME`,
  certSecretName: `${P}CERT_SECRET_NAME`,
  configurationName: `${P}CONFIGURATION_NAME`,
  certExtraDnsNames: `${P}CERT_EXTRA_DNS_NAMES`,
  certIpAddresses: `${P}CERT_IP_ADDRESSES`,
  certValidityDays: `${P}CERT_VALIDITY_DAYS`,
  certRenewBeforeDays: `${P}CERT_RENEW_BEFORE_DAYS`,
  caValidityDays: `${P}CA_VALIDITY_DAYS`,
  caRenewBeforeDays: `${P}CA_RENEW_BEFORE_DAYS`,
  certCheckIntervalSeconds: `${P}CERT_CHECK_INTERVAL_SECONDS`,
  kubeconfig: `${P}KUBECONFIG`,
  nativeSidecar: `${P}NATIVE_SIDECAR`,
  sidecarImage: `${P}SIDECAR_IMAGE`,
  sidecarImagePullPolicy: `${P}SIDECAR_IMAGE_PULL_POLICY`,
  sidecarCommand: `${P}SIDECAR_COMMAND`,
  sidecarArgs: `${P}SIDECAR_ARGS`,
  sidecarRunAsUser: `${P}SIDECAR_RUN_AS_USER`,
  sidecarRunAsGroup: `${P}SIDECAR_RUN_AS_GROUP`,
  sidecarCpuRequest: `${P}SIDECAR_CPU_REQUEST`,
  sidecarCpuLimit: `${P}SIDECAR_CPU_LIMIT`,
  sidecarMemoryRequest: `${P}SIDECAR_MEMORY_REQUEST`,
  sidecarMemoryLimit: `${P}SIDECAR_MEMORY_LIMIT`,
  sidecarTokenPort: `${P}SIDECAR_TOKEN_PORT`,
  sidecarHealthPort: `${P}SIDECAR_HEALTH_PORT`,
  sidecarMetricsPort: `${P}SIDECAR_METRICS_PORT`,
  sidecarProbeAddress: `${P}SIDECAR_PROBE_ADDRESS`,
  sidecarAuthorityHost: `${P}SIDECAR_AUTHORITY_HOST`,
  defaultProfile: `${P}DEFAULT_PROFILE`,
  defaultLogLevel: `${P}DEFAULT_LOG_LEVEL`,
  defaultFederatedAudience: `${P}DEFAULT_FEDERATED_AUDIENCE`,
  defaultFederatedExpirationSeconds: `${P}DEFAULT_FEDERATED_EXPIRATION_SECONDS`,
  imdsRedirectImage: `${P}IMDS_REDIRECT_IMAGE`,
} as const;

/**
 * Kubernetes rejects projected service-account tokens shorter than 10 minutes
 * (`spec.volumes[].projected.sources[].serviceAccountToken.expirationSeconds`: "may not be less than 10 minutes").
 */
export const MIN_SA_TOKEN_EXPIRATION_SECONDS = 600;
/** ...and longer than 2^32 seconds; real clusters additionally cap at --service-account-max-token-expiration. */
export const MAX_SA_TOKEN_EXPIRATION_SECONDS = 4294967296;

/** A Kubernetes quantity; empty means "no limit" where `allowEmpty`, otherwise a problem. */
function readQuantity(r: SettingsReader, name: string, q: { readonly fallback: string; readonly kind: 'cpu' | 'memory'; readonly allowEmpty?: boolean }): string {
  const { fallback, kind, allowEmpty = false } = q;
  const value = r.raw(name);
  if (value === undefined) {
    if (!r.isPresent(name)) return fallback;
    if (allowEmpty) return '';
    r.problems.push(`${name}: must not be empty (the sidecar always gets resource requests)`);
    return fallback;
  }
  const parsed = parseQuantity(value);
  if (parsed === undefined || parsed <= 0) {
    r.problems.push(`${name}: ${JSON.stringify(value)} is not a positive Kubernetes ${kind} quantity (e.g. ${kind === 'cpu' ? '100m' : '128Mi'})`);
    return fallback;
  }
  return value;
}

function readSidecar(r: SettingsReader): SidecarConfig {
  const resources: SidecarResources = {
    cpuRequest: readQuantity(r, WEBHOOK_ENV.sidecarCpuRequest, { fallback: '10m', kind: 'cpu' }),
    cpuLimit: readQuantity(r, WEBHOOK_ENV.sidecarCpuLimit, { fallback: '500m', kind: 'cpu', allowEmpty: true }),
    memoryRequest: readQuantity(r, WEBHOOK_ENV.sidecarMemoryRequest, { fallback: '96Mi', kind: 'memory' }),
    memoryLimit: readQuantity(r, WEBHOOK_ENV.sidecarMemoryLimit, { fallback: '256Mi', kind: 'memory', allowEmpty: true }),
  };
  for (const kind of ['cpu', 'memory'] as const) {
    const request = parseQuantity(resources[`${kind}Request`]);
    const limit = resources[`${kind}Limit`] === '' ? undefined : parseQuantity(resources[`${kind}Limit`]);
    if (request !== undefined && limit !== undefined && request > limit) {
      r.problems.push(`sidecar ${kind} request ${resources[`${kind}Request`]} exceeds its limit ${resources[`${kind}Limit`]}`);
    }
  }
  const sidecar: SidecarConfig = {
    image: r.required(WEBHOOK_ENV.sidecarImage, 'the image of the injected sidecar; the chart passes its own image'),
    imagePullPolicy: r.oneOf(WEBHOOK_ENV.sidecarImagePullPolicy, PULL_POLICIES, 'IfNotPresent'),
    command: r.stringArray(WEBHOOK_ENV.sidecarCommand, ['node']),
    args: r.stringArray(WEBHOOK_ENV.sidecarArgs, ['dist/sidecar/main.js']),
    // 65532 is the conventional "nonroot" uid/gid of distroless images; numeric so that kubelet can verify
    // runAsNonRoot without reading /etc/passwd of the image.
    runAsUser: r.integer(WEBHOOK_ENV.sidecarRunAsUser, 65532, { min: 1, max: 2147483647 }),
    runAsGroup: r.integer(WEBHOOK_ENV.sidecarRunAsGroup, 65532, { min: 0, max: 2147483647 }),
    resources,
    tokenPort: r.integer(WEBHOOK_ENV.sidecarTokenPort, DEFAULT_TOKEN_PORT, { min: 1, max: 65535 }),
    healthPort: r.integer(WEBHOOK_ENV.sidecarHealthPort, DEFAULT_HEALTH_PORT, { min: 1, max: 65535 }),
    metricsPort: r.integer(WEBHOOK_ENV.sidecarMetricsPort, DEFAULT_METRICS_PORT, { min: 1, max: 65535 }),
    probeAddress: r.oneOf(WEBHOOK_ENV.sidecarProbeAddress, ['0.0.0.0', '::'] as const, '0.0.0.0'),
    authorityHost: r.url(WEBHOOK_ENV.sidecarAuthorityHost),
    defaultProfile: r.oneOf(WEBHOOK_ENV.defaultProfile, PROFILES, 'default'),
    defaultLogLevel: r.oneOf(WEBHOOK_ENV.defaultLogLevel, LOG_LEVELS, 'info'),
    defaultFederatedAudience: r.string(WEBHOOK_ENV.defaultFederatedAudience, DEFAULT_FEDERATED_AUDIENCE),
    defaultFederatedExpirationSeconds: r.integer(
WEBHOOK_ENV.defaultFederatedExpirationSeconds, 3600, {
      min: MIN_SA_TOKEN_EXPIRATION_SECONDS,
      max: MAX_SA_TOKEN_EXPIRATION_SECONDS,
    }),
    imdsRedirectImage: r.raw(WEBHOOK_ENV.imdsRedirectImage),
  };
  if (sidecar.command.length === 0) r.problems.push(`${WEBHOOK_ENV.sidecarCommand} must name the program (exec probes need it)`);
  const ports = [sidecar.tokenPort, sidecar.healthPort, sidecar.metricsPort];
  if (new Set(ports).size !== ports.length) r.problems.push('the sidecar token, health and metrics ports must differ');
  return sidecar;
}

function readCert(r: SettingsReader): FilesCertConfig | SelfManagedCertConfig {
  const mode = r.oneOf(WEBHOOK_ENV.certMode, ['files', 'self-managed'] as const, 'files');
  if (mode === 'files') {
    return {
      mode,
      certFile: r.string(WEBHOOK_ENV.tlsCertFile, '/etc/mi-anywhere/tls/tls.crt'),
      keyFile: r.string(WEBHOOK_ENV.tlsKeyFile, '/etc/mi-anywhere/tls/tls.key'),
      // kubelet refreshes mounted Secrets about once a minute; a 10 s poll adds little on top and costs two stats.
      reloadIntervalSeconds: r.integer(WEBHOOK_ENV.tlsReloadIntervalSeconds, 10, { min: 1, max: 3600 }),
    };
  }
  const why = 'self-managed certificates';
  const cert: SelfManagedCertConfig = {
    mode,
    namespace: r.required(WEBHOOK_ENV.namespace, why),
    serviceName: r.required(WEBHOOK_ENV.serviceName, why),
    secretName: r.required(WEBHOOK_ENV.certSecretName, why),
    webhookConfigurationName: r.required(WEBHOOK_ENV.configurationName, why),
    extraDnsNames: r.list(WEBHOOK_ENV.certExtraDnsNames),
    ipAddresses: r.list(WEBHOOK_ENV.certIpAddresses),
    certValidityDays: r.integer(WEBHOOK_ENV.certValidityDays, 365, { min: 1, max: 3650 }),
    certRenewBeforeDays: r.integer(WEBHOOK_ENV.certRenewBeforeDays, 30, { min: 0, max: 3649 }),
    caValidityDays: r.integer(WEBHOOK_ENV.caValidityDays, 3650, { min: 1, max: 36500 }),
    caRenewBeforeDays: r.integer(WEBHOOK_ENV.caRenewBeforeDays, 365, { min: 0, max: 36499 }),
    // Five minutes: helm upgrades that reset the caBundle are repaired quickly, at one GET per interval.
    checkIntervalSeconds: r.integer(WEBHOOK_ENV.certCheckIntervalSeconds, 300, { min: 1, max: 86400 }),
  };
  if (cert.certRenewBeforeDays >= cert.certValidityDays) r.problems.push('CERT_RENEW_BEFORE_DAYS must be smaller than CERT_VALIDITY_DAYS');
  if (cert.caRenewBeforeDays >= cert.caValidityDays) r.problems.push('CA_RENEW_BEFORE_DAYS must be smaller than CA_VALIDITY_DAYS');
  if (cert.certValidityDays > cert.caValidityDays - cert.caRenewBeforeDays) {
    r.problems.push('CERT_VALIDITY_DAYS must not exceed CA_VALIDITY_DAYS - CA_RENEW_BEFORE_DAYS (a serving cert must not outlive its CA)');
  }
  for (const ip of cert.ipAddresses) {
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(ip) && !/^[0-9a-f:]+$/i.test(ip)) r.problems.push(`${WEBHOOK_ENV.certIpAddresses}: ${JSON.stringify(ip)} is not an IP address`);
  }
  return cert;
}

/** Kubernetes' own variables for the API server Service (not settings of ours, so not under the prefix). */
function readApiServer(r: SettingsReader): { host: string; port: number } | undefined {
  const host = r.raw('KUBERNETES_SERVICE_HOST');
  if (host === undefined) return undefined;
  return { host, port: r.port('KUBERNETES_SERVICE_PORT', 443, 1) };
}

/** The configuration of this process, from its environment (called once, by main.ts). */
export function loadProcessConfig(): Config {
  return loadConfig(process.env);
}

/**
 * Parses and validates the webhook's environment. Throws one {@link ConfigError} listing every problem.
 * @param env usually `process.env` (passed in so tests need no global state); an unknown `MI_ANYWHERE_WEBHOOK_*`
 *   name is an error
 */
export function loadConfig(env: Env): Config {
  const r = new SettingsReader(env, { prefix: P, known: Object.values(WEBHOOK_ENV), docs: 'docs/webhook.md' });
  const config: Config = {
    logLevel: r.oneOf(WEBHOOK_ENV.logLevel, LOG_LEVELS, 'info'),
    webhook: { address: r.string(WEBHOOK_ENV.address, '0.0.0.0'), port: r.port(WEBHOOK_ENV.port, DEFAULT_WEBHOOK_PORT) },
    health: { address: r.string(WEBHOOK_ENV.healthAddress, '0.0.0.0'), port: r.port(WEBHOOK_ENV.healthPort, DEFAULT_WEBHOOK_HEALTH_PORT) },
    metrics: { address: r.string(WEBHOOK_ENV.metricsAddress, '0.0.0.0'), port: r.port(WEBHOOK_ENV.metricsPort, DEFAULT_WEBHOOK_METRICS_PORT) },
    // The API server gives up after the webhook's timeoutSeconds (at most 30 s); holding a request longer is useless.
    requestTimeoutSeconds: r.integer(WEBHOOK_ENV.requestTimeoutSeconds, 30, { min: 1, max: 300 }),
    tlsMinVersion: r.oneOf(WEBHOOK_ENV.tlsMinVersion, ['TLSv1.2', 'TLSv1.3'] as const, 'TLSv1.3'),
    cert: readCert(r),
    kubeconfig: r.raw(WEBHOOK_ENV.kubeconfig),
    apiServer: readApiServer(r),
    nativeSidecar: r.oneOf(WEBHOOK_ENV.nativeSidecar, NATIVE_SIDECAR_MODES, 'auto'),
    sidecar: readSidecar(r),
  };
  const listeners = [config.webhook, config.health, config.metrics].filter((l) => l.port !== 0);
  if (new Set(listeners.map((l) => l.port)).size !== listeners.length) r.problems.push('the webhook, health and metrics ports must differ');
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return deepFreeze(config);
}
