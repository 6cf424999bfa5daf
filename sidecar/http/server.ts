/**
 * Creating, listening and draining node:http / node:https servers: one idiom for both programs (the sidecar's three
 * listeners and the webhook's admission, health and metrics listeners). main.ts files call these; tests use them
 * too to run the real servers on port 0.
 *
 * Server-level concerns stay here, where express cannot see them: timeouts, the parser's header limit, CONNECT and
 * `clientError` listeners (the webhook adds TLS certificate swapping on its https server).
 */
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Limits, ListenerConfig, Timeouts } from '../config.ts';

export interface ListenOptions {
  readonly listener: ListenerConfig;
  readonly onRequest: (req: IncomingMessage, res: ServerResponse) => void;
  readonly onConnect?: ((req: IncomingMessage, socket: Duplex) => void) | undefined;
  readonly onClientError?: ((error: Error & { code?: string }, socket: Duplex) => void) | undefined;
  readonly limits: Limits;
  readonly timeouts: Timeouts;
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
export function connectionsCheckingInterval(timeouts: Pick<Timeouts, 'headersTimeoutMs' | 'requestTimeoutMs'>): number {
  const shortest = Math.min(timeouts.headersTimeoutMs, timeouts.requestTimeoutMs);
  return Math.max(10, Math.min(1_000, Math.floor(shortest / 10)));
}

/** Timeout options of every listener (node:http and node:https take the same ones). */
export function timeoutOptions(timeouts: Timeouts): Pick<ServerOptions, 'headersTimeout' | 'requestTimeout' | 'keepAliveTimeout' | 'connectionsCheckingInterval'> {
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
 * Starts one plain-HTTP listener. The parser's own header limit is twice ours, so requests between the two limits
 * reach the handler and get a 431 in their dialect's shape; only larger ones are cut off by the parser (IMDS-shape
 * 431 from `onClientError`).
 */
export function listen(options: ListenOptions): Promise<Listening> {
  const server = createServer(
    {
      maxHeaderSize: options.limits.maxHeaderBytes * 2,
      ...timeoutOptions(options.timeouts),
      // Node answers an HTTP/1.1 request without Host with a bare, empty 400 before any handler runs; let such
      // requests reach the handler and get a dialect-shaped answer (test/fuzz/sidecar-http).
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
