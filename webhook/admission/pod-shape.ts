/**
 * Structural check of `request.object` against the narrow {@link PodJson} types the injector relies on. The API
 * server only sends decoded, validated pods, so a mismatch means the body did not come from it (or was forged):
 * the answer is a 400 errored review naming the field, not an internal error (500) from deep inside the injector.
 * Found by test/fuzz/webhook-admission.test.ts (e.g. `spec.containers: [null]` was answered 500).
 *
 * Pure.
 */

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function stringMap(value: unknown, path: string): string | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) return `${path} must be an object`;
  for (const [k, v] of Object.entries(value)) if (typeof v !== 'string') return `${path}[${JSON.stringify(k)}] must be a string`;
  return undefined;
}

function arrayOfNamed(value: unknown, path: string, check?: (item: Record<string, unknown>, at: string) => string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) return `${path} must be an array`;
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    const at = `${path}[${i}]`;
    if (!isObject(item)) return `${at} must be an object`;
    if (typeof item['name'] !== 'string') return `${at}.name must be a string`;
    const problem = check?.(item, at);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function container(c: Record<string, unknown>, at: string): string | undefined {
  return (
    arrayOfNamed(c['env'], `${at}.env`) ??
    arrayOfNamed(c['volumeMounts'], `${at}.volumeMounts`) ??
    (c['envFrom'] !== undefined && !Array.isArray(c['envFrom']) ? `${at}.envFrom must be an array` : undefined) ??
    (c['ports'] !== undefined && !Array.isArray(c['ports']) ? `${at}.ports must be an array` : undefined)
  );
}

function metadataProblem(metadata: unknown): string | undefined {
  if (metadata === undefined) return undefined;
  if (!isObject(metadata)) return 'metadata must be an object';
  return stringMap(metadata['labels'], 'metadata.labels') ?? stringMap(metadata['annotations'], 'metadata.annotations');
}

function specProblem(spec: unknown): string | undefined {
  if (spec === undefined) return undefined;
  if (!isObject(spec)) return 'spec must be an object';
  if (spec['securityContext'] !== undefined && !isObject(spec['securityContext'])) return 'spec.securityContext must be an object';
  if (spec['hostNetwork'] !== undefined && typeof spec['hostNetwork'] !== 'boolean') return 'spec.hostNetwork must be a boolean';
  return (
    arrayOfNamed(spec['containers'], 'spec.containers', container) ??
    arrayOfNamed(spec['initContainers'], 'spec.initContainers', container) ??
    arrayOfNamed(spec['volumes'], 'spec.volumes')
  );
}

/** The first structural problem of a pod object, or undefined when it has the shape of a Pod. */
export function podShapeProblem(pod: unknown): string | undefined {
  if (!isObject(pod)) return 'request.object must be an object';
  return metadataProblem(pod['metadata']) ?? specProblem(pod['spec']);
}
