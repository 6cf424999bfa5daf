/**
 * A TCP forwarder on 127.0.0.1 between the sidecar and the test authority, for faults the authority cannot make by
 * itself: a full outage (listener closed: ECONNREFUSED) and recovery on the same port, a TLS failure (traffic
 * switched to a server whose certificate chains to a CA the sidecar does not trust) and back, and an observable
 * "a request reached upstream" (bytes from the sidecar) so a test can act while a request is in flight without
 * sleeping.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface TcpForwarder {
  readonly port: number;
  /** Where new connections go. */
  setTarget(port: number): void;
  /** Bytes received from clients so far. */
  clientBytes(): number;
  /** Resolves once more than `after` bytes came from clients (polling is not needed: data events drive it). */
  waitForClientBytes(after: number): Promise<void>;
  /** Outage: stop listening and cut every connection. */
  down(): Promise<void>;
  /** Recovery: listen again on the same port. */
  up(): Promise<void>;
  stop(): Promise<void>;
}

export async function startTcpForwarder(targetPort: number): Promise<TcpForwarder> {
  let target = targetPort;
  let bytes = 0;
  const waiters: Array<{ after: number; resolve: () => void }> = [];
  const sockets = new Set<Socket>();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const onConnection = (client: Socket): void => {
    track(client);
    const upstream = connect({ host: '127.0.0.1', port: target });
    track(upstream);
    client.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      for (const w of [...waiters]) {
        if (bytes > w.after) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  };
  let server: Server = createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  const down = async (): Promise<void> => {
    if (!server.listening) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
    await closed;
  };
  return {
    port,
    setTarget: (p) => {
      target = p;
    },
    clientBytes: () => bytes,
    waitForClientBytes: (after) =>
      bytes > after ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ after, resolve })),
    down,
    async up() {
      if (server.listening) return;
      server = createServer(onConnection);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => resolve());
      });
    },
    stop: down,
  };
}

