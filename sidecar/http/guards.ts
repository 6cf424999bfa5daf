/**
 * Checks the token listener applies to every request before a dialect parser sees it: who may be named in `Host`
 * (DNS rebinding), browser markers (`Origin`), proxy-hop headers, and the size of the header block. Plain functions
 * over the header map, so they are tested without a server; the `guards` middleware of `app.ts` calls them.
 *
 * Why a Host allow-list (docs/security.md §4.2, DNS rebinding): a web page opened on a developer's machine can make
 * its own name resolve to 127.0.0.1 and then read the sidecar's answers as same-origin responses. The browser still
 * sends the page's name in `Host`, so answering only for names that mean "this machine" (or names the operator
 * lists) defeats it. Browsers also send `Origin` on every cross-origin and every non-GET request; no SDK does.
 *
 * Pure.
 */
import { isIP } from 'node:net';
import { IMDS_ADDRESS } from '../contract.ts';
import type { Headers } from '../protocol/common.ts';

/**
 * Headers that say a request passed through a proxy or load balancer. Real IMDS refuses `X-Forwarded-For`
 * (docs/security.md §4.2, "Proxy headers, one rule"); every other spelling of the same fact is refused alike, so
 * relaying a server-side request forgery through a proxy that writes, say, `X-Real-IP` instead does not get through.
 */
export const PROXY_HEADERS: readonly string[] = [
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-server',
  'x-original-forwarded-for',
  'x-real-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
  'via',
];

/** The first proxy-hop header present (its canonical name), or undefined. */
export function proxyHeaderIn(headers: Headers): string | undefined {
  for (const name of PROXY_HEADERS) if (headers[name] !== undefined) return name;
  return undefined;
}

/** Headers only browsers send: a page's script reaching the token endpoint, never an SDK. */
export function browserHeaderIn(headers: Headers): string | undefined {
  if (headers['origin'] !== undefined) return 'origin';
  if (headers['sec-fetch-site'] !== undefined) return 'sec-fetch-site';
  return undefined;
}

/** Bytes of the header block as the client sent it (name, ": ", value, CRLF per line). */
export function headerBytes(rawHeaders: readonly string[]): number {
  let total = 0;
  for (const part of rawHeaders) total += Buffer.byteLength(part) + 2;
  return total;
}

/** The host name of a `Host` header value, lower-case, without port or IPv6 brackets; undefined if malformed. */
export function hostName(value: string): string | undefined {
  const text = value.trim().toLowerCase();
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end === -1) return undefined;
    const rest = text.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined;
    return text.slice(1, end);
  }
  const colon = text.indexOf(':');
  const name = colon === -1 ? text : text.slice(0, colon);
  if (colon !== -1 && !/^\d{1,5}$/.test(text.slice(colon + 1))) return undefined;
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/** Names and addresses that always mean "this machine": a rebinding page cannot own them. */
export function isLoopbackName(name: string): boolean {
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (name === '::1' || name === '::ffff:127.0.0.1') return true;
  return isIP(name) === 4 && name.startsWith('127.');
}

export interface HostPolicy {
  /**
   * Whether `host` (the raw `Host` header, undefined when absent) may be answered.
   * @param absoluteForm the request target named `http://169.254.169.254/...` (a client using HTTP_PROXY)
   */
  allows(host: string | undefined, absoluteForm: boolean): boolean;
}

export interface HostPolicyOptions {
  /** Extra names (compose service names, the advertised host, a specific bind address), any case. */
  readonly names: readonly string[];
  /**
   * Whether a request without `Host` is answered. Yes on loopback (HTTP/1.0 clients omit it, and a browser never
   * does); no on a listener reachable from other machines, where the caller must name a host it knows.
   */
  readonly allowMissing: boolean;
}

export function createHostPolicy(options: HostPolicyOptions): HostPolicy {
  const names = new Set(options.names.map((n) => hostName(n) ?? n.toLowerCase()));
  return {
    allows(host, absoluteForm) {
      if (host === undefined || host.trim() === '') return options.allowMissing;
      const name = hostName(host);
      if (name === undefined) return false;
      if (isLoopbackName(name) || names.has(name)) return true;
      // 169.254.169.254 is only meaningful in proxy form: the client asked "its proxy" (us) for the IMDS URL.
      return absoluteForm && name === IMDS_ADDRESS;
    },
  };
}
