/**
 * sidecar/metrics.ts in isolation (no sockets): the audience label reduction and its cardinality cap, series that
 * must exist before the first event (so rate()/increase() and the alerts see the first failure), the computed cache
 * gauges with an injected clock, the identity-load state gauge, and a promtool lint of a registry where every
 * method was called with every closed label value.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import {
  MAX_AUDIENCE_LABELS,
  NO_IDENTITY,
  TOKEN_CODE_CHALLENGE,
  TOKEN_CODE_OK,
  UPSTREAM_OUTCOMES,
  audienceOf,
  createSidecarMetrics,
} from '../../sidecar/metrics.ts';
import { DIALECTS } from '../../sidecar/protocol/dialect.ts';
import { createWebhookMetrics } from '../../webhook/metrics.ts';
import { OUTCOMES } from '../../webhook/admission/handler.ts';
import { findTool, runTool } from './artifacts.ts';

function create(nowSeconds = 1_000) {
  const register = new Registry();
  let now = nowSeconds;
  const metrics = createSidecarMetrics({ register, version: '1.2.3', nowSeconds: () => now });
  return { register, metrics, setNow: (s: number) => (now = s) };
}

async function text(register: Registry): Promise<string> {
  return register.metrics();
}

/** Lines of one metric family's samples (`name{...} value`), without HELP/TYPE. */
function samplesOf(exposition: string, name: string): string[] {
  return exposition.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

describe('sidecar metrics', () => {
  const audiences = [
    { name: 'URL: scheme and host only', input: 'https://vault.azure.net/', want: 'https://vault.azure.net' },
    { name: 'path, query and fragment dropped', input: 'https://myacct.blob.core.windows.net/container/x?sig=SECRET#f', want: 'https://myacct.blob.core.windows.net' },
    { name: 'user-info dropped', input: 'https://user:password@example.com/', want: 'https://example.com' },
    { name: 'scope suffix dropped', input: 'https://graph.microsoft.com/.default', want: 'https://graph.microsoft.com' },
    { name: 'app id URI keeps its host', input: 'api://my-api/scope', want: 'api://my-api' },
    { name: 'GUID app id, lower-cased', input: '1F2E3D4C-0000-4000-8000-00000000ABCD', want: '1f2e3d4c-0000-4000-8000-00000000abcd' },
    { name: 'case folded', input: 'HTTPS://Vault.Azure.NET', want: 'https://vault.azure.net' },
    { name: 'not a URL', input: 'just some text', want: 'other' },
    { name: 'empty', input: '', want: 'other' },
    { name: 'port kept (part of the host)', input: 'https://127.0.0.1:8443/x', want: 'https://127.0.0.1:8443' },
  ];
  for (const tc of audiences) {
    it(`audienceOf: ${tc.name}`, () => assert.equal(audienceOf(tc.input), tc.want));
  }

  it(`caps distinct audience labels at ${MAX_AUDIENCE_LABELS}, then counts "other"`, async () => {
    const { register, metrics } = create();
    for (let i = 0; i < MAX_AUDIENCE_LABELS + 20; i++) {
      metrics.tokenRequest({ dialect: 'imds', identity: 'orders', resource: `https://r${i}.example.com/`, code: TOKEN_CODE_OK }, 0.001);
    }
    const lines = samplesOf(await text(register), 'mi_anywhere_token_requests_total');
    assert.equal(lines.length, MAX_AUDIENCE_LABELS + 1);
    assert.ok(lines.some((l) => l.includes('audience="other"') && l.endsWith(' 20')), lines.join('\n'));
    // Seen audiences keep their own label after the cap.
    metrics.tokenRequest({ dialect: 'imds', identity: 'orders', resource: 'https://r0.example.com/', code: TOKEN_CODE_OK }, 0.001);
    assert.ok(samplesOf(await text(register), 'mi_anywhere_token_requests_total').some((l) => l.includes('audience="https://r0.example.com"') && l.endsWith(' 2')));
  });

  it('pre-creates the series the alerts need at 0 before any event', async () => {
    const { register, metrics } = create();
    const before = await text(register);
    assert.deepEqual(samplesOf(before, 'mi_anywhere_token_cache_lookups_total').sort(), [
      'mi_anywhere_token_cache_lookups_total{result="hit"} 0',
      'mi_anywhere_token_cache_lookups_total{result="miss"} 0',
    ]);
    assert.equal(samplesOf(before, 'mi_anywhere_token_requests_rate_limited_total').length, DIALECTS.length);
    metrics.identityLoad('orders', 'success');
    const after = await text(register);
    for (const outcome of UPSTREAM_OUTCOMES) assert.ok(after.includes(`mi_anywhere_upstream_requests_total{identity="orders",outcome="${outcome}"} 0`), outcome);
    for (const result of ['success', 'failure']) assert.ok(after.includes(`mi_anywhere_token_cache_refreshes_total{identity="orders",result="${result}"} 0`), result);
    assert.ok(after.includes('mi_anywhere_identity_loads_total{identity="orders",result="failure"} 0'));
    assert.ok(after.includes('mi_anywhere_identity_loads_total{identity="orders",result="success"} 1'));
    assert.ok(after.includes('mi_anywhere_identity_load_failing{identity="orders"} 0'));
  });

  it('identity_load_failing follows the most recent load of each identity', async () => {
    const { register, metrics } = create();
    const table: Array<[string, 'success' | 'failure', string]> = [
      ['orders', 'success', '0'],
      ['orders', 'failure', '1'],
      ['orders', 'success', '0'],
      ['billing', 'failure', '1'],
    ];
    for (const [identity, result, want] of table) {
      metrics.identityLoad(identity, result);
      assert.ok((await text(register)).includes(`mi_anywhere_identity_load_failing{identity="${identity}"} ${want}`), `${identity} ${result}`);
    }
  });

  it('computes cache entries and seconds-to-expiry at scrape time with the injected clock', async () => {
    const { register, metrics, setNow } = create(1_000);
    let tokens = [
      { identity: 'orders', resource: 'https://vault.azure.net/', expiresOnSeconds: 4_600 },
      { identity: 'billing', resource: 'https://storage.azure.com/x?sv=1', expiresOnSeconds: 1_600 },
    ];
    metrics.observeCache(() => tokens);
    let out = await text(register);
    assert.ok(out.includes('mi_anywhere_token_cache_entries 2'));
    assert.ok(out.includes('mi_anywhere_token_expiry_seconds{identity="orders",audience="https://vault.azure.net"} 3600'));
    assert.ok(out.includes('mi_anywhere_token_expiry_seconds{identity="billing",audience="https://storage.azure.com"} 600'));
    setNow(1_300);
    tokens = [tokens[0]!];
    out = await text(register);
    assert.ok(out.includes('mi_anywhere_token_cache_entries 1'));
    assert.ok(out.includes('mi_anywhere_token_expiry_seconds{identity="orders",audience="https://vault.azure.net"} 3300'));
    assert.equal(samplesOf(out, 'mi_anywhere_token_expiry_seconds').length, 1, 'an evicted token leaves no stale series');
  });

  it('credential expiry: set when known, removed when unknown', async () => {
    const { register, metrics } = create();
    metrics.credentialExpiry('billing', 'certificate', 1_900_000_000);
    assert.ok((await text(register)).includes('mi_anywhere_credential_expiry_timestamp_seconds{identity="billing",kind="certificate"} 1900000000'));
    metrics.credentialExpiry('billing', 'certificate', undefined);
    assert.equal(samplesOf(await text(register), 'mi_anywhere_credential_expiry_timestamp_seconds').length, 0);
  });

  it('upstream latency is labelled by identity and outcome', async () => {
    const { register, metrics } = create();
    metrics.upstreamRequest('orders', 'throttled', 0.2);
    const out = await text(register);
    assert.ok(out.includes('mi_anywhere_upstream_requests_total{identity="orders",outcome="throttled"} 1'));
    assert.ok(out.includes('mi_anywhere_upstream_request_duration_seconds_count{identity="orders",outcome="throttled"} 1'));
  });

  it('build info carries version and program', async () => {
    const { register } = create();
    assert.ok((await text(register)).includes('mi_anywhere_build_info{version="1.2.3",program="sidecar"} 1'));
  });

  it('promtool check metrics accepts both programs with every closed label value populated', async () => {
    const { register, metrics } = create();
    metrics.observeCache(() => [{ identity: 'orders', resource: 'https://vault.azure.net', expiresOnSeconds: 5_000 }]);
    for (const dialect of DIALECTS) {
      for (const code of [TOKEN_CODE_OK, TOKEN_CODE_CHALLENGE, 'SIDECAR_ERR_UNAUTHORIZED']) {
        metrics.tokenRequest({ dialect, identity: code === TOKEN_CODE_OK ? 'orders' : NO_IDENTITY, resource: 'https://vault.azure.net', code }, 0.0003);
      }
      metrics.rateLimited(dialect);
    }
    for (const outcome of UPSTREAM_OUTCOMES) metrics.upstreamRequest('orders', outcome, 0.3);
    for (const result of ['hit', 'miss'] as const) metrics.cacheLookup(result);
    for (const result of ['success', 'failure'] as const) {
      metrics.cacheRefresh('orders', result);
      metrics.identityLoad('orders', result);
    }
    metrics.credentialExpiry('orders', 'certificate', 2_000_000_000);
    metrics.credentialExpiry('orders', 'client_secret', 2_000_000_000);
    metrics.identities(1);
    const webhookRegister = new Registry();
    const webhook = createWebhookMetrics({ register: webhookRegister, version: '1.2.3' });
    for (const outcome of OUTCOMES) webhook.admission(outcome, 0.002);
    webhook.certificateExpiry(2_000_000_000);
    for (const exposition of [await text(register), await webhookRegister.metrics()]) {
      const result = runTool(findTool('promtool'), ['check', 'metrics'], { input: exposition });
      assert.equal(result.status, 0, result.stdout + result.stderr);
      assert.equal((result.stdout + result.stderr).trim(), '');
      assert.doesNotMatch(exposition, /^nodejs_active_(handles|requests|resources)_total /m);
    }
  });
});
