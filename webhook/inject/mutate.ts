/**
 * `injectionPatch(pod, plan)`: the RFC 6902 patch that wires the sidecar into a pod, built from explicit additions
 * only. The patch never replaces or removes anything, so whatever the API server defaulted (terminationMessagePath,
 * probe defaults), what the ServiceAccount admission plugin added (the kube-api-access volume and mounts) and what
 * other webhooks changed (a rewritten image, an injected HTTPS_PROXY) survives every call.
 *
 * Reinvocation (`reinvocationPolicy: IfNeeded`): when our sidecar is already in the pod, it is left exactly as
 * stored (image, env, mounts, probes, resources — whoever changed them); only what is missing is added: app
 * variables in containers another webhook added later, a volume of ours someone removed. For a pod injected once
 * and not changed since, the patch is empty.
 *
 * A user object whose name equals one we would add (container, init container, volume, port name) or a mount at a
 * path we need is never replaced: the pod is refused with a message naming the object and the fix.
 *
 * Pure: no I/O.
 */
import type { Operation } from 'fast-json-patch';
import jsonPatch from 'fast-json-patch';
import type { V1EnvVar } from '@kubernetes/client-node';
import { ARC_TOKENS_DIR, SIDECAR_CONTAINER_NAME, SIDECAR_ENV } from '../../sidecar/contract.ts';
import type { ContainerJson, PodJson } from '../admission/types.ts';
import type { SidecarConfig } from '../config.ts';
import { PodRefusedError } from '../errors.ts';
import { IMDS_REDIRECT_CONTAINER_NAME, type InjectionSettings } from './policy.ts';
import { formatQuantity, parseQuantity } from './quantity.ts';
import {
  PORT_NAMES,
  VOLUME_NAMES,
  arcAppMount,
  buildAppEnv,
  buildImdsRedirectContainer,
  buildSidecarContainer,
  buildVolumes,
  type BuildInput,
} from './sidecar.ts';

export interface MutationPlan {
  readonly config: SidecarConfig;
  readonly settings: InjectionSettings;
  /** Preferred sidecar form for a first injection; an already injected sidecar keeps its form. */
  readonly native: boolean;
  /** Fresh per-pod secret, used only when the pod has no sidecar yet. */
  readonly secret: string;
}

/** Set by kubectl users to choose the container of `kubectl logs/exec`; we add it (never override it). */
export const DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';

type ListKey = 'initContainers' | 'containers';

interface Located {
  readonly list: ListKey;
  readonly index: number;
  readonly container: ContainerJson;
}

/** JSON-pointer escaping of one path segment (RFC 6901). */
const segment = (key: string): string => jsonPatch.escapePathComponent(key);

function containersOf(pod: PodJson, list: ListKey): readonly ContainerJson[] {
  return pod.spec?.[list] ?? [];
}

function allContainers(pod: PodJson): Located[] {
  return (['initContainers', 'containers'] as const).flatMap((list) => containersOf(pod, list).map((container, index) => ({ list, index, container })));
}

/**
 * Our sidecar from a previous invocation: the container with our name that carries the per-pod header variable
 * only the webhook sets. A user container that merely has our name is not ours (and is refused as a clash).
 */
function findOurSidecar(pod: PodJson): Located | undefined {
  return allContainers(pod).find(
    ({ container }) => container.name === SIDECAR_CONTAINER_NAME && (container.env ?? []).some((e) => e.name === SIDECAR_ENV.identityHeader && typeof e.value === 'string'),
  );
}

/** The identity/federated volumes hold credentials: only the sidecar may mount them. */
function credentialVolumeNames(input: BuildInput): Set<string> {
  return new Set(buildVolumes(input).map((v) => v.name).filter((name) => name !== VOLUME_NAMES.arc));
}

function refuse(message: string): never {
  throw new PodRefusedError(`mi-anywhere: ${message}`);
}

/** First injection only: nothing we add may already exist under our names. */
function refuseNameClashes(pod: PodJson, input: BuildInput): void {
  for (const { list, container } of allContainers(pod)) {
    if (container.name === SIDECAR_CONTAINER_NAME || container.name === IMDS_REDIRECT_CONTAINER_NAME) {
      refuse(`the pod already has a${list === 'initContainers' ? 'n init' : ''} container named ${container.name}, the name of the container mi-anywhere adds; rename that container`);
    }
  }
  const ours = new Set(buildVolumes(input).map((v) => v.name));
  for (const volume of pod.spec?.volumes ?? []) {
    if (ours.has(volume.name)) refuse(`the pod already has a volume named ${volume.name}, the name of a volume mi-anywhere adds; rename that volume (and its volumeMounts)`);
  }
}

/** Ports and port names the sidecar needs. Only TCP clashes: a UDP/SCTP port of the same number is another socket. */
function refusePortClashes(container: ContainerJson, config: SidecarConfig): void {
  const ourPorts = new Map([
    [config.tokenPort, 'token'],
    [config.healthPort, 'health'],
    [config.metricsPort, 'metrics'],
  ]);
  const ourPortNames: ReadonlySet<string> = new Set(Object.values(PORT_NAMES));
  for (const port of container.ports ?? []) {
    const use = ourPorts.get(port.containerPort);
    if (use !== undefined && (port.protocol ?? 'TCP') === 'TCP') {
      refuse(
        `container ${container.name} declares TCP port ${port.containerPort}, which the sidecar needs for its ${use} listener (pods share one network namespace); change the app's port or the webhook's MI_ANYWHERE_WEBHOOK_SIDECAR_${use.toUpperCase()}_PORT`,
      );
    }
    if (port.name !== undefined && ourPortNames.has(port.name)) {
      refuse(`container ${container.name} names a port ${port.name}, a port name the sidecar uses (port names are unique per pod); rename that port`);
    }
  }
}

/**
 * Mounts of our credential volumes (a dangling mount would otherwise expose the identity Secret to the app once we
 * add the volume) and, for Arc, another volume at the key directory's path (the app would never see the key files).
 */
function refuseMountClashes(container: ContainerJson, credentials: ReadonlySet<string>, arc: boolean): void {
  for (const mount of container.volumeMounts ?? []) {
    if (credentials.has(mount.name)) {
      refuse(`container ${container.name} mounts volume ${mount.name}, the name of the volume that holds mi-anywhere's identity Secret, which only the sidecar may read; rename that volumeMount and its volume`);
    }
    if (arc && mount.name !== VOLUME_NAMES.arc && mount.mountPath.replace(/\/+$/, '') === ARC_TOKENS_DIR) {
      refuse(`container ${container.name} already mounts volume ${mount.name} at ${ARC_TOKENS_DIR}, where the Arc profile puts the sidecar's key files; remove that mount, list the container in mi-anywhere.io/skip-containers, or use another profile`);
    }
  }
}

/** Every call, for every container that is not ours. */
function refuseContainerClashes(pod: PodJson, input: BuildInput, ours: ReadonlySet<ContainerJson>): void {
  const credentials = credentialVolumeNames(input);
  const skip = new Set(input.settings.skipContainers);
  for (const { container } of allContainers(pod)) {
    if (ours.has(container)) continue;
    refusePortClashes(container, input.config);
    refuseMountClashes(container, credentials, input.settings.profile === 'arc' && !skip.has(container.name));
  }
}

/**
 * The regular-container form never exits, so a pod that runs to completion (a Job's, restartPolicy Never or
 * OnFailure) would never complete; native sidecars are stopped by kubelet after the app containers.
 */
function refuseRunToCompletionWithRegularSidecar(pod: PodJson, native: boolean): void {
  const restartPolicy = pod.spec?.restartPolicy;
  if (!native && (restartPolicy === 'Never' || restartPolicy === 'OnFailure')) {
    refuse(
      `the pod has restartPolicy ${restartPolicy} (e.g. a Job's pod) and this cluster gets the regular-container sidecar, which never exits, so the pod would never complete; run the webhook on Kubernetes >= 1.29 with MI_ANYWHERE_WEBHOOK_NATIVE_SIDECAR=auto or always (native sidecars stop with the app), or do not opt this pod in`,
    );
  }
}

/** Our app variables the container does not define itself, inserted first so the user's `$(VAR)` references expand. */
function envOps(at: string, container: ContainerJson, appEnv: readonly V1EnvVar[]): Operation[] {
  const existing = new Set((container.env ?? []).map((e) => e.name));
  const missing = appEnv.filter((e) => !existing.has(e.name));
  if (missing.length === 0) return [];
  if (container.env === undefined) return [{ op: 'add', path: `${at}/env`, value: missing }];
  return missing.map((value, index): Operation => ({ op: 'add', path: `${at}/env/${index}`, value }));
}

function arcMountOps(at: string, container: ContainerJson): Operation[] {
  const mounts = container.volumeMounts ?? [];
  if (mounts.some((m) => m.name === VOLUME_NAMES.arc)) return [];
  if (container.volumeMounts === undefined) return [{ op: 'add', path: `${at}/volumeMounts`, value: [arcAppMount()] }];
  return [{ op: 'add', path: `${at}/volumeMounts/-`, value: arcAppMount() }];
}

/** App variables (and the Arc mount) for every container that is neither ours nor skipped; indices as in `pod`. */
function wireAppOps(pod: PodJson, input: BuildInput, ours: ReadonlySet<ContainerJson>): Operation[] {
  const appEnv = buildAppEnv(input);
  const skip = new Set(input.settings.skipContainers);
  return allContainers(pod).flatMap(({ list, index, container }) => {
    if (ours.has(container) || skip.has(container.name)) return [];
    const at = `/spec/${list}/${index}`;
    return [...envOps(at, container, appEnv), ...(input.settings.profile === 'arc' ? arcMountOps(at, container) : [])];
  });
}

function missingVolumeOps(pod: PodJson, input: BuildInput): Operation[] {
  const present = new Set((pod.spec?.volumes ?? []).map((v) => v.name));
  const missing = buildVolumes(input).filter((v) => !present.has(v.name));
  if (missing.length === 0) return [];
  if (pod.spec?.volumes === undefined) return [{ op: 'add', path: '/spec/volumes', value: missing }];
  return missing.map((value): Operation => ({ op: 'add', path: '/spec/volumes/-', value }));
}

/** Inserts `value` as the first element of a container list (creating the list when absent). */
function prependContainer(pod: PodJson, list: ListKey, value: object, created: Set<ListKey>): Operation {
  if (pod.spec?.[list] === undefined && !created.has(list)) {
    created.add(list);
    return { op: 'add', path: `/spec/${list}`, value: [value] };
  }
  return { op: 'add', path: `/spec/${list}/0`, value };
}

/**
 * Our containers, placed first so everything after them starts once the token endpoint is ready (native: later
 * init containers too). The IMDS redirect goes before the sidecar: it must finish before anything calls IMDS.
 */
function containerOps(pod: PodJson, input: BuildInput, addSidecar: boolean, addRedirect: boolean): Operation[] {
  const created = new Set<ListKey>();
  const ops: Operation[] = [];
  if (addSidecar) ops.push(prependContainer(pod, input.native ? 'initContainers' : 'containers', buildSidecarContainer(input), created));
  if (addRedirect) ops.push(prependContainer(pod, 'initContainers', buildImdsRedirectContainer(input), created));
  return ops;
}

type Kind = 'cpu' | 'memory';
type ResourceField = 'requests' | 'limits';
type Quantities = Partial<Record<ResourceField, Partial<Record<Kind, string>>>>;

/** Every pod-level value the sidecar's join may grow, in the order the patch replaces them. */
const POD_RESOURCE_SLOTS = [
  ['requests', 'cpu'],
  ['requests', 'memory'],
  ['limits', 'cpu'],
  ['limits', 'memory'],
] as const;

/** One pod-level value the user set: where it is and what it says. */
interface PodQuantity {
  /** Its place in the pod, as in a refusal message (`spec.resources.limits.cpu`). */
  readonly at: string;
  readonly kind: Kind;
  readonly current: string;
}

/** One pod-level value after the sidecar joins: its own value added, and at least the IMDS redirect's. */
function grownQuantity(quantity: PodQuantity, added: string, floor: string | undefined): string {
  const value = parseQuantity(quantity.current);
  if (value === undefined) refuse(`${quantity.at} ${JSON.stringify(quantity.current)} is not a quantity`);
  const sum = value + (parseQuantity(added) ?? 0);
  return formatQuantity(Math.max(sum, parseQuantity(floor ?? '0') ?? 0), quantity.kind);
}

/** What the sidecar adds to the pod's aggregate; without a limit it counts with its request. */
function sidecarQuantities(input: BuildInput): Record<ResourceField, Record<Kind, string>> {
  const r = input.settings.resources;
  return {
    requests: { cpu: r.cpuRequest, memory: r.memoryRequest },
    limits: { cpu: r.cpuLimit || r.cpuRequest, memory: r.memoryLimit || r.memoryRequest },
  };
}

/** The IMDS redirect init container's resources when the pod gets one: the floor of each pod-level value. */
function redirectQuantities(input: BuildInput): Quantities {
  return input.settings.imdsRedirect ? (buildImdsRedirectContainer(input).resources as Quantities) : {};
}

/**
 * Pod-level `spec.resources` (PodLevelResources): the API server requires them to cover the containers' aggregate
 * (regular and sidecar containers summed, init containers by maximum), so each pod-level value the user set grows
 * by the sidecar's, and is at least the IMDS redirect's. A sidecar without a limit counts with its request, so the
 * pod's requests never exceed its limits.
 */
function podResourceOps(pod: PodJson, input: BuildInput): Operation[] {
  const podResources = pod.spec?.resources;
  if (podResources === undefined) return [];
  const sidecar = sidecarQuantities(input);
  const redirect = redirectQuantities(input);
  return POD_RESOURCE_SLOTS.flatMap(([field, kind]): Operation[] => {
    const current = podResources[field]?.[kind];
    if (current === undefined) return [];
    const value = grownQuantity({ at: `spec.resources.${field}.${kind}`, kind, current }, sidecar[field][kind], redirect[field]?.[kind]);
    return [{ op: 'replace', path: `/spec/resources/${field}/${kind}`, value }];
  });
}

/** `kubectl logs/exec` without `-c` should land in the app, not in the sidecar (regular form: the first container). */
function defaultContainerOps(pod: PodJson): Operation[] {
  const annotations = pod.metadata?.annotations;
  const first = containersOf(pod, 'containers')[0];
  if (first === undefined || annotations?.[DEFAULT_CONTAINER_ANNOTATION] !== undefined) return [];
  if (annotations === undefined) return [{ op: 'add', path: '/metadata/annotations', value: { [DEFAULT_CONTAINER_ANNOTATION]: first.name } }];
  return [{ op: 'add', path: `/metadata/annotations/${segment(DEFAULT_CONTAINER_ANNOTATION)}`, value: first.name }];
}

function secretOf(sidecar: ContainerJson): string | undefined {
  const value = (sidecar.env ?? []).find((e) => e.name === SIDECAR_ENV.identityHeader)?.value;
  return typeof value === 'string' ? value : undefined;
}

/** What the builders need for this pod: a sidecar injected before keeps its form and its secret. */
function buildInputFor(pod: PodJson, plan: MutationPlan, existing: Located | undefined): BuildInput {
  const fsGroup = pod.spec?.securityContext?.fsGroup;
  return {
    config: plan.config,
    settings: plan.settings,
    native: existing === undefined ? plan.native : existing.list === 'initContainers',
    secret: (existing && secretOf(existing.container)) ?? plan.secret,
    fsGroup: typeof fsGroup === 'number' ? fsGroup : undefined,
  };
}

/** On reinvocation, the containers we added before: our sidecar and the IMDS redirect, if there is one. */
function ourContainers(pod: PodJson, existing: Located | undefined): ReadonlySet<ContainerJson> {
  if (existing === undefined) return new Set();
  const redirects = allContainers(pod)
    .map(({ container }) => container)
    .filter((container) => container.name === IMDS_REDIRECT_CONTAINER_NAME);
  return new Set([existing.container, ...redirects]);
}

/** First injection only: the pod must not already use our names, nor run to completion with a sidecar that never exits. */
function refuseFirstInjectionClashes(pod: PodJson, input: BuildInput): void {
  refuseNameClashes(pod, input);
  refuseRunToCompletionWithRegularSidecar(pod, input.native);
}

/**
 * The additions for one pod that {@link decide} said to inject. Throws {@link PodRefusedError} for a clash.
 * Operations that address existing containers by index come before the insertions that shift them.
 */
export function injectionPatch(pod: PodJson, plan: MutationPlan): Operation[] {
  const existing = findOurSidecar(pod);
  const firstInjection = existing === undefined;
  const input = buildInputFor(pod, plan, existing);
  if (firstInjection) refuseFirstInjectionClashes(pod, input);
  const ours = ourContainers(pod, existing);
  refuseContainerClashes(pod, input, ours);
  const hasRedirect = [...ours].some((container) => container.name === IMDS_REDIRECT_CONTAINER_NAME);
  return [
    ...wireAppOps(pod, input, ours),
    ...missingVolumeOps(pod, input),
    ...containerOps(pod, input, firstInjection, plan.settings.imdsRedirect && !hasRedirect),
    ...(firstInjection ? [...podResourceOps(pod, input), ...defaultContainerOps(pod)] : []),
  ];
}

/** The pod with the patch applied, as a new object (for tests and tools; the webhook answers with the patch). */
export function mutatePod(pod: PodJson, plan: MutationPlan): PodJson {
  const patch = injectionPatch(pod, plan);
  return jsonPatch.applyPatch(structuredClone(pod), patch, true, false).newDocument;
}

/** What kubectl should tell about one app container: variables it keeps as its own, and `envFrom` ours override. */
function containerWarnings(container: ContainerJson, ourNames: readonly string[]): string[] {
  const own = (container.env ?? []).map((e) => e.name).filter((name) => ourNames.includes(name));
  const warnings: string[] = [];
  if (own.length > 0) {
    warnings.push(`mi-anywhere: container ${container.name} keeps its own ${own.join(', ')}; the sidecar's values were not set for them (list the container in mi-anywhere.io/skip-containers if it should not use the sidecar)`);
  }
  if ((container.envFrom ?? []).length > 0) {
    warnings.push(`mi-anywhere: container ${container.name} uses envFrom; the injected ${ourNames.join(', ')} take precedence over envFrom values of the same name`);
  }
  return warnings;
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
  return all.filter((container) => container.name !== IMDS_REDIRECT_CONTAINER_NAME && !skip.has(container.name)).flatMap((container) => containerWarnings(container, names));
}
