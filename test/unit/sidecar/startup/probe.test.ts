import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../../../sidecar/config.ts';
import { probe } from '../../../../sidecar/startup/probe.ts';

/** A health listener on 127.0.0.1 port 0 answering `/readyz` with `status`. */
async function healthListener(status: number): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/readyz' ? status : 404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

const configFor = (port: number) => loadConfig({ MI_ANYWHERE_HEALTH_ADDRESS: '127.0.0.1', MI_ANYWHERE_HEALTH_PORT: String(port) }, ['--dev', '--probe']);

describe('probe', () => {
  const servers: Server[] = [];
  after(() => servers.forEach((s) => s.close()));

  it('ready: exit 0, nothing to say', async () => {
    const { server, port } = await healthListener(200);
    servers.push(server);
    assert.deepEqual(await probe(configFor(port)), { exitCode: 0, message: undefined });
  });
  it('not ready: exit 1 with the status', async () => {
    const { server, port } = await healthListener(503);
    servers.push(server);
    assert.deepEqual(await probe(configFor(port)), { exitCode: 1, message: 'not ready: HTTP 503' });
  });
  it('nothing listening: exit 1 with the reason', async () => {
    const { server, port } = await healthListener(200);
    await new Promise((resolve) => server.close(resolve));
    const result = await probe(configFor(port));
    assert.equal(result.exitCode, 1);
    assert.match(result.message ?? '', /^not ready: connect ECONNREFUSED/);
  });
  it('port 0: exit 2, the probe cannot know where to ask', async () => {
    assert.deepEqual(await probe(configFor(0)), { exitCode: 2, message: '--probe needs a fixed MI_ANYWHERE_HEALTH_PORT (it is 0)' });
  });
});
