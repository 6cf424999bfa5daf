/**
 * Golden requests: every `test/fixtures/protocol/<dialect>/<case>.json` is a request exactly as a real client sends
 * it (method, target, headers, body — taken from docs/clients.md and docs/protocols.md, cited in the file's `source`) and the
 * answer the sidecar must give. Files are discovered automatically; adding a case needs no code.
 *
 * Placeholders: `${IDENTITY_HEADER}` in request headers (the sidecar's secret), `${REQUEST_ID}` in expected bodies
 * (the request id the sidecar answered with).
 */
import assert from 'node:assert/strict';
import { globSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { REPO_ROOT, sendRaw, startInProcessSidecar, type InProcessSidecar } from '../../helpers/sidecar.ts';

interface Fixture {
  description: string;
  source: string;
  request: { method: string; target: string; headers: Record<string, string>; body?: string };
  expect: { status: number; clientId?: string; resource?: string; body?: unknown };
}

const dir = join(REPO_ROOT, 'test', 'fixtures', 'protocol');
const files = globSync('*/*.json', { cwd: dir }).sort();

function substitute<T>(value: T, vars: Readonly<Record<string, string>>): T {
  return JSON.parse(JSON.stringify(value).replace(/\$\{([A-Z_]+)\}/g, (_, name: string) => vars[name] ?? `\${${name}}`)) as T;
}

describe('golden client requests (test/fixtures/protocol)', () => {
  let sc: InProcessSidecar;
  before(async () => {
    sc = await startInProcessSidecar();
  });
  after(() => sc.stop());

  it('fixtures exist for every dialect folder', () => {
    const dialects = new Set(files.map((f) => f.split('/')[0]));
    for (const d of ['imds', 'app-service', 'msi-endpoint', 'cloud-shell']) assert.ok(dialects.has(d), `no fixture for ${d}`);
  });

  for (const file of files) {
    const fixture = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Fixture;
    it(`${file}: ${fixture.description}`, async () => {
      assert.ok(fixture.source.length > 0, 'every fixture cites its source');
      const request = substitute(fixture.request, { IDENTITY_HEADER: sc.identityHeader });
      const r = await sendRaw(sc.tokenUrl, request);
      assert.equal(r.status, fixture.expect.status, r.body);
      assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
      const body = r.json();
      if (fixture.expect.body !== undefined) {
        assert.deepEqual(body, substitute(fixture.expect.body, { REQUEST_ID: String(r.headers['x-mi-anywhere-request-id']) }));
      }
      if (fixture.expect.status === 200) {
        assert.equal(body['client_id'], fixture.expect.clientId);
        assert.equal(body['resource'], fixture.expect.resource);
        for (const key of ['error', 'error_description', 'message']) assert.ok(!(key in body), `success body has ${key}`);
        const claims = decodeJwt(String(body['access_token']));
        assert.equal(claims.aud, fixture.expect.resource);
        assert.equal(claims.appid, fixture.expect.clientId);
        assert.match(String(body['expires_on']), /^\d+$/);
        assert.match(String(body['expires_in']), /^\d+$/);
      } else {
        assert.ok(!r.body.includes('unreachable'));
      }
    });
  }
});
