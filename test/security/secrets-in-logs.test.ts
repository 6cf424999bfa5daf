/**
 * The last test of `npm test` (scripts/test.ts names it in RUNS_AFTER_THE_OTHERS): greps every log the
 * suite's programs produced (sidecars, in-process sidecars, test authorities, webhooks — collected by the helpers in
 * `$MI_ANYWHERE_TEST_LOG_DIR`) for every secret the tests registered and for anything shaped like a token or a
 * private key. A finding fails the run listing `file:line: what`, never the secret itself.
 *
 * It first proves the scanner can fail (planted secrets are found), and produces one log of its own with a known
 * header, a rejected header and an issued token, so the scan is never vacuous even when this file runs alone.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startInProcessSidecar } from '../helpers/sidecar.ts';
import { createTestLog, formatFindings, readRegistry, registerSecret, scanLogDir, scanText, testLogDir } from '../helpers/collected-logs.ts';

describe('no secret or token in any log line of the whole test run', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'mi-anywhere-scan-selftest-'));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it('the scanner finds planted secrets, tokens and keys and reports file and line without the value', () => {
    const secret = 'planted-client-secret-0123456789';
    registerSecret('planted client secret', secret, scratch);
    const jwt = `eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3ZhdWx0In0.${'A'.repeat(40)}`;
    const log = createTestLog('selftest', scratch);
    log.write(`{"msg":"ok"}\n{"msg":"oops","secret":"${secret}"}\nBearer ${jwt}\n-----BEGIN PRIVATE KEY-----\n`);
    const { files, findings } = scanLogDir(scratch);
    assert.equal(files.length, 1);
    assert.deepEqual(
      findings.map((f) => [f.line, f.what]),
      [
        [2, 'planted client secret'],
        [3, 'a JWT (access token, client assertion or service-account token)'],
        [4, 'a PEM private key'],
      ],
    );
    assert.ok(!formatFindings(findings).includes(secret), 'the report names the secret, never prints it');
  });

  it('exempts only the dev-mode environment block that prints the endpoint secret for a developer on purpose', () => {
    const secrets = [{ label: 'header', value: 'header-value-123456' }];
    const dev = '# mi-anywhere (dev mode: ...) is serving.\n# profile default\nIDENTITY_HEADER=header-value-123456\n# end of profiles\n';
    assert.deepEqual(scanText('dev', dev, secrets), []);
    const entra = '# mi-anywhere is serving.\n# profile default\nIDENTITY_HEADER=header-value-123456\n# end of profiles\n';
    assert.equal(scanText('entra', entra, secrets).length, 1);
    assert.equal(scanText('after', `${dev}{"msg":"x","h":"header-value-123456"}\n`, secrets).length, 1);
  });

  it('finds none in the logs collected from every program the suite started', async () => {
    // A log of our own: a rejected header, an accepted one, an issued token.
    const sidecar = await startInProcessSidecar();
    try {
      const base = `${sidecar.tokenUrl}/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net`;
      const wrong = await fetch(base, { headers: { 'X-IDENTITY-HEADER': 'wrong-header-value-xyz' } });
      assert.equal(wrong.status, 401);
      await wrong.text();
      const ok = await fetch(base, { headers: { 'X-IDENTITY-HEADER': sidecar.identityHeader } });
      assert.equal(ok.status, 200);
      await ok.json();
    } finally {
      await sidecar.stop();
    }
    const dir = testLogDir();
    const { files, findings } = scanLogDir(dir);
    assert.ok(files.length >= 1, `no log collected in ${dir}`);
    assert.ok(readRegistry(dir).length >= 1, 'no secret registered');
    assert.equal(findings.length, 0, `secrets or tokens in logs (${files.length} files scanned in ${dir}):\n${formatFindings(findings)}`);
  });
});
