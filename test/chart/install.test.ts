/**
 * The chart against a real kube-apiserver + etcd (test/helpers/kube.ts):
 *
 * 1. Server-side dry run (`dryRun=All`, `fieldValidation=Strict`) of every object rendered for the defaults and
 *    every ci/ scenario, in a namespace that enforces and warns on the `restricted` Pod Security Standard: the
 *    API server's own validation, unknown-field detection and PodSecurity admission must accept all of it, with
 *    no warning.
 * 2. `helm install` into that API server exactly as README "From a clone, with an image you build" shows (release
 *    name, chart path, namespace, `--set image.repository=...`; test/helpers/readme-install.ts reads it), then the webhook runs as a local process with exactly the environment
 *    of the installed Deployment and a token of the chart's ServiceAccount (so the chart's RBAC is what it gets).
 *    The chart's MutatingWebhookConfiguration points at it through `webhook.urlOverride` (a bare API server
 *    cannot reach Services); the webhook's self-managed CA fills the caBundle. Pods that opt in come back
 *    mutated, others do not; once the webhook is down, only labelled pods are refused (failure policies).
 */
import assert from 'node:assert/strict';
import { globSync, readFileSync, writeFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  AdmissionregistrationV1Api,
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  type V1Pod,
} from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { INJECT_KEY, SIDECAR_CONTAINER_NAME, APP_ENV, ANNOTATIONS } from '../../sidecar/contract.ts';
import { freePort } from '../helpers/ports.ts';
import { startCompiledWebhook, type RunningWebhook } from '../helpers/programs.ts';
import { startKubeApiServer, type KubeCluster } from '../helpers/kube.ts';
import { node24, REPO_ROOT } from '../helpers/sidecar.ts';
import { readmeInstall } from '../helpers/readme-install.ts';
import { CHART_DIR } from '../helpers/chart-values.ts';
import { renderChart, runHelm, type Manifest } from '../helpers/helm.ts';
import { loopbackWebhookListeners } from '../helpers/webhook-env.ts';

const README_INSTALL = readmeInstall().clone;
const NAMESPACE = README_INSTALL.namespace;
const APP_NAMESPACE = 'team-a';
const RESTRICTED = {
  'pod-security.kubernetes.io/enforce': 'restricted',
  'pod-security.kubernetes.io/warn': 'restricted',
  'pod-security.kubernetes.io/audit': 'restricted',
};
const scenarios = ['(defaults)', ...globSync('ci/*-values.yaml', { cwd: CHART_DIR }).sort()];

interface RawResponse {
  readonly status: number;
  readonly body: string;
  readonly warnings: readonly string[];
}

/** A raw API request with the admin credentials (client-node does not expose fieldValidation or warnings). */
async function apiRequest(cluster: KubeCluster, method: string, path: string, body?: unknown): Promise<RawResponse> {
  const options: RequestOptions = { method };
  await cluster.kubeConfig.applyToHTTPSOptions(options);
  options.headers = { ...options.headers, 'content-type': 'application/json', accept: 'application/json' };
  return new Promise((resolve, reject) => {
    const req = request(`${cluster.server}${path}`, options, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        const warning = res.headers['warning'];
        resolve({ status: res.statusCode ?? 0, body: text, warnings: warning === undefined ? [] : [warning].flat() });
      });
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** REST collection path of an object (the kinds this chart renders). */
function collectionPath(m: Manifest): string {
  const base = m.apiVersion.includes('/') ? `/apis/${m.apiVersion}` : `/api/${m.apiVersion}`;
  const lower = m.kind.toLowerCase();
  const plural = lower.endsWith('y') ? `${lower.slice(0, -1)}ies` : `${lower}s`;
  return m.metadata.namespace === undefined ? `${base}/${plural}` : `${base}/namespaces/${m.metadata.namespace}/${plural}`;
}

/** helm's cache/config/data directories inside the test cluster's temp directory (nothing in the user's HOME). */
function helmHome(cluster: KubeCluster): Record<string, string> {
  return { HELM_CACHE_HOME: join(cluster.dir, 'helm-cache'), HELM_CONFIG_HOME: join(cluster.dir, 'helm-config'), HELM_DATA_HOME: join(cluster.dir, 'helm-data') };
}

function podHasSidecar(pod: V1Pod): boolean {
  const names = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => c.name);
  return names.includes(SIDECAR_CONTAINER_NAME);
}

function appPod(name: string, labels: Record<string, string>, annotations: Record<string, string>): V1Pod {
  return {
    metadata: { name, labels, annotations },
    spec: {
      containers: [
        {
          name: 'app',
          image: 'registry.example.com/app:1',
          securityContext: { allowPrivilegeEscalation: false, runAsNonRoot: true, runAsUser: 1000, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } },
        },
      ],
    },
  };
}

describe('chart on a real kube-apiserver', () => {
  let cluster: KubeCluster;

  before(async () => {
    cluster = await startKubeApiServer();
    await cluster.createNamespace(NAMESPACE, RESTRICTED);
    await cluster.createNamespace('monitoring', RESTRICTED);
    const extensions = cluster.kubeConfig.makeApiClient(ApiextensionsV1Api);
    const crds = parseAllDocuments(readFileSync(join(import.meta.dirname, 'fixtures', 'crds.yaml'), 'utf8')).map((d) => d.toJS() as Manifest);
    // Raw JSON: client-node's serializer would drop the `x-kubernetes-*` schema keys.
    for (const crd of crds) {
      const created = await apiRequest(cluster, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
      assert.equal(created.status, 201, created.body);
    }
    // Established is a condition the API server sets asynchronously: wait for it, bounded.
    const deadline = performance.now() + 60_000;
    for (const crd of crds) {
      for (;;) {
        const live = await extensions.readCustomResourceDefinition({ name: crd.metadata.name });
        if (live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
        assert.ok(performance.now() < deadline, `CRD ${crd.metadata.name} not established`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  });

  after(async () => {
    await cluster?.stop();
  });

  describe('server-side dry run of every rendered object (strict field validation, restricted PSS)', () => {
    for (const scenario of scenarios) {
      it(scenario, async () => {
        const manifests = renderChart({ valuesFiles: scenario === '(defaults)' ? [] : [join(CHART_DIR, scenario)], namespace: NAMESPACE });
        assert.ok(manifests.some((m) => m.kind === 'MutatingWebhookConfiguration') && manifests.some((m) => m.kind === 'Deployment'));
        for (const m of manifests) {
          const response = await apiRequest(cluster, 'POST', `${collectionPath(m)}?dryRun=All&fieldValidation=Strict`, m);
          assert.equal(response.status, 201, `${m.kind}/${m.metadata.name}: HTTP ${response.status} ${response.body}`);
          assert.deepEqual(response.warnings, [], `${m.kind}/${m.metadata.name} warnings`);
        }
      });
    }

    it('the webhook pod itself is admitted by PodSecurity "restricted" (enforce)', async () => {
      const manifests = renderChart({ namespace: NAMESPACE });
      const deployment = manifests.find((m) => m.kind === 'Deployment') as Manifest & { spec: { template: { spec: unknown } } };
      // The ServiceAccount is not created by a dry run; any existing one will do for this check.
      const spec = { ...(deployment.spec.template.spec as object), serviceAccountName: 'default' };
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'webhook-pss-check', namespace: NAMESPACE }, spec };
      const response = await apiRequest(cluster, 'POST', `/api/v1/namespaces/${NAMESPACE}/pods?dryRun=All&fieldValidation=Strict`, pod);
      assert.equal(response.status, 201, response.body);
      assert.deepEqual(response.warnings, []);
      const privileged = { ...pod, spec: { ...spec, hostNetwork: true } };
      const refused = await apiRequest(cluster, 'POST', `/api/v1/namespaces/${NAMESPACE}/pods?dryRun=All`, privileged);
      assert.equal(refused.status, 403, 'the namespace really enforces restricted (control)');
    });
  });

  describe('helm install, then opted-in pods are mutated', () => {
    let webhook: RunningWebhook | undefined;
    let saKubeConfig: KubeConfig;
    let notes = '';
    const { release } = README_INSTALL;
    // The chart's base name: the release name when it already contains the chart name (charts/mi-anywhere/templates/_helpers.tpl).
    const fullname = release.includes('mi-anywhere') ? release : `${release}-mi-anywhere`;

    before(async () => {
      const port = await freePort();
      // README's command; the namespace exists already (created above with the restricted Pod Security labels), so
      // --create-namespace is left out, and the API server can only reach a webhook on its own host.
      assert.equal(join(REPO_ROOT, README_INSTALL.chart), CHART_DIR, 'README installs this chart');
      assert.ok(README_INSTALL.createNamespace);
      const sets = Object.entries(README_INSTALL.set).flatMap(([key, value]) => ['--set', `${key}=${value}`]);
      const install = runHelm(
        ['install', release, join(REPO_ROOT, README_INSTALL.chart), '--namespace', NAMESPACE, ...sets, '--set', `webhook.urlOverride=https://127.0.0.1:${port}/mutate`, '--kubeconfig', cluster.kubeconfigPath],
        helmHome(cluster),
      );
      assert.equal(install.status, 0, install.stderr);
      notes = install.stdout;

      // The webhook's identity: a token of the chart's ServiceAccount, so it has exactly the chart's RBAC.
      const apps = cluster.kubeConfig.makeApiClient(AppsV1Api);
      const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
      const deployment = await apps.readNamespacedDeployment({ name: `${fullname}-webhook`, namespace: NAMESPACE });
      const podSpec = deployment.spec?.template.spec;
      const serviceAccount = podSpec?.serviceAccountName ?? '';
      const token = await core.createNamespacedServiceAccountToken({ name: serviceAccount, namespace: NAMESPACE, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
      saKubeConfig = new KubeConfig();
      saKubeConfig.loadFromOptions({
        clusters: [{ name: 'test', server: cluster.server, caData: Buffer.from(cluster.caPem).toString('base64') }],
        users: [{ name: serviceAccount, token: token.status?.token ?? '' }],
        contexts: [{ name: 'test', cluster: 'test', user: serviceAccount }],
        currentContext: 'test',
      });
      const kubeconfigFile = join(cluster.dir, 'webhook.kubeconfig');
      writeFileSync(kubeconfigFile, saKubeConfig.exportConfig(), { mode: 0o600 });

      // The environment of the installed Deployment, as the kubelet would resolve it, plus what differs for a
      // process on the API server's host: loopback listeners, the kubeconfig, and an IP SAN for 127.0.0.1.
      const env: Record<string, string> = {};
      for (const entry of podSpec?.containers[0]?.env ?? []) {
        env[entry.name] = entry.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace' ? NAMESPACE : (entry.value ?? '');
      }
      const [healthPort, metricsPort] = [await freePort(), await freePort()];
      Object.assign(env, {
        ...loopbackWebhookListeners({ port, healthPort, metricsPort }),
        MI_ANYWHERE_WEBHOOK_KUBECONFIG: kubeconfigFile,
        MI_ANYWHERE_WEBHOOK_CERT_IP_ADDRESSES: '127.0.0.1',
      });
      assert.equal(env['MI_ANYWHERE_WEBHOOK_CERT_MODE'], 'self-managed');
      webhook = await startCompiledWebhook({ appDir: REPO_ROOT, env, healthPort, command: [node24(), join(REPO_ROOT, 'webhook', 'main.ts')] });

      // The webhook writes its CA into both entries of the chart's configuration; wait for it (bounded).
      const admission = cluster.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
      const deadline = performance.now() + 60_000;
      for (;;) {
        const mwc = await admission.readMutatingWebhookConfiguration({ name: `${fullname}-${NAMESPACE}` });
        if ((mwc.webhooks ?? []).every((w) => w.clientConfig.caBundle)) break;
        assert.ok(performance.now() < deadline, `caBundle not set within 60 s:\n${webhook.logs()}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      // Annotation-only opt-in is honoured in namespaces with this label only (webhook.annotationNamespaceSelector).
      await cluster.createNamespace(APP_NAMESPACE, { 'mi-anywhere.io/injection': 'enabled' });
      await core.createNamespacedSecret({
        namespace: APP_NAMESPACE,
        body: { metadata: { name: 'my-identity' }, stringData: { tenantId: '00000000-0000-0000-0000-00000000000a', clientId: '00000000-0000-0000-0000-00000000000b', clientSecret: 'not-a-real-secret' } },
      });
    });

    after(async () => {
      await webhook?.stop();
    });

    it('NOTES tell how to opt a pod in and verify', () => {
      assert.match(notes, new RegExp(`${INJECT_KEY}: "true"`));
      assert.match(notes, new RegExp(ANNOTATIONS.identities));
      assert.match(notes, /kubectl .*get pod/);
      assert.match(notes, /WARNING: webhook.urlOverride is for testing/);
    });

    it('the chart created the certificate Secret and the webhook filled it (get/update only)', async () => {
      const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
      const secret = await core.readNamespacedSecret({ name: `${fullname}-webhook-tls`, namespace: NAMESPACE });
      for (const key of ['ca.crt', 'tls.crt', 'tls.key']) assert.ok((secret.data?.[key] ?? '').length > 0, key);
    });

    it('helm upgrade keeps the certificate the webhook stored and the caBundle it patched', async () => {
      const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
      const admission = cluster.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
      const secretName = `${fullname}-webhook-tls`;
      const mwcName = `${fullname}-${NAMESPACE}`;
      const before = await core.readNamespacedSecret({ name: secretName, namespace: NAMESPACE });
      const bundles = (await admission.readMutatingWebhookConfiguration({ name: mwcName })).webhooks?.map((w) => w.clientConfig.caBundle);
      const upgrade = runHelm(['upgrade', release, CHART_DIR, '--namespace', NAMESPACE, '--reuse-values', '--set', 'webhook.timeoutSeconds=4', '--kubeconfig', cluster.kubeconfigPath], helmHome(cluster));
      assert.equal(upgrade.status, 0, upgrade.stderr);
      const afterUpgrade = await core.readNamespacedSecret({ name: secretName, namespace: NAMESPACE });
      assert.deepEqual(afterUpgrade.data, before.data);
      const mwc = await admission.readMutatingWebhookConfiguration({ name: mwcName });
      assert.deepEqual(mwc.webhooks?.map((w) => w.clientConfig.caBundle), bundles);
      assert.deepEqual(mwc.webhooks?.map((w) => w.timeoutSeconds), [4, 4], 'the upgrade itself was applied');
    });

    it('the ServiceAccount can do nothing else with Secrets', async () => {
      const core = saKubeConfig.makeApiClient(CoreV1Api);
      const attempts: [string, () => Promise<unknown>][] = [
        ['list Secrets', () => core.listNamespacedSecret({ namespace: NAMESPACE })],
        ['read an app Secret', () => core.readNamespacedSecret({ name: 'my-identity', namespace: APP_NAMESPACE })],
        ['create a Secret', () => core.createNamespacedSecret({ namespace: NAMESPACE, body: { metadata: { name: 'x' } } })],
        ['list pods', () => core.listPodForAllNamespaces()],
      ];
      for (const [what, attempt] of attempts) {
        await assert.rejects(attempt, (error: { code?: number }) => error.code === 403, what);
      }
    });

    it('a labelled and annotated pod comes back with the sidecar and the token environment', async () => {
      const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
      const pod = await core.createNamespacedPod({
        namespace: APP_NAMESPACE,
        body: appPod('labelled', { [INJECT_KEY]: 'true' }, { [INJECT_KEY]: 'true', [ANNOTATIONS.identities]: 'my-identity' }),
      });
      assert.ok(podHasSidecar(pod), JSON.stringify(pod.spec));
      const app = pod.spec?.containers.find((c) => c.name === 'app');
      const envNames = (app?.env ?? []).map((e) => e.name);
      assert.ok(envNames.includes(APP_ENV.identityEndpoint), envNames.join(','));
      // The chart's sidecar values reached the injected container through the webhook's environment.
      const values = parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as {
        image: { repository: string };
        sidecar: { resources: { requests: Record<string, string>; limits: Record<string, string> } };
      };
      const injected = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((c) => c.name === SIDECAR_CONTAINER_NAME);
      const chart = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as { appVersion: string };
      // README's `--set image.repository` reached the injected sidecar, with the tag README built and pushed.
      const repository = README_INSTALL.set['image.repository'] ?? values.image.repository;
      assert.equal(injected?.image, `${repository}:${chart.appVersion}`);
      assert.deepEqual([README_INSTALL.imageBuilt, README_INSTALL.imagePushed], [injected?.image, injected?.image]);
      assert.deepEqual(injected?.resources?.requests, values.sidecar.resources.requests);
      assert.deepEqual(injected?.resources?.limits, values.sidecar.resources.limits);
      assert.deepEqual([...(injected?.command ?? []), ...(injected?.args ?? [])], ['node', 'dist/sidecar/main.js']);
      const stored = await core.readNamespacedPod({ name: 'labelled', namespace: APP_NAMESPACE });
      assert.ok(podHasSidecar(stored), 'the API server stored the mutated pod');
    });

    it('an annotation-only pod is mutated too', async () => {
      const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
      const pod = await core.createNamespacedPod({
        namespace: APP_NAMESPACE,
        body: appPod('annotated', {}, { [INJECT_KEY]: 'true', [ANNOTATIONS.identities]: 'my-identity' }),
      });
      assert.ok(podHasSidecar(pod));
    });

    it('examples/identity-secret.yaml is accepted by the API server, and its pod comes back mutated (dry run)', async () => {
      const docs = parseAllDocuments(readFileSync(join(REPO_ROOT, 'examples', 'identity-secret.yaml'), 'utf8')).map((d) => d.toJS() as Manifest);
      assert.ok(docs.every((d) => d.metadata.namespace === APP_NAMESPACE));
      for (const doc of docs) {
        const response = await apiRequest(cluster, 'POST', `${collectionPath(doc)}?dryRun=All&fieldValidation=Strict`, doc);
        assert.equal(response.status, 201, `${doc.kind}/${doc.metadata.name}: ${response.body}`);
        if (doc.kind === 'Pod') assert.ok(podHasSidecar(JSON.parse(response.body) as V1Pod), response.body);
      }
    });

    it('a pod that did not opt in, and an opted-in pod in the release namespace, are left alone', async () => {
      const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
      const plain = await core.createNamespacedPod({ namespace: APP_NAMESPACE, body: appPod('plain', {}, {}) });
      assert.equal(podHasSidecar(plain), false);
      const excluded = await core.createNamespacedPod({
        namespace: NAMESPACE,
        body: appPod('in-release-namespace', { [INJECT_KEY]: 'true' }, { [INJECT_KEY]: 'true', [ANNOTATIONS.identities]: 'my-identity' }),
      });
      assert.equal(podHasSidecar(excluded), false);
    });

    it('with the webhook down, only labelled pods are refused (Fail); others are admitted unmutated (Ignore)', async () => {
      await webhook?.stop();
      const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
      await assert.rejects(
        core.createNamespacedPod({ namespace: APP_NAMESPACE, body: appPod('labelled-down', { [INJECT_KEY]: 'true' }, { [INJECT_KEY]: 'true', [ANNOTATIONS.identities]: 'my-identity' }) }),
        (error: { code?: number; body?: string }) => error.code === 500 && /labelled\.inject\.mi-anywhere\.io/.test(String(error.body)),
      );
      const annotated = await core.createNamespacedPod({
        namespace: APP_NAMESPACE,
        body: appPod('annotated-down', {}, { [INJECT_KEY]: 'true', [ANNOTATIONS.identities]: 'my-identity' }),
      });
      assert.equal(podHasSidecar(annotated), false);
      const plain = await core.createNamespacedPod({ namespace: APP_NAMESPACE, body: appPod('plain-down', {}, {}) });
      assert.equal(podHasSidecar(plain), false);
    });

    it('helm uninstall removes the webhook configuration', async () => {
      const result = runHelm(['uninstall', release, '--namespace', NAMESPACE, '--kubeconfig', cluster.kubeconfigPath], helmHome(cluster));
      assert.equal(result.status, 0, result.stderr);
      const admission = cluster.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
      await assert.rejects(admission.readMutatingWebhookConfiguration({ name: `${fullname}-${NAMESPACE}` }), (error: { code?: number }) => error.code === 404);
    });
  });
});
