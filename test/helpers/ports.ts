/**
 * A TCP port that was free a moment ago on 127.0.0.1, for programs whose configuration cannot report a port-0
 * listener back (kube-apiserver, etcd, Prometheus, containers, the webhook's fixed ports). Prefer port 0 wherever
 * the program says where it listens.
 */
import { createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
