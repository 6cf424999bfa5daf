/**
 * The one place the sidecar's configuration is read and validated (house style HS-6): `loadConfig(env, argv)`
 * turns environment variables and flags into a deeply frozen, typed {@link Config}, or throws one
 * {@link ConfigError} listing every problem. Defaults live here and nowhere else.
 *
 * `loadConfig` is pure: the environment and argv are parameters (`loadProcessConfig` passes this process's own,
 * the only read of the environment in the program); no file is read here (the config holds *paths* to mounted
 * Secrets, never secret values other than the optional fixed identity header).
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import {
  DEFAULT_HEALTH_PORT,
  DEFAULT_METRICS_PORT,
  DEFAULT_TOKEN_ADDRESS,
  DEFAULT_TOKEN_PORT,
  SIDECAR_ENV,
  CI_ENV,
} from './contract.ts';
import { ConfigError } from './errors.ts';

export type Mode = 'dev' | 'entra';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

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

/** HTTP server timeouts (HS-10): bounded so a slow or stuck client cannot hold a socket forever. */
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

export type Env = Readonly<Record<string, string | undefined>>;

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
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** True for addresses only reachable from the same host (or network namespace, i.e. the pod). */
export function isLoopbackAddress(address: string): boolean {
  const a = address.toLowerCase();
  return a === 'localhost' || a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a) || a === '::ffff:127.0.0.1';
}

const port = z.coerce
  .number({ error: 'must be a number' })
  .int({ error: 'must be an integer' })
  .min(0, { error: 'must be between 0 and 65535' })
  .max(65535, { error: 'must be between 0 and 65535' });
const address = z
  .string()
  .trim()
  .refine((v) => v === 'localhost' || isIP(v) !== 0, { error: 'must be an IP address (or localhost)' });
const bool = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => ['true', 'false', '1', '0', 'yes', 'no'].includes(v), { error: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const httpUrl = z
  .string()
  .trim()
  .refine(
    (v) => {
      try {
        const u = new URL(v);
        return (u.protocol === 'http:' || u.protocol === 'https:') && u.username === '' && u.password === '' && u.search === '' && u.hash === '';
      } catch {
        return false;
      }
    },
    { error: 'must be an http(s) URL without credentials, query or fragment' },
  )
  .transform((v) => v.replace(/\/+$/, ''));
const nonEmpty = z.string().trim().min(1, { error: 'must not be empty' });

const schema = z.object({
  [SIDECAR_ENV.mode]: z.enum(['dev', 'entra'], { error: 'must be "dev" or "entra"' }).optional(),
  [SIDECAR_ENV.tokenAddress]: address.default(DEFAULT_TOKEN_ADDRESS),
  [SIDECAR_ENV.tokenPort]: port.default(DEFAULT_TOKEN_PORT),
  [SIDECAR_ENV.allowNonLoopback]: bool.default(false),
  [SIDECAR_ENV.healthAddress]: address.default(DEFAULTS.healthAddress),
  [SIDECAR_ENV.healthPort]: port.default(DEFAULT_HEALTH_PORT),
  [SIDECAR_ENV.metricsAddress]: address.default(DEFAULTS.metricsAddress),
  [SIDECAR_ENV.metricsPort]: port.default(DEFAULT_METRICS_PORT),
  [SIDECAR_ENV.advertiseUrl]: httpUrl.optional(),
  [SIDECAR_ENV.allowedHosts]: z
    .string()
    .transform((v) => v.split(',').map((h) => h.trim().toLowerCase()).filter((h) => h !== ''))
    .refine((hosts) => hosts.every((h) => /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$|^[0-9a-f:]+$/.test(h)), {
      error: 'must be a comma-separated list of host names or IP addresses (no ports, no wildcards)',
    })
    .default([]),
  [SIDECAR_ENV.identityDir]: nonEmpty.optional(),
  [SIDECAR_ENV.defaultIdentity]: nonEmpty
    .refine((v) => !v.includes('/') && !v.startsWith('.'), { error: 'must be a directory name (no "/", not starting with ".")' })
    .optional(),
  [SIDECAR_ENV.identityHeader]: z
    .string()
    .trim()
    .min(MIN_IDENTITY_HEADER_LENGTH, { error: `must be at least ${MIN_IDENTITY_HEADER_LENGTH} characters (it guards the token endpoint)` })
    .refine((v) => /^[\x21-\x7e]+$/.test(v), { error: 'must be printable ASCII without spaces (it travels in an HTTP header)' })
    .optional(),
  [SIDECAR_ENV.arcKeyDir]: nonEmpty.optional(),
  [SIDECAR_ENV.arcKeyFileMode]: z
    .string()
    .trim()
    .regex(/^0?[0-7]{3}$/, { error: 'must be an octal file mode such as 0640' })
    .transform((v) => Number.parseInt(v, 8))
    .refine((m) => (m & 0o444) !== 0 && (m & 0o133) === 0, {
      error: 'must be readable and must not be writable by group/others or executable (e.g. 0600, 0640, 0644)',
    })
    .optional(),
  // msal-node refuses any authority that is not https (and so does @azure/identity), so a plain-http value could
  // only fail later, at the first token request: refuse it here, with the reason, before listening.
  [SIDECAR_ENV.authorityHost]: httpUrl
    .refine((v) => new URL(v).protocol === 'https:', {
      error: 'must be an https URL (msal-node refuses plain-http authorities; a local test authority needs TLS too)',
    })
    .default(DEFAULTS.authorityHost),
  [SIDECAR_ENV.federatedTokenFile]: nonEmpty.optional(),
  [SIDECAR_ENV.logLevel]: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
  [SIDECAR_ENV.rateLimitPerSecond]: z.coerce
    .number({ error: 'must be a number' })
    .int({ error: 'must be an integer' })
    .min(0, { error: 'must be 0 (unlimited) or more' })
    .default(0),
  [SIDECAR_ENV.gitlabIdToken]: nonEmpty.optional(),
});

/** Empty strings count as unset: `FOO=` in a compose file or a Helm value rendered empty means "default". */
function relevantEnv(env: Env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.values(SIDECAR_ENV)) {
    const value = env[name];
    if (value !== undefined && value.trim() !== '') out[name] = value;
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Reads and validates the configuration.
 * @param env the process environment (only `MI_ANYWHERE_*` names are read)
 * @param argv program arguments after the script name (`--dev`, `--probe`)
 * @throws ConfigError listing every problem found
 */
/** The configuration of this process: its environment and command-line arguments (called once, by main.ts). */
export function loadProcessConfig(): Config {
  return loadConfig(process.env, process.argv.slice(2));
}

export function loadConfig(env: Env, argv: readonly string[]): Config {
  const problems: string[] = [];
  for (const arg of argv) {
    if (!(KNOWN_FLAGS as readonly string[]).includes(arg)) problems.push(`unknown argument "${arg}" (known: ${KNOWN_FLAGS.join(', ')})`);
  }
  const raw = relevantEnv(env);
  let parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const failing = new Set<string>();
    for (const issue of parsed.error.issues) {
      failing.add(String(issue.path[0]));
      problems.push(`${String(issue.path[0] ?? '?')}: ${issue.message}`);
    }
    // Parse again without the invalid variables (they fall back to defaults) so that the cross-field rules below
    // still run and every problem is reported in one go.
    parsed = schema.safeParse(Object.fromEntries(Object.entries(raw).filter(([k]) => !failing.has(k))));
    if (!parsed.success) throw new ConfigError(problems);
  }
  const v = parsed.data;
  const devFlag = argv.includes('--dev');
  const modeVar = v[SIDECAR_ENV.mode];
  if (devFlag && modeVar === 'entra') problems.push(`--dev contradicts ${SIDECAR_ENV.mode}=entra; remove one`);
  const mode: Mode = devFlag || modeVar === 'dev' ? 'dev' : 'entra';
  const tokenAddress = v[SIDECAR_ENV.tokenAddress];
  if (!isLoopbackAddress(tokenAddress) && !v[SIDECAR_ENV.allowNonLoopback]) {
    problems.push(
      `${SIDECAR_ENV.tokenAddress}=${tokenAddress} is not a loopback address: anyone who can reach it could obtain tokens ` +
        `for every identity of this sidecar. Bind 127.0.0.1 (apps in the same pod or network namespace reach it there), ` +
        `or set ${SIDECAR_ENV.allowNonLoopback}=true if the network is private to the app (e.g. a compose network)`,
    );
  }
  const identityDir = v[SIDECAR_ENV.identityDir];
  if (mode === 'entra' && identityDir === undefined) {
    problems.push(`${SIDECAR_ENV.identityDir} is required in entra mode (or start with --dev / ${SIDECAR_ENV.mode}=dev for the built-in dev issuer)`);
  }
  const ports = [
    ['token', v[SIDECAR_ENV.tokenPort]],
    ['health', v[SIDECAR_ENV.healthPort]],
    ['metrics', v[SIDECAR_ENV.metricsPort]],
  ] as const;
  for (let i = 0; i < ports.length; i++) {
    for (let j = i + 1; j < ports.length; j++) {
      const a = ports[i];
      const b = ports[j];
      if (a && b && a[1] !== 0 && a[1] === b[1]) problems.push(`the ${a[0]} and ${b[0]} listeners both use port ${a[1]}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return deepFreeze<Config>({
    mode,
    token: { address: tokenAddress, port: v[SIDECAR_ENV.tokenPort] },
    health: { address: v[SIDECAR_ENV.healthAddress], port: v[SIDECAR_ENV.healthPort] },
    metrics: { address: v[SIDECAR_ENV.metricsAddress], port: v[SIDECAR_ENV.metricsPort] },
    advertiseUrl: v[SIDECAR_ENV.advertiseUrl],
    allowedHosts: v[SIDECAR_ENV.allowedHosts],
    identityDir,
    defaultIdentity: v[SIDECAR_ENV.defaultIdentity],
    identityHeader: v[SIDECAR_ENV.identityHeader],
    arc: { keyDir: v[SIDECAR_ENV.arcKeyDir], keyFileMode: v[SIDECAR_ENV.arcKeyFileMode] ?? DEFAULTS.arcKeyFileMode },
    authorityHost: v[SIDECAR_ENV.authorityHost],
    federatedTokenFile: v[SIDECAR_ENV.federatedTokenFile],
    logLevel: v[SIDECAR_ENV.logLevel],
    rateLimitPerSecond: v[SIDECAR_ENV.rateLimitPerSecond],
    limits: { ...DEFAULTS.limits },
    timeouts: { ...DEFAULTS.timeouts },
    probe: argv.includes('--probe'),
    ci: ciEnvironment(env),
  });
}

/** The configuration as it may be logged: no secret values (the identity header is reduced to "set"/"random"). */
export function describeConfig(config: Config): Record<string, unknown> {
  const ci = Object.entries(config.ci).filter(([, v]) => v !== undefined).map(([k]) => k);
  return { ...config, identityHeader: config.identityHeader === undefined ? 'random per start' : 'set (hidden)', ci };
}
