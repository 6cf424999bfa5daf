/**
 * values.yaml is the one source of the chart's settings: values.test.ts checks that the schema declares exactly
 * its keys and that the chart README's table is generated from it. This file checks the other direction for
 * everything that reads values — templates, helpers and NOTES.txt name only declared values — and that the chart
 * README installs the published chart the way the repository README does.
 */
import assert from 'node:assert/strict';
import { globSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseHelmInstall, readmeInstall } from '../helpers/readme-install.ts';
import { CHART_DIR, readChartValues } from '../helpers/chart-values.ts';

const declared = readChartValues().map((v) => v.path);

/** A reference names a declared value, or an object that contains declared values (e.g. `.Values.image`). */
function isDeclared(path: string): boolean {
  return declared.some((d) => d === path || d.startsWith(`${path}.`) || path.startsWith(`${d}.`));
}

describe('chart: one source for values', () => {
  const files = globSync('templates/*', { cwd: CHART_DIR }).sort();

  it('reads templates, helpers and NOTES.txt', () => {
    for (const name of ['templates/NOTES.txt', 'templates/_helpers.tpl']) assert.ok(files.includes(name), name);
  });

  for (const file of files) {
    it(`${file} names only values that values.yaml declares`, () => {
      const text = readFileSync(join(CHART_DIR, file), 'utf8');
      const references = [...new Set([...text.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)].map((m) => (m[1] ?? '').slice(1)))];
      assert.deepEqual(references.filter((r) => !isDeclared(r)), []);
    });
  }

  it('the check itself catches an undeclared value', () => {
    assert.equal(isDeclared('webhook.replicaCount'), true);
    assert.equal(isDeclared('webhook.replicas'), false);
  });

  it("the chart README installs the published chart exactly as the repository README does", () => {
    const readme = readFileSync(join(CHART_DIR, 'README.md'), 'utf8');
    const line = /^helm install \S+ oci:\/\/.*$/m.exec(readme)?.[0] ?? '';
    assert.deepEqual(parseHelmInstall(line), readmeInstall().published);
  });
});
