/**
 * Properties of the pure injector over generated pods: the input is never modified, a second pass changes
 * nothing (reinvocation), applying the diff to the original gives the mutated pod, user env values survive, and
 * only non-skipped containers get variables.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { PROFILES, SIDECAR_CONTAINER_NAME } from '../../../sidecar/contract.ts';
import type { ContainerJson, PodJson } from '../../../webhook/admission/types.ts';
import { loadConfig } from '../../../webhook/config.ts';
import { injectionPatch, mutatePod } from '../../../webhook/inject/mutate.ts';
import type { InjectionSettings } from '../../../webhook/inject/policy.ts';
import { secretFileMode } from '../../../webhook/inject/sidecar.ts';
import { applyPatch } from '../../helpers/admission-fixtures.ts';

const config = loadConfig({ MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'img', MI_ANYWHERE_WEBHOOK_IMDS_REDIRECT_IMAGE: 'ipt' }).sidecar;
const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/);
const envName = fc.constantFrom('IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'MSI_ENDPOINT', 'OTHER', 'AZURE_POD_IDENTITY_AUTHORITY_HOST');
const container = fc.record({
  name,
  image: fc.constant('app:1'),
  env: fc.option(fc.uniqueArray(fc.record({ name: envName, value: fc.string({ maxLength: 5 }) }), { selector: (e) => e.name, maxLength: 3 }), { nil: undefined }),
});
const podArb = fc
  .record({
    containers: fc.uniqueArray(container, { selector: (c) => c.name, minLength: 1, maxLength: 3 }),
    initContainers: fc.uniqueArray(container, { selector: (c) => c.name, maxLength: 2 }),
    fsGroup: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
  })
  .filter((p) => new Set([...p.containers, ...p.initContainers].map((c) => c.name)).size === p.containers.length + p.initContainers.length)
  .map(({ containers, initContainers, fsGroup }): PodJson => {
    const clean = (c: { name: string; image: string; env: Array<{ name: string; value: string }> | undefined }): ContainerJson => (c.env === undefined ? { name: c.name, image: c.image } : c);
    // JSON round trip: admission objects are parsed JSON (fast-check builds null-prototype records).
    return JSON.parse(JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p' },
      spec: {
        containers: containers.map(clean),
        ...(initContainers.length > 0 ? { initContainers: initContainers.map(clean) } : {}),
        ...(fsGroup !== undefined ? { securityContext: { fsGroup } } : {}),
      },
    })) as PodJson;
  });
const settingsArb = (pod: PodJson) =>
  fc.record({
    identities: fc.uniqueArray(name, { minLength: 1, maxLength: 3 }),
    credentialKind: fc.constantFrom('secret' as const, 'certificate' as const, 'federated' as const),
    profile: fc.constantFrom(...PROFILES),
    skip: fc.subarray([...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].map((c) => c.name)),
    imdsRedirect: fc.boolean(),
  }).map(
    (s): InjectionSettings => ({
      identities: s.identities,
      credentialKind: s.credentialKind,
      federated: s.credentialKind === 'federated' ? { audience: 'api://AzureADTokenExchange', expirationSeconds: 3600 } : undefined,
      profile: s.profile,
      resources: config.resources,
      skipContainers: s.skip,
      logLevel: 'info',
      imdsRedirect: s.imdsRedirect,
    }),
  );
const scenario = podArb.chain((pod) => fc.tuple(fc.constant(pod), settingsArb(pod), fc.boolean()));

describe('mutatePod properties', () => {
  it('is pure, idempotent, and its patch reproduces it', () => {
    fc.assert(
      fc.property(scenario, ([pod, settings, native]) => {
        const before = structuredClone(pod);
        const plan = { config, settings, native, secret: 'first-secret-value-0123456789' };
        const once = mutatePod(pod, plan);
        assert.deepEqual(pod, before, 'input untouched');
        const second = { config, settings, native: !native, secret: 'other-secret-value-0123456789' };
        assert.deepEqual(injectionPatch(once, second), [], 'second pass adds nothing');
        assert.deepEqual(mutatePod(once, second), once);
        const patch = injectionPatch(pod, plan);
        assert.ok(patch.every((op) => op.op === 'add' || (op.op === 'replace' && op.path.startsWith('/spec/resources/'))), 'only additions');
        assert.deepEqual(applyPatch(pod, patch), once);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps user values, injects only into non-skipped containers, and adds exactly one sidecar', () => {
    fc.assert(
      fc.property(scenario, ([pod, settings, native]) => {
        const out = mutatePod(pod, { config, settings, native, secret: 'first-secret-value-0123456789' });
        const all = [...(out.spec?.initContainers ?? []), ...(out.spec?.containers ?? [])];
        assert.equal(all.filter((c) => c.name === SIDECAR_CONTAINER_NAME).length, 1);
        const sidecarList = native ? out.spec?.initContainers : out.spec?.containers;
        assert.equal(sidecarList?.[settings.imdsRedirect && native ? 1 : 0]?.name, SIDECAR_CONTAINER_NAME, 'sidecar placed first');
        for (const original of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
          const after = all.find((c) => c.name === original.name);
          assert.ok(after);
          for (const env of original.env ?? []) assert.deepEqual(after.env?.find((e) => e.name === env.name), env, 'user value kept');
          if (settings.skipContainers.includes(original.name)) assert.deepEqual(after, original, 'skipped container untouched');
        }
        const identityVolumes = (out.spec?.volumes ?? []).filter((v) => v.name.startsWith(`${SIDECAR_CONTAINER_NAME}-identity-`));
        assert.equal(identityVolumes.length, settings.identities.length);
      }),
      { numRuns: 300 },
    );
  });
});

/** What the API server and other webhooks do to an injected pod before calling us again. */
function changedByOthers(pod: PodJson): PodJson {
  const copy = structuredClone(pod) as any;
  const saVolume = { name: 'kube-api-access-abcde', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3607 } }] } };
  copy.spec.volumes = [...(copy.spec.volumes ?? []), saVolume];
  for (const list of ['initContainers', 'containers']) {
    for (const c of copy.spec[list] ?? []) {
      c.image = `mirror.internal.example/${c.image}`;
      c.terminationMessagePath = '/dev/termination-log';
      c.env = [...(c.env ?? []), { name: 'HTTPS_PROXY', value: 'http://proxy:3128' }];
      c.volumeMounts = [...(c.volumeMounts ?? []), { name: saVolume.name, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }];
      if (c.startupProbe) c.startupProbe.successThreshold = 1;
      if (c.resources) c.resources = { requests: { cpu: '20m', memory: '64Mi' } };
    }
  }
  return copy as PodJson;
}

describe('reinvocation after others changed the pod', () => {
  it('adds nothing and so keeps every foreign change (defaults, rewritten image, proxy env, SA mount, resources)', () => {
    fc.assert(
      fc.property(scenario, ([pod, settings, native]) => {
        const injected = mutatePod(pod, { config, settings, native, secret: 'first-secret-value-0123456789' });
        const changed = changedByOthers(injected);
        assert.deepEqual(injectionPatch(changed, { config, settings, native, secret: 'other-secret-value-0123456789' }), []);
      }),
      { numRuns: 200 },
    );
  });

  it('a container added later gets the variables first, and nothing else changes', () => {
    fc.assert(
      fc.property(scenario, ([pod, settings, native]) => {
        const injected = changedByOthers(mutatePod(pod, { config, settings, native, secret: 'first-secret-value-0123456789' })) as any;
        injected.spec.containers.push({ name: 'late-added', image: 'late:1', env: [{ name: 'USER_VAR', value: 'x' }] });
        const patch = injectionPatch(injected, { config, settings, native, secret: 'other-secret-value-0123456789' });
        const index = injected.spec.containers.length - 1;
        assert.ok(patch.length > 0);
        assert.ok(patch.every((op) => op.op === 'add' && op.path.startsWith(`/spec/containers/${index}/`)), JSON.stringify(patch));
        const after = applyPatch<any>(injected, patch);
        assert.equal(after.spec.containers[index].env.at(-1).name, 'USER_VAR', 'the user entry stays last');
      }),
      { numRuns: 200 },
    );
  });
});

describe('secret file mode', () => {
  it('0440 with an fsGroup (group-readable by the sidecar), 0444 without', () => {
    assert.equal(secretFileMode(2000), 0o440);
    assert.equal(secretFileMode(undefined), 0o444);
  });
});
