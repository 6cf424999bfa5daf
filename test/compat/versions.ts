/**
 * The version axis of the compatibility matrix: older releases of each client that apps still run (back to 2022),
 * each run against every injection profile with three calls — system-assigned, user-assigned by client id, and
 * DefaultAzureCredential (or the client's nearest equivalent) — beside the newest release, which runs the full set of
 * rows in matrix.ts. Pure data; where each release is installed: scripts/provision.d/2*.sh.
 */
import type { ClientId } from './matrix.ts';

export interface ClientVersion {
  readonly client: ClientId;
  /** The release as users name it (the drivers report what actually loaded). */
  readonly version: string;
  /** Why this release is on the axis. */
  readonly why: string;
  /** The rows (ids from matrix.ts CLIENTS) run for this release, in the order of the axis table's marks. */
  readonly rows: readonly string[];
  /** Where the provisioning put it, relative to the cache (Python venv, Go binary, Java dir, JS package dir). */
  readonly install: string;
  /**
   * false: the release's credential keeps no token cache (every call reaches the endpoint; SDK clients cache through
   * azure-core's bearer-token policy instead), so the second-call rule is "same token and expiry".
   */
  readonly clientCache?: false;
}

/** The three calls of the axis, per client (marks in the table follow this order). */
export const AXIS_ROWS: Readonly<Record<ClientId, readonly string[]>> = {
  'js-identity': ['mi-system', 'mi-client-id', 'dac'],
  'js-msal': ['mi-system', 'mi-client-id'],
  'py-identity': ['mi-system', 'mi-client-id', 'dac'],
  'py-msal': ['mi-system', 'mi-client-id'],
  az: ['login', 'login-client-id', 'get-access-token'],
  go: ['mi-system', 'mi-client-id', 'dac'],
  java: ['mi-system', 'mi-client-id', 'dac'],
};

const v = (client: ClientId, version: string, install: string, why: string, extra: Partial<ClientVersion> = {}): ClientVersion => ({
  client,
  version,
  why,
  rows: AXIS_ROWS[client],
  install,
  ...extra,
});

/** Older releases; the newest of each client is the main matrix (versions pinned as listed in docs/compatibility.md). */
export const OLDER_VERSIONS: readonly ClientVersion[] = [
  v('js-identity', '2.1.0', 'js-compat/node_modules/azure-identity-2', 'the last 2.x; its own managed-identity code, no token cache in the credential', { clientCache: false }),
  v('js-identity', '3.4.2', 'js-compat/node_modules/azure-identity-3', 'the last 3.x, the release line before managed identity moved into msal-node'),
  v('js-msal', '2.7.0', 'js-compat/node_modules/azure-msal-node-2.7', 'the first msal-node with ManagedIdentityApplication (2.6.6 has none)'),
  v('py-identity', '1.10.0', 'python/venvs/identity-1.10', '2022, with the msal (1.17) and azure-core (1.24) of its time'),
  v('py-identity', '1.12.0', 'python/venvs/identity-1.12', 'late 2022, with msal 1.20 and azure-core 1.26'),
  v('py-identity', '1.15.0', 'python/venvs/identity-1.15', 'late 2023, with msal 1.24 and azure-core 1.29'),
  v('py-msal', '1.29.0', 'python/venvs/msal-1.29', 'the first msal-python with ManagedIdentityClient (1.28.0 has none)'),
  v('az', '2.45.0 (Debian)', 'debian', "Debian 12's packaged CLI (`apt-get install azure-cli`), msrestazure-based"),
  v('az', '2.60.0', 'python/venvs/cli-2.60', 'between Debian\'s and the newest; still msrestazure-based, like 2.45'),
  v('go', 'v1.1.0', 'bin/mi-anywhere-compat-go-v1.1.0', 'the first 1.x feature release after 1.0; its credential keeps no token cache', { clientCache: false }),
  v('go', 'v1.3.1', 'bin/mi-anywhere-compat-go-v1.3.1', 'the last 1.3'),
  v('go', 'v1.5.2', 'bin/mi-anywhere-compat-go-v1.5.2', 'the last 1.5 (v1.5.0 itself is not offered: `go list -m -versions` lists only v1.5.1 and v1.5.2)'),
  v('go', 'v1.6.0', 'bin/mi-anywhere-compat-go-v1.6.0', 'the last release that sends Arc api-version 2019-08-15 (the newest sends 2020-06-01)'),
  v('java', '1.5.5', 'java/v/1.5.5', 'the last 1.5; its credential keeps no token cache', { clientCache: false }),
  v('java', '1.8.0', 'java/v/1.8.0', 'its credential keeps no token cache', { clientCache: false }),
  v('java', '1.12.0', 'java/v/1.12.0', 'the first 1.12 (its managed identity still serves a user-assigned id on Cloud Shell, unlike the newest on MSAL4J)'),
];

export function axisKey(cv: ClientVersion): string {
  return `${cv.client}@${cv.version}`;
}
