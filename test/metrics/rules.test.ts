/**
 * The alert rules (charts/mi-anywhere/files/alerts.yaml): promtool accepts them, promtool's unit tests
 * (test/metrics/alerts.test.yaml) pass and cover every alert with firing and non-firing cases, every alert carries
 * the annotations and labels operators need, and every runbook link lands on a complete section of docs/runbooks.md.
 * The file stays a plain `groups:` document so the chart's PrometheusRule can embed it verbatim.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import {
  ALERTS_FILE,
  ALERT_TESTS_FILE,
  METRICS_DOC_FILE,
  RUNBOOKS_FILE,
  RUNBOOK_BASE_URL,
  alertRules,
  findTool,
  loadRuleFile,
  relaxThresholds,
  runTool,
} from './artifacts.ts';

interface AlertTestFile {
  readonly rule_files: readonly string[];
  readonly tests: ReadonlyArray<{
    readonly name: string;
    readonly alert_rule_test?: ReadonlyArray<{ readonly alertname: string; readonly exp_alerts?: readonly unknown[] | null }>;
  }>;
}

const alertNames = [...new Set(alertRules().map((r) => r.alert))];

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
function githubAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** `## Heading` -> section text, for the second-level sections of docs/runbooks.md. */
function runbookSections(): Map<string, string> {
  const sections = new Map<string, string>();
  const parts = readFileSync(RUNBOOKS_FILE, 'utf8').split(/^## /m).slice(1);
  for (const part of parts) {
    const newline = part.indexOf('\n');
    sections.set(githubAnchor(part.slice(0, newline)), part.slice(newline + 1));
  }
  return sections;
}

describe('alert rules file', () => {
  it('is a plain rule file: only a top-level `groups:` list (embeddable in a PrometheusRule spec)', () => {
    const file = loadRuleFile();
    assert.deepEqual(Object.keys(file), ['groups']);
    assert.ok(file.groups.length > 0);
    for (const group of file.groups) {
      assert.match(group.name, /^mi-anywhere-/);
      assert.ok(group.rules.length > 0, `group ${group.name} has rules`);
    }
  });

  it('passes `promtool check rules`', () => {
    const result = runTool(findTool('promtool'), ['check', 'rules', ALERTS_FILE]);
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /SUCCESS: \d+ rules found/);
  });

  it('passes its `promtool test rules` unit tests (test/metrics/alerts.test.yaml)', () => {
    const result = runTool(findTool('promtool'), ['test', 'rules', ALERT_TESTS_FILE]);
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /SUCCESS/);
  });

  it('promtool unit tests really check the expected alerts (a wrong expectation fails)', () => {
    // Guard against a unit-test file that cannot fail: flip one expected severity and promtool must report it.
    const original = readFileSync(ALERT_TESTS_FILE, 'utf8');
    const broken = original
      .replace('exp_labels: {severity: warning, namespace: apps, pod: app-1, identity: orders}', 'exp_labels: {severity: critical, namespace: apps, pod: app-1, identity: orders}')
      .replace('../../charts/mi-anywhere/files/alerts.yaml', ALERTS_FILE);
    assert.notEqual(broken, original);
    const dir = mkdtempSync(join(tmpdir(), 'mi-anywhere-alerts-'));
    try {
      const file = join(dir, 'broken.test.yaml');
      writeFileSync(file, broken);
      const result = runTool(findTool('promtool'), ['test', 'rules', file]);
      assert.notEqual(result.status, 0, 'promtool accepted a wrong expectation');
      assert.match(result.stdout + result.stderr, /FAILED[\s\S]*alertname: MiAnywhereTokenRequestsFailing/);
      assert.doesNotMatch(result.stdout + result.stderr, /could not|no such file/i);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the unit tests load exactly this rule file', () => {
    const tests = parseYaml(readFileSync(ALERT_TESTS_FILE, 'utf8')) as AlertTestFile;
    assert.deepEqual(tests.rule_files, ['../../charts/mi-anywhere/files/alerts.yaml']);
  });

  for (const name of alertNames) {
    it(`${name}: unit-tested with a firing and a non-firing case`, () => {
      const tests = parseYaml(readFileSync(ALERT_TESTS_FILE, 'utf8')) as AlertTestFile;
      const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []).filter((c) => c.alertname === name);
      assert.ok(cases.some((c) => (c.exp_alerts ?? []).length > 0), `${name} has no firing case`);
      assert.ok(cases.some((c) => (c.exp_alerts ?? []).length === 0), `${name} has no non-firing case`);
    });
  }

  const sections = runbookSections();
  for (const rule of alertRules()) {
    it(`${rule.alert} (${rule.labels?.severity}): labels, annotations and runbook`, () => {
      assert.match(rule.alert, /^MiAnywhere[A-Z][A-Za-z]+$/);
      assert.ok(rule.for !== undefined && /^\d+[smh]$/.test(rule.for), 'has a `for` duration');
      assert.ok(['warning', 'critical'].includes(rule.labels?.severity ?? ''), 'severity warning|critical');
      const annotations = rule.annotations ?? {};
      assert.deepEqual(Object.keys(annotations).sort(), ['description', 'runbook_url', 'summary']);
      assert.ok((annotations.summary ?? '').length > 20, 'summary');
      assert.ok((annotations.description ?? '').length > 80, 'description');
      assert.equal(annotations.runbook_url, `${RUNBOOK_BASE_URL}#${rule.alert.toLowerCase()}`);
      const section = sections.get(rule.alert.toLowerCase());
      assert.ok(section !== undefined, `docs/runbooks.md has a "## ${rule.alert}" section`);
      for (const part of ['**Meaning.**', '**Likely causes', '**What to check.**', '**How to fix.**']) {
        assert.ok(section.includes(part), `runbook section ${rule.alert} has ${part}`);
      }
    });

    it(`${rule.alert} (${rule.labels?.severity}): thresholds are plain numbers (so the live test can relax them)`, () => {
      const relaxed = relaxThresholds(rule.expr);
      assert.notEqual(relaxed, rule.expr, 'has a threshold comparison');
      assert.doesNotMatch(relaxed, /(>=|<=|>|<)(?!\s*[-+]Inf)/, `a comparison is not against a plain number: ${relaxed}`);
    });
  }

  it('relaxThresholds rewrites every comparison and nothing else', () => {
    const cases = [
      { input: 'a > 0.1', want: 'a > -Inf' },
      { input: 'a - time() < 1209600', want: 'a - time() < +Inf' },
      { input: '(min(x) < 600) and on (p) (sum(increase(y[15m])) > 0)', want: '(min(x) < +Inf) and on (p) (sum(increase(y[15m])) > -Inf)' },
      { input: 'histogram_quantile(0.99, rate(h[5m])) >= 1e3', want: 'histogram_quantile(0.99, rate(h[5m])) > -Inf' },
      { input: 'a <= 2', want: 'a < +Inf' },
    ];
    for (const c of cases) assert.equal(relaxThresholds(c.input), c.want, c.input);
  });

  it('docs/metrics.md lists every alert', () => {
    const doc = readFileSync(METRICS_DOC_FILE, 'utf8');
    for (const name of alertNames) assert.ok(doc.includes(`| \`${name}\` |`), `docs/metrics.md alert table lacks ${name}`);
  });

  it('every runbook section belongs to an alert (no orphaned runbooks)', () => {
    const anchors = new Set(alertNames.map((n) => n.toLowerCase()));
    for (const anchor of sections.keys()) assert.ok(anchors.has(anchor), `runbook section #${anchor} has no alert`);
  });
});
