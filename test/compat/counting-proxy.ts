/**
 * A transparent HTTP forwarder in front of the sidecar, one per driver process, so each driver can see exactly how
 * many requests its own client sent (the "second call comes from the client's cache" check) while many drivers run
 * in parallel against one sidecar. It forwards method, path, headers and body unchanged (no `X-Forwarded-For`:
 * the IMDS dialect rejects it) and relays status, headers (the Arc `WWW-Authenticate` challenge) and body.
 *
 * `GET <counterUrl>` on a second port answers `{"count": n, "requests": [...]}`: `count` is the number of responses
 * that carried an access token (token requests served by the sidecar). Other requests — the Arc 401 challenge, and
 * IMDS availability probes such as the one azure-identity for Java's DefaultAzureCredential sends before *every*
 * getToken, even when the token then comes from its cache — are in the log but not counted. The log keeps method,
 * path (with query: resource and selectors, no secrets), status and the `aud`/`appid` claims of a returned token,
 * never the token or a header.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ProxiedRequest } from './drivers/protocol.ts';

export interface CountingProxy {
  /** Base URL apps get (in place of the sidecar's token URL). */
  readonly url: string;
  /** Counter endpoint for the driver (a separate listener: never reachable through {@link url}). */
  readonly counterUrl: string;
  requests(): readonly ProxiedRequest[];
  stop(): Promise<void>;
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve(`http://127.0.0.1:${String(port)}`);
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** `aud`/`appid` of the token in a success body; undefined for anything else. */
function tokenClaims(body: Buffer): { aud?: string; appid?: string } {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { access_token?: unknown };
    if (typeof parsed.access_token !== 'string') return {};
    const payload = parsed.access_token.split('.')[1];
    if (payload === undefined) return {};
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    return {
      ...(typeof claims['aud'] === 'string' ? { aud: claims['aud'] } : {}),
      ...(typeof claims['appid'] === 'string' ? { appid: claims['appid'] } : {}),
    };
  } catch {
    return {};
  }
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const upstream = new URL(target);
  const log: ProxiedRequest[] = [];
  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const path = req.url ?? '/';
    const headers = { ...req.headers };
    const out = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path, headers },
      (up) => {
        const chunks: Buffer[] = [];
        up.on('data', (c: Buffer) => chunks.push(c));
        up.on('end', () => {
          const body = Buffer.concat(chunks);
          const status = up.statusCode ?? 502;
          log.push({ method: req.method ?? 'GET', path, status, ...(status === 200 ? tokenClaims(body) : {}) });
          res.writeHead(status, up.rawHeaders);
          res.end(body);
        });
      },
    );
    out.on('error', (err) => {
      log.push({ method: req.method ?? 'GET', path, status: 502 });
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`counting proxy: ${err.message}`);
    });
    req.pipe(out);
  };
  const proxy = createServer(forward);
  const counter = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ count: log.filter((r) => r.aud !== undefined || r.appid !== undefined).length, requests: log }));
  });
  const url = await listen(proxy);
  const counterBase = await listen(counter);
  return {
    url,
    counterUrl: `${counterBase}/count`,
    requests: () => [...log],
    stop: async () => {
      await Promise.all([close(proxy), close(counter)]);
    },
  };
}
