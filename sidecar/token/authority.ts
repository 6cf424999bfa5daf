/**
 * Entra authority and scope rules: which URL msal-node talks to for an identity, what msal needs to be told so it
 * never contacts login.microsoftonline.com for a sovereign cloud or a test authority, and how a managed-identity
 * `resource` becomes a client-credentials scope.
 *
 * Pure: no I/O.
 */

/** Public-cloud authority host, the default of every Azure SDK (`AZURE_AUTHORITY_HOST` unset). */
export const PUBLIC_CLOUD_AUTHORITY_HOST = 'https://login.microsoftonline.com';

/**
 * Hosts msal-node already knows (its built-in instance-discovery metadata covers the public, US Government,
 * China and legacy German clouds), so it needs neither `knownAuthorities` nor a network instance-discovery call.
 * Any other host (a test authority, an ADFS-like proxy) must be declared in `knownAuthorities`, otherwise msal
 * asks https://login.microsoftonline.com/common/discovery/instance whether it is trusted.
 */
const MICROSOFT_AUTHORITY_HOSTS = new Set([
  'login.microsoftonline.com',
  'login.windows.net',
  'login.microsoft.com',
  'sts.windows.net',
  'login.microsoftonline.us',
  'login.usgovcloudapi.net',
  'login-us.microsoftonline.com',
  'login.chinacloudapi.cn',
  'login.partner.microsoftonline.cn',
  'login.microsoftonline.de',
]);

export interface AuthorityConfig {
  /** `https://<host>/<tenant>`: msal's `auth.authority`. */
  readonly authority: string;
  /** Empty for Microsoft clouds; `[<host[:port]>]` for anything else. */
  readonly knownAuthorities: readonly string[];
}

/**
 * Builds msal's authority settings for a tenant. The host must be https (msal-node and @azure/identity refuse
 * anything else for confidential clients, docs/protocols.md §2.8).
 */
export function authorityFor(authorityHost: string, tenantId: string): AuthorityConfig {
  const url = new URL(authorityHost);
  if (url.protocol !== 'https:') throw new Error(`authority host must be https: ${url.origin}`);
  const base = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  const knownAuthorities = MICROSOFT_AUTHORITY_HOSTS.has(url.hostname.toLowerCase()) ? [] : [url.host];
  return { authority: `${base}/${encodeURIComponent(tenantId)}`, knownAuthorities };
}

/**
 * Maps the managed-identity `resource` to the client-credentials scope: `<resource>/.default`, appended
 * verbatim. The SDKs go the other way by removing a trailing `/.default` only (docs/protocols.md §2, "Common to every
 * GET source"), so appending is the exact inverse: `https://management.azure.com/` becomes
 * `https://management.azure.com//.default` — the double slash is what Entra expects for v1 resources whose
 * identifier ends in a slash (az CLI sends exactly that scope). A resource that already ends in `/.default` is
 * passed through.
 */
export function resourceToScope(resource: string): string {
  return resource.endsWith('/.default') ? resource : `${resource}/.default`;
}
