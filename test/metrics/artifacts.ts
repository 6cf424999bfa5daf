/**
 * Reads the monitoring artifacts this suite tests (the Grafana dashboard JSON and the Prometheus alert rules) and
 * extracts what the tests run: every dashboard query (panels and template variables) and every alert expression,
 * with Grafana's template variables substituted. Also finds the Prometheus binaries provisioned by
 * scripts/provision.d/50-prometheus.sh.
 *
 * Test support only: no assertions here, no servers.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';

export const ROOT = join(import.meta.dirname, '..', '..');
export const DASHBOARDS_DIR = join(ROOT, 'charts', 'mi-anywhere', 'dashboards');
export const ALERTS_FILE = join(ROOT, 'charts', 'mi-anywhere', 'files', 'alerts.yaml');
export const ALERT_TESTS_FILE = join(ROOT, 'test', 'metrics', 'alerts.test.yaml');
export const RUNBOOKS_FILE = join(ROOT, 'docs', 'runbooks.md');
export const METRICS_DOC_FILE = join(ROOT, 'docs', 'metrics.md');
export const RUNBOOK_BASE_URL = 'https://github.com/mi-anywhere/mi-anywhere/blob/main/docs/runbooks.md';

// ---------------------------------------------------------------------------------------------------
// Grafana dashboard model (the subset the tests look at)
// ---------------------------------------------------------------------------------------------------

export interface DataSourceRef {
  readonly type?: string;
  readonly uid?: string;
}
export interface GridPos {
  readonly h: number;
  readonly w: number;
  readonly x: number;
  readonly y: number;
}
export interface Target {
  readonly refId: string;
  readonly expr?: string;
  readonly legendFormat?: string;
  readonly datasource?: DataSourceRef;
  readonly instant?: boolean;
}
export interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly description?: string;
  readonly datasource?: DataSourceRef;
  readonly gridPos: GridPos;
  readonly targets?: readonly Target[];
  readonly panels?: readonly Panel[];
  readonly collapsed?: boolean;
  readonly fieldConfig?: { readonly defaults?: { readonly unit?: string } };
}
export interface TemplateVariable {
  readonly name: string;
  readonly type: string;
  readonly query?: string | { readonly query?: string };
  readonly definition?: string;
  readonly datasource?: DataSourceRef;
  readonly includeAll?: boolean;
  readonly allValue?: string;
}
export interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly id: number | null;
  readonly schemaVersion: number;
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly TemplateVariable[] };
  readonly [key: string]: unknown;
}

export interface DashboardFile {
  readonly file: string;
  readonly dashboard: Dashboard;
}

export function loadDashboards(): DashboardFile[] {
  return readdirSync(DASHBOARDS_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ file: f, dashboard: JSON.parse(readFileSync(join(DASHBOARDS_DIR, f), 'utf8')) as Dashboard }));
}

/** Every panel, rows' nested (collapsed) panels included, rows themselves excluded. */
export function allPanels(dashboard: Dashboard): Panel[] {
  const out: Panel[] = [];
  const visit = (panels: readonly Panel[]): void => {
    for (const p of panels) {
      if (p.type === 'row') visit(p.panels ?? []);
      else out.push(p);
    }
  };
  visit(dashboard.panels);
  return out;
}

/** The PromQL text of a query variable (Grafana stores it as a string or as `{ query }`). */
export function variableQuery(v: TemplateVariable): string | undefined {
  if (typeof v.query === 'string') return v.query;
  return v.query?.query;
}

export interface DashboardQuery {
  /** Where the query comes from, for assertion messages: `<file> / <panel title> / <refId>`. */
  readonly where: string;
  readonly panelTitle: string;
  readonly expr: string;
}

export function dashboardQueries(): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  for (const { file, dashboard } of loadDashboards()) {
    for (const panel of allPanels(dashboard)) {
      for (const target of panel.targets ?? []) {
        if (target.expr !== undefined) out.push({ where: `${file} / ${panel.title} / ${target.refId}`, panelTitle: panel.title, expr: target.expr });
      }
    }
  }
  return out;
}

/**
 * `label_values(<selector>, <label>)` of a query variable, as the series selector and the label whose values
 * Grafana lists. Other variable query forms are not used by our dashboards (the lint test pins that).
 */
export function parseLabelValues(query: string): { selector: string; label: string } | undefined {
  const m = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(query.trim());
  return m ? { selector: m[1]!.trim(), label: m[2]! } : undefined;
}

/**
 * Substitutes Grafana's variables the way Grafana does before sending a query to Prometheus: `$name` / `${name}`
 * from `values` (regex-ready strings, e.g. `.*` for "All"), `$__rate_interval` with `rateInterval`.
 */
export function substituteVariables(expr: string, values: Readonly<Record<string, string>>, rateInterval: string): string {
  return expr
    .replaceAll('$__rate_interval', rateInterval)
    .replaceAll('${__rate_interval}', rateInterval)
    .replace(/\$\{([a-zA-Z_][a-zA-Z0-9_]*)\}|\$([a-zA-Z_][a-zA-Z0-9_]*)/g, (whole, braced: string | undefined, bare: string | undefined) => {
      const name = braced ?? bare ?? '';
      const value = values[name];
      if (value === undefined) throw new Error(`no value for dashboard variable ${whole} in: ${expr}`);
      return value;
    });
}

/** Variables referenced by an expression (`$x` or `${x}`), Grafana's global `$__*` ones excluded. */
export function referencedVariables(expr: string): string[] {
  const names = new Set<string>();
  for (const m of expr.matchAll(/\$\{([a-zA-Z_][a-zA-Z0-9_]*)\}|\$([a-zA-Z_][a-zA-Z0-9_]*)/g)) {
    const name = m[1] ?? m[2] ?? '';
    if (!name.startsWith('__')) names.add(name);
  }
  return [...names];
}

// ---------------------------------------------------------------------------------------------------
// Alert rules
// ---------------------------------------------------------------------------------------------------

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}
export interface RuleGroup {
  readonly name: string;
  readonly rules: readonly AlertRule[];
}

export function loadRuleFile(): { readonly groups: readonly RuleGroup[] } & Record<string, unknown> {
  return parseYaml(readFileSync(ALERTS_FILE, 'utf8')) as { readonly groups: readonly RuleGroup[] } & Record<string, unknown>;
}

export function alertRules(): AlertRule[] {
  return loadRuleFile().groups.flatMap((g) => g.rules);
}

/**
 * The alert expression with every threshold comparison made always-true: `> N` / `>= N` become `> -Inf`,
 * `< N` / `<= N` become `< +Inf`. The result keeps the expression's structure (selectors, aggregations, vector
 * matching with `and on (...)`) but returns every series the condition looks at, so "it returns data" proves
 * the metrics and labels the alert depends on exist in a real scrape even when the alert does not fire.
 * Thresholds in alerts.yaml are plain numbers (the lint test pins that), so the rewrite is exact.
 */
export function relaxThresholds(expr: string): string {
  return expr.replace(/(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)(?![\w.])/gi, (_whole, op: string) =>
    op.startsWith('>') ? '> -Inf' : '< +Inf',
  );
}

// ---------------------------------------------------------------------------------------------------
// Metric names in PromQL
// ---------------------------------------------------------------------------------------------------

/** Project and process metric names a PromQL expression reads (`_bucket`/`_sum`/`_count` kept as written). */
export function metricNamesIn(expr: string): string[] {
  const names = new Set<string>();
  for (const m of expr.matchAll(/\b((?:mi_anywhere|process|nodejs)_[a-z0-9_]+)\b/g)) names.add(m[1]!);
  return [...names];
}

/** Family name of a series name: histogram sample suffixes removed. */
export function familyOf(name: string, histograms: ReadonlySet<string>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix) && histograms.has(name.slice(0, -suffix.length))) return name.slice(0, -suffix.length);
  }
  return name;
}

// ---------------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------------

/**
 * Path of `prometheus` or `promtool`: the provisioned link in `$MI_ANYWHERE_CACHE/bin` first, then PATH.
 * Throws with the exact reason when missing, so a test fails instead of being skipped (team rule).
 */
export function findTool(name: 'prometheus' | 'promtool'): string {
  const cache = process.env.MI_ANYWHERE_CACHE ?? join(homedir(), '.cache', 'mi-anywhere');
  const candidates = [join(cache, 'bin', name), ...(process.env.PATH ?? '').split(':').filter(Boolean).map((d) => join(d, name))];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next candidate
    }
  }
  throw new Error(`${name} not found in ${join(cache, 'bin')} or PATH: run scripts/provision.d/50-prometheus.sh (npm test does)`);
}

export interface ToolResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a tool with a timeout (every test stops by itself) and returns its exit status and output. */
export function runTool(path: string, args: readonly string[], options: { cwd?: string; input?: string } = {}): ToolResult {
  const result = spawnSync(path, args, { cwd: options.cwd ?? ROOT, input: options.input, encoding: 'utf8', timeout: 60_000 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
