/**
 * Static checks of the Grafana dashboard(s) shipped in the chart and of docs/metrics.md: the dashboard is in
 * Grafana's provisioning form (no `__inputs`, datasource chosen by a variable), its layout and references are
 * consistent, it shows every view docs/metrics.md ("Dashboard") lists, and every metric the programs export is documented and shown.
 * The live half (every query returns data from a real Prometheus) is prometheus.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { createSidecarMetrics } from '../../sidecar/metrics.ts';
import { createWebhookMetrics } from '../../webhook/metrics.ts';
import {
  METRICS_DOC_FILE,
  alertRules,
  allPanels,
  dashboardQueries,
  familyOf,
  loadDashboards,
  metricNamesIn,
  parseLabelValues,
  referencedVariables,
  substituteVariables,
  variableQuery,
  type Panel,
} from './artifacts.ts';

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };
/** Panel types of Grafana core that this dashboard may use. */
const PANEL_TYPES = new Set(['timeseries', 'stat', 'bargauge', 'table', 'gauge', 'text']);

interface Family {
  readonly name: string;
  readonly type: string;
  readonly program: 'sidecar' | 'webhook';
}

async function exportedFamilies(): Promise<Family[]> {
  const sidecar = new Registry();
  createSidecarMetrics({ register: sidecar, version: 'test', nowSeconds: () => 0 });
  const webhook = new Registry();
  createWebhookMetrics({ register: webhook, version: 'test' });
  const out: Family[] = [];
  for (const m of await sidecar.getMetricsAsJSON()) out.push({ name: m.name, type: String(m.type), program: 'sidecar' });
  for (const m of await webhook.getMetricsAsJSON()) out.push({ name: m.name, type: String(m.type), program: 'webhook' });
  return out;
}

function overlaps(a: Panel, b: Panel): boolean {
  const [p, q] = [a.gridPos, b.gridPos];
  return p.x < q.x + q.w && q.x < p.x + p.w && p.y < q.y + q.h && q.y < p.y + p.h;
}

describe('Grafana dashboards', () => {
  const dashboards = loadDashboards();

  it('the chart ships the mi-anywhere dashboard', () => {
    assert.deepEqual(
      dashboards.map((d) => d.file),
      ['mi-anywhere.json'],
    );
  });

  for (const { file, dashboard } of dashboards) {
    describe(file, () => {
      it('is in provisioning form: no __inputs/__requires, id null, stable uid, schemaVersion', () => {
        assert.equal('__inputs' in dashboard, false);
        assert.equal('__requires' in dashboard, false);
        assert.equal(dashboard.id, null);
        assert.match(dashboard.uid, /^[a-zA-Z0-9_-]{1,40}$/);
        assert.ok(dashboard.title.length > 0);
        assert.ok(Number.isInteger(dashboard.schemaVersion) && dashboard.schemaVersion >= 36, 'schemaVersion >= 36 (Grafana 9+)');
        assert.ok(typeof dashboard['time'] === 'object' && dashboard['time'] !== null, 'has a time range');
        assert.equal(dashboard['editable'], true);
        // No hard-coded data source anywhere: every reference goes through the ${datasource} variable.
        const text = JSON.stringify(dashboard);
        for (const m of text.matchAll(/"uid":"([^"]*)"/g)) {
          assert.ok(['${datasource}', '-- Grafana --', dashboard.uid].includes(m[1]!), `hard-coded uid ${m[1]}`);
        }
      });

      it('has a Prometheus datasource variable first, then namespace, pod and identity variables', () => {
        const vars = dashboard.templating.list;
        assert.equal(vars[0]?.name, 'datasource');
        assert.equal(vars[0]?.type, 'datasource');
        assert.equal(vars[0]?.query, 'prometheus');
        const names = vars.map((v) => v.name);
        for (const required of ['namespace', 'pod', 'identity']) assert.ok(names.includes(required), `variable ${required}`);
        for (const v of vars.slice(1)) {
          assert.equal(v.type, 'query', v.name);
          assert.deepEqual(v.datasource, DATASOURCE, `${v.name} uses the datasource variable`);
          const query = variableQuery(v);
          assert.ok(query !== undefined && parseLabelValues(query) !== undefined, `${v.name}: label_values(<selector>, <label>)`);
          assert.equal(v.includeAll, true, `${v.name} offers All`);
          assert.equal(v.allValue, '.*', `${v.name}: All matches everything (regex matchers)`);
        }
      });

      it('panels: unique ids, Prometheus datasource variable, titles, descriptions, targets with unique refIds', () => {
        const ids = new Set<number>();
        const visit = (panels: readonly Panel[]): void => {
          for (const p of panels) {
            assert.ok(!ids.has(p.id), `duplicate panel id ${p.id}`);
            ids.add(p.id);
            if (p.type === 'row') {
              visit(p.panels ?? []);
              continue;
            }
            assert.ok(PANEL_TYPES.has(p.type), `${p.title}: panel type ${p.type}`);
            assert.ok(p.title.length > 0);
            assert.ok((p.description ?? '').length > 20, `${p.title}: description`);
            assert.deepEqual(p.datasource, DATASOURCE, `${p.title}: datasource`);
            assert.ok((p.targets ?? []).length > 0, `${p.title}: has targets`);
            const refIds = new Set<string>();
            for (const t of p.targets ?? []) {
              assert.ok(!refIds.has(t.refId), `${p.title}: duplicate refId ${t.refId}`);
              refIds.add(t.refId);
              assert.deepEqual(t.datasource, DATASOURCE, `${p.title}/${t.refId}: datasource`);
              assert.ok((t.expr ?? '').trim().length > 0, `${p.title}/${t.refId}: expr`);
            }
            assert.ok(typeof p.fieldConfig?.defaults?.unit === 'string', `${p.title}: unit`);
          }
        };
        visit(dashboard.panels);
      });

      it('layout: panels inside the 24-column grid and never overlapping; open rows hold no panels', () => {
        // Grafana keeps an open row's panels at the top level; only a collapsed row nests them.
        for (const row of dashboard.panels.filter((p) => p.type === 'row' && p.collapsed !== true)) {
          assert.deepEqual(row.panels ?? [], [], `open row ${row.title} nests panels`);
        }
        const placed = dashboard.panels;
        for (const p of placed) {
          const g = p.gridPos;
          assert.ok(g.w >= 1 && g.h >= 1 && g.x >= 0 && g.y >= 0, `${p.title}: gridPos`);
          assert.ok(g.x + g.w <= 24, `${p.title}: beyond 24 columns`);
        }
        for (let i = 0; i < placed.length; i++) {
          for (let j = i + 1; j < placed.length; j++) {
            assert.ok(!overlaps(placed[i]!, placed[j]!), `${placed[i]!.title} overlaps ${placed[j]!.title}`);
          }
        }
      });

      it('every variable a query uses is defined, and every defined variable is used', () => {
        const defined = new Set(dashboard.templating.list.map((v) => v.name));
        const used = new Set<string>(['datasource']);
        const exprs = [...allPanels(dashboard).flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? '')), ...dashboard.templating.list.map((v) => variableQuery(v) ?? '')];
        for (const expr of exprs) {
          for (const name of referencedVariables(expr)) {
            assert.ok(defined.has(name), `undefined variable $${name} in ${expr}`);
            used.add(name);
          }
        }
        for (const name of defined) assert.ok(used.has(name), `variable ${name} is never used`);
      });
    });
  }

  it('has a panel for issuance, latency percentiles, errors, cache, upstream, expiries, the webhook and memory; sidecar queries filter by namespace and pod', () => {
    const queries = dashboardQueries();
    const panelWith = (pattern: RegExp): string[] => [...new Set(queries.filter((q) => pattern.test(q.expr)).map((q) => q.panelTitle))];
    const required: ReadonlyArray<readonly [string, RegExp]> = [
      ['issuance rate by identity and dialect', /sum by \(identity, dialect\) \(rate\(mi_anywhere_token_requests_total\{[^}]*code="ok"/],
      ['p50 request latency', /histogram_quantile\(0\.5, .*mi_anywhere_token_request_duration_seconds_bucket/],
      ['p95 request latency', /histogram_quantile\(0\.95, .*mi_anywhere_token_request_duration_seconds_bucket/],
      ['p99 request latency', /histogram_quantile\(0\.99, .*mi_anywhere_token_request_duration_seconds_bucket/],
      ['error rate by code', /sum by \(code[^)]*\) \(rate\(mi_anywhere_token_requests_total\{[^}]*code!~"ok\|challenge"/],
      ['cache hit ratio', /mi_anywhere_token_cache_lookups_total\{[^}]*result="hit"[^/]*\/ sum\(rate\(mi_anywhere_token_cache_lookups_total/],
      ['upstream latency by outcome', /histogram_quantile\([^,]+, sum by \(le, outcome\) \(rate\(mi_anywhere_upstream_request_duration_seconds_bucket/],
      ['upstream errors by outcome', /sum by \([^)]*outcome\) \(rate\(mi_anywhere_upstream_requests_total\{[^}]*outcome!="success"/],
      ['token time-to-expiry', /mi_anywhere_token_expiry_seconds/],
      ['credential expiry', /mi_anywhere_credential_expiry_timestamp_seconds/],
      ['webhook admissions by outcome', /sum by \(outcome\) \(rate\(mi_anywhere_webhook_admission_requests_total/],
      ['webhook latency', /histogram_quantile\([^,]+, .*mi_anywhere_webhook_admission_duration_seconds_bucket/],
      ['process memory', /process_resident_memory_bytes/],
    ];
    for (const [what, pattern] of required) assert.ok(panelWith(pattern).length > 0, `no panel shows ${what}`);
    // Templated by namespace, pod and identity: every sidecar query filters on namespace and pod.
    for (const q of queries) {
      if (/mi_anywhere_webhook_|program="webhook"|mi_anywhere_build_info\{namespace/.test(q.expr)) continue;
      assert.match(q.expr, /namespace=~"\$namespace", pod=~"\$pod"/, `${q.where} is not filtered by namespace and pod`);
    }
  });

  it('substituteVariables replaces $x, ${x} and $__rate_interval, and refuses unknown variables', () => {
    assert.equal(substituteVariables('rate(m{a=~"$a", b=~"${b}"}[$__rate_interval])', { a: 'x', b: '.*' }, '1m'), 'rate(m{a=~"x", b=~".*"}[1m])');
    assert.throws(() => substituteVariables('m{a=~"$nope"}', {}, '1m'), /no value for dashboard variable \$nope/);
  });
});

describe('docs/metrics.md', () => {
  it('documents every metric the sidecar and the webhook export, with its type', async () => {
    const doc = readFileSync(METRICS_DOC_FILE, 'utf8');
    for (const family of await exportedFamilies()) {
      if (!family.name.startsWith('mi_anywhere_')) {
        assert.ok(doc.includes(family.name) || braceListed(doc, family.name), `docs/metrics.md does not mention ${family.name}`);
        continue;
      }
      const row = doc.split('\n').find((line) => line.startsWith(`| \`${family.name}\` |`) && (family.name !== 'mi_anywhere_build_info' || line.includes(`program="${family.program}"`)));
      assert.ok(row !== undefined, `docs/metrics.md has no table row for ${family.name} (${family.program})`);
      assert.equal(row.split('|')[2]?.trim(), family.type, `${family.name}: documented type`);
    }
  });

  it('every mi_anywhere_ metric is shown on the dashboard or used by an alert, and every metric they use exists', async () => {
    const families = await exportedFamilies();
    const names = new Set(families.map((f) => f.name));
    const histograms = new Set(families.filter((f) => f.type === 'histogram').map((f) => f.name));
    const used = new Set<string>();
    for (const expr of [...dashboardQueries().map((q) => q.expr), ...alertRules().map((r) => r.expr)]) {
      for (const name of metricNamesIn(expr)) {
        const family = familyOf(name, histograms);
        assert.ok(names.has(family), `${name} is used by a query but no program exports it`);
        used.add(family);
      }
    }
    for (const name of names) {
      if (name.startsWith('mi_anywhere_')) assert.ok(used.has(name), `${name} appears on no panel and in no alert`);
    }
  });
});

/** `nodejs_heap_space_size_{total,used,available}_bytes` style mentions in the docs. */
function braceListed(doc: string, name: string): boolean {
  for (const m of doc.matchAll(/`([a-z_]*)\{([a-z0-9_,]+)\}([a-z_]*)(?:\{[a-z,]+\})?`/g)) {
    for (const alt of m[2]!.split(',')) if (`${m[1]}${alt}${m[3]}` === name) return true;
  }
  return false;
}
