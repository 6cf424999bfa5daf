/**
 * Runs a pod as the kube-apiserver stored it with podman, the way kubelet would, for test/e2e/pod-run.test.ts.
 *
 * Why not `podman kube play`: the podman of this machine (Debian bookworm's 4.3) refuses `projected` volumes
 * (the webhook mounts identity Secrets as projected volumes), crashes on `secret` volumes, and would run an init
 * container with `restartPolicy: Always` (a native sidecar) to completion before the app, i.e. never start the
 * app. So this module does kubelet's part itself, from the stored spec and nothing else:
 *
 * - one podman pod whose infra container holds the network namespace every container shares (loopback only:
 *   `--network none`), as the pause container does;
 * - each container with the stored image, command (ENTRYPOINT) and args (CMD), working directory, env (values,
 *   `secretKeyRef`s resolved from the Secret, `fieldRef`s from the pod, `$(VAR)` references expanded as kubelet
 *   does), security context (user, group, read-only root, no-new-privileges, capabilities; seccomp
 *   RuntimeDefault is podman's default profile) and memory/CPU limits;
 * - volumes laid out from the Secret exactly as kubelet lays out projected Secret volumes (timestamped
 *   directory, `..data` symlink, one symlink per key, the stored defaultMode), bind-mounted read-only at the
 *   stored mountPath;
 * - anything this translation does not know (another volume type, a privileged container, an env source) is an
 *   error naming it, never silently dropped.
 *
 * Pure functions (plan, env, layout) plus thin podman wrappers.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type Json = any;

/** Flags this sandbox needs (see scripts/provision.d/41-podman.sh); rlimits come from a containers.conf. */
export const PODMAN_GLOBAL = ['--runtime', 'runc', '--cgroup-manager', 'cgroupfs'] as const;

/** containers.conf for CONTAINERS_CONF: the default nofile/nproc podman asks for are refused here (infra included). */
export const CONTAINERS_CONF = '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n';

export interface PodmanResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function podman(args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 600_000): PodmanResult {
  const result = spawnSync('podman', [...PODMAN_GLOBAL, ...args], { encoding: 'utf8', env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw new Error(`podman ${args[0] ?? ''}: ${result.error.message}`);
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Like {@link podman}, without blocking this process: needed whenever the container talks to a server this
 * process hosts (the test authority), which a synchronous spawn would starve.
 */
export function podmanAsync(args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 600_000): Promise<PodmanResult> {
  const child = spawn('podman', [...PODMAN_GLOBAL, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(killer);
      resolve({ status, stdout, stderr });
    });
  });
}

export function podmanOk(args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs?: number): string {
  const result = podman(args, env, timeoutMs);
  if (result.status !== 0) throw new Error(`podman ${args.join(' ')} failed (${String(result.status)}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** Secret name → data (base64 values, as the API server returns them). */
export type SecretData = ReadonlyMap<string, Readonly<Record<string, string>>>;

/** A file kubelet would write into a volume: path inside the volume, bytes, mode. */
export interface VolumeFile {
  readonly path: string;
  readonly content: Buffer;
  readonly mode: number;
}

/** The files of a stored volume (projected Secret sources or a secret volume); throws for anything else. */
export function volumeFiles(volume: Json, secrets: SecretData): VolumeFile[] {
  if (volume.secret) return secretFiles(volume.secret.secretName, volume.secret.items, volume.secret.defaultMode ?? 0o644, secrets, volume.name);
  if (volume.projected) {
    return (volume.projected.sources as Json[]).flatMap((source) => {
      const kinds = Object.keys(source);
      if (kinds.length !== 1 || !source.secret) throw new Error(`volume ${volume.name}: projected source ${kinds.join('+')} is not supported by this runner`);
      return secretFiles(source.secret.name, source.secret.items, volume.projected.defaultMode ?? 0o644, secrets, volume.name);
    });
  }
  throw new Error(`volume ${volume.name}: ${Object.keys(volume).filter((k) => k !== 'name').join('+')} volumes are not supported by this runner`);
}

function secretFiles(name: string, items: Json[] | undefined, defaultMode: number, secrets: SecretData, volume: string): VolumeFile[] {
  const data = secrets.get(name);
  if (data === undefined) throw new Error(`volume ${volume}: Secret ${name} was not provided`);
  const selected: Json[] = items ?? Object.keys(data).map((key) => ({ key, path: key }));
  return selected.map((item) => {
    const value = data[item.key];
    if (value === undefined) throw new Error(`volume ${volume}: Secret ${name} has no key ${item.key}`);
    return { path: item.path, content: Buffer.from(value, 'base64'), mode: item.mode ?? defaultMode };
  });
}

/** Writes files the way kubelet's atomic writer does: `..<timestamp>/`, `..data` → it, `<key>` → `..data/<key>`. */
export function writeKubeletVolume(dir: string, files: readonly VolumeFile[]): void {
  const stamp = '..2026_01_01_00_00_00.000000001';
  mkdirSync(join(dir, stamp), { recursive: true });
  for (const file of files) writeFileSync(join(dir, stamp, file.path), file.content, { mode: file.mode });
  for (const file of files) chmodSync(join(dir, stamp, file.path), file.mode);
  chmodSync(dir, 0o755);
  chmodSync(join(dir, stamp), 0o755);
  symlinkSync(stamp, join(dir, '..data'));
  for (const file of files) symlinkSync(join('..data', file.path), join(dir, file.path));
}

/** kubelet's `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`, unknown references stay. */
export function expand(value: string, vars: Readonly<Record<string, string>>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (name === undefined) return '$';
    return vars[name] ?? match;
  });
}

/** A container's environment as kubelet builds it, in order, each value expanded against the ones before it. */
export function containerEnv(container: Json, pod: Json, secrets: SecretData): Array<[string, string]> {
  if (container.envFrom !== undefined) throw new Error(`container ${container.name}: envFrom is not supported by this runner`);
  const vars: Record<string, string> = {};
  const out: Array<[string, string]> = [];
  for (const entry of (container.env ?? []) as Json[]) {
    const value = entry.valueFrom === undefined ? expand(String(entry.value ?? ''), vars) : envSource(entry, pod, secrets, container.name);
    vars[entry.name] = value;
    out.push([entry.name, value]);
  }
  return out;
}

function envSource(entry: Json, pod: Json, secrets: SecretData, container: string): string {
  const ref = entry.valueFrom.secretKeyRef;
  if (ref) {
    const value = secrets.get(ref.name)?.[ref.key];
    if (value === undefined) throw new Error(`container ${container}: env ${entry.name} refers to ${ref.name}/${ref.key}, which was not provided`);
    return Buffer.from(value, 'base64').toString('utf8');
  }
  const field = entry.valueFrom.fieldRef?.fieldPath as string | undefined;
  const fields: Record<string, string | undefined> = {
    'metadata.name': pod.metadata.name,
    'metadata.namespace': pod.metadata.namespace,
    'metadata.uid': pod.metadata.uid,
    'spec.serviceAccountName': pod.spec.serviceAccountName,
  };
  if (field !== undefined && fields[field] !== undefined) return fields[field] ?? '';
  throw new Error(`container ${container}: env ${entry.name} has a source this runner does not resolve: ${JSON.stringify(entry.valueFrom)}`);
}

const KNOWN_SECURITY = new Set(['runAsUser', 'runAsGroup', 'runAsNonRoot', 'readOnlyRootFilesystem', 'allowPrivilegeEscalation', 'capabilities', 'seccompProfile', 'privileged']);

/** podman flags for the container's security context (container fields win over the pod's, as in Kubernetes). */
export function securityFlags(container: Json, pod: Json): string[] {
  const podContext: Json = pod.spec.securityContext ?? {};
  const context: Json = container.securityContext ?? {};
  for (const key of Object.keys(context)) if (!KNOWN_SECURITY.has(key)) throw new Error(`container ${container.name}: securityContext.${key} is not supported by this runner`);
  for (const key of Object.keys(podContext)) if (!KNOWN_SECURITY.has(key)) throw new Error(`pod securityContext.${key} is not supported by this runner`);
  if (context.privileged === true) throw new Error(`container ${container.name}: privileged is not supported by this runner`);
  const flags: string[] = [];
  const user = context.runAsUser ?? podContext.runAsUser;
  const group = context.runAsGroup ?? podContext.runAsGroup;
  if (user !== undefined) flags.push('--user', group === undefined ? String(user) : `${user}:${group}`);
  if ((context.runAsNonRoot ?? podContext.runAsNonRoot) === true && user === 0) throw new Error(`container ${container.name}: runAsNonRoot with runAsUser 0`);
  if (context.readOnlyRootFilesystem === true) flags.push('--read-only');
  if (context.allowPrivilegeEscalation === false) flags.push('--security-opt', 'no-new-privileges');
  for (const cap of (context.capabilities?.drop ?? []) as string[]) flags.push('--cap-drop', cap);
  for (const cap of (context.capabilities?.add ?? []) as string[]) flags.push('--cap-add', cap);
  const seccomp = (context.seccompProfile ?? podContext.seccompProfile)?.type;
  if (seccomp !== undefined && seccomp !== 'RuntimeDefault') throw new Error(`container ${container.name}: seccompProfile ${seccomp} is not supported by this runner`);
  return flags;
}

/** Kubernetes memory quantity → bytes (the binary and decimal suffixes the webhook and users write). */
export function memoryBytes(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|M|G)?$/.exec(quantity);
  if (!match) throw new Error(`memory quantity ${quantity} is not supported by this runner`);
  const factor: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, k: 1e3, M: 1e6, G: 1e9 };
  return Math.round(Number(match[1]) * (factor[match[2] ?? ''] ?? 1));
}

/** Kubernetes CPU quantity → CPUs (`500m` → 0.5). */
export function cpus(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(m)?$/.exec(quantity);
  if (!match) throw new Error(`cpu quantity ${quantity} is not supported by this runner`);
  return Number(match[1]) / (match[2] === 'm' ? 1000 : 1);
}

export interface ContainerPlan {
  readonly name: string;
  /** `podman run` arguments after `run` (without --detach/--rm, which the caller chooses). */
  readonly runArgs: readonly string[];
}

/**
 * `podman run` arguments for one stored container, in pod `podName`, with each mounted volume's host directory
 * from `volumeDirs`, plus `extraFlags` (what the caller adds on purpose, listed by the test). Command and args follow Kubernetes: `command` replaces the ENTRYPOINT (and drops the CMD),
 * `args` replaces the CMD.
 */
export function containerRunArgs(
  container: Json,
  pod: Json,
  secrets: SecretData,
  podName: string,
  volumeDirs: ReadonlyMap<string, string>,
  extraFlags: readonly string[] = [],
): ContainerPlan {
  const name = `${podName}-${container.name}`;
  const args: string[] = ['--pod', podName, '--name', name, '--pull', 'never'];
  args.push(...securityFlags(container, pod));
  if (container.workingDir) args.push('--workdir', container.workingDir);
  for (const [key, value] of containerEnv(container, pod, secrets)) args.push('--env', `${key}=${value}`);
  for (const mount of (container.volumeMounts ?? []) as Json[]) {
    const dir = volumeDirs.get(mount.name);
    if (dir === undefined) throw new Error(`container ${container.name}: volume ${mount.name} has no host directory`);
    if (mount.subPath !== undefined) throw new Error(`container ${container.name}: subPath mounts are not supported by this runner`);
    args.push('--volume', `${dir}:${mount.mountPath}:${mount.readOnly === true ? 'ro' : 'rw'}`);
  }
  const limits = container.resources?.limits ?? {};
  if (limits.memory !== undefined) args.push('--memory', String(memoryBytes(limits.memory)));
  if (limits.cpu !== undefined) args.push('--cpus', String(cpus(limits.cpu)));
  const vars = Object.fromEntries(containerEnv(container, pod, secrets));
  const command = (container.command as string[] | undefined)?.map((c) => expand(c, vars));
  const commandArgs = (container.args as string[] | undefined)?.map((a) => expand(a, vars));
  args.push(...extraFlags);
  if (command !== undefined) args.push('--entrypoint', JSON.stringify(command));
  args.push(container.image);
  if (commandArgs !== undefined) args.push(...commandArgs);
  return { name, runArgs: args };
}
