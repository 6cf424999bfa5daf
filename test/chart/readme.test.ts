/**
 * The top-level README's "Install on Kubernetes (Helm)" and "Use it without Kubernetes" sections stay true:
 * the helm command installs the chart that exists (rendered with the same flags), the release's object names
 * match the commands that follow, the opt-in keys are the webhook's, and the compose steps name real files.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ANNOTATIONS, APP_ENV, INJECT_KEY, profileEnv } from '../../sidecar/contract.ts';
import { REPO_ROOT } from '../helpers/sidecar.ts';
import { readmeInstall } from '../helpers/readme-install.ts';
import { renderChart } from '../helpers/helm.ts';

const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

function section(heading: string): string {
  const start = README.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `README has "## ${heading}"`);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

function codeBlocks(text: string): string[] {
  return [...text.matchAll(/```[a-z]*\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
}

describe('README: Install on Kubernetes (Helm)', () => {
  const text = section('Install on Kubernetes (Helm)');

  it('the helm install command from a clone renders, and the rollout command names the Deployment it creates', () => {
    const { release, chart, namespace, set } = readmeInstall().clone;
    assert.ok(existsSync(join(REPO_ROOT, chart, 'Chart.yaml')), chart);
    const manifests = renderChart({ release, namespace, set });
    const deployment = manifests.find((m) => m.kind === 'Deployment');
    const rollouts = codeBlocks(text).filter((b) => b.includes(`kubectl -n ${namespace} rollout status deployment/${deployment?.metadata.name ?? '?'}`));
    assert.equal(rollouts.length, 2, 'both install paths wait for that Deployment');
  });

  it('--set certManager.enabled=true renders a cert-manager Certificate', () => {
    assert.ok(text.includes('--set certManager.enabled=true'));
    const manifests = renderChart({ set: { 'certManager.enabled': 'true' } });
    assert.ok(manifests.some((m) => m.kind === 'Certificate'));
  });

  it('uses the webhook opt-in key and annotation names', () => {
    assert.ok(text.includes(`${INJECT_KEY}: "true"`));
    assert.ok(text.includes(`${ANNOTATIONS.identities}: `));
    const annotations = [...text.matchAll(/(mi-anywhere\.io\/[a-z-]+):/g)].map((m) => m[1]);
    const known = new Set<string>(Object.values(ANNOTATIONS));
    assert.deepEqual(annotations.filter((a) => !known.has(a ?? '')), []);
    for (const link of ['charts/mi-anywhere/README.md', 'examples/identity-secret.yaml']) assert.ok(existsSync(join(REPO_ROOT, link)), link);
  });
});

describe('README: Use it without Kubernetes', () => {
  const text = section('Use it without Kubernetes');

  it('the compose steps name files that exist', () => {
    const [steps = ''] = codeBlocks(text);
    assert.match(steps, /^cd examples\/compose$/m);
    const dir = join(REPO_ROOT, 'examples', 'compose');
    assert.match(steps, /^cp -r identity\.example identity/m);
    assert.ok(existsSync(join(dir, 'identity.example')));
    assert.ok(existsSync(join(dir, 'compose.yaml')));
    assert.ok(text.includes('docker compose -f compose.dev.yaml up --build') && existsSync(join(dir, 'compose.dev.yaml')));
  });

  it('lists exactly the variables of the default profile', () => {
    const listed = [...text.matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]).filter((n) => (Object.values(APP_ENV) as string[]).includes(n ?? ''));
    const profile = profileEnv('default', { baseUrl: 'http://127.0.0.1:50342', secret: 's' }).map(([name]) => name);
    assert.deepEqual(listed.sort(), [...profile].sort());
  });
});
