/**
 * Graceful shutdown (CONTRIBUTING.md, "HTTP server hygiene"; docs/security.md §7): on SIGTERM the real sidecar
 * stops accepting connections, lets requests in flight finish — a token request waiting on a slow Entra still gets
 * its token — closes idle keep-alive connections at once (so it does not wait out their timeout), deletes pending
 * Arc key files, and exits 0. SIGINT and SIGHUP do the same.
 *
 * "In flight" is observed, not assumed: the test authority sits behind a TCP forwarder that reports when the
 * sidecar's token request reached it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request, Agent } from 'node:http';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RegisteredApp } from '../authority/authority.ts';
import { PATHS, SIDECAR_ENV } from '../../sidecar/contract.ts';
import { startSidecar } from '../helpers/sidecar.ts';
import { startEntraSidecar, startUpstream, type EntraSidecar, type Upstream } from '../helpers/upstream.ts';

function tokenUrl(base: string, resource: string): string {
  return `${base}${PATHS.imds}?api-version=2018-02-01&resource=${encodeURIComponent(resource)}`;
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', () => resolve(true));
  });
}

function exited(entra: EntraSidecar): Promise<number | null> {
  const child = entra.sidecar.child;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('graceful shutdown on SIGTERM', () => {
  let upstream: Upstream;
  let app: RegisteredApp;
  before(async () => {
    upstream = await startUpstream();
    app = upstream.authority.registerApp({ secrets: ['shutdown-client-secret-1'] });
  });
  after(async () => upstream?.stop());

  async function readySidecar(): Promise<EntraSidecar> {
    const entra = await startEntraSidecar(upstream, [{ name: 'app', app, secret: 'shutdown-client-secret-1' }]);
    await waitUntil('readiness', async () => {
      const res = await fetch(`${entra.sidecar.healthUrl}/readyz`);
      await res.text();
      return res.status === 200;
    });
    return entra;
  }

  it('a token request in flight at SIGTERM still gets its token; new connections are refused; exit code 0', async () => {
    const entra = await readySidecar();
    try {
      upstream.authority.setFault({ latencyMs: 3000 });
      const before = upstream.forwarder.clientBytes();
      const inFlight = fetch(tokenUrl(entra.sidecar.tokenUrl, 'https://in-flight.example.net'), { headers: { Metadata: 'true' } });
      await upstream.forwarder.waitForClientBytes(before);
      const exit = exited(entra);
      entra.sidecar.child.kill('SIGTERM');
      const port = Number(new URL(entra.sidecar.tokenUrl).port);
      await waitUntil('the token listener to stop accepting', () => refused(port), 10_000);
      const res = await inFlight;
      const body = (await res.json()) as Record<string, string>;
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.equal(body['resource'], 'https://in-flight.example.net');
      assert.ok((body['access_token'] ?? '').length > 0);
      assert.equal(await exit, 0);
      assert.match(entra.sidecar.logs(), /"msg":"shutting down: draining connections"/);
      assert.match(entra.sidecar.logs(), /"msg":"stopped"/);
    } finally {
      upstream.authority.setFault(undefined);
      await entra.cleanup();
    }
  });

  it('idle keep-alive connections do not hold the exit back', async () => {
    const entra = await readySidecar();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      // One request over a pooled connection, which then stays open and idle (keep-alive timeout: 65 s).
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(tokenUrl(entra.sidecar.tokenUrl, 'https://vault.azure.net'), { agent, headers: { Metadata: 'true' } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 200);
      assert.equal(Object.values(agent.freeSockets).flat().length, 1, 'an idle pooled connection exists');
      const exit = exited(entra);
      entra.sidecar.child.kill('SIGTERM');
      // The helper's stop() would SIGKILL after 15 s: exit code 0 means the idle socket was closed, not waited out.
      assert.equal(await exit, 0);
    } finally {
      agent.destroy();
      await entra.cleanup();
    }
  });

  it('SIGINT drains the same way', async () => {
    const entra = await readySidecar();
    try {
      const exit = exited(entra);
      entra.sidecar.child.kill('SIGINT');
      assert.equal(await exit, 0);
    } finally {
      await entra.cleanup();
    }
  });
});

describe('SIGHUP is handled like SIGTERM', () => {
  it('drains, deletes the pending Arc key files and exits 0 (not killed by the default SIGHUP action)', async () => {
    const keyDir = mkdtempSync(join(tmpdir(), 'mi-anywhere-sighup-'));
    const sidecar = await startSidecar({ env: { [SIDECAR_ENV.arcKeyDir]: keyDir } });
    try {
      const challenge = await fetch(`${sidecar.tokenUrl}${PATHS.arc}?api-version=2020-06-01&resource=https%3A%2F%2Fvault.azure.net`, { headers: { Metadata: 'true' } });
      assert.equal(challenge.status, 401);
      await challenge.text();
      assert.equal(readdirSync(keyDir).length, 1, 'a challenge is pending');
      const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => sidecar.child.once('exit', (code, signal) => resolve({ code, signal })));
      sidecar.child.kill('SIGHUP');
      assert.deepEqual(await exit, { code: 0, signal: null });
      assert.deepEqual(readdirSync(keyDir), [], 'pending key files deleted');
      assert.match(sidecar.logs(), /"signal":"SIGHUP","msg":"shutting down: draining connections"/);
    } finally {
      await sidecar.stop();
      rmSync(keyDir, { recursive: true, force: true });
    }
  });
});
