/**
 * Structural check of `request.object` against the narrow {@link PodJson} types the injector relies on: every
 * field the webhook reads has the type it expects, or the review is refused naming the field (e.g.
 * `spec.containers[0].ports[1]: expected object, received null`). The API server only sends decoded, validated
 * pods, so a mismatch means the body did not come from it (or was forged): the answer is a 400 errored review,
 * never an internal error (500) from deep inside the injector. Fields the webhook does not read are not visited,
 * so arbitrarily deep JSON elsewhere costs nothing and cannot overflow the stack.
 * Property-tested by test/fuzz/webhook-admission.test.ts (wrong types at every field below).
 *
 * Pure.
 */
import { z } from 'zod';

const str = z.string();
const stringMap = z.record(z.string(), z.string());
const named = { name: str };

const container = z.looseObject({
  ...named,
  env: z.array(z.looseObject({ ...named, value: str.optional() })).optional(),
  envFrom: z.array(z.unknown()).optional(),
  volumeMounts: z.array(z.looseObject({ ...named, mountPath: str })).optional(),
  ports: z.array(z.looseObject({ containerPort: z.number(), name: str.optional(), protocol: str.optional() })).optional(),
});

const resourceList = stringMap.optional();

const nodeSelectorTerm = z.looseObject({
  matchExpressions: z.array(z.looseObject({ key: str, operator: str, values: z.array(str).optional() })).optional(),
});

const pod = z.looseObject({
  metadata: z
    .looseObject({
      name: str.optional(),
      generateName: str.optional(),
      namespace: str.optional(),
      labels: stringMap.optional(),
      annotations: stringMap.optional(),
    })
    .optional(),
  spec: z.looseObject({
    hostNetwork: z.boolean().optional(),
    restartPolicy: str.optional(),
    os: z.looseObject({ name: str.optional() }).optional(),
    nodeSelector: stringMap.optional(),
    affinity: z
      .looseObject({
        nodeAffinity: z
          .looseObject({
            requiredDuringSchedulingIgnoredDuringExecution: z.looseObject({ nodeSelectorTerms: z.array(nodeSelectorTerm).optional() }).optional(),
          })
          .optional(),
      })
      .optional(),
    resources: z.looseObject({ requests: resourceList, limits: resourceList }).optional(),
    securityContext: z.looseObject({ fsGroup: z.number().optional() }).optional(),
    containers: z.array(container),
    initContainers: z.array(container).optional(),
    volumes: z.array(z.looseObject(named)).optional(),
  }),
});

/** `spec.containers[0].ports` from zod's path segments. */
function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${String(part)}`)).join('');
}

/** The first structural problem of a pod object (naming the field), or undefined when it has the shape of a Pod. */
export function podShapeProblem(object: unknown): string | undefined {
  const result = pod.safeParse(object);
  if (result.success) return undefined;
  const issue = result.error.issues[0];
  if (issue === undefined) return 'not a Pod';
  const where = issue.path.length === 0 ? 'request.object' : fieldPath(issue.path);
  return `${where}: ${issue.message}`;
}
