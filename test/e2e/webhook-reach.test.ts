/**
 * The webhook's reach on a real kube-apiserver, registered exactly as the chart renders it (helm template with
 * `webhook.urlOverride` pointing at a recording webhook on 127.0.0.1): with the default scope, pods that did not
 * opt in, and pods opted in by annotation only in a namespace without `mi-anywhere.io/injection=enabled`, are
 * never sent to the webhook; labelled pods are sent from every namespace the chart allows; and with
 * `webhook.annotationNamespaceSelector=null` every pod creation is (the cost docs/webhook.md "Reach and latency"
 * measures).
 *
 * "Never sent" is checked without waiting on a clock: the API server calls mutating webhooks before it answers
 * the create, so once a 201 is back, a request that was not recorded was never made.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ANNOTATIONS, INJECT_KEY } from '../../sidecar/contract.ts';
import { startKubeApiServer, type KubeCluster } from '../helpers/kube.ts';
import { chartWebhookConfiguration, INJECTION_NAMESPACE_LABEL, startRecordingWebhook, type Json, type RecordingWebhook } from '../helpers/webhook-reach.ts';

const RELEASE_NS = 'mi-anywhere-system';
/** Labelled for annotation-only opt-in. */
const ENABLED_NS = 'enabled';
/** No label: only labelled pods should reach the webhook from here (with the default scope). */
const OTHER_NS = 'other';
const MWC_PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';

function pod(name: string, options: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): Json {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: options.labels, annotations: options.annotations },
    spec: { automountServiceAccountToken: false, containers: [{ name: 'app', image: 'registry.example/app:1.0' }] },
  };
}

const LABELLED = { labels: { [INJECT_KEY]: 'true' }, annotations: { [ANNOTATIONS.identities]: 'x' } };
const ANNOTATED = { annotations: { [INJECT_KEY]: 'true', [ANNOTATIONS.identities]: 'x' } };

describe('webhook reach: the chart\'s registration on a real kube-apiserver', () => {
  let cluster: KubeCluster;
  let recorder: RecordingWebhook;
  let counter = 0;

  /** Creates a pod (unique name) and returns whether the webhook was asked about it. */
  async function reaches(namespace: string, options: Parameters<typeof pod>[1] = {}): Promise<boolean> {
    counter += 1;
    const name = `p${counter}`;
    const res = await cluster.request('POST', `/api/v1/namespaces/${namespace}/pods`, pod(name, options));
    assert.equal(res.status, 201, JSON.stringify(res.json));
    return recorder.seen.includes(`${namespace}/${name}`);
  }

  /** Registers the chart's configuration and waits until the API server uses it (a labelled pod reaches it). */
  async function register(scoped: boolean): Promise<void> {
    await cluster.request('DELETE', `${MWC_PATH}/mi-anywhere-reach`);
    const mwc = chartWebhookConfiguration({ url: recorder.url, caPem: recorder.caPem, scoped, releaseNamespace: RELEASE_NS, name: 'mi-anywhere-reach' });
    const created = await cluster.request('POST', MWC_PATH, mwc);
    assert.equal(created.status, 201, JSON.stringify(created.json));
    // The API server loads webhook configurations asynchronously: probe with pods whose fate differs between the
    // scoped and unscoped registrations until one shows this registration is the one in force.
    for (let attempt = 0; ; attempt++) {
      const expected = scoped ? !(await reaches(OTHER_NS, ANNOTATED)) && (await reaches(OTHER_NS, LABELLED)) : await reaches(OTHER_NS, ANNOTATED);
      if (expected) return;
      assert.ok(attempt < 300, `the API server never applied the ${scoped ? 'scoped' : 'unscoped'} registration:\n${await cluster.tail()}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  before(async () => {
    cluster = await startKubeApiServer();
    recorder = await startRecordingWebhook();
    await cluster.createNamespace(RELEASE_NS);
    await cluster.createNamespace(ENABLED_NS, { ...INJECTION_NAMESPACE_LABEL });
    await cluster.createNamespace(OTHER_NS);
  });

  after(async () => {
    await recorder?.stop();
    await cluster?.stop();
  });

  it('default scope: pods that did not opt in never reach the webhook; opted-in pods do where the chart allows', async () => {
    await register(true);
    assert.equal(await reaches(OTHER_NS), false, 'a plain pod in an unlabelled namespace');
    assert.equal(await reaches(ENABLED_NS), true, 'plain pods in an enabled namespace still pay the round trip (the price of annotation opt-in there)');
    assert.equal(await reaches(OTHER_NS, ANNOTATED), false, 'annotation-only opt-in is not honoured outside enabled namespaces');
    assert.equal(await reaches(ENABLED_NS, ANNOTATED), true, 'annotation-only opt-in in an enabled namespace');
    assert.equal(await reaches(OTHER_NS, LABELLED), true, 'the label works in every namespace');
    assert.equal(await reaches(ENABLED_NS, LABELLED), true);
    assert.equal(await reaches(RELEASE_NS, LABELLED), false, 'never the release namespace');
    // A labelled pod goes through exactly one entry: no pod is reviewed twice on its first pass.
    const twice = recorder.seen.filter((p, i) => recorder.seen.indexOf(p) !== i);
    assert.deepEqual(twice, []);
  });

  it('unscoped (annotationNamespaceSelector=null): every pod creation outside the exclusions reaches the webhook', async () => {
    await register(false);
    assert.equal(await reaches(OTHER_NS), true, 'a plain pod in an unlabelled namespace pays the round trip');
    assert.equal(await reaches(OTHER_NS, ANNOTATED), true);
    assert.equal(await reaches(RELEASE_NS), false, 'never the release namespace');
  });
});
