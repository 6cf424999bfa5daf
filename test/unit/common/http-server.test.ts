/**
 * The listen/shutdown idiom both programs share (common/http-server.ts): timeout options, the header limit the parser
 * enforces, requests without Host reaching the handler, port-0 binding, and a drain that neither waits for idle
 * keep-alive sockets nor lets a stuck request hold the exit past the grace period. Loopback only.
 */
import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import { closeGracefully, connectionsCheckingInterval, listen, startListening, timeoutOptions, type Listening } from '../../../common/http-server.ts';

const LOOPBACK = { address: '127.0.0.1', port: 0 };
const TIMEOUTS = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 65_000 };

function answerOk(_req: IncomingMessage, res: ServerResponse): void {
  res.end('ok');
}

/** Sends `raw` on a fresh socket and resolves with everything the server wrote before the socket closed. */
function sendRaw(port: number, raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(received));
    socket.write(raw);
    socket.end();
  });
}

/** One keep-alive GET; resolves with the response body and the socket, which stays open. */
function keepAliveGet(port: number): Promise<{ body: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { connection: 'keep-alive' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ body, socket: req.socket! }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('connectionsCheckingInterval', () => {
  const cases: [headersTimeoutMs: number, requestTimeoutMs: number, want: number][] = [
    [10_000, 30_000, 1_000],
    [300, 600, 30],
    [600, 300, 30],
    [50, 50, 10],
    [1, 1, 10],
  ];
  for (const [headersTimeoutMs, requestTimeoutMs, want] of cases) {
    it(`headers ${headersTimeoutMs} ms, request ${requestTimeoutMs} ms → every ${want} ms`, () => {
      assert.equal(connectionsCheckingInterval({ headersTimeoutMs, requestTimeoutMs }), want);
    });
  }
});

describe('timeoutOptions', () => {
  it('passes every timeout to Node under its own option name', () => {
    assert.deepEqual(timeoutOptions(TIMEOUTS), { headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 65_000, connectionsCheckingInterval: 1_000 });
  });
});

describe('listen', () => {
  const maxHeaderBytes = 1_024;
  const start = (onClientError?: (error: Error, socket: Duplex) => void): Promise<Listening> =>
    listen({ listener: LOOPBACK, onRequest: answerOk, onClientError, limits: { maxHeaderBytes }, timeouts: TIMEOUTS });

  it('binds port 0 to a free port and applies the timeouts', async () => {
    const listening = await start();
    try {
      assert.equal(listening.address, '127.0.0.1');
      assert.ok(listening.port > 0);
      const server = listening.server as Server;
      assert.equal(server.headersTimeout, TIMEOUTS.headersTimeoutMs);
      assert.equal(server.requestTimeout, TIMEOUTS.requestTimeoutMs);
      assert.equal(server.keepAliveTimeout, TIMEOUTS.keepAliveTimeoutMs);
    } finally {
      await closeGracefully([listening.server], 1_000);
    }
  });

  it('lets headers up to twice the limit reach the handler, which answers in its own shape', async () => {
    const listening = await start();
    try {
      const answer = await sendRaw(listening.port, `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'a'.repeat(maxHeaderBytes + 100)}\r\nConnection: close\r\n\r\n`);
      assert.match(answer, /^HTTP\/1\.1 200 /);
    } finally {
      await closeGracefully([listening.server], 1_000);
    }
  });

  it('hands headers beyond twice the limit to onClientError', async () => {
    const errors: string[] = [];
    const listening = await start((error, socket) => {
      errors.push((error as Error & { code?: string }).code ?? error.message);
      socket.end('HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n');
    });
    try {
      const answer = await sendRaw(listening.port, `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'a'.repeat(maxHeaderBytes * 3)}\r\n\r\n`);
      assert.match(answer, /^HTTP\/1\.1 431 /);
      assert.deepEqual(errors, ['HPE_HEADER_OVERFLOW']);
    } finally {
      await closeGracefully([listening.server], 1_000);
    }
  });

  it('lets an HTTP/1.1 request without Host reach the handler (Node would answer a bare 400)', async () => {
    const listening = await start();
    try {
      const answer = await sendRaw(listening.port, 'GET / HTTP/1.1\r\nConnection: close\r\n\r\n');
      assert.match(answer, /^HTTP\/1\.1 200 [^]*\r\n\r\nok$/);
    } finally {
      await closeGracefully([listening.server], 1_000);
    }
  });
});

describe('startListening', () => {
  it('rejects when the port is taken', async () => {
    const first = await startListening(createServer(answerOk), LOOPBACK);
    try {
      await assert.rejects(startListening(createServer(answerOk), { address: '127.0.0.1', port: first.port }), { code: 'EADDRINUSE' });
    } finally {
      await closeGracefully([first.server], 1_000);
    }
  });
});

describe('closeGracefully', () => {
  it('returns at once for a server that is not listening', async () => {
    await closeGracefully([createServer(answerOk)], 60_000);
  });

  // A 60 s grace period longer than the test's own timeout: if idle sockets held the close, the test would fail.
  it('does not wait for idle keep-alive connections', { timeout: 20_000 }, async () => {
    const listening = await startListening(createServer(answerOk), LOOPBACK);
    const { body, socket } = await keepAliveGet(listening.port);
    assert.equal(body, 'ok');
    const socketClosed = new Promise((resolve) => socket.once('close', resolve));
    await closeGracefully([listening.server], 60_000);
    await socketClosed;
  });

  it('lets a request in flight finish, then closes', { timeout: 20_000 }, async () => {
    let arrived!: () => void;
    const requestArrived = new Promise<void>((resolve) => (arrived = resolve));
    let release!: () => void;
    const listening = await startListening(
      createServer((_req, res) => {
        release = () => res.end('finished');
        arrived();
      }),
      LOOPBACK,
    );
    const response = sendRaw(listening.port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await requestArrived;
    const closed = closeGracefully([listening.server], 60_000);
    assert.equal(listening.server.listening, false, 'new connections are refused as soon as the drain starts');
    release();
    assert.match(await response, /\r\n\r\nfinished$/);
    await closed;
  });

  it('closes a request still in flight when the grace period ends', { timeout: 20_000 }, async () => {
    let arrived!: () => void;
    const requestArrived = new Promise<void>((resolve) => (arrived = resolve));
    const listening = await startListening(
      createServer(() => arrived()),
      LOOPBACK,
    );
    const response = sendRaw(listening.port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await requestArrived;
    await closeGracefully([listening.server], 50);
    assert.equal(await response, '', 'the stuck request is cut without an answer');
  });
});
