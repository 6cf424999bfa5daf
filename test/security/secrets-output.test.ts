/**
 * Where secrets must not appear besides log lines (docs/security.md §5): start-up output in entra mode (the configured
 * `IDENTITY_HEADER` is referenced by name, never printed), crash/config-error output, metrics, and error bodies.
 * The suite-wide scan of every log (test/security/secrets-in-logs.test.ts) covers the log lines themselves.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PATHS, SIDECAR_ENV } from '../../sidecar/contract.ts';
import { startInProcessSidecar, startSidecar } from '../helpers/sidecar.ts';
import { startEntraSidecar, startUpstream } from '../helpers/upstream.ts';
import { registerSecret, SECRET_SHAPES } from '../helpers/collected-logs.ts';

const JWT = SECRET_SHAPES[0]!.pattern;

describe('secrets stay out of output, metrics and error bodies', () => {
  it('entra mode prints $MI_ANYWHERE_IDENTITY_HEADER, never the configured value', async () => {
    const upstream = await startUpstream();
    const app = upstream.authority.registerApp({ secrets: ['output-client-secret-1'] });
    const header = 'configured-identity-header-0123456789';
    registerSecret('configured identity header (entra mode)', header);
    const entra = await startEntraSidecar(upstream, [{ name: 'app', app, secret: 'output-client-secret-1' }], { [SIDECAR_ENV.identityHeader]: header });
    try {
      const profile = entra.sidecar.profiles.get('default');
      assert.equal(profile?.['IDENTITY_HEADER'], `$${SIDECAR_ENV.identityHeader}`);
      const res = await fetch(`${entra.sidecar.tokenUrl}${PATHS.appService}?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net`, { headers: { 'X-IDENTITY-HEADER': header } });
      const body = (await res.json()) as Record<string, string>;
      assert.equal(res.status, 200, JSON.stringify(body));
      const logs = entra.sidecar.logs();
      assert.ok(!logs.includes(header), 'configured header printed');
      assert.ok(!logs.includes('output-client-secret-1'), 'client secret printed');
      assert.ok(!logs.includes(body['access_token'] ?? '-'), 'token printed');
      assert.doesNotMatch(logs, JWT);
    } finally {
      await entra.cleanup();
      await upstream.stop();
    }
  });

  it('a configuration error names the variable and the rule, never the rejected secret value', async () => {
    const bad = 'has spaces so it is rejected 0123456789';
    registerSecret('rejected identity header', bad);
    await assert.rejects(startSidecar({ env: { [SIDECAR_ENV.identityHeader]: bad } }), (e: Error) => {
      assert.match(e.message, /exited \(code 2/);
      assert.match(e.message, /MI_ANYWHERE_IDENTITY_HEADER: must be printable ASCII without spaces/);
      assert.ok(!e.message.includes(bad), 'the value is not echoed');
      return true;
    });
  });

  it('metrics carry no secret, token, selector or resource path/query, whatever the requests', async () => {
    const sidecar = await startInProcessSidecar();
    try {
      const tokens: string[] = [];
      const resources = ['https://vault.azure.net/secret-path?sig=query-secret-value', 'api://00000000-1111-2222-3333-444444444444/.default'];
      for (const resource of resources) {
        const res = await fetch(`${sidecar.tokenUrl}${PATHS.appService}?api-version=2019-08-01&resource=${encodeURIComponent(resource)}`, { headers: { 'X-IDENTITY-HEADER': sidecar.identityHeader } });
        const body = (await res.json()) as Record<string, string>;
        assert.equal(res.status, 200);
        tokens.push(body['access_token'] ?? '');
        const wrong = await fetch(`${sidecar.tokenUrl}${PATHS.appService}?api-version=2019-08-01&resource=${encodeURIComponent(resource)}&client_id=guess-client-id-secretish`, { headers: { 'X-IDENTITY-HEADER': 'wrong-header-value-abcdef' } });
        await wrong.text();
      }
      const metrics = await (await fetch(`${sidecar.metricsUrl}/metrics`)).text();
      for (const needle of [sidecar.identityHeader, 'wrong-header-value-abcdef', 'guess-client-id-secretish', 'secret-path', 'query-secret-value', ...tokens]) {
        assert.ok(!metrics.includes(needle), `metrics contain ${needle.slice(0, 12)}…`);
      }
      assert.doesNotMatch(metrics, JWT);
      assert.match(metrics, /audience="https:\/\/vault\.azure\.net"/, 'resources are reduced to their audience');
    } finally {
      await sidecar.stop();
    }
  });

  it('error bodies never carry the expected secret, the presented one, or a pending Arc key', async () => {
    const sidecar = await startInProcessSidecar();
    try {
      const challenge = await fetch(`${sidecar.tokenUrl}${PATHS.arc}?api-version=2020-06-01&resource=x`, { headers: { Metadata: 'true' } });
      await challenge.text();
      const pendingKeys = [...(sidecar.arcFs.files?.values() ?? [])].map((f) => f.data);
      assert.equal(pendingKeys.length, 1);
      const answers = await Promise.all([
        fetch(`${sidecar.tokenUrl}${PATHS.arc}?api-version=2020-06-01&resource=x`, { headers: { Metadata: 'true', Authorization: 'Basic presented-wrong-key-123' } }),
        fetch(`${sidecar.tokenUrl}${PATHS.appService}?api-version=2019-08-01&resource=x`, { headers: { 'X-IDENTITY-HEADER': 'presented-wrong-header-123' } }),
        fetch(`${sidecar.tokenUrl}${PATHS.msiEndpoint}?resource=x`, { headers: { secret: 'presented-wrong-secret-123' } }),
      ]);
      for (const res of answers) {
        const text = await res.text();
        assert.equal(res.status, 401, text);
        for (const needle of [sidecar.identityHeader, ...pendingKeys, 'presented-wrong-key-123', 'presented-wrong-header-123', 'presented-wrong-secret-123']) {
          assert.ok(!text.includes(needle), `error body contains ${needle.slice(0, 10)}…: ${text}`);
        }
      }
    } finally {
      await sidecar.stop();
    }
  });
});
