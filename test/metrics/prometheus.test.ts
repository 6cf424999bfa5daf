/**
 * Metrics, dashboard and alerts against a real Prometheus (Debian's `prometheus` package).
 *
 * Starts the test Entra authority, the real sidecar process in entra mode (secret, certificate, a wrongly configured
 * and a malformed identity) and the real webhook process (serving certificate from files), lets a Prometheus on
 * 127.0.0.1 scrape both every second with the chart's alert rules loaded, and drives traffic in rounds separated by
 * scrapes: tokens through every dialect, and failures (wrong secret header, unknown identity, credential rejected by
 * Entra, upstream 503 outage and connection resets, a rate-limit burst, a short-lived cached token whose background
 * refresh fails, admission denials and unreadable reviews).
 * Then it checks, against Prometheus' HTTP API:
 * - every dashboard query (variables substituted) parses and returns finite data; every variable lists the values;
 * - every alert expression parses; the alerts the traffic must trigger return data (and are pending/firing in
 *   Prometheus' own rule evaluation); the others return data with their thresholds relaxed, so every metric and
 *   label they join on exists;
 * - `promtool check metrics` accepts both scrapes; label values stay in their documented bounds;
 * - no client secret, private key, identity header, Arc key or issued access token appears in any scrape or in any
 *   label value Prometheus stored.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestAuthority, type RegisteredApp, type TestAuthority } from '../authority/authority.ts';
import { createClientCertificate, createTestCertificateAuthority, issueServerCertificate } from '../authority/pki.ts';
import { startSidecar, type SpawnedSidecar } from '../helpers/sidecar.ts';
import {
  ALERTS_FILE,
  ROOT,
  alertRules,
  dashboardQueries,
  findTool,
  loadDashboards,
  parseLabelValues,
  relaxThresholds,
  runTool,
  substituteVariables,
  variableQuery,
} from './artifacts.ts';
import { startPrometheus, type QueryAnswer, type RunningPrometheus, type Sample } from './prometheus-server.ts';
import { startWebhook, type RunningWebhook } from './webhook-process.ts';

/** Target labels a PodMonitor (sidecar) and a ServiceMonitor (webhook) would add. */
const SIDECAR_LABELS = { namespace: 'apps', pod: 'app-1' } as const;
const WEBHOOK_LABELS = { namespace: 'mi-anywhere', pod: 'mi-anywhere-webhook-0' } as const;
/** Dashboard variables as Grafana would send them: the test's namespace/pod, identity "All". */
const VARIABLES = { namespace: SIDECAR_LABELS.namespace, pod: SIDECAR_LABELS.pod, identity: '.*', webhook_namespace: WEBHOOK_LABELS.namespace, datasource: 'prometheus' };
/** Covers the whole test run, so every rate() sees the traffic. */
const RATE_INTERVAL = '5m';

/** Alert rules the injected traffic must really trigger (condition true now; Prometheus shows them pending or firing). */
const TRIGGERED = new Set([
  'MiAnywhereTokenRequestsFailing',
  'MiAnywhereCachedTokenExpiringRefreshFailing',
  'MiAnywhereUpstreamErrorsRising',
  'MiAnywhereCredentialExpiringSoon',
  'MiAnywhereIdentityReloadFailing',
  'MiAnywhereWebhookErrors',
  'MiAnywhereWebhookCertificateExpiring',
]);
/**
 * Rules a bounded test cannot trigger for real; they are evaluated with thresholds relaxed instead (their firing and
 * non-firing behaviour is unit-tested by promtool in rules.test.ts): MiAnywhereWebhookLatencyHigh needs a p99
 * admission latency above 1 s, and the webhook has no knob to slow it down. MiAnywhereRotatedCredentialFailing needs
 * a rotation to a credential Entra rejects while tokens are cached; the fault soak (test/soak/soak.ts) does that end
 * to end and requires the bridge to be counted.
 */
const RELAXED = new Set(['MiAnywhereWebhookLatencyHigh', 'MiAnywhereRotatedCredentialFailing']);
/**
 * Lifetime of the token for the "close to expiry, refresh failing" phase: the cache refreshes a token 2 minutes
 * before its 5-minute floor (sidecar/token/token-cache-policy.ts planRefreshAt), so a 430 s token is refreshed about 10 s
 * after issue, while its 420 s left are already under the alert's 600 s.
 */
const SHORT_TOKEN_LIFETIME_SECONDS = 430;

const DAY_MS = 86_400_000;

interface Secrets {
  /** Every credential and token the test used; none may appear in metrics. */
  readonly values: Set<string>;
}

/** Writes one identity directory (a Secret volume's files). */
function writeIdentity(root: string, name: string, files: Readonly<Record<string, string>>): void {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  for (const [key, value] of Object.entries(files)) writeFileSync(join(dir, key), value, { mode: 0o600 });
}

/** Every `secret` string found in `text`, for the no-leak assertions (returns the offending values, never logs them in full). */
export function findLeaks(text: string, secrets: Iterable<string>): string[] {
  const leaks: string[] = [];
  for (const secret of secrets) {
    if (secret.length >= 8 && text.includes(secret)) leaks.push(`${secret.slice(0, 4)}…(${secret.length} chars)`);
  }
  return leaks;
}

/** Pieces of a JWT that are unique to it: the whole token, the payload and the signature segment. */
function tokenPieces(jwt: string): string[] {
  const parts = jwt.split('.');
  return [jwt, ...(parts.length === 3 ? [parts[1]!, parts[2]!] : [])];
}

function postJson(url: string, body: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'POST', ca, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error('admission request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

function samples(answer: QueryAnswer): readonly Sample[] {
  return Array.isArray(answer.data?.result) && answer.data?.resultType === 'vector' ? (answer.data.result as readonly Sample[]) : [];
}

describe('metrics, dashboard and alerts against a real Prometheus', { timeout: 600_000 }, () => {
  let authority: TestAuthority;
  let sidecar: SpawnedSidecar;
  let webhook: RunningWebhook;
  let prometheus: RunningPrometheus;
  let root: string;
  let webhookCa: string;
  let identityHeader: string;
  const secrets: Secrets = { values: new Set() };
  const apps: Record<string, RegisteredApp> = {};
  const failedAdmissions: string[] = [];

  async function token(path: string, init: RequestInit & { query: Record<string, string> }): Promise<Response> {
    const url = new URL(path, sidecar.tokenUrl);
    for (const [k, v] of Object.entries(init.query)) url.searchParams.set(k, v);
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
    return res;
  }

  /** Reads a token answer; remembers issued access tokens as secrets. */
  async function expectToken(res: Response, what: string): Promise<void> {
    const text = await res.text();
    assert.equal(res.status, 200, `${what}: ${text}`);
    const body = JSON.parse(text) as { access_token?: string };
    assert.ok(body.access_token, what);
    for (const piece of tokenPieces(body.access_token)) secrets.values.add(piece);
  }

  async function expectFailure(res: Response, status: number, what: string): Promise<void> {
    const text = await res.text();
    assert.equal(res.status, status, `${what}: ${text}`);
  }

  const appService = (resource: string, header: string): Promise<Response> =>
    token('/msi/token', { query: { 'api-version': '2019-08-01', resource }, headers: { 'X-IDENTITY-HEADER': header } });
  const imds = (resource: string, clientId?: string): Promise<Response> =>
    token('/metadata/identity/oauth2/token', { query: { 'api-version': '2018-02-01', resource, ...(clientId ? { client_id: clientId } : {}) }, headers: { Metadata: 'true' } });

  /** One round of traffic: successes through every dialect, then each kind of failure. */
  async function round(n: number): Promise<void> {
    const header = identityHeader;
    await expectToken(await appService('https://vault.azure.net', header), 'app service, default identity');
    await expectToken(await appService('https://storage.azure.com/', header), 'app service, storage');
    await expectToken(await imds('https://vault.azure.net', apps.billing!.clientId), 'imds, certificate identity');
    await expectToken(
      await token('/oauth2/token', { query: { 'api-version': '2017-09-01', resource: 'https://management.azure.com/' }, headers: { secret: header } }),
      'msi endpoint',
    );
    await expectToken(
      await token('/oauth2/token', { query: {}, method: 'POST', headers: { Metadata: 'true', 'content-type': 'application/x-www-form-urlencoded' }, body: 'resource=https%3A%2F%2Fvault.azure.net' }),
      'cloud shell',
    );
    // Azure Arc: the 401 challenge names a key file; the second request presents its contents.
    const arcQuery = { 'api-version': '2020-06-01', resource: 'https://vault.azure.net' };
    const challenge = await token('/arc/metadata/identity/oauth2/token', { query: arcQuery, headers: { Metadata: 'true' } });
    await challenge.body?.cancel();
    assert.equal(challenge.status, 401, 'arc challenge');
    const realm = /realm=(\S+)/.exec(challenge.headers.get('www-authenticate') ?? '')?.[1];
    assert.ok(realm, 'arc realm');
    const key = readFileSync(join(root, 'arc', basename(realm)), 'utf8');
    secrets.values.add(key);
    await expectToken(await token('/arc/metadata/identity/oauth2/token', { query: arcQuery, headers: { Metadata: 'true', Authorization: `Basic ${key}` } }), 'arc token');

    // Failures refused before an identity is chosen.
    await expectFailure(await appService('https://vault.azure.net', 'not-the-identity-header'), 401, 'wrong identity header');
    await expectFailure(await imds('https://vault.azure.net', '00000000-0000-0000-0000-00000000abcd'), 400, 'unknown identity');
    // Credential rejected by Entra (wrong client secret): fresh resources so each one reaches the authority.
    for (let i = 0; i < 2; i++) await expectFailure(await imds(`https://rejected-${n}-${i}.example.com`, apps.broken!.clientId), 400, 'rejected credential');
    // Upstream outage: 503 in round 1, connection resets in round 2 (cold resources: nothing cached to serve).
    if (n > 0) {
      authority.setFault(n === 1 ? { status: 503 } : { reset: true });
      try {
        for (let i = 0; i < 2; i++) {
          const res = await appService(`https://outage-${n}-${i}.example.com`, header);
          await res.body?.cancel();
          assert.ok(res.status >= 500, `outage answer ${res.status}`);
        }
      } finally {
        authority.setFault(undefined);
      }
    }

    // Webhook: one of each outcome, plus unreadable reviews.
    const fixture = (name: string): string => readFileSync(join(ROOT, 'test', 'fixtures', 'admission', `${name}.review.json`), 'utf8');
    const admissions: Array<[string, string, RegExp]> = [
      ['mutated', fixture('annotation-minimal'), /"patch"/],
      ['skipped', fixture('not-opted-in'), /"allowed":true/],
      ['denied', fixture('invalid-profile'), /"allowed":false/],
      ['error (not JSON)', '{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionRevi', /"allowed":false/],
      ['error (not a review)', '{"apiVersion":"v1","kind":"ConfigMap"}', /"allowed":false/],
    ];
    for (const [what, body, expected] of admissions) {
      const answer = await postJson(`${webhook.webhookUrl}/mutate`, body, webhookCa);
      if (!expected.test(answer.body)) failedAdmissions.push(`${what}: ${answer.status} ${answer.body.slice(0, 200)}`);
    }
  }

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'mi-anywhere-metrics-'));
    authority = await startTestAuthority();
    const expiringCert = await createClientCertificate({ commonName: 'billing', notAfter: new Date(Date.now() + 2 * DAY_MS) });
    const ordersSecret = `orders-secret-${Math.random().toString(36).slice(2)}`;
    const brokenRight = `broken-right-${Math.random().toString(36).slice(2)}`;
    const brokenWrong = `broken-wrong-${Math.random().toString(36).slice(2)}`;
    for (const s of [ordersSecret, brokenRight, brokenWrong]) secrets.values.add(s);
    for (const line of expiringCert.keyPem.split('\n')) if (line.length >= 40) secrets.values.add(line);
    apps.orders = authority.registerApp({ secrets: [ordersSecret] });
    apps.billing = authority.registerApp({ certificates: [expiringCert.certPem] });
    apps.broken = authority.registerApp({ secrets: [brokenRight] });

    const identities = join(root, 'identities');
    const ids = (app: RegisteredApp): Record<string, string> => ({ tenantId: app.tenantId, clientId: app.clientId });
    writeIdentity(identities, 'orders', { ...ids(apps.orders), clientSecret: ordersSecret });
    writeIdentity(identities, 'billing', { ...ids(apps.billing), 'tls.crt': expiringCert.certPem, 'tls.key': expiringCert.keyPem });
    writeIdentity(identities, 'broken', { ...ids(apps.broken), clientSecret: brokenWrong });
    // A Secret without clientId: fails to load, the others keep working.
    writeIdentity(identities, 'malformed', { tenantId: apps.orders.tenantId });
    mkdirSync(join(root, 'arc'));
    identityHeader = randomBytes(24).toString('hex');

    sidecar = await startSidecar({
      args: [],
      env: {
        // Set explicitly: in entra mode a configured header is printed as a reference, not as its value.
        MI_ANYWHERE_IDENTITY_HEADER: identityHeader,
        MI_ANYWHERE_MODE: 'entra',
        MI_ANYWHERE_IDENTITY_DIR: identities,
        MI_ANYWHERE_DEFAULT_IDENTITY: 'orders',
        MI_ANYWHERE_AUTHORITY_HOST: authority.url,
        MI_ANYWHERE_ARC_KEY_DIR: join(root, 'arc'),
        MI_ANYWHERE_RATE_LIMIT_PER_SECOND: '40',
        NODE_EXTRA_CA_CERTS: authority.caFile,
      },
    });
    secrets.values.add(identityHeader);

    // Webhook serving certificate valid for less than a day (the certificate-expiry alerts must fire).
    const ca = await createTestCertificateAuthority('mi-anywhere metrics test CA');
    const serving = await issueServerCertificate(ca);
    webhookCa = ca.certPem;
    writeFileSync(join(root, 'tls.crt'), serving.certPem);
    writeFileSync(join(root, 'tls.key'), serving.keyPem, { mode: 0o600 });
    for (const line of serving.keyPem.split('\n')) if (line.length >= 40) secrets.values.add(line);
    webhook = await startWebhook({ certFile: join(root, 'tls.crt'), keyFile: join(root, 'tls.key') });

    // Prometheus loads the chart's rule file as a plain rule file (through a symlink, so its error messages name it).
    symlinkSync(ALERTS_FILE, join(root, 'alerts.yaml'));
    prometheus = await startPrometheus({
      targets: [
        { job: 'mi-anywhere-sidecar', url: sidecar.metricsUrl, labels: SIDECAR_LABELS },
        { job: 'mi-anywhere-webhook', url: webhook.metricsUrl, labels: WEBHOOK_LABELS },
      ],
      ruleFiles: [join(root, 'alerts.yaml')],
    });

    // Baseline scrape before any traffic, then three rounds each followed by a scrape, so every counter that a
    // round creates is seen increasing by the next ones (rate() and increase() need two samples).
    await prometheus.waitForScrapesAfter(Date.now());
    for (let n = 0; n < 3; n++) {
      await round(n);
      await prometheus.waitForScrapesAfter(Date.now());
    }
    // A short-lived token whose background refresh then fails (upstream 503 from here on, until the end).
    authority.setTokenLifetime(SHORT_TOKEN_LIFETIME_SECONDS);
    await expectToken(await appService('https://short-lived.example.com', identityHeader), 'short-lived token');
    authority.setFault({ status: 503 });
    // A burst over the configured rate limit (40/s: above the 13 requests of a round even if all three rounds met in one window): some requests get 429.
    const burst = await Promise.all(Array.from({ length: 300 }, () => appService('https://vault.azure.net', identityHeader)));
    let limited = 0;
    for (const res of burst) {
      if (res.status === 429) limited++;
      const text = await res.text();
      const accessToken = (JSON.parse(text) as { access_token?: string }).access_token;
      if (accessToken) for (const piece of tokenPieces(accessToken)) secrets.values.add(piece);
    }
    assert.ok(limited > 0, 'the burst was rate limited');
    const refreshFailed = 'increase(mi_anywhere_token_cache_refreshes_total{identity="orders", result="failure"}[5m]) > 0';
    const refreshDeadline = Date.now() + 90_000;
    while (samples(await prometheus.query(refreshFailed)).length === 0) {
      assert.ok(Date.now() < refreshDeadline, 'a failed background refresh of the short-lived token was scraped');
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    await prometheus.waitForScrapesAfter(Date.now());
    // Two rule evaluations after the last scrape (evaluation interval 1 s).
    const evaluatedAfter = Date.now();
    const deadline = Date.now() + 60_000;
    while ((await prometheus.rules()).some((r) => !(Date.parse(r.lastEvaluation) > evaluatedAfter + 1000))) {
      assert.ok(Date.now() < deadline, 'rules evaluated after the traffic');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });

  after(async () => {
    await prometheus?.stop();
    await webhook?.stop();
    await sidecar?.stop();
    await authority?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('every admission request got the expected answer', () => {
    assert.deepEqual(failedAdmissions, []);
  });

  it('Prometheus scrapes the sidecar and the webhook', async () => {
    const targets = await prometheus.targets();
    assert.deepEqual(targets.map((t) => [t.labels['job'], t.health]).sort(), [
      ['mi-anywhere-sidecar', 'up'],
      ['mi-anywhere-webhook', 'up'],
    ]);
  });

  for (const [program, url] of [
    ['sidecar', () => sidecar.metricsUrl],
    ['webhook', () => webhook.metricsUrl],
  ] as const) {
    it(`promtool check metrics: the ${program} scrape has no lint problems`, async () => {
      const text = await (await fetch(new URL('/metrics', url()))).text();
      assert.match(text, /mi_anywhere_build_info\{/);
      const result = runTool(findTool('promtool'), ['check', 'metrics'], { input: text });
      assert.equal(result.status, 0, result.stdout + result.stderr);
      assert.equal((result.stdout + result.stderr).trim(), '');
    });
  }

  it('every dashboard variable lists the values of this test', async () => {
    const expected: Record<string, string[]> = {
      namespace: [SIDECAR_LABELS.namespace],
      pod: [SIDECAR_LABELS.pod],
      identity: ['orders', 'billing', 'broken', '(none)'],
      webhook_namespace: [WEBHOOK_LABELS.namespace],
    };
    for (const { dashboard } of loadDashboards()) {
      for (const v of dashboard.templating.list) {
        if (v.type !== 'query') continue;
        const parsed = parseLabelValues(substituteVariables(variableQuery(v) ?? '', VARIABLES, RATE_INTERVAL));
        assert.ok(parsed, `variable ${v.name}`);
        const values = await prometheus.labelValues(parsed.label, parsed.selector);
        for (const want of expected[v.name] ?? []) assert.ok(values.includes(want), `variable ${v.name} lists ${want} (got ${values.join(', ')})`);
      }
    }
  });

  for (const q of dashboardQueries()) {
    it(`dashboard query returns data: ${q.where}`, async () => {
      const expr = substituteVariables(q.expr, VARIABLES, RATE_INTERVAL);
      const answer = await prometheus.query(expr);
      assert.equal(answer.status, 'success', `${expr}\n${answer.error}`);
      const result = samples(answer);
      assert.ok(result.length > 0, `no data for ${expr}`);
      assert.ok(
        result.some((s) => Number.isFinite(Number(s.value[1]))),
        `only non-finite values for ${expr}: ${JSON.stringify(result.map((s) => s.value[1]))}`,
      );
    });
  }

  for (const rule of alertRules()) {
    const name = `${rule.alert} (${rule.labels?.severity})`;
    it(`alert expression parses and returns data: ${name}`, async () => {
      assert.ok(TRIGGERED.has(rule.alert) !== RELAXED.has(rule.alert), `${rule.alert} is classified as triggered or relaxed`);
      const full = await prometheus.query(rule.expr);
      assert.equal(full.status, 'success', `${rule.expr}\n${full.error}`);
      if (TRIGGERED.has(rule.alert)) {
        assert.ok(samples(full).length > 0, `${rule.alert} does not fire on the injected failures:\n${rule.expr}`);
      } else {
        const relaxed = relaxThresholds(rule.expr);
        const answer = await prometheus.query(relaxed);
        assert.equal(answer.status, 'success', `${relaxed}\n${answer.error}`);
        assert.ok(samples(answer).length > 0, `no data for ${relaxed}`);
      }
    });
  }

  it('Prometheus loaded every alert rule, evaluates each without error, and has the triggered ones pending or firing', async () => {
    const rules = await prometheus.rules();
    assert.deepEqual(rules.map((r) => r.name).sort(), alertRules().map((r) => r.alert).sort());
    for (const r of rules) {
      assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
      assert.equal(r.type, 'alerting');
      if (TRIGGERED.has(r.name)) assert.ok(r.state === 'pending' || r.state === 'firing', `${r.name} (${r.labels?.['severity']}) is ${r.state}`);
    }
  });

  /** What the traffic did, as Prometheus must have recorded it (each expression must return a sample). */
  const recorded = [
    { name: 'tokens through all five dialects', expr: 'count(sum by (dialect) (mi_anywhere_token_requests_total{code="ok"})) == 5' },
    { name: 'Arc challenges counted apart from failures', expr: 'sum(mi_anywhere_token_requests_total{dialect="arc", code="challenge"}) >= 3' },
    { name: 'rate-limited requests', expr: 'sum(mi_anywhere_token_requests_rate_limited_total) > 0' },
    { name: 'cache hits', expr: 'sum(mi_anywhere_token_cache_lookups_total{result="hit"}) > 0' },
    { name: 'cache entries', expr: 'mi_anywhere_token_cache_entries > 0' },
    { name: 'certificate expiry of the certificate identity (2 days)', expr: 'mi_anywhere_credential_expiry_timestamp_seconds{identity="billing", kind="certificate"} - time() < 172900' },
    { name: 'three identities loaded', expr: 'mi_anywhere_identities == 3' },
    { name: 'the malformed identity failed to load', expr: 'mi_anywhere_identity_load_failing{identity="malformed"} == 1' },
    { name: 'the good identities loaded', expr: 'count(mi_anywhere_identity_load_failing{identity=~"orders|billing|broken"} == 0) == 3' },
    { name: 'upstream rejections of the wrong secret', expr: 'mi_anywhere_upstream_requests_total{identity="broken", outcome="invalid_client"} >= 6' },
    { name: 'failed background refresh', expr: 'mi_anywhere_token_cache_refreshes_total{identity="orders", result="failure"} > 0' },
    { name: 'webhook admissions of every outcome', expr: 'count(mi_anywhere_webhook_admission_requests_total > 0) == 4' },
    { name: 'webhook certificate expiry (23 hours)', expr: 'mi_anywhere_webhook_certificate_expiry_timestamp_seconds - time() < 86400' },
    { name: 'build info of both programs', expr: 'count(mi_anywhere_build_info) == 2' },
  ];
  for (const tc of recorded) {
    it(`Prometheus recorded: ${tc.name}`, async () => {
      const answer = await prometheus.query(tc.expr);
      assert.equal(answer.status, 'success', answer.error);
      assert.ok(samples(answer).length > 0, tc.expr);
    });
  }

  it('label values stay in their documented bounds', async () => {
    const catalogue = new Set([...readFileSync(join(ROOT, 'sidecar', 'errors.ts'), 'utf8').matchAll(/code: '(SIDECAR_ERR_[A-Z_]+)'/g)].map((m) => m[1]!));
    const codes = await prometheus.labelValues('code', 'mi_anywhere_token_requests_total');
    assert.ok(codes.includes('ok') && codes.includes('challenge'), codes.join(', '));
    for (const code of codes) assert.ok(code === 'ok' || code === 'challenge' || catalogue.has(code), `code ${code} is not in the catalogue`);
    for (const want of ['SIDECAR_ERR_UNAUTHORIZED', 'SIDECAR_ERR_IDENTITY_NOT_FOUND', 'SIDECAR_ERR_UPSTREAM_REJECTED', 'SIDECAR_ERR_UPSTREAM_UNAVAILABLE', 'SIDECAR_ERR_RATE_LIMITED']) {
      assert.ok(codes.includes(want), `injected failure ${want} is counted (codes: ${codes.join(', ')})`);
    }
    const identities = await prometheus.labelValues('identity', '{__name__=~"mi_anywhere_.+"}');
    assert.deepEqual(identities.sort(), ['(none)', 'billing', 'broken', 'malformed', 'orders'].sort());
    const audiences = await prometheus.labelValues('audience', '{__name__=~"mi_anywhere_.+"}');
    for (const audience of audiences) assert.match(audience, /^(https:\/\/[a-z0-9.-]+|other)$/, `audience ${audience} is scheme://host`);
    const outcomes = await prometheus.labelValues('outcome', 'mi_anywhere_upstream_requests_total');
    for (const want of ['success', 'invalid_client', 'server_error', 'network_error']) assert.ok(outcomes.includes(want), `upstream outcome ${want}`);
    const admissions = await prometheus.labelValues('outcome', 'mi_anywhere_webhook_admission_requests_total');
    assert.deepEqual(admissions.sort(), ['denied', 'error', 'mutated', 'skipped']);
  });

  it('no secret, key, identity header or issued token appears in any scrape or stored label', async () => {
    assert.ok(secrets.values.size > 10, 'the test collected the secrets it used');
    const texts = [await (await fetch(new URL('/metrics', sidecar.metricsUrl))).text(), await (await fetch(new URL('/metrics', webhook.metricsUrl))).text()];
    for (const label of await prometheus.labelValues('__name__')) texts.push(label);
    const labelNames = (await (await fetch(`${prometheus.url}/api/v1/labels`)).json()) as { data: string[] };
    for (const label of labelNames.data) texts.push(label, ...(await prometheus.labelValues(label)));
    const everything = texts.join('\n');
    assert.ok(everything.includes('mi_anywhere_token_requests_total') && everything.includes('orders'), 'the scan sees the metrics');
    assert.deepEqual(findLeaks(everything, secrets.values), []);
  });

  it('the leak scan finds a planted secret (it can fail)', () => {
    const [secret] = [...secrets.values].filter((s) => s.length >= 8);
    assert.ok(secret);
    assert.equal(findLeaks(`mi_anywhere_x{identity="${secret}"} 1`, [secret]).length, 1);
    assert.deepEqual(findLeaks('mi_anywhere_x{identity="orders"} 1', [secret]), []);
  });
});
