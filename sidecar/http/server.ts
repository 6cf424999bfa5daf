/**
 * Creating, listening and draining the three node:http servers. main.ts calls these; tests use them too to run the
 * real servers on port 0.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
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
  readonly server: Server;
  readonly address: string;
  readonly port: number;
}

/**
 * Starts one listener. The parser's own header limit is twice ours, so requests between the two limits reach the
 * handler and get a 431 in their dialect's shape; only larger ones are cut off by the parser (IMDS-shape 431 from
 * `onClientError`).
 */
export function listen(options: ListenOptions): Promise<Listening> {
  const server = createServer(
    {
      maxHeaderSize: options.limits.maxHeaderBytes * 2,
      headersTimeout: options.timeouts.headersTimeoutMs,
      requestTimeout: options.timeouts.requestTimeoutMs,
      keepAliveTimeout: options.timeouts.keepAliveTimeoutMs,
      // Node answers an HTTP/1.1 request without Host with a bare, empty 400 before any handler runs; we route by
      // path only, so let such requests reach the handler and get a dialect-shaped answer (test/fuzz/sidecar-http).
      requireHostHeader: false,
    },
    options.onRequest,
  );
  if (options.onConnect) server.on('connect', options.onConnect);
  if (options.onClientError) server.on('clientError', options.onClientError);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listener.port, options.listener.address, () => {
      server.off('error', reject);
      const info = server.address() as AddressInfo;
      resolve({ server, address: info.address, port: info.port });
    });
  });
}

/**
 * Stops accepting connections, lets in-flight requests finish for up to `graceMs`, then closes what is left.
 * Idle keep-alive sockets are closed at once (they would otherwise hold `close()` open until their timeout).
 */
export async function closeGracefully(servers: readonly Server[], graceMs: number): Promise<void> {
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
