/**
 * URLs and host names derived from where the listeners are bound: the base URL apps are given, the Host names the
 * token listener answers for, and the address `--probe` calls.
 */
import type { Config } from '../config.ts';

/** Host part of a URL for a listening address (wildcards are reached through loopback on the same host). */
export function urlHost(address: string): string {
  if (address === '0.0.0.0') return '127.0.0.1';
  if (address === '::') return '[::1]';
  return address.includes(':') ? `[${address}]` : address;
}

/** Base URL apps use to reach the token listener: the configured one, else the address it is bound to. */
export function baseUrlFor(config: Config, token: { readonly address: string; readonly port: number }): string {
  return config.advertiseUrl ?? `http://${urlHost(token.address)}:${token.port}`;
}

/**
 * Host names the token listener answers for besides loopback names (DNS-rebinding defence, docs/security.md §4.2): the
 * configured ones, the advertised host, and a specific (non-wildcard) bind address.
 */
export function allowedHosts(config: Config, baseUrl: string, boundAddress: string): string[] {
  const hosts = [...config.allowedHosts, new URL(baseUrl).hostname.replace(/^\[|\]$/g, '')];
  if (boundAddress !== '0.0.0.0' && boundAddress !== '::') hosts.push(boundAddress);
  return hosts;
}
