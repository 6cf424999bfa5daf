/**
 * fast-check generators of pods and AdmissionReviews for the webhook's property tests: realistic pods (containers,
 * init containers, env, user volumes including the user's own Secrets, fsGroup, hostNetwork), every mi-anywhere
 * annotation with valid, hostile (`other-namespace/secret`, path tricks) and garbage values, random foreign
 * annotations and labels, and mutations of valid reviews. Plus the run settings every fuzz test uses: bounded runs,
 * a time limit, and a seed that is printed and can be replayed with `FC_SEED=<n>`.
 */
import fc from 'fast-check';
import { ANNOTATIONS, INJECT_KEY, PROFILES } from '../../sidecar/contract.ts';

/** Settings for `fc.assert`: bounded runs and time, reproducible seed. */
export function fuzzParameters<T>(numRuns: number, timeLimitMs = 20_000): fc.Parameters<T> {
  const seed = process.env['FC_SEED'] !== undefined ? Number(process.env['FC_SEED']) : Date.now() ^ (Math.random() * 0x7fffffff);
  return { numRuns, seed, interruptAfterTimeLimit: timeLimitMs, markInterruptAsFailure: false, endOnFailure: true };
}

/** Describes the seed so a failure can be replayed (`FC_SEED=<seed> node --test <file>`). */
export function seedNote<T>(parameters: fc.Parameters<T>): string {
  return `fast-check seed ${parameters.seed} (replay: FC_SEED=${parameters.seed})`;
}

const dnsLabel = fc.stringMatching(/^[a-z]([-a-z0-9]{0,10}[a-z0-9])?$/);
const secretName = fc.stringMatching(/^[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?$/);

/** Values for the identities annotation: valid lists, cross-namespace attempts, path tricks, garbage. */
export const identitiesValue = fc.oneof(
  { arbitrary: fc.uniqueArray(secretName, { minLength: 1, maxLength: 3 }).map((names) => names.join(',')), weight: 6 },
  fc.tuple(dnsLabel, secretName).map(([ns, name]) => `${ns}/${name}`),
  fc.tuple(secretName, dnsLabel, secretName).map(([a, ns, b]) => `${a}, ${ns}/${b}`),
  fc.constantFrom('../kube-system/admin-token', 'kube-system/default-token', '/etc/passwd', '..', '.', 'a/b/c', ' ', ''),
  fc.string({ maxLength: 30 }),
);

/** Mostly valid values (so pods get injected and the injection properties are exercised), sometimes garbage. */
function mostly(valid: fc.Arbitrary<string>, garbage: fc.Arbitrary<string> = fc.string({ maxLength: 20 })): fc.Arbitrary<string> {
  return fc.oneof({ arbitrary: valid, weight: 8 }, { arbitrary: garbage, weight: 1 });
}

function annotationValue(key: string): fc.Arbitrary<string> {
  switch (key) {
    case ANNOTATIONS.identities:
      return identitiesValue;
    case ANNOTATIONS.credentialKind:
      return mostly(fc.constantFrom('secret', 'certificate', 'federated'));
    case ANNOTATIONS.profile:
      return mostly(fc.constantFrom(...PROFILES));
    case ANNOTATIONS.federatedAudience:
      return mostly(fc.constantFrom('api://AzureADTokenExchange', 'custom'));
    case ANNOTATIONS.federatedExpirationSeconds:
      return mostly(fc.integer({ min: 600, max: 86400 }).map(String), fc.oneof(fc.integer({ min: 0, max: 2 ** 33 }).map(String), fc.string({ maxLength: 10 })));
    case ANNOTATIONS.cpuRequest:
      return mostly(fc.constantFrom('10m', '50m'), fc.constantFrom('0', '-1', 'x', '2'));
    case ANNOTATIONS.cpuLimit:
      return mostly(fc.constantFrom('100m', '1'), fc.constantFrom('0', 'x', '1m'));
    case ANNOTATIONS.memoryRequest:
      return mostly(fc.constantFrom('16Mi', '32Mi'), fc.constantFrom('0', 'x', '4Gi'));
    case ANNOTATIONS.memoryLimit:
      return mostly(fc.constantFrom('128Mi', '1Gi'), fc.constantFrom('0', 'x', '1Ki'));
    case ANNOTATIONS.logLevel:
      return mostly(fc.constantFrom('info', 'debug', 'trace', 'silent'));
    case ANNOTATIONS.imdsRedirect:
    case INJECT_KEY:
      return mostly(fc.constantFrom('true', 'false'));
    default:
      return fc.string({ maxLength: 20 });
  }
}

/** Annotation keys we own, the identities one most of the time (an opted-in pod without it is denied). */
const ourAnnotations = fc
  .record({
    identities: fc.oneof({ arbitrary: fc.constant(true), weight: 9 }, { arbitrary: fc.constant(false), weight: 1 }),
    others: fc.subarray(Object.values(ANNOTATIONS).filter((k) => k !== INJECT_KEY && k !== ANNOTATIONS.identities && k !== ANNOTATIONS.skipContainers), { maxLength: 4 }),
    skip: fc.oneof({ arbitrary: fc.constant(false), weight: 9 }, { arbitrary: fc.constant(true), weight: 1 }),
  })
  .chain(({ identities, others, skip }) => {
    const keys = [...(identities ? [ANNOTATIONS.identities] : []), ...others, ...(skip ? [ANNOTATIONS.skipContainers] : [])];
    return fc.tuple(...keys.map((k) => annotationValue(k).map((v) => [k, v] as const)));
  })
  .map((pairs) => Object.fromEntries(pairs) as Record<string, string>);

const foreignAnnotations = fc.dictionary(fc.string({ minLength: 1, maxLength: 30 }), fc.string({ maxLength: 30 }), { maxKeys: 3 });

const userVolume = fc.oneof(
  secretName.map((name) => ({ name: `user-${name}`.slice(0, 60), secret: { secretName: name } })),
  dnsLabel.map((name) => ({ name: `cache-${name}`, emptyDir: {} })),
  dnsLabel.map((name) => ({ name: `cfg-${name}`, configMap: { name } })),
);

function container(name: string, volumes: ReadonlyArray<{ name: string }>): fc.Arbitrary<Record<string, unknown>> {
  return fc.record(
    {
      name: fc.constant(name),
      image: fc.constantFrom('app:1', 'registry.example/app@sha256:' + 'a'.repeat(64)),
      env: fc.array(
        fc.oneof(
          fc.record({ name: fc.constantFrom('IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'MSI_ENDPOINT', 'FOO', 'AZURE_CLIENT_ID'), value: fc.string({ maxLength: 10 }) }),
          fc.record({ name: fc.constantFrom('DB_PASSWORD', 'TOKEN'), valueFrom: fc.record({ secretKeyRef: fc.record({ name: secretName, key: fc.constantFrom('password', 'token') }) }) }),
        ),
        { maxLength: 3 },
      ),
      volumeMounts: fc.subarray([...volumes]).map((vs) => vs.map((v) => ({ name: v.name, mountPath: `/mnt/${v.name}` }))),
    },
    { requiredKeys: ['name', 'image'] },
  );
}

/** A pod as the API server would send it in `request.object` (opted in or not, hostile annotations included). */
export const podArb = fc
  .record({
    names: fc.uniqueArray(dnsLabel, { minLength: 1, maxLength: 4 }),
    initNames: fc.uniqueArray(dnsLabel.map((n) => `init-${n}`), { maxLength: 2 }),
    volumes: fc.uniqueArray(userVolume, { maxLength: 3, selector: (v) => v.name }),
    optIn: fc.oneof(
      fc.constant({ labels: { [INJECT_KEY]: 'true' } }),
      fc.constant({ annotations: { [INJECT_KEY]: 'true' } }),
      fc.record({ annotations: fc.record({ [INJECT_KEY]: annotationValue(INJECT_KEY) }) }),
      fc.constant({}),
    ),
    ours: ourAnnotations,
    foreign: foreignAnnotations,
    namespace: fc.option(dnsLabel, { nil: undefined }),
    hostNetwork: fc.oneof({ arbitrary: fc.constant(undefined), weight: 6 }, { arbitrary: fc.constant(false), weight: 2 }, { arbitrary: fc.constant(true), weight: 1 }),
    fsGroup: fc.option(fc.integer({ min: 0, max: 70000 }), { nil: undefined }),
  })
  .chain((p) =>
    fc
      .tuple(fc.tuple(...p.names.map((n) => container(n, p.volumes))), fc.tuple(...p.initNames.map((n) => container(n, p.volumes))))
      .map(([containers, initContainers]) => ({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          generateName: 'app-',
          ...(p.namespace !== undefined ? { namespace: p.namespace } : {}),
          labels: { app: 'demo', ...((p.optIn as { labels?: Record<string, string> }).labels ?? {}) },
          annotations: { ...p.foreign, ...p.ours, ...((p.optIn as { annotations?: Record<string, string> }).annotations ?? {}) },
        },
        spec: {
          containers,
          ...(initContainers.length > 0 ? { initContainers } : {}),
          ...(p.volumes.length > 0 ? { volumes: p.volumes } : {}),
          ...(p.hostNetwork !== undefined ? { hostNetwork: p.hostNetwork } : {}),
          ...(p.fsGroup !== undefined ? { securityContext: { fsGroup: p.fsGroup } } : {}),
        },
      })),
  )
  // What the API server sends is JSON: plain objects (fast-check may build null-prototype ones).
  .map((pod) => JSON.parse(JSON.stringify(pod)) as PodLike);

export type PodLike = { metadata: { namespace?: string; annotations: Record<string, string> }; spec: Record<string, unknown> };

/** An AdmissionReview v1 request for a pod creation. */
export function reviewOf(pod: unknown, uid: string, namespace = 'apps'): Record<string, unknown> {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      namespace,
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object: pod,
      dryRun: false,
    },
  };
}

export const uidArb = fc.uuid();

/**
 * An opted-in pod that has every field the webhook reads (so each can be replaced by a wrong type), and is injected
 * as it is.
 */
export function podWithEveryReadField(): Record<string, any> {
  const container = (name: string) => ({
    name,
    image: 'registry.example/app:1',
    env: [{ name: 'FOO', value: 'bar' }],
    envFrom: [{ configMapRef: { name: 'cfg' } }],
    volumeMounts: [{ name: 'data', mountPath: '/data' }],
    ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
  });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'every-field', generateName: 'every-', namespace: 'apps', labels: { [INJECT_KEY]: 'true' }, annotations: { [ANNOTATIONS.identities]: 'app-identity' } },
    spec: {
      hostNetwork: false,
      restartPolicy: 'Always',
      os: { name: 'linux' },
      nodeSelector: { 'kubernetes.io/os': 'linux' },
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['linux'] }] }] } } },
      resources: { requests: { cpu: '1', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } },
      securityContext: { fsGroup: 2000 },
      containers: [container('app')],
      initContainers: [container('init')],
      volumes: [{ name: 'data', emptyDir: {} }],
    },
  };
}

/** Every path (inside `request.object`) the webhook reads, for wrong-type fuzzing; `0` stands for a list element. */
export const READ_FIELDS: ReadonlyArray<ReadonlyArray<string | number>> = (() => {
  const containerFields = (list: string) => [
    ['spec', list],
    ['spec', list, 0],
    ...['name', 'env', 'envFrom', 'volumeMounts', 'ports'].map((k) => ['spec', list, 0, k]),
    ...['name', 'value'].map((k) => ['spec', list, 0, 'env', 0, k]),
    ['spec', list, 0, 'env', 0],
    ['spec', list, 0, 'volumeMounts', 0],
    ...['name', 'mountPath'].map((k) => ['spec', list, 0, 'volumeMounts', 0, k]),
    ['spec', list, 0, 'ports', 0],
    ...['containerPort', 'name', 'protocol'].map((k) => ['spec', list, 0, 'ports', 0, k]),
  ];
  const affinity = ['spec', 'affinity', 'nodeAffinity', 'requiredDuringSchedulingIgnoredDuringExecution', 'nodeSelectorTerms', 0, 'matchExpressions', 0];
  return [
    [],
    ['metadata'],
    ...['name', 'generateName', 'namespace', 'labels', 'annotations'].map((k) => ['metadata', k]),
    ['metadata', 'labels', INJECT_KEY],
    ['metadata', 'annotations', ANNOTATIONS.identities],
    ['spec'],
    ...['hostNetwork', 'restartPolicy', 'os', 'nodeSelector', 'affinity', 'resources', 'securityContext', 'volumes'].map((k) => ['spec', k]),
    ['spec', 'os', 'name'],
    ['spec', 'nodeSelector', 'kubernetes.io/os'],
    ...affinity.map((_, i) => affinity.slice(0, i + 1)),
    [...affinity, 'key'],
    [...affinity, 'operator'],
    [...affinity, 'values'],
    [...affinity, 'values', 0],
    ...['requests', 'limits'].flatMap((k) => [['spec', 'resources', k], ['spec', 'resources', k, 'cpu'], ['spec', 'resources', k, 'memory']]),
    ['spec', 'securityContext', 'fsGroup'],
    ['spec', 'volumes', 0],
    ['spec', 'volumes', 0, 'name'],
    ...containerFields('containers'),
    ...containerFields('initContainers'),
  ];
})();

/** The field path as the webhook names it in its messages (`spec.containers[0].ports[0]`). */
export function fieldName(path: ReadonlyArray<string | number>): string {
  return path.map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${part}`)).join('');
}

/** Marker replaced in the body text by JSON nested `depth` levels deep (fast-check cannot build such values). */
export const DEEP_MARKER = '\u0000deep-json\u0000';

export function deepJson(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}null${'}'.repeat(depth)}`;
}

/** Any JSON value, including the wrong type for the field, plus the deep-nesting marker. */
export const wrongValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ maxLength: 10 }),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
  fc.constant(DEEP_MARKER),
);
