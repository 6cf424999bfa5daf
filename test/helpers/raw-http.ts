/**
 * Raw HTTP over node:net for attacker-style tests: sends bytes exactly as given (malformed request lines, CONNECT,
 * absolute-form targets, smuggling attempts, oversized headers) and parses whatever comes back. Bounded: the socket
 * is destroyed after `timeoutMs` and the answer so far is returned.
 *
 * Also a "victim" listener that counts connections, to prove the sidecar never connects anywhere on a client's
 * behalf (no proxying, no CONNECT tunnels).
 */
import { connect, createServer, type AddressInfo, type Server } from 'node:net';

export interface RawResponse {
  /** 0 when no status line came back (connection closed or timed out first). */
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** Everything received. */
  readonly raw: string;
  /** The server closed the connection (rather than our timeout). */
  readonly closedByServer: boolean;
}

export function parseRawResponse(raw: string, closedByServer: boolean): RawResponse {
  const end = raw.indexOf('\r\n\r\n');
  const head = end === -1 ? raw : raw.slice(0, end);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = end === -1 ? '' : raw.slice(end + 4);
  const length = Number(headers['content-length']);
  if (Number.isFinite(length)) body = Buffer.from(body, 'latin1').subarray(0, length).toString('utf8');
  return { status: match ? Number(match[1]) : 0, headers, body, raw, closedByServer };
}

/**
 * Sends `request` and reads until the server closes, a complete response (by Content-Length) arrived, or the timeout.
 * @param port the sidecar's token port on 127.0.0.1
 * @param halfClose end our side after writing (a truncated request then meets EOF instead of a server timeout)
 */
export function rawRequest(port: number, request: string | Buffer, timeoutMs = 5_000, halfClose = false): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closedByServer: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseRawResponse(Buffer.concat(chunks).toString('latin1'), closedByServer));
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) return;
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, end))?.[1];
      if (length !== undefined && Buffer.byteLength(text.slice(end + 4), 'latin1') >= Number(length)) finish(false);
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    // EPIPE/ECONNRESET after the server answered and closed early (oversized input): keep what arrived.
    socket.on('error', () => finish(true));
    if (halfClose) socket.end(request);
    else socket.write(request);
  });
}

export interface Victim {
  readonly port: number;
  /** Connections accepted so far. */
  connections(): number;
  stop(): Promise<void>;
}

/** A listener on 127.0.0.1 that only counts connections (an internal service an attacker would like to reach). */
export async function startVictim(): Promise<Victim> {
  let count = 0;
  const server: Server = createServer((socket) => {
    count += 1;
    socket.end('HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nvictim');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => count,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Port of a `http://127.0.0.1:<port>` URL. */
export function portOf(url: string): number {
  return Number(new URL(url).port);
}
