/**
 * The webhook against a real kube-apiserver (test/helpers/kube.ts): the webhook runs as its own process
 * (`node webhook/main.ts`) in self-managed certificate mode with a least-privilege identity, creates its CA and
 * serving certificate, patches the caBundle of the MutatingWebhookConfiguration the API server calls at
 * `https://127.0.0.1:<port>/mutate`, and the test asserts what the API server stored:
 *
 * - opted-in pods (label or annotation) come back injected and pass the API server's validation (and the
 *   restricted Pod Security Standard); every golden fixture's expected pod passes validation too;
 * - pods that did not opt in are stored exactly as in a namespace the webhook never sees;
 * - invalid annotations and hostNetwork are denied with the webhook's message;
 * - the stored sidecar container (command, args, env) runs as a local process with the Secret's files laid
 *   out as kubelet mounts them, and `@azure/identity`'s ManagedIdentityCredential, given exactly the env the API
 *   server stored for the app container (only the loopback port rewritten), gets a token from the test authority;
 * - with the webhook down, labelled pods are blocked (failurePolicy Fail) and every other pod is admitted
 *   (failurePolicy Ignore entry), unchanged;
 * - reinvocation (service-account automount on and off, other webhooks before and after ours with reinvocation
 *   IfNeeded and Never: an image rewriter and an HTTPS_PROXY injector written here) is answered without a patch,
 *   counts the pod once as mutated, and keeps the API server's defaults and the other webhooks' changes;
 * - pod-level spec.resources grow by the sidecar's and are admitted; name clashes are denied.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import {
  ANNOTATIONS,
  DEFAULT_HEALTH_PORT,
  DEFAULT_TOKEN_PORT,
  INJECT_KEY,
  SIDECAR_CONTAINER_NAME,
  SIDECAR_ENV,
  WEBHOOK_PATHS,
} from '../../sidecar/contract.ts';
import { renewCertificates } from '../../webhook/cert/authority.ts';
import { WEBHOOK_ENV } from '../../webhook/config.ts';
import { startTestAuthority, type RegisteredApp, type TestAuthority } from '../authority/authority.ts';
import { startKubeApiServer, type KubeCluster } from '../helpers/kube.ts';
import { listFixtures } from '../helpers/admission-fixtures.ts';
import { collectChildOutput } from '../helpers/collected-logs.ts';
import { freePort } from '../helpers/ports.ts';

const REPO_ROOT = join(import.meta.dirname, '..', '..');
const NODE = process.execPath;
const SYSTEM_NS = 'mi-anywhere-system';
const APPS_NS = 'apps';
/** Excluded by the webhook's namespaceSelector: what the API server stores without any webhook. */
const PLAIN_NS = 'plain';
/** Enforces the restricted Pod Security Standard, like hardened clusters do. */
const RESTRICTED_NS = 'restricted';
const MWC_NAME = 'mi-anywhere-e2e';
const CERT_SECRET = 'mi-anywhere-webhook-tls';
const IDENTITY_SECRET = 'app-identity';
const CLIENT_SECRET = 'e2e-client-secret-value-0123456789';

type Json = any;

/** Waits for something another process does (bounded wait, not a timing assertion). */
async function eventually<T>(what: string | (() => string), check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}${lastError instanceof Error ? `: ${lastError.message}` : ''}`);
}

function appContainer(extra: Json = {}): Json {
  return { name: 'app', image: 'registry.example/app:1.0', ...extra };
}

/** A restricted-PSS-compliant app container, so only the sidecar decides whether the pod passes. */
function restrictedApp(): Json {
  return appContainer({
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 1000,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  });
}

function pod(name: string, options: { labels?: Record<string, string>; annotations?: Record<string, string>; spec?: Json } = {}): Json {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, ...(options.labels ? { labels: options.labels } : {}), ...(options.annotations ? { annotations: options.annotations } : {}) },
    // No service-account token volume: its generated name would differ between otherwise identical pods.
    spec: { automountServiceAccountToken: false, containers: [appContainer()], ...options.spec },
  };
}

const OPT_IN_LABEL = { [INJECT_KEY]: 'true' };
const IDENTITY = { [ANNOTATIONS.identities]: IDENTITY_SECRET };

/** Writes Secret data the way kubelet lays out a Secret volume: timestamped dir, `..data` symlink, key symlinks. */
function writeKubeletSecretDir(dir: string, data: Record<string, string>): void {
  const stamp = '..2026_01_01_00_00_00.000000001';
  mkdirSync(join(dir, stamp), { recursive: true });
  for (const [key, value] of Object.entries(data)) writeFileSync(join(dir, stamp, key), Buffer.from(value, 'base64'), { mode: 0o444 });
  symlinkSync(stamp, join(dir, '..data'));
  for (const key of Object.keys(data)) symlinkSync(join('..data', key), join(dir, key));
}

function collectOutput(child: ChildProcess): () => string {
  collectChildOutput(child, 'e2e-program');
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  return () => output;
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    // 'close', not 'exit': its output is then fully read (assertions look at the last log lines).
    child.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

describe('webhook against a real kube-apiserver', () => {
  let cluster: KubeCluster;
  let authority: TestAuthority;
  let identity: RegisteredApp;
  let webhook: ChildProcess | undefined;
  let webhookOutput: () => string = () => '';
  let webhookPort: number;
  let healthPort: number;
  let metricsPort: number;
  let work: string;
  const children: ChildProcess[] = [];

  const create = (namespace: string, body: Json, dryRun = false) =>
    cluster.request('POST', `/api/v1/namespaces/${namespace}/pods${dryRun ? '?dryRun=All' : ''}`, { ...body, metadata: { ...body.metadata, namespace } });

  /**
   * The webhook's admission counters. Recorded in the same tick as the answer is written, so once the API server
   * replied to a pod creation, every call it made for that pod is counted.
   */
  const admissionCounts = async (): Promise<Record<string, number>> => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}${WEBHOOK_PATHS.metrics}`)).text();
    const counts: Record<string, number> = {};
    for (const [, outcome, value] of text.matchAll(/^mi_anywhere_webhook_admission_requests_total\{outcome="(\w+)"\} (\d+)/gm)) counts[outcome!] = Number(value);
    return counts;
  };
  const delta = (before: Record<string, number>, after: Record<string, number>, outcome: string): number => (after[outcome] ?? 0) - (before[outcome] ?? 0);

  /**
   * The webhook's admission log lines for one pod, once `count` of them were written: re-checked on every chunk
   * of the webhook's output (the line trails the answer the API server got), never on a timer.
   */
  const admissionLines = (name: string, count: number): Promise<string[]> => {
    const lines = () => webhookOutput().split('\n').filter((line) => line.includes(`"name":"${name}"`) && line.includes('"msg":"admission"'));
    const child = webhook;
    if (child === undefined) return Promise.reject(new Error('the webhook is not running'));
    return new Promise((resolve, reject) => {
      const done = (): void => {
        child.stdout?.off('data', check);
        child.stderr?.off('data', check);
        child.off('close', closed);
      };
      const check = (): void => {
        const found = lines();
        if (found.length < count) return;
        done();
        resolve(found);
      };
      const closed = (): void => {
        done();
        reject(new Error(`the webhook exited before logging ${count} admission lines for ${name}:\n${lines().join('\n')}`));
      };
      child.stdout?.on('data', check);
      child.stderr?.on('data', check);
      child.once('close', closed);
      check();
    });
  };

  before(async () => {
    cluster = await startKubeApiServer();
    authority = await startTestAuthority();
    identity = authority.registerApp({ displayName: 'e2e app', secrets: [CLIENT_SECRET] });
    work = mkdtempSync(join(tmpdir(), 'mi-anywhere-e2e-'));
    await cluster.createNamespace(SYSTEM_NS);
    await cluster.createNamespace(APPS_NS);
    await cluster.createNamespace(PLAIN_NS);
    await cluster.createNamespace(RESTRICTED_NS, { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' });
    for (const namespace of [APPS_NS, PLAIN_NS]) {
      assert.equal((await cluster.request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, { metadata: { name: 'app' } })).status, 201);
    }
    const secret = await cluster.request('POST', `/api/v1/namespaces/${APPS_NS}/secrets`, {
      metadata: { name: IDENTITY_SECRET },
      stringData: { tenantId: identity.tenantId, clientId: identity.clientId, clientSecret: CLIENT_SECRET },
    });
    assert.equal(secret.status, 201, JSON.stringify(secret.json));

    [webhookPort, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    // Least privilege, as the chart should grant it: its own Secret, its own MWC, nothing else ("user1" is a
    // static-token user of the test cluster; /version is public).
    const rbac: Array<[string, Json]> = [
      [`/apis/rbac.authorization.k8s.io/v1/namespaces/${SYSTEM_NS}/roles`, { metadata: { name: 'webhook-cert' }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['create'] }, { apiGroups: [''], resources: ['secrets'], resourceNames: [CERT_SECRET], verbs: ['get', 'update'] }] }],
      [`/apis/rbac.authorization.k8s.io/v1/namespaces/${SYSTEM_NS}/rolebindings`, { metadata: { name: 'webhook-cert' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'webhook-cert' }, subjects: [{ kind: 'User', name: 'user1', apiGroup: 'rbac.authorization.k8s.io' }] }],
      ['/apis/rbac.authorization.k8s.io/v1/clusterroles', { metadata: { name: 'mi-anywhere-e2e-webhook' }, rules: [{ apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], resourceNames: [MWC_NAME], verbs: ['get', 'patch'] }] }],
      ['/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', { metadata: { name: 'mi-anywhere-e2e-webhook' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'mi-anywhere-e2e-webhook' }, subjects: [{ kind: 'User', name: 'user1', apiGroup: 'rbac.authorization.k8s.io' }] }],
    ];
    for (const [path, body] of rbac) assert.equal((await cluster.request('POST', path, body)).status, 201, path);

    // The two entries the chart registers: labelled pods (Fail) and annotation-only opt-in (Ignore).
    const entry = (name: string, objectSelector: Json, failurePolicy: string): Json => ({
      name,
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      failurePolicy,
      reinvocationPolicy: 'IfNeeded',
      matchPolicy: 'Equivalent',
      timeoutSeconds: 5,
      clientConfig: { url: `https://127.0.0.1:${webhookPort}${WEBHOOK_PATHS.mutate}` },
      rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
      namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [SYSTEM_NS, PLAIN_NS, 'kube-system'] }] },
      objectSelector,
    });
    const mwc = await cluster.request('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', {
      metadata: { name: MWC_NAME },
      webhooks: [
        entry('labelled.inject.mi-anywhere.io', { matchLabels: { [INJECT_KEY]: 'true' } }, 'Fail'),
        entry('annotated.inject.mi-anywhere.io', { matchExpressions: [{ key: INJECT_KEY, operator: 'NotIn', values: ['true'] }] }, 'Ignore'),
      ],
    });
    assert.equal(mwc.status, 201, JSON.stringify(mwc.json));

    const user1Kubeconfig = join(work, 'user1.kubeconfig');
    const user = cluster.userKubeConfig('user1');
    writeFileSync(
      user1Kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'test', cluster: { server: cluster.server, 'certificate-authority-data': Buffer.from(cluster.caPem).toString('base64') } }],
        users: [{ name: 'user1', user: { token: user.getCurrentUser()?.token } }],
        contexts: [{ name: 'test', context: { cluster: 'test', user: 'user1' } }],
        'current-context': 'test',
      }),
    );
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      [WEBHOOK_ENV.address]: '127.0.0.1',
      [WEBHOOK_ENV.port]: String(webhookPort),
      [WEBHOOK_ENV.healthAddress]: '127.0.0.1',
      [WEBHOOK_ENV.healthPort]: String(healthPort),
      [WEBHOOK_ENV.metricsAddress]: '127.0.0.1',
      [WEBHOOK_ENV.metricsPort]: String(metricsPort),
      [WEBHOOK_ENV.certMode]: 'self-managed',
      [WEBHOOK_ENV.namespace]: SYSTEM_NS,
      [WEBHOOK_ENV.serviceName]: 'mi-anywhere-webhook',
      [WEBHOOK_ENV.certSecretName]: CERT_SECRET,
      [WEBHOOK_ENV.configurationName]: MWC_NAME,
      [WEBHOOK_ENV.certIpAddresses]: '127.0.0.1',
      // Reconcile every second so the repair and rotation tests below finish quickly (production default: 300 s).
      [WEBHOOK_ENV.certCheckIntervalSeconds]: '1',
      [WEBHOOK_ENV.kubeconfig]: user1Kubeconfig,
      [WEBHOOK_ENV.nativeSidecar]: 'auto',
      [WEBHOOK_ENV.sidecarImage]: 'registry.example/mi-anywhere:e2e',
      // In the image the ENTRYPOINT is node and the program dist/sidecar/main.js; here the source tree is the image.
      [WEBHOOK_ENV.sidecarCommand]: '["node"]',
      [WEBHOOK_ENV.sidecarArgs]: '["sidecar/main.ts"]',
      [WEBHOOK_ENV.sidecarAuthorityHost]: authority.url,
      [WEBHOOK_ENV.logLevel]: 'info',
    };
    webhook = spawn(NODE, [join(REPO_ROOT, 'webhook', 'main.ts')], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    webhookOutput = collectOutput(webhook);
    await eventually(() => `webhook readiness (output so far:\n${webhookOutput()})`, async () => {
      const res = await fetch(`http://127.0.0.1:${healthPort}${WEBHOOK_PATHS.readiness}`);
      return res.status === 200 ? true : undefined;
    });
    // The API server picks up the configuration (and the patched caBundle) asynchronously: probe with dry runs.
    await eventually(() => `the API server calling the webhook (webhook output:\n${webhookOutput()})`, async () => {
      const res = await create(APPS_NS, pod('probe', { labels: OPT_IN_LABEL, annotations: IDENTITY }), true);
      return res.status === 201 && res.json.spec.initContainers?.some((c: Json) => c.name === SIDECAR_CONTAINER_NAME) ? true : undefined;
    });
  });

  after(async () => {
    for (const child of children) await stopChild(child);
    await stopChild(webhook);
    await authority?.stop();
    await cluster?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('self-managed certificates: CA and serving certificate stored in the Secret, caBundle patched on both entries', async () => {
    const secret = await cluster.request('GET', `/api/v1/namespaces/${SYSTEM_NS}/secrets/${CERT_SECRET}`);
    assert.equal(secret.status, 200);
    assert.equal(secret.json.type, 'kubernetes.io/tls');
    assert.deepEqual(Object.keys(secret.json.data).sort(), ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    const mwc = await cluster.request('GET', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${MWC_NAME}`);
    for (const webhookEntry of mwc.json.webhooks) assert.equal(webhookEntry.clientConfig.caBundle, secret.json.data['ca.crt'], webhookEntry.name);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}${WEBHOOK_PATHS.metrics}`)).text();
    assert.match(metrics, /^mi_anywhere_webhook_certificate_expiry_timestamp_seconds \d{10}/m);
  });

  it('a labelled pod is stored with the native sidecar (server >= 1.29) and the app env', async () => {
    const res = await create(APPS_NS, pod('labelled', { labels: OPT_IN_LABEL, annotations: IDENTITY }));
    assert.equal(res.status, 201, JSON.stringify(res.json));
    const stored = (await cluster.request('GET', `/api/v1/namespaces/${APPS_NS}/pods/labelled`)).json;
    const sidecar = stored.spec.initContainers[0];
    assert.equal(sidecar.name, SIDECAR_CONTAINER_NAME);
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.equal(sidecar.image, 'registry.example/mi-anywhere:e2e');
    assert.deepEqual(sidecar.securityContext, {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    assert.deepEqual(sidecar.resources, { requests: { cpu: '10m', memory: '96Mi' }, limits: { cpu: '500m', memory: '256Mi' } });
    assert.equal(sidecar.startupProbe.httpGet.path, '/readyz');
    assert.deepEqual(
      sidecar.volumeMounts.map((m: Json) => [m.mountPath, m.readOnly]),
      [[`/var/run/mi-anywhere/identities/${IDENTITY_SECRET}`, true]],
    );
    const app = stored.spec.containers[0];
    assert.deepEqual(
      app.env.map((e: Json) => e.name),
      ['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'MSI_ENDPOINT', 'MSI_SECRET', 'DEFAULT_IDENTITY_CLIENT_ID', 'AZURE_POD_IDENTITY_AUTHORITY_HOST'],
    );
    assert.equal(app.volumeMounts, undefined, 'the identity Secret is mounted into the sidecar only');
    const header = sidecar.env.find((e: Json) => e.name === SIDECAR_ENV.identityHeader).value;
    assert.equal(app.env.find((e: Json) => e.name === 'IDENTITY_HEADER').value, header, 'app and sidecar share the per-pod secret');
    assert.ok(header.length >= 32);
  });

  it('an annotation-only opt-in is injected too (the Ignore entry)', async () => {
    const res = await create(APPS_NS, pod('annotated', { annotations: { [INJECT_KEY]: 'true', ...IDENTITY } }));
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.equal(res.json.spec.initContainers[0].name, SIDECAR_CONTAINER_NAME);
  });

  it('per-pod secrets differ between pods', async () => {
    const a = (await cluster.request('GET', `/api/v1/namespaces/${APPS_NS}/pods/labelled`)).json;
    const b = (await cluster.request('GET', `/api/v1/namespaces/${APPS_NS}/pods/annotated`)).json;
    const header = (p: Json) => p.spec.initContainers[0].env.find((e: Json) => e.name === SIDECAR_ENV.identityHeader).value;
    assert.notEqual(header(a), header(b));
  });

  it('pods that did not opt in are stored exactly as without the webhook', async () => {
    const cases: Json[] = [
      pod('plain-pod'),
      pod('inject-false', { labels: { [INJECT_KEY]: 'false' }, annotations: IDENTITY }),
      pod('annotations-only', { annotations: { ...IDENTITY, [ANNOTATIONS.profile]: 'arc' } }),
      pod('host-network-plain', { spec: { hostNetwork: true, containers: [appContainer()] } }),
      pod('with-init', { spec: { initContainers: [appContainer({ name: 'init' })], containers: [appContainer({ env: [{ name: 'IDENTITY_ENDPOINT', value: 'x' }] })] } }),
    ];
    const strip = (p: Json): string => {
      const { uid, creationTimestamp, resourceVersion, namespace, managedFields, ...metadata } = p.metadata;
      void [uid, creationTimestamp, resourceVersion, namespace, managedFields];
      return JSON.stringify({ metadata, spec: p.spec });
    };
    for (const body of cases) {
      const injected = await create(APPS_NS, body);
      const reference = await create(PLAIN_NS, body);
      assert.equal(injected.status, 201, JSON.stringify(injected.json));
      assert.equal(reference.status, 201);
      assert.equal(strip(injected.json), strip(reference.json), body.metadata.name);
    }
  });

  it('an injected pod passes the restricted Pod Security Standard', async () => {
    const body = pod('restricted', { labels: OPT_IN_LABEL, annotations: IDENTITY, spec: { containers: [restrictedApp()] } });
    const res = await create(RESTRICTED_NS, body);
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.equal(res.json.spec.initContainers[0].name, SIDECAR_CONTAINER_NAME);
  });

  it('a federated pod is stored with the projected service-account token in the sidecar only', async () => {
    const res = await create(APPS_NS, pod('federated', {
      labels: OPT_IN_LABEL,
      annotations: { ...IDENTITY, [ANNOTATIONS.credentialKind]: 'federated', [ANNOTATIONS.federatedExpirationSeconds]: '3600' },
      spec: { serviceAccountName: 'app', containers: [appContainer()] },
    }));
    assert.equal(res.status, 201, JSON.stringify(res.json));
    const volume = res.json.spec.volumes.find((v: Json) => v.projected?.sources?.[0]?.serviceAccountToken);
    assert.deepEqual(volume.projected.sources[0].serviceAccountToken, { audience: 'api://AzureADTokenExchange', expirationSeconds: 3600, path: 'token' });
    assert.ok(res.json.spec.initContainers[0].volumeMounts.some((m: Json) => m.name === volume.name));
    assert.ok(!res.json.spec.containers[0].volumeMounts?.some((m: Json) => m.name === volume.name));
  });

  it('invalid annotations and hostNetwork are denied with the webhook\'s explanation', async () => {
    const cases: Array<[Json, RegExp]> = [
      [pod('bad-profile', { labels: OPT_IN_LABEL, annotations: { ...IDENTITY, [ANNOTATIONS.profile]: 'imds' } }), /annotation mi-anywhere\.io\/profile: "imds" must be one of/],
      [pod('bad-namespace', { labels: OPT_IN_LABEL, annotations: { [ANNOTATIONS.identities]: 'other/app-identity' } }), /mi-anywhere\.io\/identities.*own namespace/],
      [pod('bad-annotated', { annotations: { [INJECT_KEY]: 'true', [ANNOTATIONS.identities]: IDENTITY_SECRET, [ANNOTATIONS.logLevel]: 'loud' } }), /mi-anywhere\.io\/log-level/],
      [pod('host-net', { labels: OPT_IN_LABEL, annotations: IDENTITY, spec: { hostNetwork: true, containers: [appContainer()] } }), /hostNetwork/],
    ];
    for (const [body, message] of cases) {
      const res = await create(APPS_NS, body);
      assert.equal(res.status, 403, `${body.metadata.name}: ${JSON.stringify(res.json)}`);
      assert.match(res.json.message, /denied the request/);
      assert.match(res.json.message, message);
    }
  });

  it('every golden fixture\'s expected pod passes the API server\'s validation', async () => {
    const { fixtures } = listFixtures();
    let checked = 0;
    for (const fixture of fixtures) {
      const expected = fixture.expected();
      if (expected === undefined || !expected.allowed || !expected.patched) continue;
      const body = structuredClone(expected.pod) as Json;
      // Validate in the namespace the webhook never sees, so exactly this object is checked.
      const res = await create(PLAIN_NS, body, true);
      assert.equal(res.status, 201, `${fixture.name}: ${JSON.stringify(res.json?.message ?? res.json)}`);
      checked += 1;
    }
    assert.ok(checked >= 25, `only ${checked} mutated fixtures`);
  });

  /**
   * Plays kubelet for a stored pod: lays out its identity Secrets (and, for federated pods, a service-account token
   * minted through the TokenRequest API exactly as kubelet does for the projected volume), runs the stored sidecar
   * container as a local process, waits for its stored startupProbe, then runs `ManagedIdentityCredential` with the
   * stored app env. Returns the decoded token claims.
   */
  async function runStoredPod(name: string, options: { postStartHook?: readonly string[] } = {}): Promise<Record<string, unknown>> {
    const stored = (await cluster.request('GET', `/api/v1/namespaces/${APPS_NS}/pods/${name}`)).json;
    const sidecarSpec = stored.spec.initContainers[0];
    const appSpec = stored.spec.containers[0];
    assert.equal(sidecarSpec.name, SIDECAR_CONTAINER_NAME);
    const root = mkdtempSync(join(work, `${name}-`));
    const volumes = new Map<string, Json>(stored.spec.volumes.map((v: Json) => [v.name, v]));
    const secrets = new Map<string, Record<string, string>>();
    const secretData = async (secretName: string): Promise<Record<string, string>> => {
      if (!secrets.has(secretName)) secrets.set(secretName, (await cluster.request('GET', `/api/v1/namespaces/${APPS_NS}/secrets/${secretName}`)).json.data);
      return secrets.get(secretName) ?? {};
    };

    // The sidecar's mounts, re-rooted under a temp dir (no /var/run here): that and ports are the only rewrites.
    const env: Record<string, string> = {};
    for (const entry of sidecarSpec.env as Array<{ name: string; value: string }>) env[entry.name] = entry.value;
    const reroot = (path: string): string => join(root, path);
    for (const mount of sidecarSpec.volumeMounts as Json[]) {
      const source = volumes.get(mount.name).projected.sources[0];
      if (source.secret) writeKubeletSecretDir(reroot(mount.mountPath), await secretData(source.secret.name));
      if (source.serviceAccountToken) {
        const request = await cluster.request('POST', `/api/v1/namespaces/${APPS_NS}/serviceaccounts/${stored.spec.serviceAccountName}/token`, {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: {
            audiences: [source.serviceAccountToken.audience],
            expirationSeconds: source.serviceAccountToken.expirationSeconds,
            boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name, uid: stored.metadata.uid },
          },
        });
        assert.equal(request.status, 201, JSON.stringify(request.json));
        mkdirSync(reroot(mount.mountPath), { recursive: true });
        writeFileSync(join(reroot(mount.mountPath), source.serviceAccountToken.path), request.json.status.token);
      }
    }
    assert.equal(env[SIDECAR_ENV.identityDir], '/var/run/mi-anywhere/identities');
    env[SIDECAR_ENV.identityDir] = reroot(env[SIDECAR_ENV.identityDir] ?? '');
    if (env[SIDECAR_ENV.federatedTokenFile] !== undefined) env[SIDECAR_ENV.federatedTokenFile] = reroot(env[SIDECAR_ENV.federatedTokenFile] ?? '');
    const [tokenPort, sidecarHealth, sidecarMetrics] = [await freePort(), await freePort(), await freePort()];
    env[SIDECAR_ENV.tokenPort] = String(tokenPort);
    env[SIDECAR_ENV.healthPort] = String(sidecarHealth);
    env[SIDECAR_ENV.metricsPort] = String(sidecarMetrics);
    // Wildcard listeners become loopback ones (tests listen on 127.0.0.1 only).
    env[SIDECAR_ENV.healthAddress] = '127.0.0.1';
    env[SIDECAR_ENV.metricsAddress] = '127.0.0.1';
    // The test authority's CA, as a cluster with a private authority would add it (real Entra uses public CAs).
    env.NODE_EXTRA_CA_CERTS = authority.caFile;
    env.PATH = process.env.PATH ?? '';
    assert.equal(sidecarSpec.command[0], 'node');
    // The regular form's postStart hook, started before the sidecar: it may only return 0 once /readyz says 200.
    let hookExit: Promise<number | null> | undefined;
    if (options.postStartHook !== undefined) {
      const [program, ...hookArgs] = options.postStartHook.map((arg) => arg.replace(`port:${DEFAULT_HEALTH_PORT}`, `port:${sidecarHealth}`));
      assert.equal(program, 'node');
      const hook = spawn(NODE, hookArgs, { cwd: REPO_ROOT, stdio: 'ignore' });
      children.push(hook);
      hookExit = new Promise((resolve) => hook.once('exit', resolve));
    }
    const sidecar = spawn(NODE, [...sidecarSpec.command.slice(1), ...sidecarSpec.args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(sidecar);
    const sidecarOutput = collectOutput(sidecar);
    // kubelet's startupProbe, as stored.
    const probe = sidecarSpec.startupProbe.httpGet;
    assert.equal(probe.port, Number(sidecarSpec.env.find((e: Json) => e.name === SIDECAR_ENV.healthPort).value));
    await eventually(() => `the sidecar's startupProbe (exit ${sidecar.exitCode}, output:\n${sidecarOutput()})`, async () => {
      const res = await fetch(`http://127.0.0.1:${sidecarHealth}${probe.path}`);
      return res.status === 200 ? true : undefined;
    });

    if (hookExit !== undefined) assert.equal(await hookExit, 0, 'the postStart hook returned once the sidecar was ready');

    // The app's environment: exactly what the API server stored, secretKeyRefs resolved as kubelet would,
    // the loopback port rewritten to the local sidecar's.
    const appEnv: Record<string, string> = {};
    for (const entry of appSpec.env as Json[]) {
      if (entry.value !== undefined) {
        appEnv[entry.name] = String(entry.value).replace(`127.0.0.1:${DEFAULT_TOKEN_PORT}`, `127.0.0.1:${tokenPort}`);
      } else {
        const ref = entry.valueFrom.secretKeyRef;
        appEnv[entry.name] = Buffer.from((await secretData(ref.name))[ref.key] ?? '', 'base64').toString('utf8');
      }
    }
    const script = [
      "import { ManagedIdentityCredential } from '@azure/identity';",
      "const token = await new ManagedIdentityCredential().getToken('https://vault.azure.net/.default');",
      'process.stdout.write(JSON.stringify({ token: token.token, expiresOnTimestamp: token.expiresOnTimestamp }));',
    ].join('\n');
    const app = spawn(NODE, ['--input-type=module', '-e', script], { cwd: REPO_ROOT, env: { ...appEnv, PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(app);
    let stdout = '';
    let stderr = '';
    app.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    app.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const code = await new Promise<number | null>((resolve) => app.once('close', resolve));
    await stopChild(sidecar);
    assert.equal(code, 0, `app failed: ${stderr}\nsidecar:\n${sidecarOutput()}`);
    const result = JSON.parse(stdout) as { token: string; expiresOnTimestamp: number };
    assert.ok(result.expiresOnTimestamp > Date.now() + 5 * 60_000, 'token lifetime above 5 minutes');
    assert.equal(appEnv.DEFAULT_IDENTITY_CLIENT_ID, decodeJwt(result.token).appid ?? decodeJwt(result.token).azp);
    return decodeJwt(result.token);
  }

  it('the stored sidecar runs and ManagedIdentityCredential gets a token with the stored app env', async () => {
    // The regular form (older clusters) differs only by placement and its postStart hook; run that hook too.
    const regular = listFixtures().fixtures.find((f) => f.name === 'regular-sidecar')?.expected();
    assert.ok(regular !== undefined && regular.allowed);
    const hook = (regular.pod as Json).spec.containers[0].lifecycle.postStart.exec.command as string[];
    const claims = await runStoredPod('labelled', { postStartHook: hook });
    assert.equal(claims.aud, 'https://vault.azure.net');
    assert.equal(claims.appid ?? claims.azp, identity.clientId);
    assert.ok(authority.tokenCalls(identity.clientId) >= 1, 'the token came from the authority through the sidecar');
  });

  it('federated: the API server\'s own service-account token is exchanged for an Entra token', async () => {
    // The cluster as an OIDC issuer: its JWKS (served by kube-apiserver at /openid/v1/jwks) relayed over plain
    // loopback HTTP, so the in-process authority needs no trust in the test cluster's CA.
    const jwks = createHttpServer((_req, res) => {
      cluster.request('GET', '/openid/v1/jwks', undefined, { accept: 'application/jwk-set+json' }).then(
        (answer) => res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.json)),
        () => res.writeHead(502).end(),
      );
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    try {
      const jwksPort = (jwks.address() as { port: number }).port;
      const fed = authority.registerApp({
        displayName: 'e2e federated app',
        federatedCredentials: [{ issuer: 'https://kubernetes.default.svc.cluster.local', subject: `system:serviceaccount:${APPS_NS}:app`, jwksUri: `http://127.0.0.1:${jwksPort}/` }],
      });
      const secret = await cluster.request('POST', `/api/v1/namespaces/${APPS_NS}/secrets`, { metadata: { name: 'fed-identity' }, stringData: { tenantId: fed.tenantId, clientId: fed.clientId } });
      assert.equal(secret.status, 201);
      const created = await create(APPS_NS, pod('federated-run', {
        labels: OPT_IN_LABEL,
        annotations: { [ANNOTATIONS.identities]: 'fed-identity', [ANNOTATIONS.credentialKind]: 'federated' },
        spec: { serviceAccountName: 'app', automountServiceAccountToken: false, containers: [appContainer()] },
      }));
      assert.equal(created.status, 201, JSON.stringify(created.json));
      const claims = await runStoredPod('federated-run');
      assert.equal(claims.appid ?? claims.azp, fed.clientId);
      assert.equal(authority.calls({ endpoint: 'token', clientId: fed.clientId, credentialType: 'federated', status: 200 }).length >= 1, true);
    } finally {
      await new Promise<void>((resolve) => jwks.close(() => resolve()));
    }
  });

  it('reinvocation: a container added by a later webhook gets the env, nothing is added twice', async () => {
    // A second webhook (alphabetically after ours, so it runs later) that appends a container, as service meshes do.
    const pki = await renewCertificates({ action: 'renew-ca', reason: 'late webhook' }, { names: { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }, policy: { certValidityDays: 2, certRenewBeforeDays: 1, caValidityDays: 3, caRenewBeforeDays: 1 }, now: Date.now() });
    let calls = 0;
    const late = createHttpsServer({ cert: pki.cert, key: pki.key }, (req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (c: string) => (body += c));
      req.on('end', () => {
        calls += 1;
        const uid = JSON.parse(body).request.uid;
        const patch = [{ op: 'add', path: '/spec/containers/-', value: { name: 'late', image: 'registry.example/late:1' } }];
        res.writeHead(200, { 'content-type': 'application/json' }).end(
          JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') } }),
        );
      });
    });
    await new Promise<void>((resolve) => late.listen(0, '127.0.0.1', resolve));
    const mwcPath = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';
    try {
      const latePort = (late.address() as { port: number }).port;
      const registered = await cluster.request('POST', mwcPath, {
        metadata: { name: 'zz-e2e-late-adder' },
        webhooks: [{
          name: 'late-adder.e2e.example',
          admissionReviewVersions: ['v1'],
          sideEffects: 'None',
          failurePolicy: 'Fail',
          reinvocationPolicy: 'Never',
          clientConfig: { url: `https://127.0.0.1:${latePort}/`, caBundle: Buffer.from(pki.caBundle).toString('base64') },
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }],
          objectSelector: { matchLabels: { 'e2e-late': 'true' } },
        }],
      });
      assert.equal(registered.status, 201, JSON.stringify(registered.json));
      const labels = { ...OPT_IN_LABEL, 'e2e-late': 'true' };
      await eventually('the late webhook being active', async () => {
        const res = await create(APPS_NS, pod('reinvoked-probe', { labels, annotations: IDENTITY }), true);
        return res.status === 201 && res.json.spec.containers.some((c: Json) => c.name === 'late') ? true : undefined;
      });
      const res = await create(APPS_NS, pod('reinvoked', { labels, annotations: IDENTITY }));
      assert.equal(res.status, 201, JSON.stringify(res.json));
      const stored = res.json;
      assert.ok(calls >= 1);
      // Our webhook ran twice for this pod: first injection, then the reinvocation caused by the late container.
      // (The webhook logs after answering, so its second line may trail the API server's reply: wait for it.)
      const ours = await admissionLines('reinvoked', 2);
      assert.equal(ours.length, 2, ours.join('\n'));
      assert.ok(ours.every((line) => line.includes('"outcome":"mutated"')));
      assert.deepEqual(stored.spec.initContainers.map((c: Json) => c.name), [SIDECAR_CONTAINER_NAME], 'one sidecar');
      const names = (c: Json) => (c.env ?? []).map((e: Json) => e.name);
      const app = stored.spec.containers.find((c: Json) => c.name === 'app');
      const added = stored.spec.containers.find((c: Json) => c.name === 'late');
      assert.deepEqual(names(added), names(app), 'the late container got the same variables on reinvocation');
      assert.equal(new Set(names(app)).size, names(app).length, 'no variable twice');
      assert.equal(stored.spec.volumes.filter((v: Json) => v.name.startsWith(`${SIDECAR_CONTAINER_NAME}-identity`)).length, 1);
    } finally {
      await cluster.request('DELETE', `${mwcPath}/zz-e2e-late-adder`);
      await new Promise<void>((resolve) => {
        late.close(() => resolve());
        late.closeAllConnections();
      });
    }
  });

  for (const automount of [true, false]) {
    it(`reinvocation with service-account automount ${automount ? 'on' : 'off'}: counted once as mutated, any reinvocation answered without a patch`, async () => {
      const name = `sa-automount-${automount ? 'on' : 'off'}`;
      const before = await admissionCounts();
      const res = await create(APPS_NS, pod(name, { labels: OPT_IN_LABEL, annotations: IDENTITY, spec: { automountServiceAccountToken: automount, containers: [appContainer()] } }));
      assert.equal(res.status, 201, JSON.stringify(res.json));
      const after = await admissionCounts();
      const calls = Object.keys(after).reduce((sum, outcome) => sum + delta(before, after, outcome), 0);
      assert.equal(delta(before, after, 'mutated'), 1, `mutated once (calls: ${JSON.stringify({ before, after })})`);
      const lines = await admissionLines(name, calls);
      assert.match(lines[0] ?? '', /"outcome":"mutated"/);
      for (const line of lines.slice(1)) assert.match(line, /"outcome":"skipped".*"reason":"already injected"/, 'a reinvocation is answered with no patch');
      const sidecar = res.json.spec.initContainers.find((c: Json) => c.name === SIDECAR_CONTAINER_NAME);
      // The API server's defaults on our container survive.
      assert.equal(sidecar.terminationMessagePath, '/dev/termination-log');
      assert.equal(sidecar.startupProbe.successThreshold, 1);
      const saMounts = (c: Json) => (c.volumeMounts ?? []).filter((m: Json) => m.mountPath === '/var/run/secrets/kubernetes.io/serviceaccount');
      if (automount) {
        // The ServiceAccount plugin runs again after our change and mounts the token into the sidecar too; the API
        // server then calls us again (reinvocationPolicy IfNeeded), and that mount must stay.
        assert.ok(calls >= 2, `the API server reinvoked the webhook (${calls} calls)`);
        assert.equal(saMounts(res.json.spec.containers[0]).length, 1);
        assert.equal(saMounts(sidecar).length, 1, 'the kube-api-access mount on the sidecar survives the reinvocation');
      } else {
        assert.equal(saMounts(sidecar).length, 0);
      }
    });
  }

  describe('beside other mutating webhooks: an image rewriter and an HTTPS_PROXY injector', () => {
    const MIRROR = 'mirror.internal.example/';
    const PROXY = 'http://proxy.internal.example:3128';
    const mwcPath = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';
    // Configuration names order webhooks: "aa-" runs before ours (mi-anywhere-e2e), "zz-" after it.
    const variants = [
      { config: 'aa-e2e-others-ifneeded', order: 'before', policy: 'IfNeeded' },
      { config: 'aa-e2e-others-never', order: 'before', policy: 'Never' },
      { config: 'zz-e2e-others-ifneeded', order: 'after', policy: 'IfNeeded' },
      { config: 'zz-e2e-others-never', order: 'after', policy: 'Never' },
    ] as const;
    let others: ReturnType<typeof createHttpsServer>;
    const othersCalls: string[] = [];

    /** Air-gapped clusters: every image from the public registry is pulled from a mirror. */
    const rewriteImages = (object: Json): Json[] =>
      (['initContainers', 'containers'] as const).flatMap((list) =>
        (object.spec[list] ?? []).flatMap((c: Json, i: number) =>
          typeof c.image === 'string' && c.image.startsWith('registry.example/') ? [{ op: 'replace', path: `/spec/${list}/${i}/image`, value: MIRROR + c.image.slice('registry.example/'.length) }] : [],
        ),
      );
    /** Corporate clusters: every container gets the proxy (appended, as such injectors do). */
    const injectProxy = (object: Json): Json[] =>
      (['initContainers', 'containers'] as const).flatMap((list) =>
        (object.spec[list] ?? []).flatMap((c: Json, i: number) => {
          if ((c.env ?? []).some((e: Json) => e.name === 'HTTPS_PROXY')) return [];
          const value = { name: 'HTTPS_PROXY', value: PROXY };
          return [c.env === undefined ? { op: 'add', path: `/spec/${list}/${i}/env`, value: [value] } : { op: 'add', path: `/spec/${list}/${i}/env/-`, value }];
        }),
      );

    before(async () => {
      const pki = await renewCertificates({ action: 'renew-ca', reason: 'other webhooks' }, { names: { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }, policy: { certValidityDays: 2, certRenewBeforeDays: 1, caValidityDays: 3, caRenewBeforeDays: 1 }, now: Date.now() });
      others = createHttpsServer({ cert: pki.cert, key: pki.key }, (req, res) => {
        let body = '';
        req.setEncoding('utf8').on('data', (c: string) => (body += c));
        req.on('end', () => {
          const request = JSON.parse(body).request;
          const patch = (req.url ?? '').startsWith('/image') ? rewriteImages(request.object) : injectProxy(request.object);
          othersCalls.push(`${req.url} ${request.object.metadata.name}: ${JSON.stringify(patch)}`);
          const response = { uid: request.uid, allowed: true, ...(patch.length > 0 ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') } : {}) };
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }));
        });
      });
      await new Promise<void>((resolve) => others.listen(0, '127.0.0.1', resolve));
      const port = (others.address() as { port: number }).port;
      const caBundle = Buffer.from(pki.caBundle).toString('base64');
      for (const variant of variants) {
        const entry = (name: string, path: string): Json => ({
          name: `${name}.${variant.config}.e2e.example`,
          admissionReviewVersions: ['v1'],
          sideEffects: 'None',
          failurePolicy: 'Fail',
          reinvocationPolicy: variant.policy,
          clientConfig: { url: `https://127.0.0.1:${port}${path}`, caBundle },
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }],
          objectSelector: { matchLabels: { 'e2e-others': variant.config } },
        });
        const registered = await cluster.request('POST', mwcPath, { metadata: { name: variant.config }, webhooks: [entry('image', '/image'), entry('proxy', '/proxy')] });
        assert.equal(registered.status, 201, JSON.stringify(registered.json));
      }
      for (const variant of variants) {
        await eventually(`${variant.config} being active`, async () => {
          const res = await create(APPS_NS, pod(`probe-${variant.config}`, { labels: { ...OPT_IN_LABEL, 'e2e-others': variant.config }, annotations: IDENTITY }), true);
          if (res.status === 201 && res.json.spec.containers[0].image.startsWith(MIRROR)) return true;
          throw new Error(`not yet: ${res.status} ${res.json.spec?.containers?.[0]?.image ?? JSON.stringify(res.json).slice(0, 600)}; calls: ${othersCalls.slice(-4).join('; ')}`);
        });
      }
    });

    after(async () => {
      for (const variant of variants) await cluster.request('DELETE', `${mwcPath}/${variant.config}`);
      await new Promise<void>((resolve) => {
        others.close(() => resolve());
        others.closeAllConnections();
      });
    });

    for (const variant of variants) for (const automount of [true, false]) {
      it(`${variant.order} ours, reinvocation ${variant.policy}, service-account automount ${automount ? 'on' : 'off'}: their changes survive, ours is counted once`, async () => {
        const name = `others-${variant.config}-sa-${automount ? 'on' : 'off'}`;
        const before = await admissionCounts();
        const res = await create(APPS_NS, pod(name, {
          labels: { ...OPT_IN_LABEL, 'e2e-others': variant.config },
          annotations: IDENTITY,
          spec: { automountServiceAccountToken: automount, containers: [appContainer({ env: [{ name: 'GREETING_URL', value: '$(IDENTITY_ENDPOINT)?resource=x' }] })] },
        }));
        assert.equal(res.status, 201, JSON.stringify(res.json));
        const after = await admissionCounts();
        const calls = Object.keys(after).reduce((sum, outcome) => sum + delta(before, after, outcome), 0);
        assert.equal(delta(before, after, 'mutated'), 1, 'counted once as mutated');
        // Changes after ours (theirs, or the ServiceAccount plugin's mount into the sidecar) make the API server call us
        // again; only when they ran before ours without reinvocation and nothing is mounted is there no second call.
        const theySawTheSidecar = variant.order === 'after' || variant.policy === 'IfNeeded';
        if (automount || theySawTheSidecar) assert.ok(calls >= 2, `the API server reinvoked the webhook (${calls} calls)`);
        const lines = await admissionLines(name, calls);
        for (const line of lines.slice(1)) assert.match(line, /"outcome":"skipped"/, 'every reinvocation answered without a patch');
        const [app] = res.json.spec.containers;
        const sidecar = res.json.spec.initContainers.find((c: Json) => c.name === SIDECAR_CONTAINER_NAME);
        const envNames = (c: Json) => (c.env ?? []).map((e: Json) => e.name);
        // The app: their image and proxy, our variables before the user's own (so $(IDENTITY_ENDPOINT) expands).
        assert.equal(app.image, `${MIRROR}app:1.0`);
        assert.ok(envNames(app).includes('HTTPS_PROXY'));
        assert.ok(envNames(app).indexOf('IDENTITY_ENDPOINT') < envNames(app).indexOf('GREETING_URL'));
        // The sidecar: whatever they did to it stays. They see it when they run after us, or are reinvoked.
        assert.equal(sidecar.image, theySawTheSidecar ? `${MIRROR}mi-anywhere:e2e` : 'registry.example/mi-anywhere:e2e');
        assert.equal(envNames(sidecar).includes('HTTPS_PROXY'), theySawTheSidecar);
        assert.equal(sidecar.terminationMessagePath, '/dev/termination-log');
        const saMounted = (sidecar.volumeMounts ?? []).some((m: Json) => m.mountPath === '/var/run/secrets/kubernetes.io/serviceaccount');
        assert.equal(saMounted, automount, 'the ServiceAccount plugin\'s mount on the sidecar stays');
      });
    }
  });

  it('pod-level spec.resources grow by the sidecar\'s, and the API server admits the pod', async () => {
    const res = await create(APPS_NS, pod('pod-level-resources', {
      labels: OPT_IN_LABEL,
      annotations: IDENTITY,
      spec: {
        automountServiceAccountToken: false,
        resources: { requests: { cpu: '500m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } },
        containers: [appContainer({ resources: { requests: { cpu: '500m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } } })],
      },
    }));
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.deepEqual(res.json.spec.resources, { requests: { cpu: '510m', memory: '352Mi' }, limits: { cpu: '1500m', memory: '768Mi' } });
    assert.equal(res.json.spec.initContainers[0].name, SIDECAR_CONTAINER_NAME);
  });

  it('name clashes are denied naming the object; a user volume is never replaced by the identity Secret', async () => {
    const cases: Array<[Json, RegExp]> = [
      [pod('clash-volume', { labels: OPT_IN_LABEL, annotations: IDENTITY, spec: { automountServiceAccountToken: false, volumes: [{ name: 'mi-anywhere-identity-0', emptyDir: {} }], containers: [appContainer({ volumeMounts: [{ name: 'mi-anywhere-identity-0', mountPath: '/data' }] })] } }), /volume named mi-anywhere-identity-0/],
      [pod('clash-container', { labels: OPT_IN_LABEL, annotations: IDENTITY, spec: { automountServiceAccountToken: false, containers: [appContainer(), appContainer({ name: SIDECAR_CONTAINER_NAME })] } }), /container named mi-anywhere/],
      [pod('clash-port-name', { labels: OPT_IN_LABEL, annotations: IDENTITY, spec: { automountServiceAccountToken: false, containers: [appContainer({ ports: [{ name: 'mi-any-metrics', containerPort: 9090 }] })] } }), /port mi-any-metrics/],
    ];
    for (const [body, message] of cases) {
      const res = await create(APPS_NS, body);
      assert.equal(res.status, 403, `${body.metadata.name}: ${JSON.stringify(res.json)}`);
      assert.match(res.json.message, message);
    }
    const udp = await create(APPS_NS, pod('udp-50342', { labels: OPT_IN_LABEL, annotations: IDENTITY, spec: { automountServiceAccountToken: false, containers: [appContainer({ ports: [{ containerPort: DEFAULT_TOKEN_PORT, protocol: 'UDP' }] })] } }));
    assert.equal(udp.status, 201, JSON.stringify(udp.json));
  });

  it('a caBundle reset by someone else (e.g. helm upgrade) is repaired', async () => {
    const mwcPath = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${MWC_NAME}`;
    const reset = await cluster.request('PATCH', mwcPath, [
      { op: 'remove', path: '/webhooks/0/clientConfig/caBundle' },
      { op: 'remove', path: '/webhooks/1/clientConfig/caBundle' },
    ], { 'content-type': 'application/json-patch+json' });
    assert.equal(reset.status, 200, JSON.stringify(reset.json));
    const ca = (await cluster.request('GET', `/api/v1/namespaces/${SYSTEM_NS}/secrets/${CERT_SECRET}`)).json.data['ca.crt'];
    await eventually('the caBundle to be patched back', async () => {
      const mwc = (await cluster.request('GET', mwcPath)).json;
      return mwc.webhooks.every((w: Json) => w.clientConfig.caBundle === ca) ? true : undefined;
    });
  });

  it('a lost certificate Secret is recreated with a new CA, published, and served without a restart', async () => {
    const secretPath = `/api/v1/namespaces/${SYSTEM_NS}/secrets/${CERT_SECRET}`;
    const before = (await cluster.request('GET', secretPath)).json.data;
    assert.equal((await cluster.request('DELETE', secretPath)).status, 200);
    const after = await eventually('a new certificate Secret', async () => {
      const res = await cluster.request('GET', secretPath);
      return res.status === 200 && res.json.data['ca.crt'] !== before['ca.crt'] ? res.json.data : undefined;
    });
    const served = await eventually('the webhook serving the new certificate', async () => {
      const fingerprint = await new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: webhookPort, ca: Buffer.from(after['ca.crt'], 'base64').toString() }, () => {
          resolve(socket.getPeerCertificate().fingerprint256);
          socket.end();
        });
        socket.on('error', reject);
      });
      return fingerprint === new X509Certificate(Buffer.from(after['tls.crt'], 'base64')).fingerprint256 ? true : undefined;
    });
    assert.equal(served, true);
    // And the API server, trusting the new caBundle, calls the webhook successfully again.
    await eventually('an injected pod after the rotation', async () => {
      const res = await create(APPS_NS, pod('after-rotation', { labels: OPT_IN_LABEL, annotations: IDENTITY }), true);
      return res.status === 201 && res.json.spec.initContainers?.[0]?.name === SIDECAR_CONTAINER_NAME ? true : undefined;
    });
  });

  it('with the webhook down, labelled pods are blocked and every other pod is admitted unchanged', async () => {
    await stopChild(webhook);
    assert.match(webhookOutput(), /"msg":"shutting down"/);
    const blocked = await create(APPS_NS, pod('down-labelled', { labels: OPT_IN_LABEL, annotations: IDENTITY }));
    assert.equal(blocked.status, 500, JSON.stringify(blocked.json));
    assert.match(blocked.json.message, /failed calling webhook "labelled\.inject\.mi-anywhere\.io"/);

    for (const body of [pod('down-annotated', { annotations: { [INJECT_KEY]: 'true', ...IDENTITY } }), pod('down-plain')]) {
      const res = await create(APPS_NS, body);
      assert.equal(res.status, 201, JSON.stringify(res.json));
      assert.equal(res.json.spec.initContainers, undefined, `${body.metadata.name} admitted without a sidecar`);
      assert.deepEqual(res.json.spec.containers.map((c: Json) => c.name), ['app']);
    }
  });
});
