/**
 * Creating, listening and draining node:http / node:https servers: the one listen/shutdown idiom of both programs
 * (the sidecar's three listeners and the webhook's admission, health and metrics listeners). Each program's main.ts
 * calls these; tests use them too to run the real servers on port 0.
 *
 * Server-level concerns stay here, where express cannot see them: timeouts, the parser's header limit, CONNECT and
 * `clientError` listeners (the webhook adds TLS certificate swapping on its https server). The types below are the
 * least this module needs; each program's config.ts has its own, larger shapes that satisfy them.
 *
 * Does I/O (it listens and closes sockets) but reads no environment and imports nothing from either program.
 */
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';

/** Where one listener binds. */
export interface ListenerConfig {
  readonly address: string;
  /** 0 = pick a free port (tests, benchmarks). */
  readonly port: number;
}

/** Server timeouts: bounded so that a slow or stuck client cannot hold a socket forever. */
export interface ServerTimeouts {
  /** Time to receive the complete headers (slowloris bound). */
  readonly headersTimeoutMs: number;
  /** Time to receive the whole request. */
  readonly requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open. */
  readonly keepAliveTimeoutMs: number;
}

/** Size limits the server enforces before any handler runs. */
export interface ServerLimits {
  /** Sum of header names and values the handler accepts (the parser's own limit is twice this). */
  readonly maxHeaderBytes: number;
}

export interface ListenOptions {
  readonly listener: ListenerConfig;
  readonly onRequest: (req: IncomingMessage, res: ServerResponse) => void;
  readonly onConnect?: ((req: IncomingMessage, socket: Duplex) => void) | undefined;
  readonly onClientError?: ((error: Error & { code?: string }, socket: Duplex) => void) | undefined;
  readonly limits: ServerLimits;
  readonly timeouts: ServerTimeouts;
}

export interface Listening {
  readonly server: Server | HttpsServer;
  readonly address: string;
  readonly port: number;
}

/**
 * How often Node looks for connections past `headersTimeout` / `requestTimeout`. Node checks only at this interval
 * (default 30 s), so with the default a slow client would be cut after up to 40 s instead of the documented 10 s:
 * check ten times per shortest timeout, at most once a second, at least every 10 ms.
 */
export function connectionsCheckingInterval(timeouts: Pick<ServerTimeouts, 'headersTimeoutMs' | 'requestTimeoutMs'>): number {
  const shortest = Math.min(timeouts.headersTimeoutMs, timeouts.requestTimeoutMs);
  return Math.max(10, Math.min(1_000, Math.floor(shortest / 10)));
}

/** Timeout options of every listener (node:http and node:https take the same ones). */
export function timeoutOptions(timeouts: ServerTimeouts): Pick<ServerOptions, 'headersTimeout' | 'requestTimeout' | 'keepAliveTimeout' | 'connectionsCheckingInterval'> {
  return {
    headersTimeout: timeouts.headersTimeoutMs,
    requestTimeout: timeouts.requestTimeoutMs,
    keepAliveTimeout: timeouts.keepAliveTimeoutMs,
    connectionsCheckingInterval: connectionsCheckingInterval(timeouts),
  };
}

/** Listens on `listener` and resolves with the bound address (port 0 is resolved only by listening). */
export function startListening(server: Server | HttpsServer, listener: ListenerConfig): Promise<Listening> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listener.port, listener.address, () => {
      server.off('error', reject);
      const info = server.address() as AddressInfo;
      resolve({ server, address: info.address, port: info.port });
    });
  });
}

/**
 * Starts one plain-HTTP listener. The parser's own header limit is twice `limits.maxHeaderBytes`, so requests
 * between the two limits reach the handler, which answers 431 in its own error shape; only larger ones are cut off
 * by the parser and answered by `onClientError`.
 */
export function listen(options: ListenOptions): Promise<Listening> {
  const server = createServer(
    {
      maxHeaderSize: options.limits.maxHeaderBytes * 2,
      ...timeoutOptions(options.timeouts),
      // Node answers an HTTP/1.1 request without Host with a bare, empty 400 before any handler runs; let such
      // requests reach the handler and get its own error shape (test/fuzz/sidecar-http.test.ts sends them).
      requireHostHeader: false,
    },
    options.onRequest,
  );
  if (options.onConnect) server.on('connect', options.onConnect);
  if (options.onClientError) server.on('clientError', options.onClientError);
  return startListening(server, options.listener);
}

/**
 * Stops accepting connections, lets in-flight requests finish for up to `graceMs`, then closes what is left.
 * Idle keep-alive sockets are closed at once (they would otherwise hold `close()` open until their timeout).
 */
export async function closeGracefully(servers: ReadonlyArray<Server | HttpsServer>, graceMs: number): Promise<void> {
  const closed = servers.map(
    (server) =>
      new Promise<void>((resolve) => {
        if (!server.listening) {
          resolve();
          return;
        }
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  );
  // close() only ends the connections idle at the time of the call: a keep-alive client whose request finishes
  // during the drain would hold its connection (and the exit) until the grace period ends. Close those as they idle.
  const sweeper = setInterval(() => {
    for (const server of servers) server.closeIdleConnections();
  }, 50);
  sweeper.unref();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      for (const server of servers) server.closeAllConnections();
      resolve();
    }, graceMs);
    timer.unref();
  });
  await Promise.race([Promise.all(closed), deadline]);
  clearTimeout(timer);
  await Promise.all(closed);
  clearInterval(sweeper);
}
