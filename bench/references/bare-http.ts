/**
 * Reference 1 (the limit for a Node process): a bare `node:http` server that answers every request with the
 * same fixed JSON token body the sidecar returns (read once from the file named in argv[2]). No routing, no
 * parsing, no logging, no metrics: whatever the sidecar does on top of this costs throughput.
 *
 * Prints `listening <port>` once bound (127.0.0.1, port 0 unless argv[3] names one).
 */
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';

const bodyFile = process.argv[2];
if (!bodyFile) throw new Error('usage: bare-http.ts <body-file> [port]');
const body = readFileSync(bodyFile);
const headers = { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(body.length) };

const server = createServer((_req, res) => {
  res.writeHead(200, headers);
  res.end(body);
});
server.listen(Number(process.argv[3] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
