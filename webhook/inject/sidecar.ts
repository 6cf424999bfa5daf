/**
 * Builds what the webhook adds to a pod: the sidecar container (native or regular), the optional IMDS redirect
 * init container, the volumes (identity Secrets, projected service-account token, Arc key directory), and the
 * environment variables apps receive. Everything is derived from the webhook's config and the pod's settings; the
 * per-pod secret comes in as a parameter (randomness is the shell's job).
 *
 * Pure: no I/O, deterministic for equal inputs. Only first injections use these builders in full; on reinvocation
 * webhook/inject/mutate.ts adds just the missing pieces and never rewrites what is already in the pod.
 */
import { posix } from 'node:path';
import type { V1Container, V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import {
  APP_ENV,
  ARC_TOKENS_DIR,
  IDENTITY_FILES,
  PATHS,
  SIDECAR_ARC_KEY_DIR,
  SIDECAR_CONTAINER_NAME,
  SIDECAR_ENV,
  SIDECAR_FEDERATED_TOKEN_FILE,
  SIDECAR_IDENTITY_DIR,
  DEFAULT_TOKEN_ADDRESS,
  IMDS_ADDRESS,
  profileEnv,
} from '../../sidecar/contract.ts';
import type { SidecarConfig } from '../config.ts';
import { IMDS_REDIRECT_CONTAINER_NAME, type InjectionSettings } from './policy.ts';

/** Names of the volumes we add (a user object with one of these names is refused, never replaced). */
export const VOLUME_NAMES = {
  identity: (index: number): string => `${SIDECAR_CONTAINER_NAME}-identity-${index}`,
  federatedToken: `${SIDECAR_CONTAINER_NAME}-federated-token`,
  arc: `${SIDECAR_CONTAINER_NAME}-arc`,
} as const;

/** Named container ports (at most 15 characters, unique per pod); a PodMonitor can select `mi-any-metrics`. */
export const PORT_NAMES = { health: 'mi-any-health', metrics: 'mi-any-metrics' } as const;

/** Inputs that are not settings: the mode chosen at start-up and this pod's facts. */
export interface BuildInput {
  readonly config: SidecarConfig;
  readonly settings: InjectionSettings;
  /** Native sidecar (init container with restartPolicy Always) or a regular first container. */
  readonly native: boolean;
  /** Per-pod random value of IDENTITY_HEADER / MSI_SECRET (and the sidecar's expected header). */
  readonly secret: string;
  /** The pod's `spec.securityContext.fsGroup`, which decides the file mode of mounted Secrets (see secretFileMode). */
  readonly fsGroup: number | undefined;
}

/**
 * File mode of the identity Secret and token files. Kubelet makes Secret files in projected volumes
 * `root:root` unless the pod has an fsGroup, in which case the group becomes the fsGroup and every container
 * (the sidecar included) carries it as a supplementary group. So: 0440 with an fsGroup; otherwise 0444,
 * because 0440 root:root would be unreadable for the non-root sidecar. The looser mode exposes nothing extra:
 * the volume is mounted into the sidecar container only, whose only process is the sidecar.
 */
export function secretFileMode(fsGroup: number | undefined): number {
  return fsGroup === undefined ? 0o444 : 0o440;
}

/** Base URL of the token listener as apps see it (same network namespace: loopback). */
export function tokenBaseUrl(config: SidecarConfig): string {
  return `http://${DEFAULT_TOKEN_ADDRESS}:${config.tokenPort}`;
}

/** Placeholder for the default identity's client id, replaced by a secretKeyRef (the webhook cannot read Secrets). */
const CLIENT_ID_PLACEHOLDER = '\u0000client-id';

/**
 * Environment variables for app containers, in profileEnv's stable order. `DEFAULT_IDENTITY_CLIENT_ID`
 * (MSAL.NET requires it for the Azure ML dialect, docs/protocols.md §2.7) comes from the default identity Secret's
 * `clientId` key through a secretKeyRef: the webhook has no read access to Secrets, and the client id is not
 * secret. `optional: true` keeps a Secret without that key from blocking the container start.
 */
export function buildAppEnv(input: Pick<BuildInput, 'config' | 'settings' | 'secret'>): V1EnvVar[] {
  const defaultSecret = input.settings.identities[0] ?? '';
  return profileEnv(input.settings.profile, {
    baseUrl: tokenBaseUrl(input.config),
    secret: input.secret,
    defaultClientId: CLIENT_ID_PLACEHOLDER,
  }).map(([name, value]): V1EnvVar => {
    if (name === APP_ENV.defaultIdentityClientId && value === CLIENT_ID_PLACEHOLDER) {
      return { name, valueFrom: { secretKeyRef: { name: defaultSecret, key: IDENTITY_FILES.clientId, optional: true } } };
    }
    return { name, value };
  });
}

/** The sidecar's own settings, as the variables sidecar/config.ts reads (SIDECAR_ENV). */
export function buildSidecarEnv(input: BuildInput): V1EnvVar[] {
  const { config, settings } = input;
  const env: V1EnvVar[] = [
    { name: SIDECAR_ENV.mode, value: 'entra' },
    // Tokens only on loopback: reachable from this pod's containers, never from the network.
    { name: SIDECAR_ENV.tokenAddress, value: DEFAULT_TOKEN_ADDRESS },
    { name: SIDECAR_ENV.tokenPort, value: String(config.tokenPort) },
    // Health and metrics on every interface: kubelet probes and Prometheus connect to the pod IP, not loopback
    // (`::` for IPv6-only clusters, where 0.0.0.0 would miss the pod's only address).
    { name: SIDECAR_ENV.healthAddress, value: config.probeAddress },
    { name: SIDECAR_ENV.healthPort, value: String(config.healthPort) },
    { name: SIDECAR_ENV.metricsAddress, value: config.probeAddress },
    { name: SIDECAR_ENV.metricsPort, value: String(config.metricsPort) },
    { name: SIDECAR_ENV.identityDir, value: SIDECAR_IDENTITY_DIR },
    { name: SIDECAR_ENV.defaultIdentity, value: settings.identities[0] ?? '' },
    { name: SIDECAR_ENV.identityHeader, value: input.secret },
    { name: SIDECAR_ENV.logLevel, value: settings.logLevel },
  ];
  if (config.authorityHost !== undefined) env.push({ name: SIDECAR_ENV.authorityHost, value: config.authorityHost });
  if (settings.profile === 'arc') {
    env.push({ name: SIDECAR_ENV.arcKeyDir, value: SIDECAR_ARC_KEY_DIR });
    // The app reads the key file under another uid. With an fsGroup, kubelet makes the emptyDir setgid to it and
    // every container carries it, so group-read suffices; without one only world-read works. The directory is
    // shared only by this pod's containers, and each key is single-use.
    env.push({ name: SIDECAR_ENV.arcKeyFileMode, value: input.fsGroup === undefined ? '0644' : '0640' });
  }
  if (settings.federated !== undefined) env.push({ name: SIDECAR_ENV.federatedTokenFile, value: SIDECAR_FEDERATED_TOKEN_FILE });
  return env;
}

/** Volumes we add: one projected Secret per identity, the projected token (federated), the Arc key directory. */
export function buildVolumes(input: BuildInput): V1Volume[] {
  const mode = secretFileMode(input.fsGroup);
  const volumes: V1Volume[] = input.settings.identities.map((secretName, index) => ({
    name: VOLUME_NAMES.identity(index),
    // Projected rather than a plain secret volume so that file modes and future sources (e.g. a ConfigMap with
    // objectId/resourceId) combine in one directory per identity.
    projected: { defaultMode: mode, sources: [{ secret: { name: secretName } }] },
  }));
  if (input.settings.federated !== undefined) {
    volumes.push({
      name: VOLUME_NAMES.federatedToken,
      projected: {
        defaultMode: mode,
        sources: [
          {
            serviceAccountToken: {
              audience: input.settings.federated.audience,
              expirationSeconds: input.settings.federated.expirationSeconds,
              path: posix.basename(SIDECAR_FEDERATED_TOKEN_FILE),
            },
          },
        ],
      },
    });
  }
  // Memory-backed: key files are short-lived secrets and must not land on the node's disk.
  if (input.settings.profile === 'arc') volumes.push({ name: VOLUME_NAMES.arc, emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } });
  return volumes;
}

function sidecarMounts(input: BuildInput): V1VolumeMount[] {
  const mounts: V1VolumeMount[] = input.settings.identities.map((secretName, index) => ({
    name: VOLUME_NAMES.identity(index),
    mountPath: `${SIDECAR_IDENTITY_DIR}/${secretName}`,
    readOnly: true,
  }));
  if (input.settings.federated !== undefined) {
    mounts.push({ name: VOLUME_NAMES.federatedToken, mountPath: posix.dirname(SIDECAR_FEDERATED_TOKEN_FILE), readOnly: true });
  }
  if (input.settings.profile === 'arc') mounts.push({ name: VOLUME_NAMES.arc, mountPath: SIDECAR_ARC_KEY_DIR });
  return mounts;
}

/** The mount apps get for the Arc profile: the SDKs insist on reading the key file below ARC_TOKENS_DIR. */
export function arcAppMount(): V1VolumeMount {
  return { name: VOLUME_NAMES.arc, mountPath: ARC_TOKENS_DIR, readOnly: true };
}

function resources(settings: InjectionSettings): NonNullable<V1Container['resources']> {
  const limits: Record<string, string> = {};
  if (settings.resources.cpuLimit !== '') limits.cpu = settings.resources.cpuLimit;
  if (settings.resources.memoryLimit !== '') limits.memory = settings.resources.memoryLimit;
  return {
    requests: { cpu: settings.resources.cpuRequest, memory: settings.resources.memoryRequest },
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
  };
}

/**
 * The restricted Pod Security Standard, satisfied field by field, so that policy engines (PSA restricted,
 * Kyverno/Gatekeeper baselines) admit the injected pod.
 */
function restrictedSecurityContext(config: SidecarConfig): NonNullable<V1Container['securityContext']> {
  return {
    runAsNonRoot: true,
    runAsUser: config.runAsUser,
    runAsGroup: config.runAsGroup,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/**
 * The sidecar container.
 *
 * Native (Kubernetes >= 1.29, SidecarContainers beta and on by default): an init container with
 * `restartPolicy: Always`; kubelet starts the next init container and the app containers only after its
 * startupProbe succeeded, i.e. when `/readyz` says tokens can be served, and stops it after the app containers.
 *
 * Regular (older clusters): the first container, with a postStart exec hook that waits for `/readyz`
 * ({@link waitUntilReadyCommand}). Kubelet does not start the next container until the postStart hook of the previous one returns, so the
 * apps again start only when the token endpoint is ready (the same trick Istio's holdApplicationUntilProxyStarts uses).
 */
export function buildSidecarContainer(input: BuildInput): V1Container {
  const { config } = input;
  const container: V1Container = {
    name: SIDECAR_CONTAINER_NAME,
    image: config.image,
    imagePullPolicy: config.imagePullPolicy,
    command: [...config.command],
    args: [...config.args],
    ...(input.native ? { restartPolicy: 'Always' } : {}),
    env: buildSidecarEnv(input),
    ports: [
      { name: PORT_NAMES.health, containerPort: config.healthPort, protocol: 'TCP' },
      { name: PORT_NAMES.metrics, containerPort: config.metricsPort, protocol: 'TCP' },
    ],
    resources: resources(input.settings),
    securityContext: restrictedSecurityContext(config),
    // Checked every second for up to 2 minutes: credentials are on disk at start, so readiness normally takes
    // well under a second; the margin covers slow nodes and image pulls of the first token.
    startupProbe: { httpGet: { path: PATHS.readiness, port: config.healthPort }, periodSeconds: 1, failureThreshold: 120, timeoutSeconds: 1 },
    livenessProbe: { httpGet: { path: PATHS.liveness, port: config.healthPort }, periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 2 },
    ...(input.native ? {} : { lifecycle: { postStart: { exec: { command: waitUntilReadyCommand(config) } } } }),
    volumeMounts: sidecarMounts(input),
    // A crash before the logger is up still leaves its reason in `kubectl describe pod`.
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  return container;
}

/** How long the postStart hook waits for readiness: as long as the native form's startupProbe (120 × 1 s). */
export const POST_START_WAIT_SECONDS = 120;

/**
 * The regular form's postStart hook: wait until the sidecar's `/readyz` answers 200, then return (kubelet starts
 * the next container only after that). The sidecar's own `--probe` checks once and exits, which as a hook would
 * fail the container on its first second; so the hook is a small poll loop run by the image's own `node`
 * (config.command[0]: the image's ENTRYPOINT; CONTRIBUTING.md, "The image") — no shell needed in the image.
 */
export function waitUntilReadyCommand(config: SidecarConfig): string[] {
  const script =
    `const deadline=Date.now()+${POST_START_WAIT_SECONDS * 1000};` +
    `const retry=()=>Date.now()>deadline?process.exit(1):setTimeout(tick,500);` +
    `function tick(){require('node:http').get({host:'127.0.0.1',port:${config.healthPort},path:'${PATHS.readiness}',timeout:2000},` +
    `(r)=>{r.resume();r.statusCode===200?process.exit(0):retry();}).on('timeout',function(){this.destroy(new Error('timeout'));}).on('error',retry);}` +
    `tick();`;
  return [config.command[0] ?? 'node', '-e', script];
}

/**
 * Optional init container that sends the pod's IMDS traffic (169.254.169.254:80) to the sidecar, for apps that
 * hard-code IMDS instead of reading the SDK variables. Trade-off: iptables needs root and NET_ADMIN (+NET_RAW),
 * which the restricted Pod Security Standard and most policy engines forbid, so it is off by default and only
 * offered when the admin configured an image that contains iptables.
 */
export function buildImdsRedirectContainer(input: BuildInput): V1Container {
  const image = input.config.imdsRedirectImage ?? '';
  return {
    name: IMDS_REDIRECT_CONTAINER_NAME,
    image,
    imagePullPolicy: input.config.imagePullPolicy,
    // OUTPUT-chain REDIRECT rewrites the destination to the loopback address, where the token listener binds;
    // only this pod's network namespace is affected.
    command: ['iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', IMDS_ADDRESS, '--dport', '80', '-j', 'REDIRECT', '--to-ports', String(input.config.tokenPort)],
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '32Mi' } },
    securityContext: {
      runAsNonRoot: false,
      runAsUser: 0,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}
