/**
 * Composition root of the sidecar: the only module that touches `process.*` (besides `config.ts`, which reads the
 * environment), listens on sockets and handles signals. It loads the configuration and identities, builds the
 * token source, wires the HTTP app to three listeners, prints the environment apps need, and drains on SIGTERM, SIGINT and SIGHUP.
 *
 * Run: `node sidecar/main.ts --dev` (`npm start`), `node sidecar/main.ts` (entra mode), `node sidecar/main.ts --probe`.
 *
 * Where token backends plug in: {@link createTokenSources} returns one {@link TokenSource} per credential kind
 * (dev issuer; Entra backend `token/entra-backend.ts` behind the cache); {@link byCredentialKind} dispatches to them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdir, readdir, unlink, writeFile, access, constants as fsConstants } from 'node:fs/promises';
import { request as httpRequest, type ServerResponse } from 'node:http';
import { pino, type DestinationStream } from 'pino';
import { Registry } from 'prom-client';
import pkg from '../package.json' with { type: 'json' };
import { describeConfig, isLoopbackAddress, loadProcessConfig, type Config } from './config.ts';
import { PROFILES, profileEnv, SIDECAR_ENV, type Profile } from './contract.ts';
import { ConfigError, CredentialUnavailableError } from './errors.ts';
import { createAccessLog } from './http/access-log.ts';
import { createArcKeyStore, removeStaleKeyFiles, type ArcKeyStore } from './http/arc-keys.ts';
import { createSidecarApp, type SidecarApp } from './http/app.ts';
import { createReadiness } from './http/readiness.ts';
import { closeGracefully, listen, type Listening } from '../common/http-server.ts';
import type { CredentialKind, LoadedIdentity } from './identity/identity.ts';
import { formatProblem, loadIdentities, noDefaultReason, type IdentityProblem } from './identity/load.ts';
import { boundedIdentityFs, readFederatedTokenFile } from './identity/bounded-read.ts';
import { createLogger, type Logger } from './log.ts';
import { createSidecarMetrics } from './metrics.ts';
import { createDevIssuer, devIdentities, DEV_IDENTITIES, type DevIssuer } from './token/dev-issuer.ts';
import type { EntraBackend } from './token/entra-backend.ts';
import { CiAssertions } from './token/ci-oidc.ts';
import { IdentityWatcher } from './identity/watch.ts';
import { systemScheduler } from './token/caching-token-source.ts';
import { watch as fsWatch } from 'node:fs';
import type { TokenSource } from './token/token-source.ts';

const nodeFs = boundedIdentityFs;
const nowMs = (): number => Date.now();

/** Resource of the entra-mode warm-up token (ARM: every service principal can get a token for it). */
const WARM_UP_RESOURCE = 'https://management.azure.com/';
const WARM_UP_RETRY_MS = 30_000;
const ARC_SWEEP_INTERVAL_MS = 30_000;

/** Dispatches to the token source registered for the identity's credential kind. */
export function byCredentialKind(sources: Partial<Record<CredentialKind, TokenSource>>): TokenSource {
  return {
    getToken(request) {
      const source = sources[request.identity.descriptor.credentialKind];
      if (source === undefined) {
        throw new CredentialUnavailableError(`No token backend for ${request.identity.descriptor.credentialKind} credentials in this build`);
      }
      return source.getToken(request);
    },
  };
}

/**
 * The token sources of this process, per credential kind. Dev mode: the dev issuer for `dev` identities. Entra mode:
 * the msal-node backed, cached Entra backend for `secret`, `certificate` and `federated`. An identity whose kind has
 * no source makes {@link main} refuse to start, naming it (a new credential kind must be registered here).
 */
function createTokenSources(ctx: {
  config: Config;
  devIssuer: DevIssuer | undefined;
  entra: EntraBackend | undefined;
}): Partial<Record<CredentialKind, TokenSource>> {
  if (ctx.devIssuer !== undefined) return { dev: ctx.devIssuer };
  if (ctx.entra !== undefined) {
    return { secret: ctx.entra.source, certificate: ctx.entra.source, federated: ctx.entra.source, 'azure-cli': ctx.entra.source };
  }
  return {};
}

/**
 * Entra mode's rotation watcher: reloads changed identities from the mounted Secrets without a restart and tells
 * the backend which credentials changed (their cached tokens are dropped).
 */
function watchIdentities(config: Config, identities: readonly LoadedIdentity[], entra: EntraBackend, logger: Logger, metrics: ReturnType<typeof createSidecarMetrics>): IdentityWatcher | undefined {
  if (config.mode !== 'entra' || config.identityDir === undefined) return undefined;
  const watcher = new IdentityWatcher({
    fs: nodeFs,
    dir: config.identityDir,
    defaultName: config.defaultIdentity,
    mode: config.mode,
    federatedTokenFile: config.federatedTokenFile,
    initial: identities,
    watch: (path, onEvent) => {
      const watcher = fsWatch(path, { persistent: false }, () => onEvent());
      // A watched directory that disappears (identity removed) errors the watcher; reload instead of crashing.
      watcher.on('error', () => onEvent());
      return watcher;
    },
    scheduler: systemScheduler,
    onChange: (changes) => entra.applyChanges(changes),
    metrics,
    log: logger,
  });
  watcher.start();
  return watcher;
}

/** Host part of a URL for a listening address (wildcards are reached through loopback on the same host). */
function urlHost(address: string): string {
  if (address === '0.0.0.0') return '127.0.0.1';
  if (address === '::') return '[::1]';
  return address.includes(':') ? `[${address}]` : address;
}

export interface EnvBlockInput {
  readonly mode: Config['mode'];
  readonly baseUrl: string;
  /** Printed value of IDENTITY_HEADER / MSI_SECRET (the secret itself, or a `$VARIABLE` reference). */
  readonly secretText: string;
  readonly defaultClientId: string | undefined;
  readonly arcEnabled: boolean;
  /**
   * Entra mode with a secret generated at start-up: printed once, as the `MI_ANYWHERE_IDENTITY_HEADER` line the
   * profiles' `$MI_ANYWHERE_IDENTITY_HEADER` references resolve to (docs/security.md, "Endpoint secret on stdout").
   */
  readonly generatedSecret?: string | undefined;
}

/**
 * The environment lines an app needs, one block per profile (`# profile <name>` then `NAME=value` lines), ready to
 * paste into a shell (`export` them), an env file or a compose `environment:` list.
 */
export function formatEnvBlock(input: EnvBlockInput): string {
  const lines = [
    `# mi-anywhere ${input.mode === 'dev' ? '(dev mode: tokens from the built-in dev issuer, not accepted by Azure) ' : ''}` +
      'is serving. Give an app the lines of ONE profile; "default" serves every Azure SDK.',
  ];
  if (input.generatedSecret !== undefined) {
    lines.push(
      `# endpoint secret, generated at start-up and printed only here; set ${SIDECAR_ENV.identityHeader} to choose it (it is then never printed)`,
      `${SIDECAR_ENV.identityHeader}=${input.generatedSecret}`,
    );
  }
  const profiles: readonly Profile[] = PROFILES.filter((p) => p !== 'arc' || input.arcEnabled);
  for (const profile of profiles) {
    lines.push(`# profile ${profile}`);
    for (const [name, value] of profileEnv(profile, { baseUrl: input.baseUrl, secret: input.secretText, defaultClientId: input.defaultClientId })) {
      lines.push(`${name}=${value}`);
    }
  }
  lines.push(ENV_BLOCK_END);
  return lines.join('\n') + '\n';
}

/** Last line of the printed environment block (test helpers wait for it). */
export const ENV_BLOCK_END = '# end of profiles';

/** `--probe`: exits 0 when `/readyz` answers 200 (exec probes, postStart hooks; HS-10). */
async function probe(config: Config): Promise<number> {
  if (config.health.port === 0) {
    process.stderr.write(`--probe needs a fixed ${SIDECAR_ENV.healthPort} (it is 0)\n`);
    return 2;
  }
  const status = await new Promise<number | string>((resolve) => {
    const req = httpRequest({ host: urlHost(config.health.address).replace(/^\[|\]$/g, ''), port: config.health.port, path: '/readyz', timeout: 3000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve(error.message));
    req.end();
  });
  if (status === 200) return 0;
  process.stderr.write(`not ready: ${typeof status === 'number' ? `HTTP ${status}` : status}\n`);
  return 1;
}

interface LoadedSet {
  readonly identities: readonly LoadedIdentity[];
  readonly fatal: readonly string[];
  /** Identities whose directory exists but could not be loaded (for the identity-load metrics). */
  readonly failed: readonly string[];
}

/** Loads the identities for the mode; problems are logged, and returned as fatal where the sidecar must not start. */
async function loadAllIdentities(config: Config, logger: Logger): Promise<LoadedSet> {
  const fatal: string[] = [];
  const builtIn = config.mode === 'dev' ? devIdentities(config.defaultIdentity ?? DEV_IDENTITIES.system.name) : [];
  let fromDir: readonly LoadedIdentity[] = [];
  let problems: readonly IdentityProblem[] = [];
  if (config.identityDir !== undefined) {
    const result = await loadIdentities({
      fs: nodeFs,
      dir: config.identityDir,
      defaultName: config.defaultIdentity,
      mode: config.mode,
      federatedTokenFile: config.federatedTokenFile,
      existing: builtIn,
    });
    problems = result.problems;
    for (const p of result.problems) {
      logger.error({ identity: p.identity, file: p.file, field: p.field, problem: p.code }, formatProblem(p));
      if (p.code === 'credential-forbidden') fatal.push(formatProblem(p));
    }
    fromDir = result.identities;
  }
  const identities = [...builtIn, ...fromDir];
  const defaults = identities.filter((i) => i.descriptor.isDefault);
  if (defaults.length === 0) {
    const why = noDefaultReason({
      defaultName: config.defaultIdentity,
      defaultSetting: SIDECAR_ENV.defaultIdentity,
      loaded: identities.length,
      problems,
      dir: config.identityDir,
    });
    logger.error({ problem: 'conflict' }, `no default identity (${why}): requests without a selector will get "Identity not found"`);
  }
  const loadedNames = new Set(identities.map((i) => i.descriptor.name));
  const failed = [...new Set(problems.map((p) => p.identity))].filter((name) => name !== '' && !loadedNames.has(name));
  return { identities, fatal, failed };
}

async function prepareArcKeys(config: Config, logger: Logger): Promise<ArcKeyStore | undefined> {
  const keyDir = config.arc.keyDir;
  if (keyDir === undefined) return undefined;
  await mkdir(keyDir, { recursive: true });
  await access(keyDir, fsConstants.W_OK);
  const stale = await removeStaleKeyFiles({ readdir: (p) => readdir(p), unlink }, keyDir);
  if (stale > 0) logger.info({ removed: stale }, 'removed Arc key files left by an earlier run');
  return createArcKeyStore({
    fs: { writeFile, chmod, unlink },
    keyDir,
    fileMode: config.arc.keyFileMode,
    nowMs,
    randomName: () => randomUUID(),
    // 32 random bytes as hex: no `=` padding, no newline, far below the 4096-byte limit.
    randomKey: () => randomBytes(32).toString('hex'),
    onError: (message, error) => logger.warn({ err: error }, message),
  });
}

/** In entra mode, obtains a first token for the default identity so readiness reflects a working credential. */
function warmUp(tokenSource: TokenSource, identity: LoadedIdentity | undefined, onSuccess: () => void, logger: Logger): void {
  if (identity === undefined) return;
  const attempt = (): void => {
    tokenSource.getToken({ identity, resource: WARM_UP_RESOURCE }).then(
      () => {
        onSuccess();
        logger.info({ identity: identity.descriptor.name }, 'obtained a first token for the default identity');
      },
      (error: unknown) => {
        logger.warn({ identity: identity.descriptor.name, err: error instanceof Error ? error.message : String(error) }, 'could not obtain a first token; retrying');
        setTimeout(attempt, WARM_UP_RETRY_MS).unref();
      },
    );
  };
  attempt();
}

/** The `program` binding of every log line (sidecar/log.ts), repeated by the hand-written access line. */
const LOG_PROGRAM = 'mi-anywhere-sidecar';

/** How often buffered access lines are written even when less than the buffer's worth has accumulated. */
const ACCESS_LOG_FLUSH_MS = 1_000;
/**
 * Access lines are written in chunks of this size (about 30 lines; sonic-boom requires less than its 16 KB write
 * size); a hard kill loses at most this much.
 */
const ACCESS_LOG_BUFFER_BYTES = 8 * 1024;

/**
 * Two stdout destinations: start-up, warning and error lines written at once (in order, never lost), and the
 * per-request access lines buffered (one write per 8 KB instead of one per request: the line is on every request's
 * path), flushed every second and before the process exits. The buffer is written synchronously: sonic-boom's
 * asynchronous mode cost more CPU per line than a synchronous write per line (3.8 against 2.6 µs), the buffered
 * synchronous one 1.6 µs (docs/performance.md).
 */
async function mainWithLogs(): Promise<number> {
  const destination = pino.destination({ dest: 1, sync: true });
  const accessDestination = pino.destination({ dest: 1, sync: true, minLength: ACCESS_LOG_BUFFER_BYTES });
  const flusher = setInterval(() => accessDestination.flushSync(), ACCESS_LOG_FLUSH_MS);
  flusher.unref();
  try {
    return await main(destination, accessDestination);
  } finally {
    clearInterval(flusher);
    accessDestination.flushSync();
  }
}

/**
 * Host names the token listener answers for besides loopback names (DNS-rebinding defence, docs/security.md): the
 * configured ones, the advertised host, and a specific (non-wildcard) bind address.
 */
function allowedHosts(config: Config, baseUrl: string, boundAddress: string): string[] {
  const hosts = [...config.allowedHosts, new URL(baseUrl).hostname.replace(/^\[|\]$/g, '')];
  if (boundAddress !== '0.0.0.0' && boundAddress !== '::') hosts.push(boundAddress);
  return hosts;
}

async function main(destination: DestinationStream, accessDestination: DestinationStream): Promise<number> {
  // Before the configuration: `--version` answers on any machine, whatever the environment holds.
  if (process.argv.includes('--version')) {
    process.stdout.write(`mi-anywhere sidecar ${pkg.version}\n`);
    return 0;
  }
  let config: Config;
  try {
    config = loadProcessConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`mi-anywhere sidecar: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (config.probe) return probe(config);

  const logger = createLogger({ level: config.logLevel, destination });
  logger.info({ config: describeConfig(config), version: pkg.version }, 'starting');
  if (config.mode === 'dev') {
    logger.warn('DEV MODE: tokens come from the built-in dev issuer; Azure does not accept them. Never use dev mode for real workloads.');
  }
  const { identities, fatal, failed } = await loadAllIdentities(config, logger);
  if (fatal.length > 0) {
    process.stderr.write(`mi-anywhere sidecar: ${new ConfigError(fatal).message}\n`);
    return 2;
  }
  // What is being served, for operators matching selectors to identities (ids are not secret; material is never logged).
  for (const { descriptor: d } of identities) {
    logger.info(
      { identity: d.name, tenantId: d.tenantId, clientId: d.clientId, objectId: d.objectId, resourceId: d.resourceId, credentialKind: d.credentialKind, isDefault: d.isDefault },
      'identity loaded',
    );
  }

  const register = new Registry();
  const metrics = createSidecarMetrics({ register, version: pkg.version, nowSeconds: () => nowMs() / 1000 });
  metrics.identities(identities.length);
  for (const i of identities) metrics.identityLoad(i.descriptor.name, 'success');
  // A Secret broken at start-up is a failed load too (the rotation watcher reports later ones).
  for (const name of failed) metrics.identityLoad(name, 'failure');
  const readiness = createReadiness({ requireToken: config.mode === 'entra' });
  const defaultIdentity = identities.find((i) => i.descriptor.isDefault);
  readiness.defaultIdentityLoaded(defaultIdentity !== undefined);

  let arcKeys: ArcKeyStore | undefined;
  try {
    arcKeys = await prepareArcKeys(config, logger);
  } catch (error) {
    process.stderr.write(`mi-anywhere sidecar: ${SIDECAR_ENV.arcKeyDir}=${config.arc.keyDir} is not a writable directory (${(error as Error).message})\n`);
    return 2;
  }

  // Listeners first (port 0 is resolved only by listening); requests that race the wiring below get a 503.
  let app: SidecarApp | undefined;
  const notYet = (_req: unknown, res: ServerResponse): void => {
    res.writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '1' });
    res.end('{"error":"temporarily_unavailable","error_description":"The identity sidecar is starting"}');
  };
  const common = { limits: config.limits, timeouts: config.timeouts };
  let listeners: Listening[];
  try {
    listeners = await Promise.all([
      listen({
        ...common,
        listener: config.token,
        onRequest: (req, res) => (app ? void app.token(req, res) : notYet(req, res)),
        onConnect: (req, socket) => app?.connect(req, socket) ?? socket.destroy(),
        onClientError: (error, socket) => app?.clientError(error, socket) ?? socket.destroy(),
      }),
      listen({ ...common, listener: config.health, onRequest: (req, res) => (app ? void app.health(req, res) : notYet(req, res)) }),
      listen({ ...common, listener: config.metrics, onRequest: (req, res) => (app ? void app.metrics(req, res) : notYet(req, res)) }),
    ]);
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { address?: string; port?: number };
    logger.fatal({ err: error }, 'could not listen');
    const hint =
      e.code === 'EADDRINUSE'
        ? `; another process uses it — set ${SIDECAR_ENV.tokenPort}, ${SIDECAR_ENV.healthPort} or ${SIDECAR_ENV.metricsPort} to a free port (0 = any)`
        : '';
    process.stderr.write(`mi-anywhere sidecar: cannot listen on ${e.address ?? '?'}:${e.port ?? '?'} (${e.code ?? e.message})${hint}\n`);
    return 1;
  }
  const [token, health, metricsListener] = listeners as [Listening, Listening, Listening];
  const baseUrl = config.advertiseUrl ?? `http://${urlHost(token.address)}:${token.port}`;

  const devIssuer = config.mode === 'dev' ? await createDevIssuer({ baseUrl, nowMs }) : undefined;
  // msal-node (and what it pulls in) is loaded only in entra mode: dev mode never talks to Entra, and the import
  // is most of the difference between a dev-mode sidecar and a bare Node process (docs/performance.md).
  const entraModule = config.mode === 'entra' ? await import('./token/entra-backend.ts') : undefined;
  let entra: EntraBackend | undefined;
  try {
    entra =
      entraModule !== undefined
        ? entraModule.createEntraBackend({
            authorityHost: config.authorityHost,
            readFile: readFederatedTokenFile,
            nowMs,
            metrics,
            log: logger,
            ciAssertions: new CiAssertions({ env: config.ci, nowMs }),
          })
        : undefined;
  } catch (error) {
    process.stderr.write(`mi-anywhere sidecar: ${SIDECAR_ENV.authorityHost}=${config.authorityHost} is unusable (${(error as Error).message})\n`);
    await closeGracefully(listeners.map((l) => l.server), 0);
    return 2;
  }
  entra?.publishCredentials(identities);
  const sources = createTokenSources({ config, devIssuer, entra });
  const unserved = identities.filter((i) => sources[i.descriptor.credentialKind] === undefined);
  if (unserved.length > 0) {
    const list = unserved.map((i) => `identity "${i.descriptor.name}" (${i.descriptor.credentialKind} credential)`);
    logger.fatal({ identities: unserved.map((i) => i.descriptor.name) }, `no token backend for: ${list.join(', ')}`);
    process.stderr.write(
      `mi-anywhere sidecar: this build has no Entra token backend yet for ${list.join(', ')}; use --dev for the dev issuer\n`,
    );
    await closeGracefully(listeners.map((l) => l.server), 0);
    return 2;
  }
  const tokenSource = byCredentialKind(sources);
  const identityHeader = config.identityHeader ?? randomBytes(24).toString('hex');

  const watcher = entra ? watchIdentities(config, identities, entra, logger, metrics) : undefined;
  app = createSidecarApp({
    identities: () => watcher?.current() ?? identities,
    tokenSource,
    identityHeader,
    limits: config.limits,
    rateLimitPerSecond: config.rateLimitPerSecond,
    allowedHosts: allowedHosts(config, baseUrl, token.address),
    remote: !isLoopbackAddress(token.address),
    nowMs,
    logger,
    accessLog: createAccessLog({ enabled: logger.isLevelEnabled('info'), program: LOG_PROGRAM, destination: accessDestination, nowMs }),
    metrics,
    register,
    readiness,
    arcKeys,
    devIssuer,
  });

  for (const [name, l] of [['token', token], ['health', health], ['metrics', metricsListener]] as const) {
    logger.info({ listener: name, address: l.address, port: l.port }, 'listening');
  }
  // Dev mode prints the secret in each profile (dev tokens are worthless to Azure). Entra mode references it by name;
  // a secret generated here (nobody else knows it) is printed once, on its own line (docs/security.md).
  const secretText = config.mode === 'dev' ? identityHeader : `$${SIDECAR_ENV.identityHeader}`;
  const generatedSecret = config.mode === 'entra' && config.identityHeader === undefined ? identityHeader : undefined;
  process.stdout.write(
    formatEnvBlock({ mode: config.mode, baseUrl, secretText, defaultClientId: defaultIdentity?.descriptor.clientId, arcEnabled: arcKeys !== undefined, generatedSecret }),
  );
  if (config.mode === 'entra') warmUp(tokenSource, defaultIdentity, () => readiness.tokenObtained(), logger);
  if (arcKeys !== undefined) {
    const keys = arcKeys;
    setInterval(() => void keys.sweep(), ARC_SWEEP_INTERVAL_MS).unref();
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down: draining connections');
      watcher?.stop();
      entra?.close();
      void closeGracefully(listeners.map((l) => l.server), config.timeouts.shutdownGraceMs)
        .then(() => arcKeys?.close())
        .then(() => {
          logger.info('stopped');
          resolve(0);
        });
    };
    // SIGHUP (a closed terminal, some supervisors) drains like SIGTERM: no request cut off, no Arc key left behind.
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(signal, () => stop(signal));
  });
}

if (import.meta.main) {
  mainWithLogs().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`mi-anywhere sidecar: fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
