/**
 * Should this pod get the sidecar, and with which settings? Reads the opt-in label/annotation and every
 * `mi-anywhere.io/*` annotation, validates them, and returns a decision. Pods that did not opt in are always
 * skipped (their annotations are not even validated: a typo must never block a pod that did not ask for us);
 * an opted-in pod with an invalid annotation is refused with a message naming the annotation and why, because
 * a silently un-injected pod is the failure users hate most.
 *
 * Precedence for every setting: pod annotation, else the webhook's configured default (config.ts).
 *
 * Pure: no I/O.
 */
import { ANNOTATIONS, ANNOTATION_PREFIX, INJECT_KEY, INJECT_VALUE, PROFILES, SIDECAR_CONTAINER_NAME, type Profile } from '../../sidecar/contract.ts';
import type { NodeSelectorTermJson, PodJson, PodSpecJson } from '../admission/types.ts';
import { LOG_LEVELS, MAX_SA_TOKEN_EXPIRATION_SECONDS, MIN_SA_TOKEN_EXPIRATION_SECONDS, type LogLevel, type SidecarConfig, type SidecarResources } from '../config.ts';
import { InvalidAnnotationError, PodRefusedError } from '../errors.ts';
import { parseQuantity } from './quantity.ts';

export const CREDENTIAL_KINDS = ['secret', 'certificate', 'federated'] as const;
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

/** Name of the optional IMDS redirect init container (also used to recognise it on reinvocation). */
export const IMDS_REDIRECT_CONTAINER_NAME = `${SIDECAR_CONTAINER_NAME}-imds-redirect`;

export interface FederatedSettings {
  readonly audience: string;
  readonly expirationSeconds: number;
}

/** Everything decided for one opted-in pod. */
export interface InjectionSettings {
  /** Secret names in the pod's namespace; the first is the default (system-assigned) identity. */
  readonly identities: readonly string[];
  readonly credentialKind: CredentialKind;
  /** Present exactly when `credentialKind` is `federated`. */
  readonly federated: FederatedSettings | undefined;
  readonly profile: Profile;
  readonly resources: SidecarResources;
  /** Containers and init containers that get no environment variables (and no Arc mount). */
  readonly skipContainers: readonly string[];
  readonly logLevel: LogLevel;
  readonly imdsRedirect: boolean;
}

export type Decision =
  | { readonly inject: false; readonly reason: string; readonly warnings: readonly string[] }
  | { readonly inject: true; readonly settings: InjectionSettings; readonly warnings: readonly string[] };

const KNOWN_ANNOTATIONS: ReadonlySet<string> = new Set(Object.values(ANNOTATIONS));

/** RFC 1123 subdomain: what Kubernetes accepts as a Secret name (apimachinery IsDNS1123Subdomain). */
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** True when the label or the annotation opts the pod in (both are accepted; see INJECT_KEY in contract.ts). */
export function isOptedIn(pod: PodJson): boolean {
  return pod.metadata?.labels?.[INJECT_KEY] === INJECT_VALUE || pod.metadata?.annotations?.[INJECT_KEY] === INJECT_VALUE;
}

/** The opt-in key set to something other than "true" or "false" (a misspelt "true", most likely). */
function unrecognisedOptInWarnings(values: readonly string[]): string[] {
  return values.filter((value) => value !== INJECT_VALUE && value !== 'false').map((value) => `mi-anywhere: ${INJECT_KEY}=${JSON.stringify(value)} is not "true"; the pod was not injected`);
}

/** Our annotations on a pod that carries no opt-in key at all. */
function missingOptInWarnings(pod: PodJson): string[] {
  const ours = Object.keys(pod.metadata?.annotations ?? {}).filter((k) => k.startsWith(ANNOTATION_PREFIX) && k !== INJECT_KEY);
  return ours.length > 0 ? [`mi-anywhere: the pod has ${ours.join(', ')} but not ${INJECT_KEY}: "true"; the pod was not injected`] : [];
}

/** Warnings for pods that look like they wanted injection but did not opt in (shown by kubectl, never blocking). */
function notOptedInWarnings(pod: PodJson): string[] {
  const values = [pod.metadata?.labels?.[INJECT_KEY], pod.metadata?.annotations?.[INJECT_KEY]].filter((v) => v !== undefined);
  return [...unrecognisedOptInWarnings(values), ...(values.length === 0 ? missingOptInWarnings(pod) : [])];
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/**
 * Secret names: a comma-separated list, default first. Only names, never `namespace/name`: the sidecar may
 * only read Secrets of its own pod's namespace (kubelet mounts only those anyway; refusing the slash makes the
 * rule explicit instead of failing later at mount time).
 */
function parseIdentities(annotations: Readonly<Record<string, string>>): string[] {
  const key = ANNOTATIONS.identities;
  const names = list(annotations[key] ?? '');
  // "" and "," alike name no Secret: without a default identity the sidecar could serve nothing.
  if (names.length === 0) {
    throw new InvalidAnnotationError(key, 'required: name the Secret (in the pod\'s namespace) that holds the identity (tenantId, clientId, and a credential)');
  }
  for (const name of names) {
    if (name.includes('/')) throw new InvalidAnnotationError(key, `${JSON.stringify(name)}: Secrets must be in the pod's own namespace; give the name only, without "namespace/"`);
    if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) throw new InvalidAnnotationError(key, `${JSON.stringify(name)} is not a valid Secret name (lowercase RFC 1123 subdomain)`);
  }
  const duplicate = names.find((name, index) => names.indexOf(name) !== index);
  if (duplicate !== undefined) throw new InvalidAnnotationError(key, `${JSON.stringify(duplicate)} is listed twice`);
  return names;
}

/** The federated-credential annotations on a pod of another credential kind would be ignored: refused instead. */
function refuseFederatedAnnotations(annotations: Readonly<Record<string, string>>): void {
  for (const key of [ANNOTATIONS.federatedAudience, ANNOTATIONS.federatedExpirationSeconds]) {
    if (annotations[key] !== undefined) throw new InvalidAnnotationError(key, `only applies when ${ANNOTATIONS.credentialKind} is "federated"`);
  }
}

function parseFederatedAudience(annotations: Readonly<Record<string, string>>, fallback: string): string {
  const audience = annotations[ANNOTATIONS.federatedAudience];
  if (audience === undefined) return fallback;
  if (audience.trim() === '') throw new InvalidAnnotationError(ANNOTATIONS.federatedAudience, 'must not be empty');
  return audience.trim();
}

function parseFederatedExpiration(annotations: Readonly<Record<string, string>>, fallback: number): number {
  const expiration = annotations[ANNOTATIONS.federatedExpirationSeconds];
  if (expiration === undefined) return fallback;
  const value = expiration.trim();
  // Kubernetes validation: at least 10 minutes, at most 2^32 seconds.
  if (!/^\d+$/.test(value) || Number(value) < MIN_SA_TOKEN_EXPIRATION_SECONDS || Number(value) > MAX_SA_TOKEN_EXPIRATION_SECONDS) {
    throw new InvalidAnnotationError(ANNOTATIONS.federatedExpirationSeconds, `${JSON.stringify(expiration)} must be whole seconds from ${MIN_SA_TOKEN_EXPIRATION_SECONDS} to ${MAX_SA_TOKEN_EXPIRATION_SECONDS} (Kubernetes' limits for projected service-account tokens)`);
  }
  return Number(value);
}

function parseFederated(annotations: Readonly<Record<string, string>>, kind: CredentialKind, config: SidecarConfig): FederatedSettings | undefined {
  if (kind !== 'federated') {
    refuseFederatedAnnotations(annotations);
    return undefined;
  }
  const audience = parseFederatedAudience(annotations, config.defaultFederatedAudience);
  return { audience, expirationSeconds: parseFederatedExpiration(annotations, config.defaultFederatedExpirationSeconds) };
}

function parseResources(annotations: Readonly<Record<string, string>>, defaults: SidecarResources): SidecarResources {
  const read = (key: string, fallback: string, kind: 'cpu' | 'memory'): string => {
    const value = annotations[key];
    if (value === undefined) return fallback;
    const parsed = parseQuantity(value.trim());
    if (parsed === undefined || parsed <= 0) throw new InvalidAnnotationError(key, `${JSON.stringify(value)} is not a positive ${kind} quantity (e.g. ${kind === 'cpu' ? '100m' : '128Mi'})`);
    return value.trim();
  };
  const resources = {
    cpuRequest: read(ANNOTATIONS.cpuRequest, defaults.cpuRequest, 'cpu'),
    cpuLimit: read(ANNOTATIONS.cpuLimit, defaults.cpuLimit, 'cpu'),
    memoryRequest: read(ANNOTATIONS.memoryRequest, defaults.memoryRequest, 'memory'),
    memoryLimit: read(ANNOTATIONS.memoryLimit, defaults.memoryLimit, 'memory'),
  };
  // The API server refuses request > limit with a message about spec.containers[n]; say it with our annotation names.
  for (const kind of ['cpu', 'memory'] as const) {
    const request = resources[`${kind}Request`];
    const limit = resources[`${kind}Limit`];
    if (limit !== '' && (parseQuantity(request) ?? 0) > (parseQuantity(limit) ?? Infinity)) {
      const key = annotations[ANNOTATIONS[`${kind}Request`]] !== undefined ? ANNOTATIONS[`${kind}Request`] : ANNOTATIONS[`${kind}Limit`];
      throw new InvalidAnnotationError(key, `the sidecar's ${kind} request ${request} would exceed its limit ${limit}`);
    }
  }
  return resources;
}

function parseBoolean(annotations: Readonly<Record<string, string>>, key: string): boolean {
  const value = annotations[key];
  if (value === undefined) return false;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new InvalidAnnotationError(key, `${JSON.stringify(value)} must be "true" or "false"`);
}

function parseSkipContainers(annotations: Readonly<Record<string, string>>, pod: PodJson): string[] {
  const key = ANNOTATIONS.skipContainers;
  const raw = annotations[key];
  if (raw === undefined) return [];
  const names = list(raw);
  const known = new Set([...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].map((c) => c.name));
  for (const name of names) {
    // A typo would silently give that container the env vars it was meant to be spared; say so instead.
    if (!known.has(name)) throw new InvalidAnnotationError(key, `${JSON.stringify(name)} is not a container or init container of this pod`);
  }
  return names;
}

function oneOf<T extends string>(annotations: Readonly<Record<string, string>>, key: string, allowed: readonly T[], fallback: T): T {
  const value = annotations[key];
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) throw new InvalidAnnotationError(key, `${JSON.stringify(value)} must be one of ${allowed.join(', ')}`);
  return value as T;
}

/** The well-known node label kubelet sets to the node's operating system. */
export const OS_LABEL = 'kubernetes.io/os';

/** Does this required node-affinity term rule out Linux nodes (every node carries kubernetes.io/os)? */
function termExcludesLinux(term: NodeSelectorTermJson): boolean {
  return (term.matchExpressions ?? []).some(
    (e) => e.key === OS_LABEL && ((e.operator === 'In' && !(e.values ?? []).includes('linux')) || (e.operator === 'NotIn' && (e.values ?? []).includes('linux')) || e.operator === 'DoesNotExist'),
  );
}

/** Does the pod's required node affinity rule out Linux nodes in every term (terms are alternatives)? */
function requiredAffinityExcludesLinux(spec: PodSpecJson | undefined): boolean {
  const terms = spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  return terms.length > 0 && terms.every(termExcludesLinux);
}

/** Why the pod can run only on nodes other than Linux ones, if it can. */
function nonLinuxPlacement(spec: PodSpecJson | undefined): string | undefined {
  if (spec?.os?.name === 'windows') return 'spec.os.name is windows';
  const selected = spec?.nodeSelector?.[OS_LABEL];
  if (selected !== undefined && selected !== 'linux') return `its nodeSelector ${OS_LABEL}=${selected} rules out Linux nodes`;
  if (requiredAffinityExcludesLinux(spec)) return `its required node affinity on ${OS_LABEL} rules out Linux nodes`;
  return undefined;
}

/**
 * Windows pods: the sidecar image is Linux-only, so the pod would never start. Recognised by `spec.os.name`, by a
 * `kubernetes.io/os` nodeSelector other than linux, and by a required node affinity whose every term rules out Linux
 * nodes (terms are alternatives, so one Linux-capable term keeps the pod injectable).
 */
function refuseWindowsPods(pod: PodJson): void {
  const where = nonLinuxPlacement(pod.spec);
  if (where !== undefined) throw new PodRefusedError(`mi-anywhere cannot inject into this pod: ${where}, and the sidecar is a Linux container; do not opt Windows pods in`);
}

/**
 * The label and the annotation both set, one "true" and the other anything else (typically "false"): the pod's
 * intent is contradictory, so neither wins silently.
 */
function refuseContradictoryOptIn(pod: PodJson): void {
  const label = pod.metadata?.labels?.[INJECT_KEY];
  const annotation = pod.metadata?.annotations?.[INJECT_KEY];
  if (label !== undefined && annotation !== undefined && label !== annotation) {
    throw new PodRefusedError(
      `mi-anywhere: the pod has label ${INJECT_KEY}=${JSON.stringify(label)} but annotation ${INJECT_KEY}=${JSON.stringify(annotation)}; remove one of them or give both the same value ("true" injects)`,
    );
  }
}

/** Kubelet's annotation on the API-server copy (mirror pod) of a static pod. */
export const MIRROR_POD_ANNOTATION = 'kubernetes.io/config.mirror';

/**
 * Kubelet runs a static pod from its manifest file; the API object is only a mirror, so a sidecar added here would
 * never run. Admitted unchanged (refusing would only hide the pod from the API), with a warning.
 */
function mirrorPodDecision(pod: PodJson): Decision {
  const warning = `mi-anywhere: ${pod.metadata?.name ?? 'this pod'} is a static (mirror) pod, which kubelet runs from its manifest file; add the sidecar to the manifest instead`;
  return { inject: false, reason: 'static (mirror) pod', warnings: [warning] };
}

/** A misspelt key (".../identity") would otherwise be ignored and the pod injected with defaults. */
function refuseUnknownAnnotations(annotations: Readonly<Record<string, string>>): void {
  for (const key of Object.keys(annotations)) {
    if (key.startsWith(ANNOTATION_PREFIX) && !KNOWN_ANNOTATIONS.has(key)) {
      throw new InvalidAnnotationError(key, `unknown annotation; known: ${[...KNOWN_ANNOTATIONS].join(', ')}`);
    }
  }
}

/** The token endpoint listens on 127.0.0.1, which a hostNetwork pod shares with the whole node. */
function refuseHostNetworkPods(pod: PodJson): void {
  if (pod.spec?.hostNetwork === true) {
    throw new PodRefusedError(
      'mi-anywhere cannot inject into a hostNetwork pod: its token endpoint listens on 127.0.0.1, which in the node\'s network namespace is shared with every process and pod on the node, so any of them could obtain this pod\'s tokens',
    );
  }
}

function parseImdsRedirect(annotations: Readonly<Record<string, string>>, config: SidecarConfig): boolean {
  const imdsRedirect = parseBoolean(annotations, ANNOTATIONS.imdsRedirect);
  if (imdsRedirect && config.imdsRedirectImage === undefined) {
    throw new InvalidAnnotationError(ANNOTATIONS.imdsRedirect, 'the IMDS redirect is disabled on this cluster (the webhook has no MI_ANYWHERE_WEBHOOK_IMDS_REDIRECT_IMAGE); point the app at the injected environment variables instead');
  }
  return imdsRedirect;
}

/** Every setting of an opted-in pod: its annotation, validated, else the webhook's default. */
function parseSettings(annotations: Readonly<Record<string, string>>, pod: PodJson, config: SidecarConfig): InjectionSettings {
  const credentialKind = oneOf(annotations, ANNOTATIONS.credentialKind, CREDENTIAL_KINDS, 'secret');
  const imdsRedirect = parseImdsRedirect(annotations, config);
  return {
    identities: parseIdentities(annotations),
    credentialKind,
    federated: parseFederated(annotations, credentialKind, config),
    profile: oneOf(annotations, ANNOTATIONS.profile, PROFILES, config.defaultProfile),
    resources: parseResources(annotations, config.resources),
    skipContainers: parseSkipContainers(annotations, pod),
    logLevel: oneOf(annotations, ANNOTATIONS.logLevel, LOG_LEVELS, config.defaultLogLevel),
    imdsRedirect,
  };
}

/**
 * Decides for one pod. Non-opted-in pods: `{inject: false}` (never an error). Opted-in pods: validated settings,
 * or a thrown {@link InvalidAnnotationError} / {@link PodRefusedError} that becomes a denied review.
 */
export function decide(pod: PodJson, config: SidecarConfig): Decision {
  if (!isOptedIn(pod)) return { inject: false, reason: 'not opted in', warnings: notOptedInWarnings(pod) };
  refuseContradictoryOptIn(pod);
  const annotations = pod.metadata?.annotations ?? {};
  if (annotations[MIRROR_POD_ANNOTATION] !== undefined) return mirrorPodDecision(pod);
  refuseUnknownAnnotations(annotations);
  refuseHostNetworkPods(pod);
  refuseWindowsPods(pod);
  return { inject: true, settings: parseSettings(annotations, pod, config), warnings: [] };
}
