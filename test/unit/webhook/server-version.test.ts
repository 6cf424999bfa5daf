import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readServerVersion } from '../../../webhook/server-version.ts';
import { createTestCertificateAuthority, issueServerCertificate } from '../../authority/pki.ts';

describe('readServerVersion (in-cluster GET /version without the client library)', () => {
  let server: Server;
  let port: number;
  let dir: string;
  let otherCaDir: string;
  const seen: Array<{ path: string | undefined; authorization: string | undefined }> = [];
  let answer: { status: number; body: string } = { status: 200, body: '' };

  before(async () => {
    const ca = await createTestCertificateAuthority('server-version test CA');
    const serving = await issueServerCertificate(ca, ['127.0.0.1']);
    const other = await createTestCertificateAuthority('another CA');
    dir = mkdtempSync(join(tmpdir(), 'mi-anywhere-sa-'));
    writeFileSync(join(dir, 'token'), 'service-account-token\n');
    writeFileSync(join(dir, 'ca.crt'), ca.certPem);
    otherCaDir = mkdtempSync(join(tmpdir(), 'mi-anywhere-sa-other-'));
    writeFileSync(join(otherCaDir, 'token'), 't');
    writeFileSync(join(otherCaDir, 'ca.crt'), other.certPem);
    server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
      seen.push({ path: req.url, authorization: req.headers.authorization });
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    port = typeof address === 'object' && address !== null ? address.port : 0;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
    rmSync(otherCaDir, { recursive: true, force: true });
  });

  it('sends the service-account token and parses major/minor', async () => {
    answer = { status: 200, body: JSON.stringify({ major: '1', minor: '29+', gitVersion: 'v1.29.3-gke.1' }) };
    const version = await readServerVersion({ host: '127.0.0.1', port }, { dir });
    assert.deepEqual(version, { major: '1', minor: '29+', gitVersion: 'v1.29.3-gke.1' });
    assert.deepEqual(seen.at(-1), { path: '/version', authorization: 'Bearer service-account-token' });
  });

  const failures: Array<{ name: string; status: number; body: string; want: RegExp }> = [
    { name: 'an error status', status: 401, body: '{}', want: /answered 401/ },
    { name: 'an answer without major/minor', status: 200, body: '{"gitVersion":"v1"}', want: /no major\/minor/ },
    { name: 'an answer that is not JSON', status: 200, body: '<html>', want: /JSON/ },
  ];
  for (const tc of failures) {
    it(`rejects ${tc.name}`, async () => {
      answer = { status: tc.status, body: tc.body };
      await assert.rejects(readServerVersion({ host: '127.0.0.1', port }, { dir }), tc.want);
    });
  }

  it('verifies the server against the service-account CA', async () => {
    answer = { status: 200, body: JSON.stringify({ major: '1', minor: '30' }) };
    await assert.rejects(readServerVersion({ host: '127.0.0.1', port }, { dir: otherCaDir }), /certificate/);
  });
});
