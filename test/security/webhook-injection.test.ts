/**
 * What the webhook can and cannot be made to do by a pod's author (docs/security.md §6), as properties over random and hostile
 * pods (fast-check; bounded, seed printed):
 * - identity Secrets are mounted into the sidecar container only: no app container or init container gets a new
 *   volume mount of a Secret, projected Secret or service-account token; the only Secret reference an app
 *   container gets is the default identity's non-secret `clientId` key (a `secretKeyRef`, needed by MSAL.NET);
 * - annotations cannot reach a Secret outside the pod's own namespace: any `namespace/name` (or other path
 *   syntax) in the identities annotation denies the pod, and every Secret the patch references is a bare name
 *   listed in the annotation (Kubernetes resolves bare names in the pod's namespace only);
 * - the patch never touches what the user already had (their volumes, mounts and env keep their values);
 * - pods that did not opt in are never changed, whatever else they carry.
 * Plus the TLS floor: the webhook refuses to be configured below TLS 1.2.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import jsonPatch, { type Operation } from 'fast-json-patch';
import { ANNOTATIONS, INJECT_KEY, SIDECAR_CONTAINER_NAME } from '../../sidecar/contract.ts';
import { handleReview } from '../../webhook/admission/handler.ts';
import { loadConfig } from '../../webhook/config.ts';
import { fixtureDeps } from '../helpers/admission-fixtures.ts';
import { fuzzParameters, podArb, reviewOf, seedNote, uidArb } from '../helpers/pod-arbitraries.ts';

type Json = Record<string, any>;

const deps = [
  { name: 'native sidecar', deps: fixtureDeps('native') },
  { name: 'regular sidecar', deps: fixtureDeps('regular-x') },
];

function decodePatch(review: Json): Operation[] {
  const patch = review['response']?.['patch'];
  return typeof patch === 'string' ? (JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) as Operation[]) : [];
}

/** Volumes whose content is a Secret or a credential. */
function isCredentialVolume(volume: Json | undefined): boolean {
  if (volume === undefined) return false;
  if (volume['secret'] !== undefined) return true;
  const sources = (volume['projected']?.['sources'] ?? []) as Json[];
  return sources.some((s) => s['secret'] !== undefined || s['serviceAccountToken'] !== undefined);
}

function mountNames(c: Json): string[] {
  return ((c['volumeMounts'] ?? []) as Json[]).map((m) => m['name'] as string);
}

function appContainers(pod: Json): Json[] {
  return [...((pod['spec']?.['containers'] ?? []) as Json[]), ...((pod['spec']?.['initContainers'] ?? []) as Json[])].filter(
    (c) => !String(c['name']).startsWith(SIDECAR_CONTAINER_NAME),
  );
}

function identitiesOf(pod: Json): string[] {
  return String(pod['metadata']?.['annotations']?.[ANNOTATIONS.identities] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

describe('webhook: what a pod author can make it do (property-based)', () => {
  for (const d of deps) {
    it(`(${d.name}) Secrets reach the sidecar only, stay in the pod's namespace, user values are kept, non-opted-in pods are untouched`, (t) => {
      const parameters = fuzzParameters<[Json, string]>(600);
      let mutatedCount = 0;
      let deniedCrossNamespace = 0;
      fc.assert(
        fc.property(podArb as fc.Arbitrary<Json>, uidArb, (pod, uid) => {
          const original = structuredClone(pod);
          const result = handleReview(reviewOf(pod, uid), d.deps);
          const response = result.review.response as Json;
          assert.equal(response['uid'], uid, 'uid echoed');
          assert.deepEqual(pod, original, 'the input pod is never mutated in place');
          const optedIn = pod['metadata']['labels']?.[INJECT_KEY] === 'true' || pod['metadata']['annotations']?.[INJECT_KEY] === 'true';
          const patch = decodePatch(result.review);
          if (!optedIn) {
            assert.equal(response['allowed'], true);
            assert.equal(patch.length, 0, 'a pod that did not opt in is never changed');
            return;
          }
          const names = identitiesOf(pod);
          if (names.some((n) => n.includes('/'))) {
            assert.equal(response['allowed'], false, 'a Secret in another namespace (or a path) is never accepted');
            assert.equal(response['status']?.['code'], 403);
            // (The message names the first invalid annotation, which may be another one; see the table below.)
            deniedCrossNamespace += 1;
            return;
          }
          if (response['allowed'] !== true) {
            assert.notEqual(response['status']?.['code'], 500, `unexpected error: ${response['status']?.['message']}`);
            return;
          }
          if (patch.length === 0) return;
          mutatedCount += 1;
          const mutated = jsonPatch.applyPatch(structuredClone(pod), patch, true, false).newDocument;
          const volumes = new Map(((mutated['spec']['volumes'] ?? []) as Json[]).map((v) => [v['name'] as string, v]));
          // 1. App containers: no new mount of a credential volume.
          const before = new Map(appContainers(pod).map((c) => [c['name'] as string, c]));
          for (const c of appContainers(mutated)) {
            const had = new Set(before.has(c['name']) ? mountNames(before.get(c['name'])!) : []);
            for (const name of mountNames(c).filter((n) => !had.has(n))) {
              assert.equal(isCredentialVolume(volumes.get(name)), false, `app container ${c['name']} got credential volume ${name}`);
            }
            // Env: the only Secret reference added is the default identity's clientId (not a secret).
            const hadEnv = new Set(((before.get(c['name'])?.['env'] ?? []) as Json[]).map((e) => JSON.stringify(e)));
            for (const e of ((c['env'] ?? []) as Json[]).filter((x) => !hadEnv.has(JSON.stringify(x)))) {
              const ref = e['valueFrom']?.['secretKeyRef'];
              if (ref !== undefined) {
                assert.equal(ref['key'], 'clientId', `app container ${c['name']} got Secret key ${ref['key']}`);
                assert.equal(ref['name'], names[0]);
              }
            }
          }
          // 2. Every Secret the patch references is a bare name from the annotation.
          const added = JSON.stringify(patch);
          for (const m of added.matchAll(/"(?:secretName|name)":"([^"]*)"/g)) assert.ok(!m[1]!.includes('/'));
          for (const v of volumes.values()) {
            for (const s of ((v['projected']?.['sources'] ?? []) as Json[])) {
              if (s['secret'] !== undefined && !((pod['spec']['volumes'] ?? []) as Json[]).some((u) => u['name'] === v['name'])) {
                assert.ok(names.includes(s['secret']['name']), `Secret ${s['secret']['name']} not from the annotation`);
              }
            }
          }
          // 3. The user's own volumes, mounts and env are kept as they were.
          for (const v of (pod['spec']['volumes'] ?? []) as Json[]) assert.deepEqual(volumes.get(v['name']), v);
          for (const c of appContainers(pod)) {
            const now = appContainers(mutated).find((x) => x['name'] === c['name']);
            assert.ok(now !== undefined, `container ${c['name']} kept`);
            for (const e of (c['env'] ?? []) as Json[]) assert.ok(((now['env'] ?? []) as Json[]).some((x) => JSON.stringify(x) === JSON.stringify(e)), 'user env kept');
            for (const m of (c['volumeMounts'] ?? []) as Json[]) assert.ok(((now['volumeMounts'] ?? []) as Json[]).some((x) => JSON.stringify(x) === JSON.stringify(m)), 'user mount kept');
          }
          // 4. Exactly one sidecar, which alone mounts the identity Secrets.
          const sidecars = [...((mutated['spec']['containers'] ?? []) as Json[]), ...((mutated['spec']['initContainers'] ?? []) as Json[])].filter((c) => c['name'] === SIDECAR_CONTAINER_NAME);
          assert.equal(sidecars.length, 1);
          // 5. Idempotent: a second pass adds nothing.
          const again = handleReview(reviewOf(mutated, uid), d.deps);
          assert.equal(decodePatch(again.review as Json).length, 0, 'reinvocation adds nothing');
        }),
        parameters,
      );
      t.diagnostic(`${mutatedCount} pods injected, ${deniedCrossNamespace} cross-namespace attempts denied; ${seedNote(parameters)}`);
      // The generators must reach both interesting regions, or the property proves little.
      assert.ok(mutatedCount > 0, `no generated pod was injected (${seedNote(parameters)})`);
      assert.ok(deniedCrossNamespace > 0, `no cross-namespace attempt generated (${seedNote(parameters)})`);
    });
  }

  const hostile = ['kube-system/azure-credentials', 'other/secret', '../other/secret', 'ok-secret,kube-system/admin', 'a/b'];
  for (const value of hostile) {
    it(`denies identities=${JSON.stringify(value)} with a message naming the annotation`, () => {
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'p', namespace: 'apps', labels: { [INJECT_KEY]: 'true' }, annotations: { [ANNOTATIONS.identities]: value } },
        spec: { containers: [{ name: 'app', image: 'app:1' }] },
      };
      const result = handleReview(reviewOf(pod, 'uid-1'), fixtureDeps('native'));
      assert.equal(result.review.response.allowed, false);
      assert.equal(result.review.response.status?.code, 403);
      assert.match(result.review.response.status?.message ?? '', /mi-anywhere\.io\/identities/);
      assert.equal(result.patch.length, 0);
    });
  }

  it('cannot be configured below TLS 1.2; defaults to TLS 1.3', () => {
    const env = { MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'registry.example/mi-anywhere:0.1.0' };
    assert.equal(loadConfig(env).tlsMinVersion, 'TLSv1.3');
    assert.equal(loadConfig({ ...env, MI_ANYWHERE_WEBHOOK_TLS_MIN_VERSION: 'TLSv1.2' }).tlsMinVersion, 'TLSv1.2');
    for (const v of ['TLSv1.1', 'TLSv1', 'SSLv3', 'tls1.0']) {
      assert.throws(() => loadConfig({ ...env, MI_ANYWHERE_WEBHOOK_TLS_MIN_VERSION: v }), /TLS_MIN_VERSION/, v);
    }
  });
});
