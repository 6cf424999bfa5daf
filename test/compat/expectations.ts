/**
 * The cells a client refuses by its own design ("not supported by that client"), each with the SDK behaviour behind
 * it. Sources: docs/protocols.md (section numbers; source tags such as MN-CS or JS-MI are those of its §0, which
 * links each to the SDK file it stands for), docs/clients.md, and this matrix's own runs. Where an SDK's real
 * behaviour differs from those notes the SDK wins: the difference is listed in {@link FINDINGS} (rendered into
 * docs/compatibility.md) and the table below follows the SDK.
 *
 * Keys: `<client>/<row>/<profile>`; `*` as row = every row of that client. An entry applies to every column with
 * that profile (dev issuer and test authority alike).
 */
import type { ExpectationTable, Unsupported } from './matrix.ts';

const UAMI_ROWS = ['mi-client-id', 'mi-resource-id', 'mi-object-id'] as const;
const BY_ID_ROWS = ['mi-resource-id', 'mi-object-id'] as const;

const entries: Array<[string, Unsupported]> = [];
function add(keys: readonly string[], u: Unsupported): void {
  for (const k of keys) entries.push([k, u]);
}

// --- MSI_ENDPOINT only = Cloud Shell: user-assigned identities are refused by the clients themselves ----------------
add(UAMI_ROWS.map((r) => `js-identity/${r}/msi-endpoint`), {
  why: '@azure/identity refuses a user-assigned identity on Cloud Shell before sending anything (docs/protocols.md §2.4, MN-CS `tryCreate`, JS-MI; docs/clients.md §3, configuration b).',
  error: /not supported for CloudShell/,
});
add(UAMI_ROWS.map((r) => `js-msal/${r}/msi-endpoint`), {
  why: 'msal-node\'s Cloud Shell source can only be system-assigned (docs/protocols.md §2.4, MN-CS `tryCreate` throws `unable_to_create_cloud_shell`).',
  error: /unable_to_create_cloud_shell/,
});
add(UAMI_ROWS.map((r) => `py-identity/${r}/msi-endpoint`), {
  why: 'azure-identity (Python) CloudShellCredential rejects `client_id` / `identity_config` outside DefaultAzureCredential (docs/protocols.md §2.4, PY-CS).',
  error: /cloud shell|identity_config must not contain/i,
});
add(UAMI_ROWS.map((r) => `go/${r}/msi-endpoint`), {
  why: 'azidentity / MSAL Go refuse a user-assigned identity on Cloud Shell when the credential is built (docs/protocols.md §2.4, MG `New`).',
  error: /Cloud Shell doesn't support user-assigned/,
});
add(UAMI_ROWS.map((r) => `java/${r}/msi-endpoint`), {
  why: 'MSAL4J\'s Cloud Shell source refuses user-assigned identities (docs/protocols.md §2.4/§1.2, M4J).',
  error: /not supported in CLOUD_SHELL/,
});
add(['py-msal/*/msi-endpoint', 'az/*/msi-endpoint'], {
  why: 'msal-python (and the Azure CLI 2.91, built on it) has no `MSI_ENDPOINT` Cloud Shell source: ManagedIdentityClient only knows Cloud Shell through `AZUREPS_HOST_ENVIRONMENT` and then via PublicClientApplication, so it falls back to IMDS at the hard-coded 169.254.169.254 (docs/protocols.md §1.2 MP/MP-CS, §10 CLI-NEW; docs/clients.md §3, configuration b). That address is not the sidecar; here the sandbox\'s egress filter answers it with a plain-text 403, hence a JSON decoding error (a network without it gives a connection error).',
  error: /JSONDecodeError|Expecting value|169\.254\.169\.254|ConnectionError|Max retries|timed out/,
  neverReachesSidecar: true,
});

// --- MSI_ENDPOINT + MSI_SECRET = Azure ML: only a client id selects a user-assigned identity -------------------------
add(BY_ID_ROWS.map((r) => `js-identity/${r}/msi-secret`), {
  why: 'msal-node\'s Azure ML source accepts only a client id for a user-assigned identity (docs/protocols.md §2.7, MN-ML); @azure/identity passes the refusal on.',
  error: /Only client id is supported for user-assigned managed identity in MachineLearning/,
});
add(BY_ID_ROWS.map((r) => `js-msal/${r}/msi-secret`), {
  why: 'msal-node\'s Azure ML source accepts only a client id for a user-assigned identity (docs/protocols.md §2.7, MN-ML).',
  error: /Only client id is supported for user-assigned managed identity in MachineLearning/,
});
add(BY_ID_ROWS.map((r) => `go/${r}/msi-secret`), {
  why: 'MSAL Go\'s Azure ML source accepts only a client id (docs/protocols.md §2.7, MG `New` errors).',
  error: /Azure ML supports specifying a user-assigned managed identity by client ID only/,
});
add(UAMI_ROWS.map((r) => `java/${r}/msi-secret`), {
  why: 'MSAL4J has no Azure ML source: `MSI_ENDPOINT` selects Cloud Shell whether or not `MSI_SECRET` is set (docs/protocols.md §1.2/§1.3 M4J, §12 conflict C8), and Cloud Shell refuses user-assigned identities. (The system identity works: the sidecar also answers the Cloud Shell GET.)',
  error: /not supported in CLOUD_SHELL/,
});

// --- AZURE_POD_IDENTITY_AUTHORITY_HOST: Go never reads it -------------------------------------------------------------
add(['go/*/pod-identity'], {
  why: 'azidentity / MSAL Go ignore `AZURE_POD_IDENTITY_AUTHORITY_HOST` (constant declared, never used) and always call IMDS at 169.254.169.254 (docs/protocols.md §6, MG `createIMDSAuthRequest`, GO-MIC probe). That address is not the sidecar; here the sandbox\'s egress filter answers it with 403 (the driver bounds retries so the cell fails in seconds). The webhook\'s IMDS redirect, not an environment variable, serves Go.',
  error: /169\.254\.169\.254/,
  neverReachesSidecar: true,
});

// --- Azure CLI without a login: every profile ---------------------------------------------------------------------
add(
  (['app-service', 'msi-endpoint', 'msi-secret', 'pod-identity', 'arc', 'default'] as const).map((p) => `az/get-access-token-no-login/${p}`),
  {
    why: '`az account get-access-token` takes its credential from the account `az login` stored in the profile; with no account it refuses instead of falling back to the managed identity (CLI-NEW `Profile.get_raw_token` -> `get_subscription`), and `az login --identity` needs ARM after its token request (docs/protocols.md §10). With the account that login would write, the command works (row above).',
    error: /az login/,
  },
);


/** Behaviour of the real SDKs that differs from the notes, or that the harness has to accommodate (rendered into docs/compatibility.md). */
export const FINDINGS: readonly string[] = [
  'Azure Arc with a user-assigned identity works in azure-identity for Python 1.27.0 and azure-identity for Java 1.19.0 (msal4j 1.26.0): both send the selector and check the echo. docs/protocols.md §2.5 / docs/clients.md §6 (azure-identity 1.23.1, MSAL4J of 2024-10) say they refuse it.',
  'msal-python 1.39 (and azure-identity 1.27\'s AzureMLCredential, which wraps it) sends a user-assigned object id or resource id on the Azure ML GET (`MSI_ENDPOINT`+`MSI_SECRET`) as `object_id` / `msi_res_id`, not only `clientid` (docs/protocols.md §2.7 says "only for a user-assigned client id"). The sidecar first ignored them and served the default identity (FAIL: wrong `appid`); it now accepts every IMDS selector spelling on that dialect (sidecar/protocol/msi-endpoint.ts).',
  'The Azure CLI from PyPI (2.91.0) is built on msal-python\'s ManagedIdentityClient, not msrestazure (docs/clients.md §9 describes Debian\'s 2.45): it reads `IDENTITY_ENDPOINT`/`IDENTITY_HEADER`, `AZURE_POD_IDENTITY_AUTHORITY_HOST` and Arc, and no longer `MSI_ENDPOINT`. `az login --identity` still lists subscriptions at ARM after its token request (unreachable here: the login cells check the token request and that the failure is the ARM step). `az account get-access-token` runs against the tenant-level managed-identity account that a successful `az login --identity --allow-no-subscriptions` writes, seeded into an isolated AZURE_CONFIG_DIR.',
  'azure-identity for Java\'s DefaultAzureCredential sends its IMDS availability probe (no `Metadata`, no resource; the sidecar answers 400) before every getToken, also when the token then comes from its cache (docs/protocols.md §5 describes a one-time probe). The cache check counts only requests answered with a token.',
  'msal-node selects its managed-identity source once per process (static `ManagedIdentityClient.identitySource`): a user-assigned ManagedIdentityApplication created after a system-assigned one in `MSI_ENDPOINT` mode reuses the Cloud Shell source and silently gets the system identity\'s token instead of refusing. @azure/identity\'s credentials share msal-node\'s token cache within a process. The matrix therefore runs every cell in its own process.',
  'Go (azidentity 1.15.0) and msal-python\'s IMDS fallback reach 169.254.169.254, which is not the sidecar; on this machine an egress filter answers it at once with a plain-text 403 (`resolve_deny`), so those cells fail in well under a second (the Go driver also bounds retries and per-try time).',
];

// ---------------------------------------------------------------------------------------------------
// The version axis (test/compat/versions.ts): older releases, found by running them. Keys `<client>@<version>/...`;
// an older release inherits nothing from the entries above.
// ---------------------------------------------------------------------------------------------------

const axis = (release: string, rows: readonly string[], profiles: readonly string[]): string[] =>
  rows.flatMap((r) => profiles.map((p) => `${release}/${r}/${p}`));
const AXIS_MI_ROWS = ['mi-system', 'mi-client-id', 'dac'] as const;
const AZ_ROWS = ['login', 'login-client-id', 'get-access-token'] as const;

add(['js-identity@2.1.0/*/app-service', 'js-identity@2.1.0/*/default', 'js-identity@2.1.0/*/msi-secret'], {
  why: '@azure/identity 2.x reads `expires_on` of App Service 2019 and of App Service 2017 (`MSI_ENDPOINT`+`MSI_SECRET`) with `Date.parse`, which gives NaN for the epoch-seconds string real App Service 2019 and Azure ML send: the token arrives, its `expiresOnTimestamp` is NaN (see "Client defects").',
  error: /no usable expiry/,
  defect: true,
});
add(axis('py-msal@1.29.0', ['mi-system', 'mi-client-id'], ['msi-endpoint', 'pod-identity']), {
  why: 'msal 1.29 has no `MSI_ENDPOINT` Cloud Shell source (as the newest) and does not read `AZURE_POD_IDENTITY_AUTHORITY_HOST` yet: both fall back to IMDS at the hard-coded 169.254.169.254 (here answered 403 by the egress filter, hence a JSON decoding error).',
  error: /JSONDecodeError|Expecting value|169\.254\.169\.254|ConnectionError|Max retries|timed out/,
  neverReachesSidecar: true,
});
for (const release of ['py-identity@1.10.0', 'py-identity@1.12.0', 'py-identity@1.15.0']) {
  add([`${release}/mi-client-id/arc`], {
    why: 'azure-identity for Python before msal took over Azure Arc refuses a user-assigned identity there before sending anything.',
    error: /User assigned managed identities are not supported by Azure Arc/,
  });
}
for (const release of ['java@1.5.5', 'java@1.8.0', 'java@1.12.0']) {
  add([`${release}/mi-client-id/arc`], {
    why: 'azure-identity for Java up to 1.12 refuses a user-assigned identity on Azure Arc before sending anything.',
    error: /User assigned identity is not supported by the Azure Arc/,
  });
}
for (const release of ['go@v1.1.0', 'go@v1.3.1', 'go@v1.5.2', 'go@v1.6.0']) {
  add(axis(release, AXIS_MI_ROWS, ['pod-identity']), {
    why: 'azidentity never reads `AZURE_POD_IDENTITY_AUTHORITY_HOST` (in any release): IMDS at 169.254.169.254, here answered 403 by the egress filter.',
    error: /169\.254\.169\.254/,
    neverReachesSidecar: true,
  });
  add([`${release}/mi-client-id/msi-endpoint`], {
    why: 'azidentity up to 1.6 on Cloud Shell (`MSI_ENDPOINT`) logs "Cloud Shell doesn\'t support user-assigned managed identities" and sends the request without the id (it adds it to a copy of the query that is never used), so it gets the default identity — as on real Cloud Shell (see "Client defects").',
    error: /appid "22222222-2222-4222-8222-222222222222", expected "44444444-4444-4444-8444-444444444444"/,
    defect: true,
  });
}
for (const release of ['go@v1.1.0', 'go@v1.3.1']) {
  add([`${release}/mi-client-id/msi-secret`], {
    why: 'azidentity 1.1 and 1.3 have no Azure ML source (1.5 has): `MSI_ENDPOINT`+`MSI_SECRET` is Cloud Shell to them, which drops the user-assigned id (row above).',
    error: /appid "22222222-2222-4222-8222-222222222222", expected "44444444-4444-4444-8444-444444444444"/,
    defect: true,
  });
}
for (const release of ['az@2.45.0 (Debian)', 'az@2.60.0']) {
  add(axis(release, AZ_ROWS, ['app-service', 'pod-identity', 'arc']), {
    why: 'The Azure CLI up to 2.60 (msrestazure `MSIAuthentication`) knows only `MSI_ENDPOINT`; without it, it calls IMDS at 169.254.169.254 and reports "Failed to connect to MSI".',
    error: /Failed to connect to MSI/,
    neverReachesSidecar: true,
  });
}
add(['js-msal@2.7.0/mi-client-id/msi-endpoint', 'js-msal@2.7.0/mi-client-id/msi-secret'], {
  why: 'msal-node 2.7 refuses a user-assigned identity on Cloud Shell; it has no Azure ML source yet, so `MSI_ENDPOINT`+`MSI_SECRET` is Cloud Shell to it too.',
  error: /unable_to_create_cloud_shell/,
});
add(['js-msal@2.7.0/mi-client-id/arc'], {
  why: 'msal-node 2.7 refuses a user-assigned identity on Azure Arc.',
  error: /unable_to_create_azure_arc/,
});
add(['js-msal@2.7.0/*/app-service', 'js-msal@2.7.0/*/msi-endpoint', 'js-msal@2.7.0/*/msi-secret', 'js-msal@2.7.0/*/pod-identity', 'js-msal@2.7.0/*/arc', 'js-msal@2.7.0/*/default'], {
  why: 'msal-node 2.7 stores the absolute `expires_on` (epoch seconds, as every Azure endpoint sends it) as a relative `expires_in` (`BaseManagedIdentitySource`: `expires_in: response.body.expires_on`): the token is cached as valid for about 56 more years and served after it has expired (see "Client defects").',
  error: /differs from the token's exp/,
  defect: true,
});
add(['py-msal@1.29.0/mi-client-id/arc'], {
  why: 'msal-python 1.29 accepts only the system-assigned identity on Azure Arc (the newest sends the selector).',
  error: /Azure Arc supports only system-assigned managed identity/,
});

export const EXPECTATIONS: ExpectationTable = new Map(entries);
