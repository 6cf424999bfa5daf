/**
 * msal-node's network seam (`system.networkClient`): an HTTPS client on node:https with an injectable agent / CA
 * (tests trust their own authority without touching process-wide TLS settings), and an observing wrapper that
 * records, per acquisition, the HTTP failure or transport error Entra produced. msal-node swallows discovery
 * failures into a generic `endpoints_resolution_error` and turns 429/5xx into a process-wide throttling entry;
 * the observation lets `entra-errors.ts` report the real AADSTS code, status and `Retry-After` instead.
 *
 * The only module of the sidecar that opens connections to Entra ID.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { request, type Agent } from 'node:https';
import { AuthError, type INetworkModule, type NetworkRequestOptions, type NetworkResponse } from '@azure/msal-node';
import type { EntraErrorBody, UpstreamObservation } from './entra-errors.ts';

/**
 * Default per-request deadline, for the whole exchange (connect, TLS, request, the complete response body): Entra
 * answers in well under a second; 10 s leaves room for a slow TLS handshake. A socket idle timeout alone would let a
 * response that drips one byte a second hold the call for minutes. The token cache adds one deadline over the whole
 * acquisition (`upstreamDeadlineMs`) and aborts the request through the acquisition's signal.
 */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 10_000;
/** Entra's answers are a few KiB; anything much larger is not Entra. */
const MAX_RESPONSE_BYTES = 1024 * 1024;

export interface HttpsNetworkClientOptions {
  /** Connection pool; default: a keep-alive agent so refreshes reuse the TLS session. */
  readonly agent?: Agent | undefined;
  /** Extra trust anchors (PEM). Replaces the default CA list for this client only; for tests. */
  readonly ca?: string | undefined;
  readonly timeoutMs?: number | undefined;
}

/** A transport-level failure, raised as an msal AuthError so msal rethrows it unchanged. */
export class UpstreamTransportError extends AuthError {
  readonly transportCode: string;
  constructor(transportCode: string) {
    super('network_error', '', `transport failure talking to Entra ID: ${transportCode}`);
    // msal's AuthError constructor pins the prototype to AuthError; restore ours so `instanceof` works.
    Object.setPrototypeOf(this, new.target.prototype);
    this.name = 'UpstreamTransportError';
    this.transportCode = transportCode;
  }
}

/** A non-2xx token-endpoint answer that carries no OAuth error body (HTML from a proxy, an empty 503). */
export class UpstreamHttpError extends AuthError {
  readonly status: number;
  constructor(status: number) {
    super('http_error', '', `Entra ID answered HTTP ${status}`);
    Object.setPrototypeOf(this, new.target.prototype);
    this.name = 'UpstreamHttpError';
    this.status = status;
  }
}

function transportCodeOf(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') return error.code;
  return error instanceof Error ? error.name : 'UNKNOWN';
}

/** Creates the production network client (node:https, keep-alive, timeout). */
export function createHttpsNetworkClient(options: HttpsNetworkClientOptions = {}): INetworkModule {
  const timeoutMs = options.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
  const send = <T>(url: string, method: 'GET' | 'POST', requestOptions: NetworkRequestOptions | undefined, timeout?: number): Promise<NetworkResponse<T>> =>
    new Promise<NetworkResponse<T>>((resolve, reject) => {
      const headers: Record<string, string> = { ...(requestOptions?.headers ?? {}) };
      const body = method === 'POST' ? (requestOptions?.body ?? '') : undefined;
      if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
      const limitMs = Math.min(timeout ?? timeoutMs, timeoutMs);
      // The acquisition's signal (set by the token cache's deadline) ends the request wherever it is.
      const signal = observations.getStore()?.signal;
      const req = request(url, { method, headers, agent: options.agent, ca: options.ca, timeout: limitMs, signal }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) req.destroy(Object.assign(new Error('response too large'), { code: 'ERESPONSETOOLARGE' }));
          else chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => {
          clearTimeout(deadline);
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : {};
          } catch {
            parsed = {};
          }
          const responseHeaders: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers)) {
            if (value !== undefined) responseHeaders[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
          }
          resolve({ status: res.statusCode ?? 0, headers: responseHeaders, body: parsed as T });
        });
      });
      const timedOut = (): void => {
        req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' }));
      };
      // Overall deadline, body included (the socket `timeout` above only catches silence).
      const deadline = setTimeout(timedOut, limitMs);
      req.on('timeout', timedOut);
      req.on('error', reject);
      req.on('close', () => clearTimeout(deadline));
      req.end(body);
    });
  return {
    sendGetRequestAsync: <T>(url: string, requestOptions?: NetworkRequestOptions, timeout?: number) => send<T>(url, 'GET', requestOptions, timeout),
    sendPostRequestAsync: <T>(url: string, requestOptions?: NetworkRequestOptions) => send<T>(url, 'POST', requestOptions),
  };
}

/** Per-acquisition observation slot; `EntraTokenSource` runs each msal call inside `observations.run(...)`. */
export const observations = new AsyncLocalStorage<UpstreamObservation>();

/** `Retry-After` as delta-seconds or HTTP-date (RFC 9110 §10.2.3); undefined when absent or unparsable. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - nowMs) / 1000));
}

function errorBodyOf(body: unknown): EntraErrorBody | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const b = body as Record<string, unknown>;
  if (typeof b.error !== 'string') return undefined;
  const codes = Array.isArray(b.error_codes) ? b.error_codes.filter((c): c is number => typeof c === 'number') : undefined;
  return { error: b.error, errorCodes: codes, description: typeof b.error_description === 'string' ? b.error_description : undefined };
}

/** Runs one network call; a transport failure is recorded in the observation and raised as an error msal rethrows. */
async function callRecordingTransportFailure<T>(call: () => Promise<NetworkResponse<T>>, slot: UpstreamObservation | undefined): Promise<NetworkResponse<T>> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof AuthError) throw error;
    const code = transportCodeOf(error);
    if (slot) slot.transport = { code };
    throw new UpstreamTransportError(code);
  }
}

/** Records a non-2xx answer (status, Retry-After, OAuth error body) in the observation; returns its error body. */
function recordHttpFailure(response: NetworkResponse<unknown>, slot: UpstreamObservation | undefined, nowMs: number): EntraErrorBody | undefined {
  const body = errorBodyOf(response.body);
  const retryAfterSeconds = parseRetryAfter(response.headers['retry-after'], nowMs);
  if (slot) slot.http = { status: response.status, retryAfterSeconds, body };
  return body;
}

/**
 * Wraps a network client so that every failure is recorded in the current acquisition's observation, and so
 * that a 429/5xx or body-less error from the token endpoint becomes an error msal rethrows as is (this also keeps
 * msal's own throttling cache out of the picture: the sidecar's cache owns backoff).
 */
export function observingNetworkClient(inner: INetworkModule, nowMs: () => number): INetworkModule {
  const observe = async <T>(call: () => Promise<NetworkResponse<T>>, isPost: boolean): Promise<NetworkResponse<T>> => {
    const slot = observations.getStore();
    const response = await callRecordingTransportFailure(call, slot);
    if (response.status >= 200 && response.status < 300) return response;
    const body = recordHttpFailure(response, slot, nowMs());
    if (isPost && (response.status === 429 || response.status >= 500 || body === undefined)) throw new UpstreamHttpError(response.status);
    return response;
  };
  return {
    sendGetRequestAsync: <T>(url: string, options?: NetworkRequestOptions, timeout?: number) => observe(() => inner.sendGetRequestAsync<T>(url, options, timeout), false),
    sendPostRequestAsync: <T>(url: string, options?: NetworkRequestOptions) => observe(() => inner.sendPostRequestAsync<T>(url, options), true),
  };
}
