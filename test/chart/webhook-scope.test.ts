/**
 * The reach of the chart's two webhook entries (docs/webhook.md "Reach and latency"): the annotation-only entry
 * is scoped by `webhook.annotationNamespaceSelector` (default: namespaces labelled
 * `mi-anywhere.io/injection=enabled`; `null` = every namespace), the labelled entry by
 * `webhook.labelNamespaceSelector` (default: every namespace); both always keep the exclusions (kube-system, the
 * release namespace, `webhook.excludeNamespaces`), and invalid selectors are refused by the schema.
 * test/e2e/webhook-reach.test.ts shows what the API server does with the rendered registration.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1MutatingWebhook, V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { CHART_DIR } from '../helpers/chart-values.ts';
import { findManifest, parseManifests, runHelm } from '../helpers/helm.ts';

const NAMESPACE = 'mi-anywhere';
const EXCLUDED = { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', NAMESPACE] };

function entries(set: Record<string, string> = {}, setJson: Record<string, unknown> = {}): { labelled: V1MutatingWebhook; annotated: V1MutatingWebhook } {
  const args = ['template', 'mi', CHART_DIR, '--namespace', NAMESPACE, '--show-only', 'templates/webhook-mutatingwebhookconfiguration.yaml'];
  for (const [key, value] of Object.entries(set)) args.push('--set', `${key}=${value}`);
  for (const [key, value] of Object.entries(setJson)) args.push('--set-json', `${key}=${JSON.stringify(value)}`);
  const result = runHelm(args);
  assert.equal(result.status, 0, result.stderr);
  const mwc = findManifest(parseManifests(result.stdout), 'MutatingWebhookConfiguration') as unknown as V1MutatingWebhookConfiguration;
  const [labelled, annotated] = mwc.webhooks ?? [];
  assert.ok(labelled && annotated);
  assert.equal(labelled.name, 'labelled.inject.mi-anywhere.io');
  assert.equal(annotated.name, 'annotated.inject.mi-anywhere.io');
  return { labelled, annotated };
}

describe('chart: reach of the webhook entries', () => {
  it('defaults: annotation-only opt-in only in namespaces labelled mi-anywhere.io/injection=enabled, the label everywhere', () => {
    const { labelled, annotated } = entries();
    assert.deepEqual(annotated.namespaceSelector, { matchExpressions: [EXCLUDED], matchLabels: { 'mi-anywhere.io/injection': 'enabled' } });
    assert.deepEqual(labelled.namespaceSelector, { matchExpressions: [EXCLUDED] });
    assert.equal(annotated.failurePolicy, 'Ignore');
  });

  it('annotationNamespaceSelector=null: annotation-only opt-in in every namespace but the excluded ones', () => {
    const { labelled, annotated } = entries({ 'webhook.annotationNamespaceSelector': 'null' });
    assert.deepEqual(annotated.namespaceSelector, { matchExpressions: [EXCLUDED] });
    assert.deepEqual(labelled.namespaceSelector, { matchExpressions: [EXCLUDED] });
  });

  it('custom selectors are ANDed with the exclusions, which can never be dropped', () => {
    const team = { key: 'team', operator: 'In', values: ['a', 'b'] };
    const { labelled, annotated } = entries(
      { 'webhook.excludeNamespaces[0]': 'batch' },
      { 'webhook.annotationNamespaceSelector': { matchExpressions: [team] }, 'webhook.labelNamespaceSelector': { matchLabels: { env: 'prod' } } },
    );
    const excluded = { ...EXCLUDED, values: [...EXCLUDED.values, 'batch'] };
    // Helm merges maps: the default matchLabels stays unless set to null.
    assert.deepEqual(annotated.namespaceSelector, { matchExpressions: [excluded, team], matchLabels: { 'mi-anywhere.io/injection': 'enabled' } });
    assert.deepEqual(labelled.namespaceSelector, { matchExpressions: [excluded], matchLabels: { env: 'prod' } });
  });

  it('helm refuses an invalid selector, naming it', () => {
    const result = runHelm(['template', 'mi', CHART_DIR, '--set-json', 'webhook.annotationNamespaceSelector={"matchExpressions":[{"key":"team","operator":"In"}]}']);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /annotationNamespaceSelector/);
  });

  it('helm lint --strict passes with custom selectors', () => {
    const result = runHelm(['lint', CHART_DIR, '--strict', '--set-json', 'webhook.labelNamespaceSelector={"matchExpressions":[{"key":"team","operator":"Exists"}]}', '--set', 'webhook.annotationNamespaceSelector=null']);
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });
});
