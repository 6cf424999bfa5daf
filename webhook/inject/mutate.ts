/**
 * `mutatePod(pod, plan)`: the pod with the sidecar wired in, as a new object (the input is never modified).
 *
 * Idempotent, because the API server may call us again after other webhooks changed the pod
 * (`reinvocationPolicy: IfNeeded`): our containers and volumes are recognised by name and replaced in place with
 * the same content, the per-pod secret already in the sidecar is reused, and app variables are only added when a
 * variable of that name is absent. So `mutatePod(mutatePod(p)) ≡ mutatePod(p)`, and containers added by a later
 * webhook still receive the variables on reinvocation.
 *
 * Pure: no I/O.
 */
import type { V1Container, V1EnvVar, V1Volume } from '@kubernetes/client-node';
import { SIDECAR_CONTAINER_NAME, SIDECAR_ENV } from '../../sidecar/contract.ts';
import type { PodJson } from '../admission/types.ts';
import type { SidecarConfig } from '../config.ts';
import { IMDS_REDIRECT_CONTAINER_NAME, type InjectionSettings } from './policy.ts';
import { arcAppMount, buildAppEnv, buildImdsRedirectContainer, buildSidecarContainer, buildVolumes, type BuildInput } from './sidecar.ts';

export interface MutationPlan {
  readonly config: SidecarConfig;
  readonly settings: InjectionSettings;
  /** Preferred sidecar form for a first injection; an already injected sidecar keeps its form. */
  readonly native: boolean;
  /** Fresh per-pod secret, used only when the pod has no sidecar yet. */
  readonly secret: string;
}

/** Mutable view of raw JSON used only inside this module, on a private deep copy. */
type Obj = Record<string, unknown>;
type ContainerObj = Obj & { name: string; env?: Obj[]; volumeMounts?: Obj[] };

const OUR_CONTAINERS: ReadonlySet<string> = new Set([SIDECAR_CONTAINER_NAME, IMDS_REDIRECT_CONTAINER_NAME]);

function containerList(spec: Obj, key: 'containers' | 'initContainers'): ContainerObj[] {
  const value = spec[key];
  return Array.isArray(value) ? (value as ContainerObj[]) : [];
}

/** Our sidecar's existing form and per-pod secret, when a previous invocation injected it. */
function findExisting(spec: Obj): { native: boolean; secret: string | undefined } | undefined {
  for (const key of ['initContainers', 'containers'] as const) {
    const found = containerList(spec, key).find((c) => c.name === SIDECAR_CONTAINER_NAME);
    if (found) {
      const env = (found.env ?? []).find((e) => e.name === SIDECAR_ENV.identityHeader);
      return { native: key === 'initContainers', secret: typeof env?.value === 'string' ? env.value : undefined };
    }
  }
  return undefined;
}

/** Replaces the element with the same name, or inserts at `at` (0 = first, undefined = append). */
function upsertByName(list: Obj[], item: Obj & { name: string }, at: number | undefined): Obj[] {
  const index = list.findIndex((entry) => entry.name === item.name);
  if (index >= 0) return list.map((entry, i) => (i === index ? item : entry));
  if (at === undefined) return [...list, item];
  return [...list.slice(0, at), item, ...list.slice(at)];
}

/** Adds app variables that the container does not define itself (by name); user values always win. */
function addEnv(container: ContainerObj, env: readonly V1EnvVar[]): void {
  const existing = container.env ?? [];
  const names = new Set(existing.map((e) => e.name));
  const missing = env.filter((e) => !names.has(e.name));
  if (missing.length > 0) container.env = [...existing, ...(missing as unknown as Obj[])];
}

function addMount(container: ContainerObj, mount: Obj & { name: string; mountPath: string }): void {
  const existing = container.volumeMounts ?? [];
  if (existing.some((m) => m.name === mount.name || m.mountPath === mount.mountPath)) return;
  container.volumeMounts = [...existing, mount];
}

function asObj(value: V1Container | V1Volume): Obj & { name: string } {
  return value as unknown as Obj & { name: string };
}

/** Build inputs for this pod: an already injected sidecar keeps its form and its per-pod secret. */
function buildInputFor(spec: Obj, plan: MutationPlan): BuildInput {
  const existing = findExisting(spec);
  const fsGroup = (spec.securityContext as { fsGroup?: unknown } | undefined)?.fsGroup;
  return {
    config: plan.config,
    settings: plan.settings,
    native: existing?.native ?? plan.native,
    secret: existing?.secret ?? plan.secret,
    fsGroup: typeof fsGroup === 'number' ? fsGroup : undefined,
  };
}

/**
 * Our containers, placed first so everything after them starts once the token endpoint is ready (native: later
 * init containers too). The IMDS redirect goes before the sidecar: it must finish before anything calls IMDS.
 */
function placeContainers(spec: Obj, input: BuildInput): { initContainers: Obj[]; containers: Obj[] } {
  const sidecar = asObj(buildSidecarContainer(input));
  let initContainers = containerList(spec, 'initContainers') as Obj[];
  let containers = containerList(spec, 'containers') as Obj[];
  if (input.native) initContainers = upsertByName(initContainers, sidecar, 0);
  else containers = upsertByName(containers, sidecar, 0);
  if (input.settings.imdsRedirect) initContainers = upsertByName(initContainers, asObj(buildImdsRedirectContainer(input)), 0);
  return { initContainers, containers };
}

/** App variables (and the Arc mount) for every container that is neither ours nor skipped. */
function wireApps(all: readonly Obj[], input: BuildInput): void {
  const appEnv = buildAppEnv(input);
  const skip = new Set(input.settings.skipContainers);
  for (const container of all as ContainerObj[]) {
    if (OUR_CONTAINERS.has(container.name) || skip.has(container.name)) continue;
    addEnv(container, appEnv);
    if (input.settings.profile === 'arc') addMount(container, arcAppMount() as unknown as Obj & { name: string; mountPath: string });
  }
}

/** The mutated copy of `pod`. Call only for pods that {@link decide} said to inject. */
export function mutatePod(pod: PodJson, plan: MutationPlan): PodJson {
  const copy = structuredClone(pod) as unknown as Obj;
  const spec = (copy.spec ?? {}) as Obj;
  copy.spec = spec;
  const input = buildInputFor(spec, plan);
  const { initContainers, containers } = placeContainers(spec, input);
  let volumes = Array.isArray(spec.volumes) ? (spec.volumes as Obj[]) : [];
  for (const volume of buildVolumes(input)) volumes = upsertByName(volumes, asObj(volume), undefined);
  spec.volumes = volumes;
  wireApps([...initContainers, ...containers], input);
  if (initContainers.length > 0) spec.initContainers = initContainers;
  spec.containers = containers;
  return copy as unknown as PodJson;
}

/**
 * Warnings shown by kubectl for a first injection (empty on reinvocation, where the variables are ours):
 * containers that already define some of the profile's variables keep their values — a mix of theirs and ours
 * rarely works, so say which — and containers with `envFrom`, because Kubernetes lets explicit `env` (ours)
 * win over `envFrom` values of the same name.
 */
export function injectionWarnings(pod: PodJson, plan: MutationPlan): string[] {
  const spec = pod.spec ?? {};
  const all = [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
  if (all.some((c) => c.name === SIDECAR_CONTAINER_NAME)) return [];
  const names = buildAppEnv({ config: plan.config, settings: plan.settings, secret: plan.secret }).map((e) => e.name);
  const skip = new Set(plan.settings.skipContainers);
  const warnings: string[] = [];
  for (const container of all) {
    if (OUR_CONTAINERS.has(container.name) || skip.has(container.name)) continue;
    const own = (container.env ?? []).map((e) => e.name).filter((name) => names.includes(name));
    if (own.length > 0) {
      warnings.push(`mi-anywhere: container ${container.name} keeps its own ${own.join(', ')}; the sidecar's values were not set for them (list the container in mi-anywhere.io/skip-containers if it should not use the sidecar)`);
    }
    if ((container.envFrom ?? []).length > 0) {
      warnings.push(`mi-anywhere: container ${container.name} uses envFrom; the injected ${names.join(', ')} take precedence over envFrom values of the same name`);
    }
  }
  return warnings;
}
