/**
 * Chart values without helm: values.yaml and every ci/ scenario validate against the strict schema, bad values
 * are rejected, every value is documented (`# --`), declared in the schema, used by a template and listed in
 * the chart README (UPDATE_GOLDEN=1 regenerates the README table).
 */
import assert from 'node:assert/strict';
import { globSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import {
  CHART_DIR,
  README_MARKERS,
  readChartValues,
  readSchema,
  readValuesText,
  renderValuesTable,
  schemaLeafPaths,
  type SchemaNode,
} from '../helpers/chart-values.ts';

type Values = Record<string, unknown>;

function isPlainObject(value: unknown): value is Values {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Helm's coalescing of a values file over the defaults: maps merge recursively, everything else replaces. */
export function mergeValues(base: unknown, override: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(override)) return override === undefined ? base : override;
  const merged: Values = { ...base };
  for (const [key, value] of Object.entries(override)) merged[key] = mergeValues(base[key], value);
  return merged;
}

const defaults: unknown = parse(readValuesText());
const validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(readSchema());
const scenarios = globSync('ci/*-values.yaml', { cwd: CHART_DIR }).sort();

function errorsOf(values: unknown): string {
  return validate(values) ? '' : JSON.stringify(validate.errors);
}

describe('chart values: schema', () => {
  it('has ci/ scenarios', () => assert.ok(scenarios.length >= 6, scenarios.join(', ')));

  it('values.yaml validates', () => assert.equal(errorsOf(defaults), ''));

  for (const file of scenarios) {
    it(`${file} validates (merged over values.yaml, as helm does)`, () => {
      const override: unknown = parse(readFileSync(join(CHART_DIR, file), 'utf8'));
      assert.ok(isPlainObject(override), `${file} is a map`);
      assert.equal(errorsOf(mergeValues(defaults, override)), '');
    });
  }

  const invalid: { name: string; override: Values; mentions: string }[] = [
    { name: 'unknown top-level key', override: { replicaCount: 3 }, mentions: 'additionalProperties' },
    { name: 'unknown nested key (typo)', override: { webhook: { failurePolicyy: 'Fail' } }, mentions: 'failurePolicyy' },
    { name: 'failure policy', override: { webhook: { failurePolicy: 'fail' } }, mentions: 'enum' },
    { name: 'timeout above 30 s', override: { webhook: { timeoutSeconds: 31 } }, mentions: 'maximum' },
    { name: 'zero replicas', override: { webhook: { replicaCount: 0 } }, mentions: 'minimum' },
    { name: 'unknown profile', override: { sidecar: { profile: 'imds' } }, mentions: 'enum' },
    { name: 'sidecar without memory limit', override: { sidecar: { resources: { limits: { memory: null } } } }, mentions: 'memory' },
    { name: 'digest not sha256', override: { image: { digest: 'latest' } }, mentions: 'pattern' },
    { name: 'plain-http webhook URL', override: { webhook: { urlOverride: 'http://127.0.0.1:9443/mutate' } }, mentions: 'pattern' },
    { name: 'caBundle not base64', override: { webhook: { caBundle: '-----BEGIN CERTIFICATE-----' } }, mentions: 'pattern' },
    { name: 'log level', override: { sidecar: { logLevel: 'verbose' } }, mentions: 'enum' },
    { name: 'anti-affinity mode', override: { webhook: { podAntiAffinity: 'always' } }, mentions: 'enum' },
    { name: 'issuerRef without name', override: { certManager: { issuerRef: { kind: 'ClusterIssuer' } } }, mentions: 'issuerRef' },
    { name: 'scrape interval unit', override: { serviceMonitor: { interval: '30' } }, mentions: 'pattern' },
    { name: 'excluded namespace not a DNS label', override: { webhook: { excludeNamespaces: ['Kube_System'] } }, mentions: 'pattern' },
    { name: 'namespace selector with an unknown field', override: { webhook: { annotationNamespaceSelector: { matchLabel: { a: 'b' } } } }, mentions: 'additionalProperties' },
    { name: 'namespace selector operator', override: { webhook: { labelNamespaceSelector: { matchExpressions: [{ key: 'team', operator: 'in', values: ['a'] }] } } }, mentions: 'enum' },
    { name: 'namespace selector In without values', override: { webhook: { annotationNamespaceSelector: { matchExpressions: [{ key: 'team', operator: 'In' }] } } }, mentions: 'values' },
    { name: 'namespace selector Exists with values', override: { webhook: { annotationNamespaceSelector: { matchExpressions: [{ key: 'team', operator: 'Exists', values: ['a'] }] } } }, mentions: 'maxItems' },
    { name: 'namespace selector label value not a string', override: { webhook: { annotationNamespaceSelector: { matchLabels: { 'mi-anywhere.io/injection': true } } } }, mentions: 'type' },
  ];
  for (const tc of invalid) {
    it(`rejects: ${tc.name}`, () => {
      const errors = errorsOf(mergeValues(defaults, tc.override));
      assert.notEqual(errors, '', 'expected a schema error');
      assert.match(errors, new RegExp(tc.mentions));
    });
  }

  it('closes every object that declares properties (additionalProperties: false)', () => {
    const open: string[] = [];
    const walk = (node: SchemaNode, path: string): void => {
      if (node.properties === undefined) return;
      if (node.additionalProperties !== false) open.push(path || '(top level)');
      for (const [key, child] of Object.entries(node.properties)) walk(child, path ? `${path}.${key}` : key);
    };
    walk(readSchema(), '');
    assert.deepEqual(open, []);
  });
});

describe('chart values: documentation and use', () => {
  const values = readChartValues();
  const templates = globSync('templates/*', { cwd: CHART_DIR })
    .map((f) => readFileSync(join(CHART_DIR, f), 'utf8'))
    .join('\n');

  it('every value has a `# --` comment', () => {
    assert.deepEqual(values.filter((v) => !v.doc).map((v) => v.path), []);
  });

  it('values.yaml and the schema declare the same values', () => {
    assert.deepEqual(values.map((v) => v.path).sort(), schemaLeafPaths(readSchema()).sort());
  });

  it('every value is used by a template', () => {
    const unused = values.filter((v) => !new RegExp(`\\.Values\\.${v.path.replaceAll('.', '\\.')}(?![A-Za-z0-9_])`).test(templates));
    assert.deepEqual(unused.map((v) => v.path), []);
  });

  it('the chart README lists every value (UPDATE_GOLDEN=1 regenerates the table)', () => {
    const readmePath = join(CHART_DIR, 'README.md');
    const readme = readFileSync(readmePath, 'utf8');
    const start = readme.indexOf(README_MARKERS.start);
    const end = readme.indexOf(README_MARKERS.end);
    assert.ok(start >= 0 && end > start, 'README.md has the values markers');
    const table = renderValuesTable(values);
    const current = readme.slice(start + README_MARKERS.start.length, end).trim();
    if (process.env['UPDATE_GOLDEN'] === '1' && current !== table) {
      writeFileSync(readmePath, `${readme.slice(0, start)}${README_MARKERS.start}\n${table}\n${readme.slice(end)}`);
      return;
    }
    assert.equal(current, table);
    for (const v of values) assert.ok(readme.includes(`\`${v.path}\``), v.path);
  });
});
