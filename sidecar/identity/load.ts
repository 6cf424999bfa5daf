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
import { IdentityFileError, MAX_IDENTITY_FILE_BYTES, type IdentityFs } from './bounded-read.ts';
import type { CredentialKind, CredentialMaterial, IdentityDescriptor, LoadedIdentity } from './identity.ts';
import { openPkcs12 } from './pkcs12.ts';

export { MAX_IDENTITY_FILE_BYTES, type IdentityFs };
/**
 * Client id reported for a developer identity without a `clientId` file: the Azure CLI's own public client id
 * (the application users sign in to with `az login`).
 */
export const AZURE_CLI_CLIENT_ID = '04b07795-8ddb-461a-bbee-02f9e1bf7b46';


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
  const problems: IdentityProblem[] = [];
  const problem: IdentityFiles['problem'] = (field, message, code = 'invalid') => {
    problems.push({ identity: options.name, file: field === undefined ? options.dir : posix.join(options.dir, field), field, message, code });
  };
  const entries = await listEntries(options, problem);
  if (entries === undefined) return { identity: undefined, problems };
  const identity = await readIdentity(options, identityFiles(options, entries, problem));
  return { identity: problems.length > 0 ? undefined : identity, problems };
}

/** The files of one identity directory, read on demand; every problem is recorded against the identity. */
interface IdentityFiles {
  has(field: string): boolean;
  /** The file's bytes; undefined when absent or unreadable (the problem is recorded). */
  read(field: string): Promise<Buffer | undefined>;
  /** The file as trimmed UTF-8 text (Secrets written by hand often end in a newline). */
  readText(field: string): Promise<string | undefined>;
  problem(field: string | undefined, message: string, code?: IdentityProblemCode): void;
}

/** The directory's entries without the dot-entries of a Secret volume; undefined (and a problem) when unreadable. */
async function listEntries(options: LoadIdentityDirOptions, problem: IdentityFiles['problem']): Promise<ReadonlySet<string> | undefined> {
  try {
    return new Set((await options.fs.readdir(options.dir)).filter((e) => !e.startsWith('.')));
  } catch (error) {
    problem(undefined, `cannot read the identity directory: ${errorText(error)}`, 'layout');
    return undefined;
  }
}

function identityFiles(options: LoadIdentityDirOptions, entries: ReadonlySet<string>, problem: IdentityFiles['problem']): IdentityFiles {
  const read = async (field: string): Promise<Buffer | undefined> => {
    if (!entries.has(field)) return undefined;
    return readField(options.fs, posix.join(options.dir, field), (message) => problem(field, message));
  };
  return {
    has: (field) => entries.has(field),
    read,
    readText: async (field) => (await read(field))?.toString('utf8').trim(),
    problem,
  };
}

async function readField(fs: IdentityFs, path: string, problem: (message: string) => void): Promise<Buffer | undefined> {
  try {
    const info = await fs.stat(path);
    const unfit = !info.isFile() ? 'is not a regular file' : info.size > MAX_IDENTITY_FILE_BYTES ? `is larger than ${MAX_IDENTITY_FILE_BYTES} bytes` : undefined;
    if (unfit === undefined) return await fs.readFile(path);
    problem(unfit);
  } catch (error) {
    problem(error instanceof IdentityFileError ? error.detail : `cannot be read: ${errorText(error)}`);
  }
  return undefined;
}

/** The identity the files describe; undefined when something is missing (the problems say what). */
async function readIdentity(options: LoadIdentityDirOptions, files: IdentityFiles): Promise<LoadedIdentity | undefined> {
  const source = await readCredentialSource(files);
  const ids = await readIds(files, source);
  const material = await loadMaterial(options, files, source);
  if (ids === undefined || material === undefined) return undefined;
  const descriptor: IdentityDescriptor = { name: options.name, ...ids, credentialKind: credentialKindOf(material), isDefault: options.isDefault };
  return { descriptor, material, credentialFingerprint: fingerprint(material) };
}

type Ids = Pick<IdentityDescriptor, 'tenantId' | 'clientId' | 'objectId' | 'resourceId'>;

/** The ids of the descriptor; undefined when a required one is missing. */
async function readIds(files: IdentityFiles, source: CredentialSource | undefined): Promise<Ids | undefined> {
  // The developer identity is whoever `az login` signed in: tenant and client id are optional there.
  const idsOptional = source === 'azure-cli';
  const tenantId = await readTenantId(files, idsOptional);
  const clientId = await readClientId(files, idsOptional);
  const objectId = await readOptionalId(files, IDENTITY_FILES.objectId, GUID, 'must be a GUID (the service principal object id)');
  const resourceId = await readOptionalId(
    files,
    IDENTITY_FILES.resourceId,
    ARM_ID,
    'must look like /subscriptions/<id>/resourceGroups/<name>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>',
  );
  if ((tenantId === undefined && !idsOptional) || clientId === undefined) return undefined;
  return { tenantId: tenantId ?? '', clientId, objectId: objectId || undefined, resourceId: resourceId || undefined };
}

async function readTenantId(files: IdentityFiles, optional: boolean): Promise<string | undefined> {
  const tenantId = await files.readText(IDENTITY_FILES.tenantId);
  if (tenantId === undefined) {
    if (!files.has(IDENTITY_FILES.tenantId) && !optional) files.problem(IDENTITY_FILES.tenantId, 'is missing (the Entra tenant id, a GUID)');
  } else if (!GUID.test(tenantId) && !TENANT_DOMAIN.test(tenantId)) {
    files.problem(IDENTITY_FILES.tenantId, 'must be a tenant id (GUID) or a verified domain name');
  }
  return tenantId;
}

/** The client id; for the developer identity without a `clientId` file, the Azure CLI's own. */
async function readClientId(files: IdentityFiles, optional: boolean): Promise<string | undefined> {
  const absent = !files.has(IDENTITY_FILES.clientId);
  const clientId = (await files.readText(IDENTITY_FILES.clientId)) ?? (optional && absent ? AZURE_CLI_CLIENT_ID : undefined);
  if (clientId === undefined) {
    if (absent) files.problem(IDENTITY_FILES.clientId, 'is missing (the application (client) id, a GUID)');
  } else if (!GUID.test(clientId)) {
    files.problem(IDENTITY_FILES.clientId, 'must be a GUID (the application (client) id)');
  }
  return clientId;
}

async function readOptionalId(files: IdentityFiles, field: string, shape: RegExp, mismatch: string): Promise<string | undefined> {
  const value = await files.readText(field);
  if (value !== undefined && !shape.test(value)) files.problem(field, mismatch);
  return value;
}

/** Reads `credentialSource`; undefined when absent or invalid (the problem is recorded). */
async function readCredentialSource(files: IdentityFiles): Promise<CredentialSource | undefined> {
  const value = await files.readText(IDENTITY_FILES.credentialSource);
  if (value === undefined) return undefined;
  if ((CREDENTIAL_SOURCES as readonly string[]).includes(value)) return value as CredentialSource;
  files.problem(IDENTITY_FILES.credentialSource, `must be one of ${CREDENTIAL_SOURCES.join(', ')} (found ${JSON.stringify(value.slice(0, 40))})`);
  return undefined;
}

/** Files that only some credential sources use; present elsewhere they are a mistake worth naming. */
const SOURCE_ONLY_FILES: ReadonlyArray<{ file: string; usedBy: (source: CredentialSource | undefined) => boolean; what: string }> = [
  { file: IDENTITY_FILES.serviceConnectionId, usedBy: (s) => s === 'azure-pipelines', what: 'only azure-pipelines identities use it' },
  { file: IDENTITY_FILES.federatedAudience, usedBy: (s) => s !== 'azure-cli', what: 'azure-cli identities have no federated assertion' },
];

/** The identity's credential: from its files, from its `credentialSource`, or none at all in dev mode. */
async function loadMaterial(options: LoadIdentityDirOptions, files: IdentityFiles, source: CredentialSource | undefined): Promise<CredentialMaterial | undefined> {
  const present = CREDENTIAL_FILES.filter((f) => files.has(f));
  if (options.mode === 'dev') return devMaterial(files, present);
  const misplaced = reportMisplacedFiles(files, source);
  if (files.has(IDENTITY_FILES.credentialSource)) {
    if (source === undefined || misplaced) return undefined;
    return loadSourcedMaterial(source, present, files);
  }
  if (misplaced && files.has(IDENTITY_FILES.serviceConnectionId)) return undefined;
  return loadCredentialFiles(options, files, present);
}

/** Dev mode never uses real credentials: any credential file or source is refused, naming the file. */
function devMaterial(files: IdentityFiles, present: readonly string[]): CredentialMaterial | undefined {
  for (const f of present) {
    files.problem(f, 'is a credential file, but dev mode never uses real credentials: remove it or start in entra mode', 'credential-forbidden');
  }
  const namesSource = files.has(IDENTITY_FILES.credentialSource);
  if (namesSource) {
    files.problem(IDENTITY_FILES.credentialSource, 'names a real credential, but dev mode never uses real credentials: remove it or start in entra mode', 'credential-forbidden');
  }
  return present.length === 0 && !namesSource ? { kind: 'dev' } : undefined;
}

/** Records the source-only files this identity's source does not use; true when there are any. */
function reportMisplacedFiles(files: IdentityFiles, source: CredentialSource | undefined): boolean {
  const misplaced = SOURCE_ONLY_FILES.filter(({ file, usedBy }) => files.has(file) && !usedBy(source));
  for (const { file, what } of misplaced) files.problem(file, `is not used by this identity (${what})`);
  return misplaced.length > 0;
}

async function loadSourcedMaterial(source: CredentialSource, present: readonly string[], files: IdentityFiles): Promise<CredentialMaterial | undefined> {
  if (present.length > 0) {
    files.problem(undefined, `names credentialSource ${source} and also holds ${present.join(', ')}; keep one credential`);
    return undefined;
  }
  if (source === 'azure-cli') return { kind: 'azure-cli', tenantId: await files.readText(IDENTITY_FILES.tenantId) };
  const audience = (await files.readText(IDENTITY_FILES.federatedAudience)) || DEFAULT_FEDERATED_AUDIENCE;
  if (source !== 'azure-pipelines') return { kind: 'ci-oidc', platform: source, audience };
  const serviceConnectionId = await readServiceConnectionId(files);
  return serviceConnectionId === undefined ? undefined : { kind: 'ci-oidc', platform: source, audience, serviceConnectionId };
}

async function readServiceConnectionId(files: IdentityFiles): Promise<string | undefined> {
  const serviceConnectionId = await files.readText(IDENTITY_FILES.serviceConnectionId);
  if (serviceConnectionId === undefined) {
    if (!files.has(IDENTITY_FILES.serviceConnectionId)) {
      files.problem(IDENTITY_FILES.serviceConnectionId, 'is missing (the id of the workload-identity service connection, a GUID)');
    }
    return undefined;
  }
  if (!GUID.test(serviceConnectionId)) {
    files.problem(IDENTITY_FILES.serviceConnectionId, 'must be a GUID (the id of the workload-identity service connection)');
    return undefined;
  }
  return serviceConnectionId;
}

/**
 * The credential held in files: exactly one of a client secret, a PEM certificate and key, or a PFX; none at all
 * makes the identity federated (the projected token of `MI_ANYWHERE_FEDERATED_TOKEN_FILE`).
 */
async function loadCredentialFiles(options: LoadIdentityDirOptions, files: IdentityFiles, present: readonly string[]): Promise<CredentialMaterial | undefined> {
  const hasSecret = files.has(IDENTITY_FILES.clientSecret);
  const hasPem = files.has(IDENTITY_FILES.certificate) || files.has(IDENTITY_FILES.privateKey);
  const hasPfx = files.has(IDENTITY_FILES.pfx);
  if (!hasPfx && files.has(IDENTITY_FILES.pfxPassword)) {
    files.problem(IDENTITY_FILES.pfxPassword, `is present without ${IDENTITY_FILES.pfx}`);
    return undefined;
  }
  if ([hasSecret, hasPem, hasPfx].filter(Boolean).length > 1) {
    files.problem(undefined, `holds more than one credential (${present.join(', ')}); keep exactly one of clientSecret, tls.crt+tls.key, certificate.pfx`);
    return undefined;
  }
  if (hasSecret) return loadClientSecret(files);
  if (hasPem) return loadPem(files);
  if (hasPfx) return loadPfx(files);
  return federatedMaterial(options, files);
}

async function loadClientSecret(files: IdentityFiles): Promise<CredentialMaterial | undefined> {
  const clientSecret = await files.readText(IDENTITY_FILES.clientSecret);
  if (clientSecret === undefined) return undefined;
  if (clientSecret === '') {
    files.problem(IDENTITY_FILES.clientSecret, 'is empty');
    return undefined;
  }
  return { kind: 'secret', clientSecret };
}

async function loadPem(files: IdentityFiles): Promise<CredentialMaterial | undefined> {
  if (!files.has(IDENTITY_FILES.certificate)) {
    files.problem(IDENTITY_FILES.certificate, 'is missing (tls.key is present; a certificate needs both)');
    return undefined;
  }
  if (!files.has(IDENTITY_FILES.privateKey)) {
    files.problem(IDENTITY_FILES.privateKey, 'is missing (tls.crt is present; a certificate needs both)');
    return undefined;
  }
  const certificatePem = await files.readText(IDENTITY_FILES.certificate);
  const privateKeyPem = await files.readText(IDENTITY_FILES.privateKey);
  const certificateOk = isPem(files, IDENTITY_FILES.certificate, certificatePem, PEM_CERTIFICATE);
  const privateKeyOk = isPem(files, IDENTITY_FILES.privateKey, privateKeyPem, PEM_PRIVATE_KEY);
  if (!certificateOk || !privateKeyOk || certificatePem === undefined || privateKeyPem === undefined) return undefined;
  return { kind: 'certificate', certificatePem, privateKeyPem };
}

const PEM_CERTIFICATE = { test: (text: string) => text.includes('-----BEGIN CERTIFICATE-----'), mismatch: 'is not a PEM certificate (no "-----BEGIN CERTIFICATE-----")' };
const PEM_PRIVATE_KEY = {
  test: (text: string) => /-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(text),
  mismatch: 'is not a PEM private key (no "-----BEGIN ... PRIVATE KEY-----")',
};

/** True when the file was read and has the PEM block; a file read but without it is recorded as a problem. */
function isPem(files: IdentityFiles, field: string, text: string | undefined, kind: typeof PEM_CERTIFICATE): boolean {
  if (text === undefined) return false;
  if (kind.test(text)) return true;
  files.problem(field, kind.mismatch);
  return false;
}

async function loadPfx(files: IdentityFiles): Promise<CredentialMaterial | undefined> {
  const pfx = await files.read(IDENTITY_FILES.pfx);
  if (pfx === undefined) return undefined;
  if (pfx.length === 0) {
    files.problem(IDENTITY_FILES.pfx, 'is empty');
    return undefined;
  }
  const passphrase = files.has(IDENTITY_FILES.pfxPassword) ? await files.readText(IDENTITY_FILES.pfxPassword) : undefined;
  const opened = await openPkcs12(pfx, passphrase);
  if (!opened.ok) {
    files.problem(IDENTITY_FILES.pfx, opened.problem);
    return undefined;
  }
  // From here on a PFX identity is a certificate identity like tls.crt + tls.key.
  return { kind: 'certificate', certificatePem: opened.certificatePem, privateKeyPem: opened.privateKeyPem };
}

async function federatedMaterial(options: LoadIdentityDirOptions, files: IdentityFiles): Promise<CredentialMaterial | undefined> {
  if (options.federatedTokenFile === undefined) {
    files.problem(
      undefined,
      'has no credential (clientSecret, tls.crt+tls.key or certificate.pfx), so it is federated, but MI_ANYWHERE_FEDERATED_TOKEN_FILE is not set',
    );
    return undefined;
  }
  const audience = (await files.readText(IDENTITY_FILES.federatedAudience)) || DEFAULT_FEDERATED_AUDIENCE;
  return { kind: 'federated', tokenFile: options.federatedTokenFile, audience };
}

/** The descriptor's credential kind for a material (a CI OIDC token is a federated assertion). */
export function credentialKindOf(material: CredentialMaterial): CredentialKind {
  if (material.kind === 'ci-oidc') return 'federated';
  return material.kind;
}

/** SHA-256 over the credential material: changes when the Secret rotates, reveals nothing about it. */
export function fingerprint(material: CredentialMaterial): string {
  const hash = createHash('sha256').update(material.kind);
  credentialParts(material).forEach((part, i) => {
    if (i > 0) hash.update('\0');
    hash.update(part ?? '');
  });
  return hash.digest('hex');
}

/** What identifies a credential, in a fixed order (an absent optional part hashes as empty). */
function credentialParts(material: CredentialMaterial): ReadonlyArray<string | Buffer | undefined> {
  switch (material.kind) {
    case 'secret':
      return [material.clientSecret];
    case 'certificate':
      return [material.certificatePem, material.privateKeyPem];
    case 'federated':
      return [material.tokenFile, material.audience];
    case 'ci-oidc':
      return [material.platform, material.audience, material.serviceConnectionId];
    case 'azure-cli':
      return [material.tenantId];
    case 'dev':
      return [];
  }
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
  const { names, problems } = await listIdentityDirectories(options.fs, options.dir);
  const existing = options.existing ?? [];
  // Without a configured default, a directory holding exactly one identity (and nothing built in) serves it as default.
  const defaultName = options.defaultName ?? (names.length === 1 && existing.length === 0 ? names[0] : undefined);
  const loaded: LoadedIdentity[] = [];
  for (const name of names) {
    const result = await loadIdentityDir({
      fs: options.fs,
      dir: posix.join(options.dir, name),
      name,
      isDefault: name === defaultName,
      mode: options.mode,
      federatedTokenFile: options.federatedTokenFile,
    });
    problems.push(...result.problems);
    const clash = result.identity && findClash([...existing, ...loaded], result.identity.descriptor);
    if (clash) problems.push({ identity: name, file: posix.join(options.dir, name), field: clash.field, message: clash.message, code: 'conflict' });
    else if (result.identity) loaded.push(result.identity);
  }
  return { identities: loaded, problems };
}

/** The subdirectories of `dir` (sorted, dot-entries skipped), and a problem for every other entry. */
async function listIdentityDirectories(fs: IdentityFs, dir: string): Promise<{ names: string[]; problems: IdentityProblem[] }> {
  let entries: string[];
  try {
    entries = (await fs.readdir(dir)).filter((e) => !e.startsWith('.')).sort();
  } catch (error) {
    return { names: [], problems: [{ identity: '', file: dir, field: undefined, message: `cannot read the identity directory: ${errorText(error)}`, code: 'layout' }] };
  }
  const names: string[] = [];
  const problems: IdentityProblem[] = [];
  for (const name of entries) {
    const problem = await notAnIdentityDirectory(fs, dir, name);
    if (problem === undefined) names.push(name);
    else problems.push(problem);
  }
  return { names, problems };
}

/** Why the entry `name` of `dir` is not an identity, or undefined when it is a directory. */
async function notAnIdentityDirectory(fs: IdentityFs, dir: string, name: string): Promise<IdentityProblem | undefined> {
  const path = posix.join(dir, name);
  try {
    if ((await fs.stat(path)).isDirectory()) return undefined;
  } catch (error) {
    return { identity: name, file: path, field: undefined, message: `cannot be read: ${errorText(error)}`, code: 'layout' };
  }
  const hint = (Object.values(IDENTITY_FILES) as string[]).includes(name)
    ? ` — it looks like a Secret key: mount each identity's Secret in its own subdirectory, e.g. ${posix.join(dir, '<name>', name)}`
    : '';
  return { identity: '', file: path, field: undefined, message: `is not a directory and was ignored${hint}`, code: 'layout' };
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
