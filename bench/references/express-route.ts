/**
 * Reference 2 (the floor of the chosen framework): a minimal express 5 app with one GET route on the IMDS path
 * that sends the same fixed JSON token body the sidecar returns (read once from the file named in argv[2]).
 * Express defaults are kept (ETag, query parser, router): this is what "an express route" costs before any
 * application code runs. `x-powered-by` is off, as in the sidecar.
 *
 * Prints `listening <port>` once bound (127.0.0.1, port 0 unless argv[3] names one).
 */
import express from 'express';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';

const bodyFile = process.argv[2];
if (!bodyFile) throw new Error('usage: express-route.ts <body-file> [port]');
const body = readFileSync(bodyFile);

const app = express();
app.disable('x-powered-by');
const send = (_req: express.Request, res: express.Response): void => {
  res.type('application/json').send(body);
};
app.get('/metadata/identity/oauth2/token', send);
app.get('/msi/token', send);

const server = app.listen(Number(process.argv[3] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
