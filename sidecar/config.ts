/**
 * The one place the sidecar's configuration is read and validated: `loadConfig(env, argv)` turns environment
 * variables and flags into a deeply frozen, typed {@link Config}, or throws one {@link ConfigError} listing every
 * problem. Defaults live here and nowhere else. Both programs read settings the same way (common/settings.ts): an
 * unknown `MI_ANYWHERE_*` name is an error (with a suggestion for a near miss), numbers are plain decimals.
 *
 * `loadConfig` is pure: the environment and argv are parameters (`loadProcessConfig` passes this process's own,
 * the only read of the environment in the program); no file is read here (the config holds *paths* to mounted
 * Secrets, never secret values other than the optional fixed identity header).
 */
import { isIP } from 'node:net';
import { deepFreeze, LOG_LEVELS, SettingsReader, type Env, type LogLevel } from '../common/settings.ts';
import {
  DEFAULT_HEALTH_PORT,
  DEFAULT_METRICS_PORT,
  DEFAULT_TOKEN_ADDRESS,
  DEFAULT_TOKEN_PORT,
  SIDECAR_ENV,
  CI_ENV,
} from './contract.ts';
import { ConfigError } from './errors.ts';

export type { Env, LogLevel } from '../common/settings.ts';

export type Mode = 'dev' | 'entra';

export interface ListenerConfig {
  readonly address: string;
  /** 0 = pick a free port (tests, benchmarks). */
  readonly port: number;
}

/** Size limits of the token listener. Not configurable: every SDK request is far below them. */
export interface Limits {
  /**
   * Request target (path + query). SDK requests are < 600 bytes (an ARM resource id selector is the longest
   * part); 8 KiB matches common server defaults.
   */
  readonly maxUrlBytes: number;
  /** Sum of header names and values. SDKs send < 1 KiB; 16 KiB is Node's default parser limit. */
  readonly maxHeaderBytes: number;
  /** Cloud Shell form body (`resource=...&client_id=...`): a few hundred bytes in practice. */
  readonly maxBodyBytes: number;
}

/** HTTP server timeouts (CONTRIBUTING.md, "HTTP server hygiene"): bounded so a slow or stuck client cannot hold a socket forever. */
export interface Timeouts {
  /** Time to receive the complete headers (slowloris bound). */
  readonly headersTimeoutMs: number;
  /** Time to receive the whole request; token requests are tiny. */
  readonly requestTimeoutMs: number;
  /**
   * Idle keep-alive. Must exceed the clients' own pooled-socket idle time (Node's agent keeps sockets 5 s, Python
   * requests and .NET longer), otherwise a client may reuse a socket the server is just closing and see a reset;
   * 65 s is the usual choice behind load balancers with a 60 s idle timeout.
   */
  readonly keepAliveTimeoutMs: number;
  /** After SIGTERM: time to let in-flight requests finish before sockets are closed. */
  readonly shutdownGraceMs: number;
}

export interface Config {
  readonly mode: Mode;
  readonly token: ListenerConfig;
  readonly health: ListenerConfig;
  readonly metrics: ListenerConfig;
  /** Base URL apps use to reach the token listener, when fixed by configuration (else derived after listening). */
  readonly advertiseUrl: string | undefined;
  /** Extra host names the token listener answers for (`MI_ANYWHERE_ALLOWED_HOSTS`), lower case. */
  readonly allowedHosts: readonly string[];
  /** Directory with one subdirectory per identity; optional in dev mode. */
  readonly identityDir: string | undefined;
  /** Identity served to requests without a selector; undefined = the only identity (or `dev-system` in dev mode). */
  readonly defaultIdentity: string | undefined;
  /** Fixed value of `IDENTITY_HEADER` / `MSI_SECRET`; undefined = random per start. */
  readonly identityHeader: string | undefined;
  readonly arc: { readonly keyDir: string | undefined; readonly keyFileMode: number };
  readonly authorityHost: string;
  readonly federatedTokenFile: string | undefined;
  readonly logLevel: LogLevel;
  /** Token requests accepted per second before 429; 0 = unlimited. */
  readonly rateLimitPerSecond: number;
  readonly limits: Limits;
  readonly timeouts: Timeouts;
  /** `--probe`: check /readyz and exit instead of serving. */
  readonly probe: boolean;
  /** The CI platform's OIDC settings of the running job, for `credentialSource` CI identities (secret: never logged). */
  readonly ci: CiEnvironment;
}

/** What the CI platforms put into a job's environment for OIDC (docs/identities.md); unset parts are undefined. */
export interface CiEnvironment {
  readonly githubActions: { readonly requestUrl: string; readonly requestToken: string } | undefined;
  readonly gitlabIdToken: string | undefined;
  readonly azurePipelines: { readonly oidcRequestUri: string; readonly accessToken: string } | undefined;
}

/** Reads the CI platforms' variables (both halves of a pair, or nothing). */
export function ciEnvironment(env: Env): CiEnvironment {
  const value = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === undefined || v === '' ? undefined : v;
  };
  const githubUrl = value(CI_ENV.githubRequestUrl);
  const githubToken = value(CI_ENV.githubRequestToken);
  const oidcUri = value(CI_ENV.azurePipelinesOidcUri);
  const accessToken = value(CI_ENV.azurePipelinesAccessToken);
  return {
    githubActions: githubUrl !== undefined && githubToken !== undefined ? { requestUrl: githubUrl, requestToken: githubToken } : undefined,
    gitlabIdToken: value(SIDECAR_ENV.gitlabIdToken),
    azurePipelines: oidcUri !== undefined && accessToken !== undefined ? { oidcRequestUri: oidcUri, accessToken } : undefined,
  };
}

export const DEFAULT_LIMITS: Limits = Object.freeze({ maxUrlBytes: 8 * 1024, maxHeaderBytes: 16 * 1024, maxBodyBytes: 8 * 1024 });
export const DEFAULT_TIMEOUTS: Timeouts = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  keepAliveTimeoutMs: 65_000,
  shutdownGraceMs: 10_000,
});

const DEFAULTS = {
  healthAddress: '0.0.0.0',
  metricsAddress: '0.0.0.0',
  authorityHost: 'https://login.microsoftonline.com',
  arcKeyFileMode: 0o640,
  limits: DEFAULT_LIMITS,
  timeouts: DEFAULT_TIMEOUTS,
} as const;

/** Minimum length of a fixed identity header: it is the only thing standing between other local processes and tokens. */
export const MIN_IDENTITY_HEADER_LENGTH = 16;

const KNOWN_FLAGS = ['--dev', '--probe'] as const;

/** True for addresses only reachable from the same host (or network namespace, i.e. the pod). */
export function isLoopbackAddress(address: string): boolean {
  const a = address.toLowerCase();
  return a === 'localhost' || a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a) || a === '::ffff:127.0.0.1';
}

/**
 * Names under the `MI_ANYWHERE_` prefix that are not the sidecar's: the webhook's own settings (a Service named
 * `mi-anywhere-webhook` also puts `MI_ANYWHERE_WEBHOOK_*` service links into every pod of its namespace) and
 * the switches of this repository's test and provisioning scripts, which programs started by tests inherit.
 */
const FOREIGN_PREFIX = 'MI_ANYWHERE_WEBHOOK_';
const REPOSITORY_TOOLING_ENV: ReadonlySet<string> = new Set(
  [
    'TEST_LOG_DIR',
    'SKIP_PROVISION',
    'AUDIT_REQUIRED',
    'CACHE',
    'PYTHON',
    'PODMAN_INNER',
    'KUBE_VERSION',
    'ETCD_VERSION',
    'HELM_VERSION',
    'AZWI_INNER',
    'AZWI_VERSION',
    'PROMETHEUS_FROM',
    'PROMETHEUS_GO_VERSION',
  ].map((suffix) => `MI_ANYWHERE_${suffix}`),
);

function isForeign(name: string): boolean {
  return name.startsWith(FOREIGN_PREFIX) || REPOSITORY_TOOLING_ENV.has(name);
}

const MODES: readonly string[] = ['dev', 'entra'];

function isAddress(v: string): boolean {
  return v === 'localhost' || isIP(v) !== 0;
}

function isDirectoryName(v: string): boolean {
  return !v.includes('/') && !v.startsWith('.');
}

/** Empty strings count as unset: `FOO=` in a compose file or a Helm value rendered empty means "default". */
function readFields(r: SettingsReader) {
  const address = (name: string, fallback: string): string => r.optional(name, isAddress, 'must be an IP address (or localhost)') ?? fallback;
  return {
    mode: r.optional(SIDECAR_ENV.mode, (v) => MODES.includes(v), 'must be "dev" or "entra"') as Mode | undefined,
    tokenAddress: address(SIDECAR_ENV.tokenAddress, DEFAULT_TOKEN_ADDRESS),
    tokenPort: r.port(SIDECAR_ENV.tokenPort, DEFAULT_TOKEN_PORT),
    allowNonLoopback: r.boolean(SIDECAR_ENV.allowNonLoopback, false),
    healthAddress: address(SIDECAR_ENV.healthAddress, DEFAULTS.healthAddress),
    healthPort: r.port(SIDECAR_ENV.healthPort, DEFAULT_HEALTH_PORT),
    metricsAddress: address(SIDECAR_ENV.metricsAddress, DEFAULTS.metricsAddress),
    metricsPort: r.port(SIDECAR_ENV.metricsPort, DEFAULT_METRICS_PORT),
    advertiseUrl: r.url(SIDECAR_ENV.advertiseUrl),
    allowedHosts: readAllowedHosts(r),
    identityDir: r.raw(SIDECAR_ENV.identityDir),
    defaultIdentity: r.optional(SIDECAR_ENV.defaultIdentity, isDirectoryName, 'must be a directory name (no "/", not starting with ".")'),
    identityHeader: readIdentityHeader(r),
    arcKeyDir: r.raw(SIDECAR_ENV.arcKeyDir),
    arcKeyFileMode: readFileMode(r, SIDECAR_ENV.arcKeyFileMode) ?? DEFAULTS.arcKeyFileMode,
    authorityHost: readAuthorityHost(r),
    federatedTokenFile: r.raw(SIDECAR_ENV.federatedTokenFile),
    logLevel: r.oneOf<LogLevel>(SIDECAR_ENV.logLevel, LOG_LEVELS, 'info'),
    rateLimitPerSecond: r.integer(SIDECAR_ENV.rateLimitPerSecond, 0, { min: 0, max: 1_000_000, rangeMessage: 'must be 0 (unlimited) or more, up to 1000000' }),
  };
}

/** Host names compared with the `Host` header (lower case); a port or a wildcard would never match, so refuse it. */
function readAllowedHosts(r: SettingsReader): string[] {
  const hosts = r.list(SIDECAR_ENV.allowedHosts).map((h) => h.toLowerCase());
  if (hosts.every((h) => /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$|^[0-9a-f:]+$/.test(h))) return hosts;
  r.problems.push(`${SIDECAR_ENV.allowedHosts}: must be a comma-separated list of host names or IP addresses (no ports, no wildcards)`);
  return [];
}

/** The value is a secret: problems describe it, never quote it. */
function readIdentityHeader(r: SettingsReader): string | undefined {
  const name = SIDECAR_ENV.identityHeader;
  const value = r.raw(name);
  if (value === undefined) return undefined;
  if (value.length < MIN_IDENTITY_HEADER_LENGTH) {
    r.problems.push(`${name}: must be at least ${MIN_IDENTITY_HEADER_LENGTH} characters (it guards the token endpoint)`);
    return undefined;
  }
  if (!/^[\x21-\x7e]+$/.test(value)) {
    r.problems.push(`${name}: must be printable ASCII without spaces (it travels in an HTTP header)`);
    return undefined;
  }
  return value;
}

function readFileMode(r: SettingsReader, name: string): number | undefined {
  const value = r.raw(name);
  if (value === undefined) return undefined;
  if (!/^0?[0-7]{3}$/.test(value)) {
    r.problems.push(`${name}: must be an octal file mode such as 0640`);
    return undefined;
  }
  const mode = Number.parseInt(value, 8);
  if ((mode & 0o444) === 0 || (mode & 0o133) !== 0) {
    r.problems.push(`${name}: must be readable and must not be writable by group/others or executable (e.g. 0600, 0640, 0644)`);
    return undefined;
  }
  return mode;
}

// msal-node refuses any authority that is not https (and so does @azure/identity), so a plain-http value could
// only fail later, at the first token request: refuse it here, with the reason, before listening.
function readAuthorityHost(r: SettingsReader): string {
  const before = r.problems.length;
  const url = r.url(SIDECAR_ENV.authorityHost);
  if (url === undefined || r.problems.length > before) return DEFAULTS.authorityHost;
  if (new URL(url).protocol !== 'https:') {
    r.problems.push(`${SIDECAR_ENV.authorityHost}: must be an https URL (msal-node refuses plain-http authorities; a local test authority needs TLS too)`);
    return DEFAULTS.authorityHost;
  }
  return url;
}

/** The configuration of this process: its environment and command-line arguments (called once, by main.ts). */
export function loadProcessConfig(): Config {
  return loadConfig(process.env, process.argv.slice(2));
}

/**
 * `MI_ANYWHERE_LOG_LEVEL` as written, unchecked: for the one message main.ts prints when start-up fails unexpectedly,
 * which may be before (or because) the configuration could be read.
 */
export function requestedLogLevel(): string | undefined {
  return process.env[SIDECAR_ENV.logLevel];
}

/**
 * Reads and validates the configuration.
 * @param env the process environment (only `MI_ANYWHERE_*` names are read; an unknown one is an error)
 * @param argv program arguments after the script name (`--dev`, `--probe`)
 * @throws ConfigError listing every problem found
 */
export function loadConfig(env: Env, argv: readonly string[]): Config {
  const argProblems = argv
    .filter((arg) => !(KNOWN_FLAGS as readonly string[]).includes(arg))
    .map((arg) => `unknown argument "${arg}" (known: ${KNOWN_FLAGS.join(', ')})`);
  const r = new SettingsReader(env, { prefix: 'MI_ANYWHERE_', known: Object.values(SIDECAR_ENV), foreign: isForeign, docs: 'README.md, "Configuration"' });
  const v = readFields(r);
  const problems = [...argProblems, ...r.problems, ...crossFieldProblems(v, argv)];
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze<Config>({
    mode: modeOf(v.mode, argv),
    token: { address: v.tokenAddress, port: v.tokenPort },
    health: { address: v.healthAddress, port: v.healthPort },
    metrics: { address: v.metricsAddress, port: v.metricsPort },
    advertiseUrl: v.advertiseUrl,
    allowedHosts: v.allowedHosts,
    identityDir: v.identityDir,
    defaultIdentity: v.defaultIdentity,
    identityHeader: v.identityHeader,
    arc: { keyDir: v.arcKeyDir, keyFileMode: v.arcKeyFileMode },
    authorityHost: v.authorityHost,
    federatedTokenFile: v.federatedTokenFile,
    logLevel: v.logLevel,
    rateLimitPerSecond: v.rateLimitPerSecond,
    limits: { ...DEFAULTS.limits },
    timeouts: { ...DEFAULTS.timeouts },
    probe: argv.includes('--probe'),
    ci: ciEnvironment(env),
  });
}

function modeOf(modeVar: Mode | undefined, argv: readonly string[]): Mode {
  return argv.includes('--dev') || modeVar === 'dev' ? 'dev' : 'entra';
}

function crossFieldProblems(v: ReturnType<typeof readFields>, argv: readonly string[]): string[] {
  const problems: string[] = [];
  if (argv.includes('--dev') && v.mode === 'entra') problems.push(`--dev contradicts ${SIDECAR_ENV.mode}=entra; remove one`);
  if (!isLoopbackAddress(v.tokenAddress) && !v.allowNonLoopback) {
    problems.push(
      `${SIDECAR_ENV.tokenAddress}=${v.tokenAddress} is not a loopback address: anyone who can reach it could obtain tokens ` +
        `for every identity of this sidecar. Bind 127.0.0.1 (apps in the same pod or network namespace reach it there), ` +
        `or set ${SIDECAR_ENV.allowNonLoopback}=true if the network is private to the app (e.g. a compose network)`,
    );
  }
  if (modeOf(v.mode, argv) === 'entra' && v.identityDir === undefined) {
    problems.push(`${SIDECAR_ENV.identityDir} is required in entra mode (or start with --dev / ${SIDECAR_ENV.mode}=dev for the built-in dev issuer)`);
  }
  return [...problems, ...portClashes(v)];
}

function portClashes(v: ReturnType<typeof readFields>): string[] {
  const ports = [
    ['token', v.tokenPort],
    ['health', v.healthPort],
    ['metrics', v.metricsPort],
  ] as const;
  return ports.flatMap(([nameA, portA], i) =>
    ports.slice(i + 1).flatMap(([nameB, portB]) => (portA !== 0 && portA === portB ? [`the ${nameA} and ${nameB} listeners both use port ${portA}`] : [])),
  );
}

/** The configuration as it may be logged: no secret values (the identity header is reduced to "set"/"random"). */
export function describeConfig(config: Config): Record<string, unknown> {
  const ci = Object.entries(config.ci).filter(([, v]) => v !== undefined).map(([k]) => k);
  return { ...config, identityHeader: config.identityHeader === undefined ? 'random per start' : 'set (hidden)', ci };
}
