/**
 * Composition root of the sidecar: the only module that touches `process.*` (besides `config.ts`, which reads the
 * environment), listens on sockets and handles signals. {@link main} lists the start-up steps in order; the longer
 * ones live in `startup/`. A step that cannot go on throws a {@link StartupFailure}, reported in one place
 * ({@link run}).
 *
 * Run: `node sidecar/main.ts --dev` (`npm start`), `node sidecar/main.ts` (entra mode), `node sidecar/main.ts --probe`,
 * `node sidecar/main.ts --version`. Nothing imports this module: it does its work only when executed.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DestinationStream } from 'pino';
import { Registry } from 'prom-client';
import pkg from '../package.json' with { type: 'json' };
import { describeConfig, isLoopbackAddress, loadProcessConfig, requestedLogLevel, type Config } from './config.ts';
import { SIDECAR_ENV } from './contract.ts';
import { ConfigError } from './errors.ts';
import { createSidecarApp, type SidecarApp } from './http/app.ts';
import type { ArcKeyStore } from './http/arc-keys.ts';
import { createReadiness, type Readiness } from './http/readiness.ts';
import { closeGracefully, listen, type Listening } from '../common/http-server.ts';
import type { IdentityWatcher } from './identity/watch.ts';
import { createLogger, type Logger } from './log.ts';
import { createSidecarMetrics, type SidecarMetrics } from './metrics.ts';
import { allowedHosts, baseUrlFor } from './startup/addresses.ts';
import { prepareArcKeys, sweepArcKeysPeriodically } from './startup/arc.ts';
import { formatEnvBlock } from './startup/env-block.ts';
import { StartupFailure, unexpectedFailureText } from './startup/failure.ts';
import { loadIdentitiesToServe, watchIdentities, type ServedIdentities } from './startup/identities.ts';
import { accessLogFor, withLogOutput, type LogOutput } from './startup/log-output.ts';
import { probe } from './startup/probe.ts';
import { createTokenBackends, warmUp, type TokenBackends } from './startup/token-sources.ts';
import { generateDevSigningKey, type DevSigningKey } from './token/dev-issuer.ts';

const nowMs = (): number => Date.now();

/** The start-up steps, in order; resolves with the exit code once the sidecar has stopped. */
async function main(logOutput: LogOutput): Promise<number> {
  // Before the configuration: `--version` answers on any machine, whatever the environment holds.
  if (process.argv.includes('--version')) return printVersion();
  const config = readConfiguration();
  if (config.probe) return runProbe(config);
  // Dev mode's key pair is made in the thread pool while the next steps run (the slowest single step of a start).
  const devSigningKey = config.mode === 'dev' ? generateDevSigningKey() : undefined;
  const logger = startLogging(config, logOutput.main);
  const served = await loadIdentitiesToServe(config, logger);
  const telemetry = createTelemetry(config, served);
  const arcKeys = await prepareArcKeys({ config, logger, nowMs });
  const listeners = await startListeners(config, logger);
  const serving = await closingOnFailure(listeners, () => startServing({ config, logger, served, telemetry, arcKeys, listeners, logOutput, devSigningKey }));
  const started: Started = { config, logger, served, telemetry, arcKeys, listeners, serving };
  announce(started);
  startBackgroundWork(started);
  return untilStopped(started);
}

function printVersion(): number {
  process.stdout.write(`mi-anywhere sidecar ${pkg.version}\n`);
  return 0;
}

/** @throws StartupFailure listing every problem of the configuration. */
function readConfiguration(): Config {
  try {
    return loadProcessConfig();
  } catch (error) {
    if (error instanceof ConfigError) throw new StartupFailure(error.message, 2);
    throw error;
  }
}

/** `--probe`: exits 0 when `/readyz` answers 200 (CONTRIBUTING.md, "HTTP server hygiene"). */
async function runProbe(config: Config): Promise<number> {
  const result = await probe(config);
  if (result.message !== undefined) process.stderr.write(`${result.message}\n`);
  return result.exitCode;
}

function startLogging(config: Config, destination: DestinationStream): Logger {
  const logger = createLogger({ level: config.logLevel, destination });
  logger.info({ config: describeConfig(config), version: pkg.version }, 'starting');
  if (config.mode === 'dev') {
    logger.warn('DEV MODE: tokens come from the built-in dev issuer; Azure does not accept them. Never use dev mode for real workloads.');
  }
  return logger;
}

interface Telemetry {
  readonly register: Registry;
  readonly metrics: SidecarMetrics;
  readonly readiness: Readiness;
}

/** Metrics and readiness, starting from what the identity load found. */
function createTelemetry(config: Config, served: ServedIdentities): Telemetry {
  const register = new Registry();
  const metrics = createSidecarMetrics({ register, version: pkg.version, nowSeconds: () => nowMs() / 1000 });
  metrics.identities(served.identities.length);
  for (const i of served.identities) metrics.identityLoad(i.descriptor.name, 'success');
  // A Secret broken at start-up is a failed load too (the rotation watcher reports later ones).
  for (const name of served.failed) metrics.identityLoad(name, 'failure');
  const readiness = createReadiness({ requireToken: config.mode === 'entra' });
  readiness.defaultIdentityLoaded(served.defaultIdentity !== undefined);
  return { register, metrics, readiness };
}

interface Listeners {
  readonly token: Listening;
  readonly health: Listening;
  readonly metrics: Listening;
  /** Hands requests to the app from now on; until then every request is answered 503. */
  serve(app: SidecarApp): void;
  /** Stops accepting, lets requests in flight finish for `graceMs`, then closes the remaining connections. */
  close(graceMs: number): Promise<void>;
}

/**
 * The token, health and metrics listeners. They listen before the rest is wired, because a port 0 is resolved only
 * by listening (and the base URL apps are given depends on it); requests that race the wiring get a 503.
 * @throws StartupFailure when an address cannot be bound.
 */
async function startListeners(config: Config, logger: Logger): Promise<Listeners> {
  let app: SidecarApp | undefined;
  const common = { limits: config.limits, timeouts: config.timeouts };
  const [token, health, metrics] = await Promise.all([
    listen({
      ...common,
      listener: config.token,
      onRequest: (req, res) => (app ? void app.token(req, res) : notYet(req, res)),
      onConnect: (req, socket) => app?.connect(req, socket) ?? socket.destroy(),
      onClientError: (error, socket) => app?.clientError(error, socket) ?? socket.destroy(),
    }),
    listen({ ...common, listener: config.health, onRequest: (req, res) => (app ? void app.health(req, res) : notYet(req, res)) }),
    listen({ ...common, listener: config.metrics, onRequest: (req, res) => (app ? void app.metrics(req, res) : notYet(req, res)) }),
  ]).catch((error: unknown) => {
    logger.fatal({ err: error }, 'could not listen');
    throw cannotListen(error);
  });
  return {
    token,
    health,
    metrics,
    serve: (ready) => {
      app = ready;
    },
    close: (graceMs) => closeGracefully([token.server, health.server, metrics.server], graceMs),
  };
}

function notYet(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '1' });
  res.end('{"error":"temporarily_unavailable","error_description":"The identity sidecar is starting"}');
}

function cannotListen(error: unknown): StartupFailure {
  const e = error as NodeJS.ErrnoException & { address?: string; port?: number };
  const hint =
    e.code === 'EADDRINUSE'
      ? `; another process uses it — set ${SIDECAR_ENV.tokenPort}, ${SIDECAR_ENV.healthPort} or ${SIDECAR_ENV.metricsPort} to a free port (0 = any)`
      : '';
  return new StartupFailure(`cannot listen on ${e.address ?? '?'}:${e.port ?? '?'} (${e.code ?? e.message})${hint}`, 1);
}

/** Runs a step that follows listening; if it fails, the listeners are closed at once before the failure is reported. */
async function closingOnFailure<T>(listeners: Listeners, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    await listeners.close(0);
    throw error;
  }
}

interface Serving extends TokenBackends {
  readonly baseUrl: string;
  /** Value apps send as `X-IDENTITY-HEADER` / `secret`: configured, or random per start. */
  readonly identityHeader: string;
  readonly watcher: IdentityWatcher | undefined;
}

/** Builds the token backends and the HTTP app, and hands the listeners to it. */
async function startServing(
  ctx: Omit<Started, 'serving'> & { readonly logOutput: LogOutput; readonly devSigningKey: Promise<DevSigningKey> | undefined },
): Promise<Serving> {
  const { config, logger, listeners, telemetry } = ctx;
  const { identities } = ctx.served;
  const baseUrl = baseUrlFor(config, listeners.token);
  const backends = await createTokenBackends({ config, baseUrl, identities, metrics: telemetry.metrics, logger, nowMs, devSigningKey: ctx.devSigningKey });
  const identityHeader = config.identityHeader ?? randomBytes(24).toString('hex');
  const watcher = backends.entra ? watchIdentities({ config, identities, entra: backends.entra, logger, metrics: telemetry.metrics }) : undefined;
  listeners.serve(
    createSidecarApp({
      identities: () => watcher?.current() ?? identities,
      tokenSource: backends.tokenSource,
      identityHeader,
      limits: config.limits,
      rateLimitPerSecond: config.rateLimitPerSecond,
      allowedHosts: allowedHosts(config, baseUrl, listeners.token.address),
      remote: !isLoopbackAddress(listeners.token.address),
      nowMs,
      logger,
      accessLog: accessLogFor(logger, ctx.logOutput.access, nowMs),
      metrics: telemetry.metrics,
      register: telemetry.register,
      readiness: telemetry.readiness,
      arcKeys: ctx.arcKeys,
      devIssuer: backends.devIssuer,
    }),
  );
  return { ...backends, baseUrl, identityHeader, watcher };
}

/** Everything the sidecar runs with once it serves. */
interface Started {
  readonly config: Config;
  readonly logger: Logger;
  readonly served: ServedIdentities;
  readonly telemetry: Telemetry;
  readonly arcKeys: ArcKeyStore | undefined;
  readonly listeners: Listeners;
  readonly serving: Serving;
}

/** Logs the listening addresses and prints the environment block apps need. */
function announce({ config, logger, served, arcKeys, listeners, serving }: Started): void {
  for (const name of ['token', 'health', 'metrics'] as const) {
    logger.info({ listener: name, address: listeners[name].address, port: listeners[name].port }, 'listening');
  }
  // Dev mode prints the secret in each profile (dev tokens are worthless to Azure). Entra mode references it by name;
  // a secret generated here (nobody else knows it) is printed once, on its own line (docs/security.md §5).
  const secretText = config.mode === 'dev' ? serving.identityHeader : `$${SIDECAR_ENV.identityHeader}`;
  const generatedSecret = config.mode === 'entra' && config.identityHeader === undefined ? serving.identityHeader : undefined;
  process.stdout.write(
    formatEnvBlock({
      mode: config.mode,
      baseUrl: serving.baseUrl,
      secretText,
      defaultClientId: served.defaultIdentity?.descriptor.clientId,
      arcEnabled: arcKeys !== undefined,
      generatedSecret,
    }),
  );
}

/** Entra mode's first token for the default identity (readiness waits for it), and the Arc key sweep. */
function startBackgroundWork(ctx: Started): void {
  const { readiness } = ctx.telemetry;
  if (ctx.config.mode === 'entra') {
    warmUp({ tokenSource: ctx.serving.tokenSource, identity: ctx.served.defaultIdentity, onSuccess: () => readiness.tokenObtained(), logger: ctx.logger });
  }
  if (ctx.arcKeys !== undefined) sweepArcKeysPeriodically(ctx.arcKeys);
}

/**
 * Serves until SIGTERM, SIGINT or SIGHUP, then drains: SIGHUP (a closed terminal, some supervisors) drains like
 * SIGTERM, so no request is cut off and no Arc key file is left behind. Resolves with the exit code.
 */
function untilStopped(ctx: Started): Promise<number> {
  const { logger, serving } = ctx;
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down: draining connections');
      serving.watcher?.stop();
      serving.entra?.close();
      void ctx.listeners
        .close(ctx.config.timeouts.shutdownGraceMs)
        .then(() => ctx.arcKeys?.close())
        .then(() => {
          logger.info('stopped');
          resolve(0);
        });
    };
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(signal, () => stop(signal));
  });
}

/** The program: {@link main} with its log destinations; a {@link StartupFailure} becomes its message and exit code. */
async function run(): Promise<number> {
  try {
    return await withLogOutput(main);
  } catch (error) {
    if (!(error instanceof StartupFailure)) throw error;
    process.stderr.write(`mi-anywhere sidecar: ${error.message}\n`);
    return error.exitCode;
  }
}

if (import.meta.main) {
  run().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(unexpectedFailureText(error, requestedLogLevel()));
      process.exit(1);
    },
  );
}
