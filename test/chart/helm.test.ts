/**
 * The chart as helm renders it: `helm lint --strict` and `helm template` for the defaults and every ci/
 * scenario, then the invariants each rendered object must keep (admission registration, least-privilege RBAC,
 * restricted security contexts, certificates, monitoring), and the webhook's own config parser accepting the
 * environment the chart gives it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { globSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type {
  V1ClusterRole,
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1MutatingWebhook,
  V1MutatingWebhookConfiguration,
  V1PodDisruptionBudget,
  V1Role,
  V1Service,
} from '@kubernetes/client-node';
import { parse } from 'yaml';
import { INJECT_KEY, INJECT_VALUE, WEBHOOK_PATHS } from '../../sidecar/contract.ts';
import { loadConfig, WEBHOOK_ENV } from '../../webhook/config.ts';
import { CHART_DIR } from '../helpers/chart-values.ts';
import { findManifest, renderChart, runHelm, type Manifest } from '../helpers/helm.ts';

const NAMESPACE = 'mi-anywhere';
const scenarios = ['(defaults)', ...globSync('ci/*-values.yaml', { cwd: CHART_DIR }).sort()];

function valuesFilesOf(scenario: string): string[] {
  return scenario === '(defaults)' ? [] : [join(CHART_DIR, scenario)];
}

/** The values helm used for a scenario (defaults merged with the scenario file, as `helm get values --all`). */
function effectiveValues(scenario: string): Record<string, unknown> {
  const args = ['template', 'mi', CHART_DIR, '-n', NAMESPACE, '--show-only', 'templates/webhook-service.yaml'];
  assert.equal(runHelm(args).status, 0);
  const merge = (a: unknown, b: unknown): unknown => {
    const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
    if (!isMap(a) || !isMap(b)) return b === undefined ? a : b;
    const out: Record<string, unknown> = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = merge(a[k], v);
    return out;
  };
  const defaults: unknown = parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8'));
  const override: unknown = scenario === '(defaults)' ? {} : parse(readFileSync(join(CHART_DIR, scenario), 'utf8'));
  return merge(defaults, override) as Record<string, unknown>;
}

function at(values: Record<string, unknown>, path: string): unknown {
  let current: unknown = values;
  for (const key of path.split('.')) current = (current as Record<string, unknown> | undefined)?.[key];
  return current;
}

/** The Deployment's env as the kubelet would resolve it (fieldRef metadata.namespace → the release namespace). */
function resolvedEnv(container: V1Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of container.env ?? ([] as V1EnvVar[])) {
    if (entry.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[entry.name] = NAMESPACE;
    else env[entry.name] = entry.value ?? '';
  }
  return env;
}

describe('helm lint', () => {
  for (const scenario of scenarios) {
    it(`lint --strict ${scenario}`, () => {
      const files = valuesFilesOf(scenario).flatMap((f) => ['--values', f]);
      const result = runHelm(['lint', CHART_DIR, '--strict', '--namespace', NAMESPACE, ...files]);
      assert.equal(result.status, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    });
  }

  it('packages, with the schema, the dashboards and the alert rules inside', () => {
    const out = mkdtempSync(join(tmpdir(), 'mi-anywhere-package-'));
    try {
      const result = runHelm(['package', CHART_DIR, '--destination', out]);
      assert.equal(result.status, 0, result.stderr);
      const archive = globSync('*.tgz', { cwd: out })[0] ?? '';
      const listing = spawnSync('tar', ['-tzf', join(out, archive)], { encoding: 'utf8' }).stdout.split('\n');
      for (const file of ['values.schema.json', 'README.md', 'templates/NOTES.txt', 'files/alerts.yaml', ...globSync('dashboards/*.json', { cwd: CHART_DIR })]) {
        assert.ok(listing.includes(`mi-anywhere/${file}`), `${file} in ${archive}`);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('rejects values the schema forbids, naming the value', () => {
    const result = runHelm(['template', 'mi', CHART_DIR, '--set', 'webhook.failurePolicy=Sometimes']);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /failurePolicy/);
  });
});

for (const scenario of scenarios) {
  describe(`helm template ${scenario}`, () => {
    const values = effectiveValues(scenario);
    const manifests = renderChart({ valuesFiles: valuesFilesOf(scenario), namespace: NAMESPACE });
    const deployment = findManifest(manifests, 'Deployment') as unknown as V1Deployment & Manifest;
    const pod = deployment.spec?.template.spec;
    const container = pod?.containers.find((c) => c.name === 'webhook');
    const mwc = findManifest(manifests, 'MutatingWebhookConfiguration') as unknown as V1MutatingWebhookConfiguration & Manifest;
    const certManager = at(values, 'certManager.enabled') === true;

    it('every object is labelled and namespaced consistently', () => {
      for (const m of manifests) {
        assert.ok(m.metadata.name.length <= 63, `${m.kind}/${m.metadata.name} name length`);
        assert.equal(m.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm', `${m.kind}/${m.metadata.name}`);
        assert.equal(m.metadata.labels?.['app.kubernetes.io/instance'], 'mi', `${m.kind}/${m.metadata.name}`);
        const clusterScoped = ['MutatingWebhookConfiguration', 'ClusterRole', 'ClusterRoleBinding'].includes(m.kind);
        assert.equal(m.metadata.namespace === undefined, clusterScoped, `${m.kind}/${m.metadata.name} namespace`);
      }
    });

    it('the Deployment: replicas, spreading, priority, probes, resources', () => {
      assert.equal(deployment.spec?.replicas, at(values, 'webhook.replicaCount'));
      assert.deepEqual(container?.args, ['dist/webhook/main.js']);
      assert.equal(pod?.priorityClassName, (at(values, 'webhook.priorityClassName') as string) || undefined);
      assert.ok((pod?.topologySpreadConstraints ?? []).length > 0, 'topology spread constraints');
      if (at(values, 'webhook.podAntiAffinity') !== 'none' || at(values, 'webhook.affinity')) {
        assert.ok(pod?.affinity, 'affinity');
      }
      assert.equal(container?.readinessProbe?.httpGet?.path, WEBHOOK_PATHS.readiness);
      assert.equal(container?.livenessProbe?.httpGet?.path, WEBHOOK_PATHS.liveness);
      assert.equal(container?.startupProbe?.httpGet?.path, WEBHOOK_PATHS.liveness);
      assert.ok(container?.resources?.requests?.['cpu'] && container.resources.requests['memory'], 'requests set');
      assert.ok(container?.resources?.limits?.['memory'], 'memory limit set');
      assert.equal(deployment.spec?.strategy?.rollingUpdate?.maxUnavailable, 0);
    });

    it('restricted Pod Security Standard: non-root, no escalation, no capabilities, RuntimeDefault seccomp, read-only root', () => {
      assert.equal(pod?.securityContext?.runAsNonRoot, true);
      assert.equal(pod?.securityContext?.seccompProfile?.type, 'RuntimeDefault');
      assert.ok(pod?.hostNetwork !== true && pod?.hostPID !== true && pod?.hostIPC !== true);
      for (const c of pod?.containers ?? []) {
        assert.equal(c.securityContext?.allowPrivilegeEscalation, false, c.name);
        assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], c.name);
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, c.name);
        assert.equal(c.securityContext?.runAsNonRoot, true, c.name);
        assert.ok(Number.isInteger(c.securityContext?.runAsUser) && (c.securityContext?.runAsUser ?? 0) > 0, c.name);
      }
      for (const v of pod?.volumes ?? []) assert.equal(v.hostPath, undefined, v.name);
    });

    it('the webhook config parser accepts the environment the chart sets, with the chart values in it', () => {
      const env = resolvedEnv(container as V1Container);
      const known = new Set<string>(Object.values(WEBHOOK_ENV));
      const extra = new Set(((at(values, 'webhook.extraEnv') ?? []) as { name: string }[]).map((e) => e.name));
      assert.deepEqual(Object.keys(env).filter((name) => !known.has(name) && !extra.has(name)), []);
      const config = loadConfig(env);
      assert.equal(config.webhook.port, at(values, 'webhook.port'));
      assert.equal(config.health.port, at(values, 'webhook.healthPort'));
      assert.equal(config.metrics.port, at(values, 'webhook.metricsPort'));
      assert.equal(config.logLevel, at(values, 'webhook.logLevel'));
      assert.equal(config.tlsMinVersion, at(values, 'webhook.tlsMinVersion'));
      assert.equal(config.nativeSidecar, at(values, 'webhook.nativeSidecar'));
      assert.equal(config.sidecar.defaultProfile, at(values, 'sidecar.profile'));
      assert.equal(config.sidecar.defaultLogLevel, at(values, 'sidecar.logLevel'));
      assert.equal(config.sidecar.imagePullPolicy, at(values, 'sidecar.image.pullPolicy'));
      assert.deepEqual(config.sidecar.resources, {
        cpuRequest: at(values, 'sidecar.resources.requests.cpu'),
        cpuLimit: at(values, 'sidecar.resources.limits.cpu'),
        memoryRequest: at(values, 'sidecar.resources.requests.memory'),
        memoryLimit: at(values, 'sidecar.resources.limits.memory'),
      });
      assert.equal(config.sidecar.metricsPort, at(values, 'sidecar.metricsPort'));
      assert.equal(config.sidecar.authorityHost, (at(values, 'sidecar.authorityHost') as string) || undefined);
      assert.equal(config.sidecar.defaultFederatedAudience, at(values, 'sidecar.federatedAudience'));
      assert.equal(config.sidecar.defaultFederatedExpirationSeconds, at(values, 'sidecar.federatedExpirationSeconds'));
      assert.equal(config.sidecar.imdsRedirectImage, (at(values, 'sidecar.imdsRedirectImage') as string) || undefined);
      const image = at(values, 'sidecar.image.repository') || at(values, 'image.repository');
      assert.ok(config.sidecar.image.startsWith(`${String(image)}:`), config.sidecar.image);
      if (at(values, 'image.digest') && !at(values, 'sidecar.image.repository')) assert.ok(config.sidecar.image.endsWith(String(at(values, 'image.digest'))));
      assert.equal(config.cert.mode, certManager ? 'files' : 'self-managed');
      if (config.cert.mode === 'self-managed') {
        assert.equal(config.cert.namespace, NAMESPACE);
        assert.equal(config.cert.webhookConfigurationName, mwc.metadata.name);
        assert.equal(config.cert.certValidityDays, at(values, 'webhook.certValidityDays'));
        const service = findManifest(manifests, 'Service') as unknown as V1Service & Manifest;
        assert.equal(config.cert.serviceName, service.metadata.name);
        findManifest(manifests, 'Secret', (m) => m.metadata.name === (config.cert as { secretName: string }).secretName);
      } else {
        const mount = container?.volumeMounts?.find((m) => config.cert.mode === 'files' && config.cert.certFile.startsWith(`${m.mountPath}/`));
        assert.ok(mount, 'the certificate files are mounted');
        const volume = pod?.volumes?.find((v) => v.name === mount.name);
        const certificate = findManifest(manifests, 'Certificate', (m) => m.metadata.name.endsWith('-webhook-tls'));
        assert.equal(volume?.secret?.secretName, (certificate['spec'] as { secretName: string }).secretName);
      }
    });

    it('the container ports are the ports the webhook listens on', () => {
      const ports = Object.fromEntries((container?.ports ?? []).map((p) => [p.name, p.containerPort]));
      assert.deepEqual(ports, { https: at(values, 'webhook.port'), health: at(values, 'webhook.healthPort'), metrics: at(values, 'webhook.metricsPort') });
    });

    it('MutatingWebhookConfiguration: two opt-in entries with explicit policies', () => {
      const hooks = mwc.webhooks ?? [];
      assert.equal(hooks.length, 2);
      const excluded = ['kube-system', NAMESPACE, ...((at(values, 'webhook.excludeNamespaces') ?? []) as string[])];
      for (const hook of hooks) {
        assert.deepEqual(hook.admissionReviewVersions, ['v1']);
        assert.equal(hook.sideEffects, 'None');
        assert.equal(hook.matchPolicy, 'Equivalent');
        assert.equal(hook.reinvocationPolicy, 'IfNeeded');
        assert.equal(hook.timeoutSeconds, at(values, 'webhook.timeoutSeconds'));
        assert.ok((hook.timeoutSeconds ?? 0) <= 10, 'timeout at most 10 s');
        assert.deepEqual(hook.rules, [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
        assert.deepEqual(hook.namespaceSelector?.matchExpressions, [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: excluded }]);
        const url = at(values, 'webhook.urlOverride') as string;
        if (url) assert.deepEqual(hook.clientConfig.url, url);
        else assert.deepEqual(hook.clientConfig.service?.path, WEBHOOK_PATHS.mutate);
        assert.equal(hook.clientConfig.caBundle, (at(values, 'webhook.caBundle') as string) || undefined);
      }
      const [labelled, annotated] = hooks as [V1MutatingWebhook, V1MutatingWebhook];
      assert.equal(labelled.failurePolicy, at(values, 'webhook.failurePolicy'));
      assert.deepEqual(labelled.objectSelector, { matchLabels: { [INJECT_KEY]: INJECT_VALUE } });
      assert.equal(annotated.failurePolicy, 'Ignore');
      assert.deepEqual(annotated.objectSelector, { matchExpressions: [{ key: INJECT_KEY, operator: 'NotIn', values: [INJECT_VALUE] }] });
      const inject = mwc.metadata.annotations?.['cert-manager.io/inject-ca-from'];
      if (certManager) {
        const certificate = findManifest(manifests, 'Certificate', (m) => m.metadata.name.endsWith('-webhook-tls'));
        assert.equal(inject, `${NAMESPACE}/${certificate.metadata.name}`);
      } else {
        assert.equal(inject, undefined);
      }
    });

    it('RBAC: only its own certificate Secret (get/update) and its own webhook configuration (get/patch)', () => {
      const roles = manifests.filter((m) => m.kind === 'Role' || m.kind === 'ClusterRole') as unknown as (V1Role & Manifest)[];
      if (certManager || at(values, 'rbac.create') === false) {
        assert.deepEqual(roles, []);
        return;
      }
      const rules = roles
        .flatMap((r) => (r.rules ?? []).map((rule) => ({ kind: r.kind, ...rule })))
        .sort((a, b) => b.kind.localeCompare(a.kind));
      const secret = findManifest(manifests, 'Secret');
      assert.deepEqual(rules, [
        { kind: 'Role', apiGroups: [''], resources: ['secrets'], resourceNames: [secret.metadata.name], verbs: ['get', 'update'] },
        { kind: 'ClusterRole', apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], resourceNames: [mwc.metadata.name], verbs: ['get', 'patch'] },
      ]);
      const clusterRole = roles.find((r) => r.kind === 'ClusterRole') as V1ClusterRole;
      assert.equal(clusterRole.aggregationRule, undefined);
      for (const binding of manifests.filter((m) => m.kind.endsWith('Binding'))) {
        const subjects = binding['subjects'] as { kind: string; name: string }[];
        assert.deepEqual(subjects.map((s) => `${s.kind}/${s.name}`), [`ServiceAccount/${String(pod?.serviceAccountName)}`]);
      }
      assert.equal(pod?.automountServiceAccountToken, true, 'self-managed mode needs the API');
    });

    it('cert-manager mode: Certificate for the Service names, issuer chain, token only for /version', () => {
      if (!certManager) {
        assert.equal(manifests.some((m) => m.kind === 'Certificate' || m.kind === 'Issuer'), false);
        return;
      }
      assert.equal(pod?.automountServiceAccountToken, true, 'the API server version decides native sidecars');
      const certificate = findManifest(manifests, 'Certificate', (m) => m.metadata.name.endsWith('-webhook-tls'));
      const spec = certificate['spec'] as { dnsNames: string[]; issuerRef: { name: string; kind: string } };
      const service = findManifest(manifests, 'Service');
      assert.ok(spec.dnsNames.includes(`${service.metadata.name}.${NAMESPACE}.svc`));
      const issuerRef = at(values, 'certManager.issuerRef') as Record<string, string>;
      if (Object.keys(issuerRef).length > 0) {
        assert.deepEqual(spec.issuerRef, issuerRef);
        assert.equal(manifests.some((m) => m.kind === 'Issuer'), false);
      } else {
        findManifest(manifests, 'Issuer', (m) => m.metadata.name === spec.issuerRef.name);
      }
    });

    it('PodDisruptionBudget follows the values and leaves room for a drain', () => {
      const pdb = manifests.find((m): m is V1PodDisruptionBudget & Manifest => m.kind === 'PodDisruptionBudget');
      assert.equal(pdb !== undefined, at(values, 'webhook.podDisruptionBudget.enabled'));
      if (pdb) {
        assert.equal(pdb.spec?.minAvailable, at(values, 'webhook.podDisruptionBudget.minAvailable'));
        assert.ok(Number(pdb.spec?.minAvailable) < Number(deployment.spec?.replicas), 'minAvailable < replicas');
        assert.deepEqual(pdb.spec?.selector?.matchLabels, deployment.spec?.selector.matchLabels);
      }
    });

    it('NetworkPolicy and monitoring objects follow their toggles', () => {
      const kinds = new Set(manifests.map((m) => m.kind));
      assert.equal(kinds.has('NetworkPolicy'), at(values, 'networkPolicy.enabled'));
      assert.equal(kinds.has('ServiceMonitor'), at(values, 'serviceMonitor.enabled'));
      assert.equal(kinds.has('PodMonitor'), at(values, 'podMonitor.enabled'));
      assert.equal(kinds.has('PrometheusRule'), at(values, 'prometheusRule.enabled'));
      assert.equal(manifests.some((m) => m.kind === 'ConfigMap' && m.metadata.name.includes('-dashboard-')), at(values, 'dashboards.enabled'));
    });

    if (at(values, 'prometheusRule.enabled') === true) {
      it('PrometheusRule carries files/alerts.yaml unchanged', () => {
        const rule = findManifest(manifests, 'PrometheusRule');
        const alerts = parse(readFileSync(join(CHART_DIR, 'files', 'alerts.yaml'), 'utf8')) as { groups: unknown };
        assert.deepEqual((rule['spec'] as { groups: unknown }).groups, alerts.groups);
      });
    }

    if (at(values, 'dashboards.enabled') === true) {
      it('one dashboard ConfigMap per dashboards/*.json, with the discovery label and the JSON intact', () => {
        const files = globSync('dashboards/*.json', { cwd: CHART_DIR }).sort();
        const maps = manifests.filter((m) => m.kind === 'ConfigMap' && m.metadata.name.includes('-dashboard-'));
        assert.equal(maps.length, files.length);
        for (const file of files) {
          const name = file.slice('dashboards/'.length);
          const map = maps.find((m) => (m['data'] as Record<string, string>)[name] !== undefined);
          assert.ok(map, name);
          assert.equal(map.metadata.labels?.[String(at(values, 'dashboards.labelKey'))], at(values, 'dashboards.labelValue'));
          assert.deepEqual(JSON.parse((map['data'] as Record<string, string>)[name] ?? ''), JSON.parse(readFileSync(join(CHART_DIR, file), 'utf8')));
        }
      });
    }

    if (at(values, 'serviceMonitor.enabled') === true || at(values, 'podMonitor.enabled') === true) {
      it('monitors scrape named ports that exist', () => {
        const service = findManifest(manifests, 'Service') as unknown as V1Service & Manifest;
        const serviceMonitor = manifests.find((m) => m.kind === 'ServiceMonitor');
        if (serviceMonitor) {
          const endpoints = (serviceMonitor['spec'] as { endpoints: { port: string }[] }).endpoints;
          assert.ok(endpoints.every((e) => service.spec?.ports?.some((p) => p.name === e.port)));
        }
        const podMonitor = manifests.find((m) => m.kind === 'PodMonitor');
        if (podMonitor) {
          const endpoints = (podMonitor['spec'] as { podMetricsEndpoints: { port: string }[] }).podMetricsEndpoints;
          assert.deepEqual(endpoints.map((e) => e.port), ['mi-any-metrics']);
        }
      });
    }
  });
}
