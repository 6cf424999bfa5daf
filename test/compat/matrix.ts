/**
 * The compatibility matrix as data: which clients (rows), which injection profiles (columns), which cells a client
 * itself refuses (the expectation table, each entry citing the SDK behaviour), how a driver result becomes a cell,
 * and how docs/compatibility.md is rendered. Pure: no I/O.
 */
import { PROFILES, type Profile } from '../../sidecar/contract.ts';
import type { CredentialKind, DriverResult, SelectorKind } from './drivers/protocol.ts';
import { AXIS_ROWS, axisKey, type ClientVersion } from './versions.ts';

/** The identities every column serves (dev issuer built-ins; the test-authority column registers the same ids). */
export const IDENTITIES = {
  tenantId: '11111111-1111-4111-8111-111111111111',
  system: { name: 'dev-system', clientId: '22222222-2222-4222-8222-222222222222', objectId: '33333333-3333-4333-8333-333333333333' },
  user: {
    name: 'dev-user',
    clientId: '44444444-4444-4444-8444-444444444444',
    objectId: '55555555-5555-4555-8555-555555555555',
    resourceId:
      '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mi-anywhere-dev/providers/Microsoft.ManagedIdentity/userAssignedIdentities/dev-user',
  },
} as const;

/** Resource every driver asks for (az login always asks for ARM; see drivers). */
export const RESOURCE = 'https://vault.azure.net';

export type ClientId = 'js-identity' | 'js-msal' | 'py-identity' | 'py-msal' | 'az' | 'go' | 'java';

export interface Row {
  readonly id: string;
  readonly title: string;
  readonly credential: CredentialKind;
  /** User-assigned selector (value from {@link IDENTITIES}.user); none = system-assigned (default identity). */
  readonly selector?: SelectorKind;
  /**
   * The row documents a limitation of the client that holds in every profile (it is "not supported" everywhere), so
   * it does not count when choosing the default profile.
   */
  readonly limitation?: true;
}

export interface Client {
  readonly id: ClientId;
  readonly title: string;
  readonly language: 'JavaScript' | 'Python' | 'Go' | 'Java';
  readonly rows: readonly Row[];
}

const sys = (id: string, title: string, credential: CredentialKind = 'managed-identity'): Row => ({ id, title, credential });
const uami = (selector: SelectorKind, title: string): Row => ({ id: `mi-${selector}`, title, credential: 'managed-identity', selector });

export const CLIENTS: readonly Client[] = [
  {
    id: 'js-identity',
    title: '@azure/identity (JavaScript)',
    language: 'JavaScript',
    rows: [
      sys('dac', 'DefaultAzureCredential', 'default'),
      sys('mi-system', 'ManagedIdentityCredential()'),
      uami('client-id', 'ManagedIdentityCredential({clientId})'),
      uami('resource-id', 'ManagedIdentityCredential({resourceId})'),
      uami('object-id', 'ManagedIdentityCredential({objectId})'),
    ],
  },
  {
    id: 'js-msal',
    title: '@azure/msal-node (JavaScript)',
    language: 'JavaScript',
    rows: [
      sys('mi-system', 'ManagedIdentityApplication()'),
      uami('client-id', 'ManagedIdentityApplication(userAssignedClientId)'),
      uami('resource-id', 'ManagedIdentityApplication(userAssignedResourceId)'),
      uami('object-id', 'ManagedIdentityApplication(userAssignedObjectId)'),
    ],
  },
  {
    id: 'py-identity',
    title: 'azure-identity (Python)',
    language: 'Python',
    rows: [
      sys('dac', 'DefaultAzureCredential()', 'default'),
      sys('mi-system', 'ManagedIdentityCredential()'),
      uami('client-id', 'ManagedIdentityCredential(client_id=)'),
      uami('resource-id', 'ManagedIdentityCredential(identity_config={"resource_id"})'),
      uami('object-id', 'ManagedIdentityCredential(identity_config={"object_id"})'),
    ],
  },
  {
    id: 'py-msal',
    title: 'msal (Python)',
    language: 'Python',
    rows: [
      sys('mi-system', 'ManagedIdentityClient(SystemAssignedManagedIdentity())'),
      uami('client-id', 'ManagedIdentityClient(UserAssignedManagedIdentity(client_id=))'),
      uami('resource-id', 'ManagedIdentityClient(UserAssignedManagedIdentity(resource_id=))'),
      uami('object-id', 'ManagedIdentityClient(UserAssignedManagedIdentity(object_id=))'),
    ],
  },
  {
    id: 'az',
    title: 'Azure CLI (Python)',
    language: 'Python',
    rows: [
      sys('login', 'az login --identity (token request; ARM step fails here)', 'az-login'),
      { id: 'login-client-id', title: 'az login --identity --client-id (token request; ARM step fails here)', credential: 'az-login', selector: 'client-id' },
      sys('get-access-token', 'az account get-access-token (managed-identity account)', 'az-get-access-token'),
      { ...sys('get-access-token-no-login', 'az account get-access-token (no account: without az login)', 'az-get-access-token-no-login'), limitation: true },
    ],
  },
  {
    id: 'go',
    title: 'azidentity (Go)',
    language: 'Go',
    rows: [
      sys('dac', 'NewDefaultAzureCredential', 'default'),
      sys('mi-system', 'NewManagedIdentityCredential(nil)'),
      uami('client-id', 'NewManagedIdentityCredential(ID: ClientID)'),
      uami('resource-id', 'NewManagedIdentityCredential(ID: ResourceID)'),
      uami('object-id', 'NewManagedIdentityCredential(ID: ObjectID)'),
    ],
  },
  {
    id: 'java',
    title: 'azure-identity (Java)',
    language: 'Java',
    rows: [
      sys('dac', 'DefaultAzureCredentialBuilder', 'default'),
      sys('mi-system', 'ManagedIdentityCredentialBuilder'),
      uami('client-id', 'ManagedIdentityCredentialBuilder.clientId'),
      uami('resource-id', 'ManagedIdentityCredentialBuilder.resourceId'),
      uami('object-id', 'ManagedIdentityCredentialBuilder.objectId'),
    ],
  },
];

export function selectorValue(kind: SelectorKind): string {
  switch (kind) {
    case 'client-id':
      return IDENTITIES.user.clientId;
    case 'resource-id':
      return IDENTITIES.user.resourceId;
    case 'object-id':
      return IDENTITIES.user.objectId;
  }
}

export function expectedAppId(row: Row): string {
  return row.selector === undefined ? IDENTITIES.system.clientId : IDENTITIES.user.clientId;
}

// ---------------------------------------------------------------------------------------------------
// Columns
// ---------------------------------------------------------------------------------------------------

export type Backend = 'dev' | 'entra';

export interface Column {
  readonly id: string;
  readonly title: string;
  readonly profile: Profile;
  readonly backend: Backend;
}

const PROFILE_TITLES: Record<Profile, string> = {
  'app-service': 'App Service 2019 (`IDENTITY_ENDPOINT`+`IDENTITY_HEADER`)',
  'msi-endpoint': '`MSI_ENDPOINT` only',
  'msi-secret': '`MSI_ENDPOINT`+`MSI_SECRET`',
  'pod-identity': '`AZURE_POD_IDENTITY_AUTHORITY_HOST`',
  arc: 'Azure Arc (`IDENTITY_ENDPOINT`+`IMDS_ENDPOINT`)',
  default: '`default` (combined)',
};

const PROFILE_ORDER: readonly Profile[] = ['app-service', 'msi-endpoint', 'msi-secret', 'pod-identity', 'arc', 'default'];

export const COLUMNS: readonly Column[] = [
  ...PROFILE_ORDER.map((profile) => ({ id: profile, title: PROFILE_TITLES[profile], profile, backend: 'dev' as const })),
  { id: 'default-entra', title: '`default`, test Entra authority (client secret)', profile: 'default', backend: 'entra' },
];

// Every profile the webhook offers is a column (a new profile in contract.ts must be added here).
for (const p of PROFILES) {
  if (!PROFILE_ORDER.includes(p)) throw new Error(`profile ${p} from sidecar/contract.ts has no column in the compat matrix`);
}

// ---------------------------------------------------------------------------------------------------
// Expectations: the cells a client refuses by its own design
// ---------------------------------------------------------------------------------------------------

export interface Unsupported {
  /** Which client behaviour makes the cell unsupported, with its source (docs/protocols.md / docs/clients.md / this matrix's run). */
  readonly why: string;
  /** The client's own error must match (an unrelated failure in such a cell is still a FAIL). */
  readonly error: RegExp;
  /** The client goes elsewhere (169.254.169.254): no request of it may reach the sidecar. */
  readonly neverReachesSidecar?: true;
  /**
   * A defect of the client (it gets the token but mishandles the answer, as it would with real Azure): the cell is
   * a "client defect" when the acceptance check fails with a text matching {@link error}.
   */
  readonly defect?: true;
}

/**
 * Key: `<client>/<row>/<profile>`, or `<client>@<version>/<row>/<profile>` for one release of the version axis
 * (looked up first); `*` as row = every row of the client. Applies to both backends.
 */
export type ExpectationTable = ReadonlyMap<string, Unsupported>;

export function expectation(table: ExpectationTable, client: string, row: string, profile: Profile): Unsupported | undefined {
  return table.get(`${client}/${row}/${profile}`) ?? table.get(`${client}/*/${profile}`);
}

// ---------------------------------------------------------------------------------------------------
// Cells
// ---------------------------------------------------------------------------------------------------

export type CellKind = 'ok' | 'unsupported' | 'defect' | 'fail' | 'unexpected-ok';

export interface Cell {
  readonly kind: CellKind;
  /** Client's error text (unsupported), failure reason (fail). */
  readonly text?: string | undefined;
  readonly result?: DriverResult | undefined;
  /** The `api-version` values of the requests that reached the sidecar (for the api-version table). */
  readonly apiVersions?: readonly string[] | undefined;
}

export function classify(
  result: DriverResult | undefined,
  expected: Unsupported | undefined,
  processError?: string,
  requestsSeen = 0,
): Cell {
  if (result === undefined) return { kind: 'fail', text: processError ?? 'the driver printed no result for this row' };
  if (result.status === 'fail') {
    const error = result.error ?? 'failed';
    return expected?.defect === true && expected.error.test(error) ? { kind: 'defect', text: error, result } : { kind: 'fail', text: error, result };
  }
  if (result.status === 'ok') {
    return expected === undefined
      ? { kind: 'ok', result }
      : { kind: 'unexpected-ok', text: `expected "not supported" (${expected.why}) but the client got a valid token`, result };
  }
  const error = result.error ?? '';
  if (expected === undefined || expected.defect === true) return { kind: 'fail', text: error, result };
  if (!expected.error.test(error)) {
    return { kind: 'fail', text: `refused, but not with the expected error ${String(expected.error)}: ${error}`, result };
  }
  if (expected.neverReachesSidecar && requestsSeen > 0) {
    return { kind: 'fail', text: `expected the client to bypass the sidecar, but ${String(requestsSeen)} requests reached it: ${error}`, result };
  }
  return { kind: 'unsupported', text: error, result };
}

// ---------------------------------------------------------------------------------------------------
// docs/compatibility.md
// ---------------------------------------------------------------------------------------------------

export interface MatrixRun {
  readonly columns: readonly Column[];
  /** Key: `<client>/<row>/<column id>`. */
  readonly cells: ReadonlyMap<string, Cell>;
  /** Library versions per client (and `<client>@<version>` of the version axis), as the drivers reported them. */
  readonly versions: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** Columns that could not run, with the reason (rendered as FAIL cells). */
  readonly generatedAt: string;
  readonly durationS: number;
}

export function cellKey(client: string, row: string, column: string): string {
  return `${client}/${row}/${column}`;
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim();
}

function shorten(text: string, max = 220): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

/** Profiles (dev columns) in which every row of every client is OK (rows that document a limitation aside). */
export function profilesServingEveryClient(run: MatrixRun): Profile[] {
  return run.columns
    .filter((c) => c.backend === 'dev')
    .filter((c) =>
      CLIENTS.every((client) =>
        client.rows.every((row) => row.limitation === true || run.cells.get(cellKey(client.id, row.id, c.id))?.kind === 'ok'),
      ),
    )
    .map((c) => c.profile);
}

/** Hand-written parts of docs/compatibility.md (test/compat/doc/*.md) and the version axis that was run. */
export interface DocExtras {
  readonly axis: readonly ClientVersion[];
  /** Markdown sections placed after the matrix (version choice, accepted api-versions, .NET, run time). */
  readonly sections: readonly string[];
}

/** The library whose version names a release in the version axis (the drivers report several). */
const MAIN_LIBRARY: Record<ClientId, string> = {
  'js-identity': '@azure/identity',
  'js-msal': '@azure/msal-node',
  'py-identity': 'azure-identity',
  'py-msal': 'msal',
  az: 'azure-cli',
  go: 'azidentity',
  java: 'azure-identity',
};

const AXIS_MARK: Record<CellKind, string> = { ok: '✓', unsupported: '–', defect: '⚠', fail: '✗', 'unexpected-ok': '✓!' };

/** Profiles whose every cell of the version axis (older releases) is OK or refused by the client. */
export function axisProfilesWithoutFailure(run: MatrixRun, axis: readonly ClientVersion[]): Profile[] {
  return run.columns
    .filter((c) => c.backend === 'dev')
    .filter((c) => axis.every((cv) => cv.rows.every((r) => {
      const kind = run.cells.get(cellKey(axisKey(cv), r, c.id))?.kind;
      return kind === 'ok' || kind === 'unsupported';
    })))
    .map((c) => c.profile);
}

function renderAxis(run: MatrixRun, extras: DocExtras, notes: string[], note: (notes: string[], text: string) => string): string[] {
  const lines: string[] = [];
  const dev = run.columns.filter((c) => c.backend === 'dev');
  const callNames: Record<ClientId, string> = {
    'js-identity': 'system · client id · DefaultAzureCredential',
    'js-msal': 'system · client id',
    'py-identity': 'system · client id · DefaultAzureCredential',
    'py-msal': 'system · client id',
    az: '`az login --identity` · `--client-id` · `az account get-access-token`',
    go: 'system · client id · DefaultAzureCredential',
    java: 'system · client id · DefaultAzureCredential',
  };
  lines.push(`| client | release | calls (marks in this order) | ${dev.map((c) => c.title).join(' | ')} |`);
  lines.push(`|---|---|---|${dev.map(() => '---').join('|')}|`);
  for (const client of CLIENTS) {
    const releases: Array<{ key: string; label: string }> = extras.axis
      .filter((cv) => cv.client === client.id)
      .map((cv) => ({ key: axisKey(cv), label: cv.version }));
    const newestVersion = run.versions.get(client.id)?.[MAIN_LIBRARY[client.id]];
    releases.push({ key: client.id, label: `${newestVersion ?? 'newest'} (newest)` });
    for (const release of releases) {
      const cells = dev.map((c) =>
        AXIS_ROWS[client.id]
          .map((row) => {
            const cell = run.cells.get(cellKey(release.key, row, c.id));
            if (cell === undefined) return '✗ (not run)';
            return cell.kind === 'ok' ? AXIS_MARK.ok : `${AXIS_MARK[cell.kind]}${note(notes, cell.text ?? '')}`;
          })
          .join(' '),
      );
      lines.push(`| ${client.title} | ${release.label} | ${callNames[client.id]} | ${cells.join(' | ')} |`);
    }
  }
  return lines;
}

export function renderMarkdown(run: MatrixRun, table: ExpectationTable, findings: readonly string[], extras: DocExtras = { axis: [], sections: [] }): string {
  const lines: string[] = [];
  // Identical texts share one note number.
  const note = (notes: string[], text: string): string => {
    const flat = escapeCell(shorten(text, 700));
    let i = notes.indexOf(flat);
    if (i < 0) i = notes.push(flat) - 1;
    return `[${String(i + 1)}]`;
  };
  const mark = (cell: Cell | undefined, notes: string[]): string => {
    if (cell === undefined) return '**FAIL** (not run)';
    switch (cell.kind) {
      case 'ok':
        // az login: what happened after the token request (the ARM step), so the reader sees where it stopped.
        return cell.result?.armStep === undefined ? 'OK' : `OK ${note(notes, `after its token request, az login: ${cell.result.armStep}`)}`;
      case 'unsupported':
        return `not supported by the client ${note(notes, cell.text ?? '')}`;
      case 'defect':
        return `client defect ${note(notes, cell.text ?? '')}`;
      case 'unexpected-ok':
        return `OK, unexpected ${note(notes, cell.text ?? '')}`;
      case 'fail':
        return `**FAIL** ${note(notes, cell.text ?? '')}`;
    }
  };
  const counts = { ok: 0, unsupported: 0, defect: 0, fail: 0, 'unexpected-ok': 0 };
  for (const cell of run.cells.values()) counts[cell.kind] += 1;
  const serving = profilesServingEveryClient(run);

  lines.push('# Compatibility matrix');
  lines.push('');
  lines.push('<!-- Generated by test/compat/compat.test.ts (npm test). Do not edit by hand: rerun the test. -->');
  lines.push('');
  lines.push(
    'Regenerate: `npm test` (everything), or only this matrix: `bash scripts/provision.sh && ./node_modules/.bin/node --test test/compat/compat.test.ts`',
    '(clients cached under `$MI_ANYWHERE_CACHE`, default `~/.cache/mi-anywhere`; the Arc column needs root for `/var/opt/azcmagent/tokens`).',
  );
  lines.push('');
  lines.push(
    'Each cell: the real client library, in its own process whose environment is exactly what the webhook injects for',
    'that profile (`profileEnv()` in `sidecar/contract.ts`, plus PATH/HOME), asks the sidecar for a token for',
    `\`${RESOURCE}\` twice. **OK** = the token's \`aud\` is the resource and its \`appid\` the expected identity's`,
    'client id, the reported expiry is the token\'s `exp` (far in the future), and the second call was served from',
    "the client's own cache (no request reached the sidecar; for the Azure CLI, one process per command, the same",
    'token and expiry came back). **not supported by the client** = the client itself refuses that configuration;',
    'the test holds an explicit table of those cells (with the SDK behaviour behind each) and the client\'s own',
    'error text is quoted below. **FAIL** = anything else; the test run fails on every FAIL.',
  );
  lines.push('');
  lines.push(`Run: ${run.generatedAt}, ${String(run.durationS)} s. Cells: ${String(counts.ok)} OK, ${String(counts.unsupported)} not supported by the client, ${String(counts.defect)} client defect, ${String(counts.fail)} FAIL, ${String(counts['unexpected-ok'])} unexpected OK.`);
  lines.push('');
  lines.push('## Default injection profile');
  lines.push('');
  lines.push(
    serving.includes('default')
      ? 'The webhook injects the **`default`** profile unless a pod asks for another: it is the one column in which every client and every identity selector above is OK (rows that document a limitation of a client in every profile aside).'
      : `**No profile serves every client in this run** (profiles with every cell OK: ${serving.length === 0 ? 'none' : serving.map((p) => `\`${p}\``).join(', ')}). See the FAIL cells.`,
  );
  lines.push('');
  lines.push(DEFAULT_PROFILE_RATIONALE);
  lines.push('');
  lines.push('## Matrix');
  lines.push('');
  const notes: string[] = [];
  lines.push(`| client | call | ${run.columns.map((c) => c.title).join(' | ')} |`);
  lines.push(`|---|---|${run.columns.map(() => '---').join('|')}|`);
  for (const client of CLIENTS) {
    for (const row of client.rows) {
      const cells = run.columns.map((c) => mark(run.cells.get(cellKey(client.id, row.id, c.id)), notes));
      lines.push(`| ${client.title} | ${escapeCell(row.title)} | ${cells.join(' | ')} |`);
    }
  }
  lines.push('');
  if (extras.axis.length > 0) {
    lines.push('## Version axis: older releases');
    lines.push('');
    lines.push(
      'One row per release; each profile cell holds one mark per call, in the order the row names them (the newest',
      'release\'s marks are the same cells as in the matrix above). Legend: **✓** OK (same acceptance as above: right',
      '`aud` and `appid`, expiry = the token\'s `exp`, second call from the client\'s cache); **–** refused by the',
      'client itself (its own text in the note); **⚠** client defect: the client got the token but mishandles the',
      'answer in a way real Azure triggers too (see "Client defects" below); **✗** FAIL; **✓!** OK although the',
      'expectation table says the client refuses it (fails the run until the table is updated). The version axis runs',
      'against the dev issuer only: the token source does not change what a client sends.',
    );
    lines.push('');
    lines.push(...renderAxis(run, extras, notes, note));
    lines.push('');
    const dev = run.columns.filter((c) => c.backend === 'dev');
    lines.push('### Which releases, and why');
    lines.push('');
    lines.push('| client | release | why |');
    lines.push('|---|---|---|');
    for (const cv of extras.axis) lines.push(`| ${CLIENTS.find((c) => c.id === cv.client)?.title ?? cv.client} | ${cv.version} | ${escapeCell(cv.why)} |`);
    lines.push('');
    lines.push('### api-versions each release sent (seen by the harness\'s proxy)');
    lines.push('');
    lines.push(`| client | release | ${dev.map((c) => c.title).join(' | ')} |`);
    lines.push(`|---|---|${dev.map(() => '---').join('|')}|`);
    for (const client of CLIENTS) {
      for (const key of [...extras.axis.filter((cv) => cv.client === client.id).map(axisKey), client.id]) {
        const cells = dev.map((c) => {
          const seen = new Set<string>();
          for (const row of AXIS_ROWS[client.id]) for (const v of run.cells.get(cellKey(key, row, c.id))?.apiVersions ?? []) seen.add(v);
          return seen.size === 0 ? '—' : [...seen].sort().join(', ');
        });
        lines.push(`| ${client.title} | ${key === client.id ? 'newest' : key.slice(key.indexOf('@') + 1)} | ${cells.join(' | ')} |`);
      }
    }
    lines.push('');
    const clean = axisProfilesWithoutFailure(run, extras.axis);
    lines.push(
      `Profiles in which no older release fails or shows a defect: ${clean.length === 0 ? 'none' : clean.map((p) => `\`${p}\``).join(', ')}.`,
    );
    lines.push('');
  }
  lines.push('### Notes: the clients\' own texts');
  lines.push('');
  notes.forEach((n, i) => lines.push(`${String(i + 1)}. ${n}`));
  lines.push('');
  lines.push('## Why those cells are not supported');
  lines.push('');
  lines.push('The expectation table in `test/compat/expectations.ts`; a cell listed there that starts to work is reported as "OK, unexpected" and fails the run until the table is updated.');
  lines.push('');
  const seen = new Set<string>();
  for (const [key, u] of table) {
    if (seen.has(u.why)) continue;
    seen.add(u.why);
    const sameWhy = [...table].filter(([, v]) => v.why === u.why).map(([k]) => `\`${k}\``);
    lines.push(`- ${sameWhy.join(', ')}: ${u.why}`);
    void key;
  }
  lines.push('');
  lines.push('## Where the SDKs differ from the specification notes');
  lines.push('');
  lines.push('Found by running the real clients; the SDK wins, the expectations and the sidecar follow it.');
  lines.push('');
  for (const f of findings) lines.push(`- ${f}`);
  lines.push('');
  lines.push('## Versions');
  lines.push('');
  lines.push('| client | libraries |');
  lines.push('|---|---|');
  for (const client of CLIENTS) {
    for (const key of [...extras.axis.filter((cv) => cv.client === client.id).map(axisKey), client.id]) {
      const v = run.versions.get(key);
      const text = v === undefined ? 'unknown (no result)' : Object.entries(v).map(([k, val]) => `${k} ${val}`).join(', ');
      lines.push(`| ${client.title} | ${text} |`);
    }
  }
  lines.push('');
  lines.push(
    'Pinned by: `package.json` (JavaScript), `test/compat/python/requirements.txt` + `requirements.lock` (Python),',
    '`test/compat/go/go.mod` + `go.sum` (Go), `test/compat/java/pom.xml` (Java); installed by `scripts/provision.d/2*-*.sh`.',
    'Java: Netty\'s optional native transports are excluded in the pom, because their platform jars are not served by the',
    'registry reachable here (`Could not transfer artifact io.netty:netty-codec-native-quic:jar:linux-x86_64:4.2.19.Final`);',
    'Netty then uses its NIO transport.',
    'Older releases (version axis): `test/compat/js/package.json` + lock (npm aliases), `test/compat/python/versions/*.txt`,',
    '`test/compat/go/versions/*/go.mod` + `go.sum`, `test/compat/java/versions.txt`; the Debian CLI from apt.',
  );
  lines.push('');
  for (const section of extras.sections) {
    lines.push(section.trim());
    lines.push('');
  }
  return lines.join('\n');
}

/** Fixed prose about the choice of the default profile (the data that backs it is the matrix). */
const DEFAULT_PROFILE_RATIONALE = [
  'What `default` holds and why (see `profileEnv()` in `sidecar/contract.ts`):',
  '',
  '- `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` (App Service 2019): every current SDK checks this pair first, so',
  '  JavaScript, msal-node, Python azure-identity and msal, the Azure CLI (MSAL-based), Go and Java all speak',
  '  App Service 2019 to the sidecar, and every user-assigned selector works there.',
  '- `MSI_ENDPOINT` + `MSI_SECRET` (+ `DEFAULT_IDENTITY_CLIENT_ID`): for clients that predate App Service 2019 or',
  '  look only at `MSI_ENDPOINT` (the Debian-packaged Azure CLI 2.45, see the version axis; MSAL.NET requires',
  '  `DEFAULT_IDENTITY_CLIENT_ID` on Azure ML). Current',
  '  clients never reach it because the App Service pair wins.',
  '- `AZURE_POD_IDENTITY_AUTHORITY_HOST`: for anything that falls through to IMDS (an app that ignores the',
  '  App Service variables). Go and clients without an IMDS override still go to 169.254.169.254; that address is',
  '  the webhook\'s IMDS redirect, not an environment variable.',
  '- Not Arc: every client that sees `IDENTITY_HEADER` ignores `IMDS_ENDPOINT` anyway (App Service wins), and the',
  '  Arc profile needs the key-file volume shared with the app at `/var/opt/azcmagent/tokens` plus two round trips',
  '  per token. It stays available as its own profile (every client is OK there, see the matrix).',
].join('\n');
