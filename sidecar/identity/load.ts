/**
 * Loads identities from a directory of mounted Secrets: one subdirectory per identity, files named after
 * `IDENTITY_FILES` (contract.ts). Reports problems per identity and field instead of failing: one bad identity never
 * stops the others.
 *
 * The filesystem is injected ({@link IdentityFs}), so tests use an in-memory tree and the rotation watcher
 * (`identity/watch.ts`) can reuse {@link loadIdentityDir} for one identity.
 *
 * Kubernetes mounts Secret volumes as `..data` / `..2024_...` symlinked directories next to the key symlinks; every
 * dot-entry is skipped. In production the file reads go through `identity/bounded-read.ts` (regular files inside the
 * identity's directory, bounded in size).
 *
 * Besides the credential files, an identity may name a `credentialSource` (docs/identities.md): `azure-cli` (the
 * developer's own login on the sidecar's host; tenantId and clientId optional) or a CI platform whose OIDC token
 * becomes the federated assertion (`github-actions`, `gitlab-ci`, `azure-pipelines` + `serviceConnectionId`).
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { CREDENTIAL_SOURCES, DEFAULT_FEDERATED_AUDIENCE, IDENTITY_FILES, type CredentialSource } from '../contract.ts';
import { IdentityFileError, MAX_IDENTITY_FILE_BYTES } from './bounded-read.ts';
import type { CredentialKind, CredentialMaterial, IdentityDescriptor, LoadedIdentity } from './identity.ts';

export { MAX_IDENTITY_FILE_BYTES };
/**
 * Client id reported for a developer identity without a `clientId` file: the Azure CLI's own public client id
 * (the application users sign in to with `az login`).
 */
export const AZURE_CLI_CLIENT_ID = '04b07795-8ddb-461a-bbee-02f9e1bf7b46';

/** The filesystem operations the loader needs (node:fs/promises satisfies it). */
export interface IdentityFs {
  readdir(path: string): Promise<string[]>;
  readFile(path: string): Promise<Buffer>;
  /** Follows symlinks (Kubernetes Secret keys are symlinks). */
  stat(path: string): Promise<{ isDirectory(): boolean; isFile(): boolean; size: number }>;
}

export type IdentityProblemCode =
  /** A value is missing or malformed. */
  | 'invalid'
  /** Credential files found while the mode forbids them (dev mode). */
  | 'credential-forbidden'
  /** A top-level entry is not a directory, or the identity directory is unreadable. */
  | 'layout'
  /** Two identities claim the same client id / object id / resource id, or the default is missing. */
  | 'conflict';

export interface IdentityProblem {
  /** Identity (subdirectory) name, or "" for problems of the whole directory. */
  readonly identity: string;
  /** Path of the file concerned (or of the directory). */
  readonly file: string;
  /** Field (file name in IDENTITY_FILES terms), when one is concerned. */
  readonly field: string | undefined;
  readonly message: string;
  readonly code: IdentityProblemCode;
}

export interface LoadIdentityDirOptions {
  readonly fs: IdentityFs;
  /** Path of the identity's directory. */
  readonly dir: string;
  /** Identity name (directory name). */
  readonly name: string;
  readonly isDefault: boolean;
  /**
   * `entra`: the directory must hold exactly one credential (or none = federated, which needs
   * `federatedTokenFile`). `dev`: it must hold no credential at all (dev never mixes with real credentials).
   */
  readonly mode: 'entra' | 'dev';
  /** `MI_ANYWHERE_FEDERATED_TOKEN_FILE`, for identities without a secret or certificate. */
  readonly federatedTokenFile?: string | undefined;
}

export interface LoadIdentityDirResult {
  readonly identity: LoadedIdentity | undefined;
  readonly problems: readonly IdentityProblem[];
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Entra accepts a tenant's verified domain name as well as its id. */
const TENANT_DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;
/** Loose ARM id check: it is only compared with selectors, so the shape matters, not its existence. */
const ARM_ID = /^\/subscriptions\/[^/\s]+\/resourcegroups\/[^/\s]+\/providers\/[^\s]+$/i;

const CREDENTIAL_FILES = [
  IDENTITY_FILES.clientSecret,
  IDENTITY_FILES.certificate,
  IDENTITY_FILES.privateKey,
  IDENTITY_FILES.pfx,
  IDENTITY_FILES.pfxPassword,
] as const;

/** Loads one identity directory. Never throws for content problems; they are returned. */
export async function loadIdentityDir(options: LoadIdentityDirOptions): Promise<LoadIdentityDirResult> {
  const { fs, dir, name } = options;
  const problems: IdentityProblem[] = [];
  const problem = (field: string | undefined, message: string, code: IdentityProblemCode = 'invalid'): void => {
    problems.push({ identity: name, file: field === undefined ? dir : posix.join(dir, field), field, message, code });
  };

  let entries: Set<string>;
  try {
    entries = new Set((await fs.readdir(dir)).filter((e) => !e.startsWith('.')));
  } catch (error) {
    problem(undefined, `cannot read the identity directory: ${errorText(error)}`, 'layout');
    return { identity: undefined, problems };
  }

  const read = async (field: string): Promise<Buffer | undefined> => {
    if (!entries.has(field)) return undefined;
    const path = posix.join(dir, field);
    try {
      const info = await fs.stat(path);
      if (!info.isFile()) {
        problem(field, 'is not a regular file');
        return undefined;
      }
      if (info.size > MAX_IDENTITY_FILE_BYTES) {
        problem(field, `is larger than ${MAX_IDENTITY_FILE_BYTES} bytes`);
        return undefined;
      }
      return await fs.readFile(path);
    } catch (error) {
      problem(field, error instanceof IdentityFileError ? error.detail : `cannot be read: ${errorText(error)}`);
      return undefined;
    }
  };
  const readText = async (field: string): Promise<string | undefined> => (await read(field))?.toString('utf8').trim();

  const source = await readCredentialSource(readText, problem);
  // The developer identity is whoever `az login` signed in: tenant and client id are optional there.
  const idsOptional = source === 'azure-cli';
  const tenantId = await readText(IDENTITY_FILES.tenantId);
  if (tenantId === undefined) {
    if (!entries.has(IDENTITY_FILES.tenantId) && !idsOptional) problem(IDENTITY_FILES.tenantId, 'is missing (the Entra tenant id, a GUID)');
  } else if (!GUID.test(tenantId) && !TENANT_DOMAIN.test(tenantId)) {
    problem(IDENTITY_FILES.tenantId, 'must be a tenant id (GUID) or a verified domain name');
  }
  const clientId = (await readText(IDENTITY_FILES.clientId)) ?? (idsOptional && !entries.has(IDENTITY_FILES.clientId) ? AZURE_CLI_CLIENT_ID : undefined);
  if (clientId === undefined) {
    if (!entries.has(IDENTITY_FILES.clientId)) problem(IDENTITY_FILES.clientId, 'is missing (the application (client) id, a GUID)');
  } else if (!GUID.test(clientId)) {
    problem(IDENTITY_FILES.clientId, 'must be a GUID (the application (client) id)');
  }
  const objectId = await readText(IDENTITY_FILES.objectId);
  if (objectId !== undefined && !GUID.test(objectId)) problem(IDENTITY_FILES.objectId, 'must be a GUID (the service principal object id)');
  const resourceId = await readText(IDENTITY_FILES.resourceId);
  if (resourceId !== undefined && !ARM_ID.test(resourceId)) {
    problem(IDENTITY_FILES.resourceId, 'must look like /subscriptions/<id>/resourceGroups/<name>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>');
  }

  const material = await loadMaterial(options, entries, source, { read, readText, problem });
  if (problems.length > 0 || material === undefined || (tenantId === undefined && !idsOptional) || clientId === undefined) {
    return { identity: undefined, problems };
  }
  const descriptor: IdentityDescriptor = {
    name,
    tenantId: tenantId ?? '',
    clientId,
    objectId: objectId || undefined,
    resourceId: resourceId || undefined,
    credentialKind: credentialKindOf(material),
    isDefault: options.isDefault,
  };
  return { identity: { descriptor, material, credentialFingerprint: fingerprint(material) }, problems };
}

interface Readers {
  read(field: string): Promise<Buffer | undefined>;
  readText(field: string): Promise<string | undefined>;
  problem(field: string | undefined, message: string, code?: IdentityProblemCode): void;
}

/** Reads `credentialSource`; undefined when absent or invalid (the problem is recorded). */
async function readCredentialSource(
  readText: Readers['readText'],
  problem: Readers['problem'],
): Promise<CredentialSource | undefined> {
  const value = await readText(IDENTITY_FILES.credentialSource);
  if (value === undefined) return undefined;
  if ((CREDENTIAL_SOURCES as readonly string[]).includes(value)) return value as CredentialSource;
  problem(IDENTITY_FILES.credentialSource, `must be one of ${CREDENTIAL_SOURCES.join(', ')} (found ${JSON.stringify(value.slice(0, 40))})`);
  return undefined;
}

/** Files that only some credential sources use; present elsewhere they are a mistake worth naming. */
const SOURCE_ONLY_FILES: ReadonlyArray<{ file: string; usedBy: (source: CredentialSource | undefined) => boolean; what: string }> = [
  { file: IDENTITY_FILES.serviceConnectionId, usedBy: (s) => s === 'azure-pipelines', what: 'only azure-pipelines identities use it' },
  { file: IDENTITY_FILES.federatedAudience, usedBy: (s) => s !== 'azure-cli', what: 'azure-cli identities have no federated assertion' },
];

async function loadSourcedMaterial(
  source: CredentialSource,
  present: readonly string[],
  entries: ReadonlySet<string>,
  r: Readers,
): Promise<CredentialMaterial | undefined> {
  if (present.length > 0) {
    r.problem(undefined, `names credentialSource ${source} and also holds ${present.join(', ')}; keep one credential`);
    return undefined;
  }
  if (source === 'azure-cli') return { kind: 'azure-cli', tenantId: await r.readText(IDENTITY_FILES.tenantId) };
  const audience = (await r.readText(IDENTITY_FILES.federatedAudience)) || DEFAULT_FEDERATED_AUDIENCE;
  if (source !== 'azure-pipelines') return { kind: 'ci-oidc', platform: source, audience };
  const serviceConnectionId = await r.readText(IDENTITY_FILES.serviceConnectionId);
  if (serviceConnectionId === undefined) {
    if (!entries.has(IDENTITY_FILES.serviceConnectionId)) {
      r.problem(IDENTITY_FILES.serviceConnectionId, 'is missing (the id of the workload-identity service connection, a GUID)');
    }
    return undefined;
  }
  if (!GUID.test(serviceConnectionId)) {
    r.problem(IDENTITY_FILES.serviceConnectionId, 'must be a GUID (the id of the workload-identity service connection)');
    return undefined;
  }
  return { kind: 'ci-oidc', platform: source, audience, serviceConnectionId };
}

async function loadMaterial(
  options: LoadIdentityDirOptions,
  entries: ReadonlySet<string>,
  source: CredentialSource | undefined,
  r: Readers,
): Promise<CredentialMaterial | undefined> {
  const present = CREDENTIAL_FILES.filter((f) => entries.has(f));
  if (options.mode === 'dev') {
    for (const f of present) {
      r.problem(f, 'is a credential file, but dev mode never uses real credentials: remove it or start in entra mode', 'credential-forbidden');
    }
    if (entries.has(IDENTITY_FILES.credentialSource)) {
      r.problem(IDENTITY_FILES.credentialSource, 'names a real credential, but dev mode never uses real credentials: remove it or start in entra mode', 'credential-forbidden');
    }
    return present.length === 0 && !entries.has(IDENTITY_FILES.credentialSource) ? { kind: 'dev' } : undefined;
  }
  let misplaced = false;
  for (const { file, usedBy, what } of SOURCE_ONLY_FILES) {
    if (entries.has(file) && !usedBy(source)) {
      r.problem(file, `is not used by this identity (${what})`);
      misplaced = true;
    }
  }
  if (entries.has(IDENTITY_FILES.credentialSource)) {
    if (source === undefined || misplaced) return undefined;
    return loadSourcedMaterial(source, present, entries, r);
  }
  if (misplaced && entries.has(IDENTITY_FILES.serviceConnectionId)) return undefined;
  const hasSecret = entries.has(IDENTITY_FILES.clientSecret);
  const hasPem = entries.has(IDENTITY_FILES.certificate) || entries.has(IDENTITY_FILES.privateKey);
  const hasPfx = entries.has(IDENTITY_FILES.pfx);
  if (!hasPfx && entries.has(IDENTITY_FILES.pfxPassword)) {
    r.problem(IDENTITY_FILES.pfxPassword, `is present without ${IDENTITY_FILES.pfx}`);
    return undefined;
  }
  if ([hasSecret, hasPem, hasPfx].filter(Boolean).length > 1) {
    r.problem(undefined, `holds more than one credential (${present.join(', ')}); keep exactly one of clientSecret, tls.crt+tls.key, certificate.pfx`);
    return undefined;
  }
  if (hasSecret) {
    const clientSecret = await r.readText(IDENTITY_FILES.clientSecret);
    if (clientSecret === undefined) return undefined;
    if (clientSecret === '') {
      r.problem(IDENTITY_FILES.clientSecret, 'is empty');
      return undefined;
    }
    return { kind: 'secret', clientSecret };
  }
  if (hasPem) return loadPem(r, entries);
  if (hasPfx) {
    const pfx = await r.read(IDENTITY_FILES.pfx);
    if (pfx === undefined) return undefined;
    if (pfx.length === 0) {
      r.problem(IDENTITY_FILES.pfx, 'is empty');
      return undefined;
    }
    const passphrase = entries.has(IDENTITY_FILES.pfxPassword) ? await r.readText(IDENTITY_FILES.pfxPassword) : undefined;
    return { kind: 'certificate-pfx', pfx, passphrase };
  }
  if (options.federatedTokenFile === undefined) {
    r.problem(
      undefined,
      'has no credential (clientSecret, tls.crt+tls.key or certificate.pfx), so it is federated, but MI_ANYWHERE_FEDERATED_TOKEN_FILE is not set',
    );
    return undefined;
  }
  const audience = (await r.readText(IDENTITY_FILES.federatedAudience)) || DEFAULT_FEDERATED_AUDIENCE;
  return { kind: 'federated', tokenFile: options.federatedTokenFile, audience };
}

async function loadPem(r: Readers, entries: ReadonlySet<string>): Promise<CredentialMaterial | undefined> {
  if (!entries.has(IDENTITY_FILES.certificate)) {
    r.problem(IDENTITY_FILES.certificate, 'is missing (tls.key is present; a certificate needs both)');
    return undefined;
  }
  if (!entries.has(IDENTITY_FILES.privateKey)) {
    r.problem(IDENTITY_FILES.privateKey, 'is missing (tls.crt is present; a certificate needs both)');
    return undefined;
  }
  const certificatePem = await r.readText(IDENTITY_FILES.certificate);
  const privateKeyPem = await r.readText(IDENTITY_FILES.privateKey);
  let ok = certificatePem !== undefined && privateKeyPem !== undefined;
  if (certificatePem !== undefined && !certificatePem.includes('-----BEGIN CERTIFICATE-----')) {
    r.problem(IDENTITY_FILES.certificate, 'is not a PEM certificate (no "-----BEGIN CERTIFICATE-----")');
    ok = false;
  }
  if (privateKeyPem !== undefined && !/-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(privateKeyPem)) {
    r.problem(IDENTITY_FILES.privateKey, 'is not a PEM private key (no "-----BEGIN ... PRIVATE KEY-----")');
    ok = false;
  }
  if (!ok || certificatePem === undefined || privateKeyPem === undefined) return undefined;
  return { kind: 'certificate', certificatePem, privateKeyPem };
}

/** The descriptor's credential kind for a material (a PFX is a certificate, a CI OIDC token a federated assertion). */
export function credentialKindOf(material: CredentialMaterial): CredentialKind {
  if (material.kind === 'certificate-pfx') return 'certificate';
  if (material.kind === 'ci-oidc') return 'federated';
  return material.kind;
}

/** SHA-256 over the credential material: changes when the Secret rotates, reveals nothing about it. */
export function fingerprint(material: CredentialMaterial): string {
  const hash = createHash('sha256').update(material.kind);
  switch (material.kind) {
    case 'secret':
      hash.update(material.clientSecret);
      break;
    case 'certificate':
      hash.update(material.certificatePem).update('\0').update(material.privateKeyPem);
      break;
    case 'certificate-pfx':
      hash.update(material.pfx).update('\0').update(material.passphrase ?? '');
      break;
    case 'federated':
      hash.update(material.tokenFile).update('\0').update(material.audience);
      break;
    case 'ci-oidc':
      hash.update(material.platform).update('\0').update(material.audience).update('\0').update(material.serviceConnectionId ?? '');
      break;
    case 'azure-cli':
      hash.update(material.tenantId ?? '');
      break;
    case 'dev':
      break;
  }
  return hash.digest('hex');
}

function errorText(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : error instanceof Error ? error.message : String(error);
}

export interface LoadIdentitiesOptions {
  readonly fs: IdentityFs;
  /** Directory holding one subdirectory per identity. */
  readonly dir: string;
  /** `MI_ANYWHERE_DEFAULT_IDENTITY`; undefined = the only identity, if there is exactly one. */
  readonly defaultName: string | undefined;
  readonly mode: 'entra' | 'dev';
  readonly federatedTokenFile?: string | undefined;
  /** Identities that exist besides the directory (dev mode's built-in ones); used for conflict checks only. */
  readonly existing?: readonly LoadedIdentity[] | undefined;
}

export interface LoadIdentitiesResult {
  readonly identities: readonly LoadedIdentity[];
  readonly problems: readonly IdentityProblem[];
}

/**
 * Loads every identity under `dir`. Returns the good ones and every problem. Identities whose client id, object id
 * or resource id collides with an earlier one are dropped (a selector must name exactly one identity).
 */
export async function loadIdentities(options: LoadIdentitiesOptions): Promise<LoadIdentitiesResult> {
  const { fs, dir } = options;
  const problems: IdentityProblem[] = [];
  let names: string[];
  try {
    names = (await fs.readdir(dir)).filter((e) => !e.startsWith('.')).sort();
  } catch (error) {
    return { identities: [], problems: [{ identity: '', file: dir, field: undefined, message: `cannot read the identity directory: ${errorText(error)}`, code: 'layout' }] };
  }
  const candidates: string[] = [];
  for (const name of names) {
    const path = posix.join(dir, name);
    try {
      if ((await fs.stat(path)).isDirectory()) {
        candidates.push(name);
        continue;
      }
      const hint = (Object.values(IDENTITY_FILES) as string[]).includes(name)
        ? ` — it looks like a Secret key: mount each identity's Secret in its own subdirectory, e.g. ${posix.join(dir, '<name>', name)}`
        : '';
      problems.push({ identity: '', file: path, field: undefined, message: `is not a directory and was ignored${hint}`, code: 'layout' });
    } catch (error) {
      problems.push({ identity: name, file: path, field: undefined, message: `cannot be read: ${errorText(error)}`, code: 'layout' });
    }
  }
  const defaultName = options.defaultName ?? (candidates.length === 1 && !options.existing?.length ? candidates[0] : undefined);
  const loaded: LoadedIdentity[] = [];
  const taken = [...(options.existing ?? [])];
  for (const name of candidates) {
    const result = await loadIdentityDir({
      fs,
      dir: posix.join(dir, name),
      name,
      isDefault: name === defaultName,
      mode: options.mode,
      federatedTokenFile: options.federatedTokenFile,
    });
    problems.push(...result.problems);
    if (result.identity === undefined) continue;
    const clash = findClash(taken, result.identity.descriptor);
    if (clash !== undefined) {
      problems.push({ identity: name, file: posix.join(dir, name), field: clash.field, message: clash.message, code: 'conflict' });
      continue;
    }
    loaded.push(result.identity);
    taken.push(result.identity);
  }
  return { identities: loaded, problems };
}

function findClash(taken: readonly LoadedIdentity[], d: IdentityDescriptor): { field: string; message: string } | undefined {
  for (const other of taken) {
    const o = other.descriptor;
    if (o.name === d.name) return { field: 'name', message: `has the same name as identity "${o.name}"` };
    const same = (a: string | undefined, b: string | undefined): boolean => a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();
    if (same(o.clientId, d.clientId)) return { field: IDENTITY_FILES.clientId, message: `has the same clientId as identity "${o.name}"; selectors must name one identity` };
    if (same(o.objectId, d.objectId)) return { field: IDENTITY_FILES.objectId, message: `has the same objectId as identity "${o.name}"` };
    if (same(o.resourceId, d.resourceId)) return { field: IDENTITY_FILES.resourceId, message: `has the same resourceId as identity "${o.name}"` };
  }
  return undefined;
}

/**
 * Why no identity is the default, for the start-up log: names the actual cause (the directory cannot be read, it
 * holds no usable identity, the configured name is not among them, or several identities and none chosen).
 */
export function noDefaultReason(input: {
  readonly defaultName: string | undefined;
  readonly defaultSetting: string;
  readonly loaded: number;
  readonly problems: readonly IdentityProblem[];
  readonly dir: string | undefined;
}): string {
  const unreadable = input.problems.find((p) => p.identity === '' && p.file === input.dir && p.code === 'layout');
  if (unreadable !== undefined) {
    const why = unreadable.message.replace(/^cannot read the identity directory: /, '');
    return `the identity directory ${unreadable.file} ${why === 'ENOENT' ? 'does not exist' : `cannot be read (${why})`}`;
  }
  if (input.defaultName !== undefined) return `${input.defaultSetting}=${input.defaultName} names no loaded identity`;
  if (input.loaded === 0) return input.dir === undefined ? 'no identities are configured' : `no usable identity in ${input.dir} (see the problems above)`;
  return `several identities and no ${input.defaultSetting}`;
}

/** One line per problem, for logs and the startup error. */
export function formatProblem(p: IdentityProblem): string {
  const who = p.identity === '' ? '' : `identity "${p.identity}": `;
  return `${who}${p.file} ${p.message}`;
}
