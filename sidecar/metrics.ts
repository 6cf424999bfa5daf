/**
 * Every metric of the sidecar, created on a Registry passed in (never prom-client's global one).
 * Names follow Prometheus conventions: `mi_anywhere_` prefix, base units, `_total` counters, histograms for
 * durations, small closed label sets. No token, secret, client id or raw resource URL ever becomes a label:
 * identities are labelled by their directory name and resources by a bounded "audience" (scheme + host).
 *
 * Instrumentation happens at the edge (HTTP middleware, the cache wrapper), not inside the pure core.
 */
import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client';
import { memoiseString } from './memoise.ts';
import { DIALECTS, type Dialect } from './protocol/dialect.ts';

/** Event-loop lag sampling interval of the default Node.js metrics (ms). */
const EVENT_LOOP_MONITORING_PRECISION_MS = 1000;

/** Upstream (Entra) outcome classes, from the AADSTS / OAuth error code of the answer. */
export const UPSTREAM_OUTCOMES = [
  'success',
  'invalid_client', // wrong secret, expired or unknown certificate (AADSTS7000215, AADSTS700027, ...)
  'invalid_grant', // federated assertion rejected, no matching federated credential (AADSTS70021, ...)
  'unauthorized_client', // application not found in tenant, disabled (AADSTS700016, ...)
  'invalid_request', // wrong tenant, bad scope (AADSTS90002, AADSTS70011, ...)
  'throttled', // 429
  'server_error', // 5xx
  'network_error', // connection refused/reset, TLS failure, timeout
  'other',
] as const;
export type UpstreamOutcome = (typeof UPSTREAM_OUTCOMES)[number];

export const CACHE_RESULTS = ['hit', 'miss'] as const;
/** Why a token cache entry was dropped (`mi_anywhere_token_cache_evictions_total`). */
export const EVICTION_REASONS = ['capacity', 'idle', 'rotation'] as const;
export type EvictionReason = (typeof EVICTION_REASONS)[number];
/** Why a request got an error without an upstream call (`mi_anywhere_upstream_suppressed_total`). */
export const SUPPRESSION_REASONS = ['backoff', 'saturated'] as const;
export type SuppressionReason = (typeof SUPPRESSION_REASONS)[number];

/**
 * Values of the `code` label of `mi_anywhere_token_requests_total`: {@link TOKEN_CODE_OK} when a token was
 * returned, {@link TOKEN_CODE_CHALLENGE} for the first leg of the Azure Arc flow (the 401 challenge is the protocol,
 * not a failure), otherwise the `SidecarError` code (`SIDECAR_ERR_*`, a closed catalogue, see docs/errors.md).
 * Dashboards and alerts count everything else than these two as a failure.
 */
export const TOKEN_CODE_OK = 'ok';
export const TOKEN_CODE_CHALLENGE = 'challenge';
/**
 * `identity` label of token requests refused before an identity was resolved (wrong secret header, unknown
 * selector, malformed request). Parentheses cannot occur in a Secret (directory) name, so it never collides;
 * the selector the app sent is never used as a label (caller-controlled cardinality).
 */
export const NO_IDENTITY = '(none)';
export type CacheResult = (typeof CACHE_RESULTS)[number];

/** Buckets from 100 µs (cache hits) to 10 s (slow upstream with retries). */
const LATENCY_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Most distinct audiences tracked as label values; the rest are counted as "other" (cardinality bound). */
export const MAX_AUDIENCE_LABELS = 50;

/** Default prom-client metrics that break Prometheus naming rules; see the comment where they are removed. */
const LINT_FAILING_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

/** A cached token as seen by the expiry gauge. */
export interface CachedTokenInfo {
  readonly identity: string;
  readonly resource: string;
  readonly expiresOnSeconds: number;
}

/** Upstream calls in flight and queued for a slot of the global concurrency bound. */
export interface UpstreamLoad {
  readonly inFlight: number;
  readonly queued: number;
}

export interface TokenRequestLabels {
  readonly dialect: Dialect;
  readonly identity: string;
  /** The resource as requested; only its bounded audience becomes a label. */
  readonly resource: string;
  readonly code: string;
}

/** What the sidecar records: one method per event, each keeping its labels bounded. */
export interface SidecarMetrics {
  /** Bounded audience label: the first {@link MAX_AUDIENCE_LABELS} distinct audiences, then "other". */
  audienceLabel(resource: string): string;
  /** Registers the callback that lists cached tokens (for the entries and expiry gauges). */
  observeCache(list: () => readonly CachedTokenInfo[]): void;
  tokenRequest(labels: TokenRequestLabels, durationSeconds: number): void;
  rateLimited(dialect: Dialect): void;
  upstreamRequest(identity: string, outcome: UpstreamOutcome, durationSeconds: number): void;
  /** Registers the callback that reports upstream calls in flight and queued (for the upstream gauges). */
  observeUpstream(load: () => UpstreamLoad): void;
  cacheEviction(reason: EvictionReason): void;
  upstreamSuppressed(reason: SuppressionReason): void;
  supersededTokenServed(identity: string): void;
  unusableToken(identity: string): void;
  cacheLookup(result: CacheResult): void;
  cacheRefresh(identity: string, result: 'success' | 'failure'): void;
  credentialExpiry(identity: string, kind: 'certificate' | 'client_secret', expiresAtSeconds: number | undefined): void;
  identityLoad(identity: string, result: 'success' | 'failure'): void;
  identities(count: number): void;
}

export interface SidecarMetricsOptions {
  readonly register: Registry;
  readonly version: string;
  /** Current time in unix seconds (injected so tests control it). */
  readonly nowSeconds: () => number;
}

/**
 * Reduces a resource to a bounded label value: `scheme://host` for URLs (`api://` app-id URIs keep their host
 * part), a GUID as itself; path, query, fragment and user-info are dropped. Memoised: apps ask for a handful of
 * resources over and over, and the memo spares a URL parse per request.
 */
export const audienceOf: (resource: string) => string = memoiseString(computeAudience, { maxEntries: 1024 });

function computeAudience(resource: string): string {
  const trimmed = resource.trim().replace(/\/\.default$/, '');
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(trimmed)) return trimmed.toLowerCase();
  try {
    const url = new URL(trimmed);
    if (url.host === '') return 'other';
    return `${url.protocol}//${url.host}`.toLowerCase();
  } catch {
    return 'other';
  }
}

export function createSidecarMetrics(options: SidecarMetricsOptions): SidecarMetrics {
  const { register } = options;
  registerProcessMetrics(register);
  new Gauge({
    name: 'mi_anywhere_build_info',
    help: 'Build information of the sidecar; always 1.',
    labelNames: ['version', 'program'] as const,
    registers: [register],
  }).set({ version: options.version, program: 'sidecar' }, 1);
  const audienceLabel = createAudienceLabeler();
  // Read at scrape time; the cache and the upstream limiter register their callbacks once they exist.
  const sources: ScrapeSources = { cachedTokens: () => [], upstreamLoad: () => ({ inFlight: 0, queued: 0 }) };
  const requests = createRequestMetrics(register, audienceLabel);
  const upstream = createUpstreamMetrics(register, sources);
  const cache = createCacheMetrics(register, sources, audienceLabel, options.nowSeconds);
  const identityMetrics = createIdentityMetrics(register);
  const identitySeries = createIdentitySeries({ upstream, cache, identities: identityMetrics });

  return {
    audienceLabel,
    observeCache(list) {
      sources.cachedTokens = list;
    },
    tokenRequest: requests.tokenRequest,
    rateLimited: requests.rateLimited,
    upstreamRequest(identity, outcome, durationSeconds) {
      identitySeries.precreate(identity);
      upstream.requests.inc({ identity, outcome });
      upstream.duration.observe({ identity, outcome }, durationSeconds);
    },
    observeUpstream(load) {
      sources.upstreamLoad = load;
    },
    cacheEviction: (reason) => cache.evictions.inc({ reason }),
    upstreamSuppressed: (reason) => upstream.suppressed.inc({ reason }),
    supersededTokenServed(identity) {
      identitySeries.precreate(identity);
      cache.supersededServed.inc({ identity });
    },
    unusableToken(identity) {
      identitySeries.precreate(identity);
      upstream.unusableTokens.inc({ identity });
    },
    cacheLookup: (result) => cache.lookups.inc({ result }),
    cacheRefresh(identity, result) {
      identitySeries.precreate(identity);
      cache.refreshes.inc({ identity, result });
    },
    credentialExpiry(identity, kind, expiresAtSeconds) {
      if (expiresAtSeconds === undefined) identityMetrics.credentialExpiry.remove({ identity, kind });
      else identityMetrics.credentialExpiry.set({ identity, kind }, expiresAtSeconds);
    },
    identityLoad(identity, result) {
      identitySeries.precreate(identity);
      identityMetrics.loads.inc({ identity, result });
      // A state, not only a counter: a Secret broken before the first scrape never shows as an increase().
      identityMetrics.loadFailing.set({ identity }, result === 'failure' ? 1 : 0);
    },
    identities: (count) => identityMetrics.loaded.set(count),
  };
}

/** Callbacks the gauges read at scrape time. */
interface ScrapeSources {
  cachedTokens: () => readonly CachedTokenInfo[];
  upstreamLoad: () => UpstreamLoad;
}

function registerProcessMetrics(register: Registry): void {
  // The event-loop lag monitor samples on a timer: prom-client's default 10 ms wakes an idle process 100 times a
  // second (about 3.5 ms of CPU per second per pod, docs/performance.md); one sample a second still shows a
  // blocked loop, at a tenth of the wake-ups.
  collectDefaultMetrics({ register, eventLoopMonitoringPrecision: EVENT_LOOP_MONITORING_PRECISION_MS });
  // prom-client exports three *gauges* named `_total` (nodejs_active_{handles,requests,resources}_total), which
  // `promtool check metrics` rejects ("non-counter metrics should not have _total suffix"). Each is only the sum
  // of its labelled twin (`sum(nodejs_active_handles)`), so nothing is lost by not exporting them.
  for (const name of LINT_FAILING_DEFAULT_METRICS) register.removeSingleMetric(name);
}

/** Bounded audience label: the first {@link MAX_AUDIENCE_LABELS} distinct audiences, then "other". */
function createAudienceLabeler(): (resource: string) => string {
  const seenAudiences = new Set<string>();
  return (resource) => {
    const audience = audienceOf(resource);
    if (seenAudiences.has(audience)) return audience;
    if (seenAudiences.size >= MAX_AUDIENCE_LABELS) return 'other';
    seenAudiences.add(audience);
    return audience;
  };
}

function createRequestMetrics(register: Registry, audienceLabel: (resource: string) => string) {
  const requests = new Counter({
    name: 'mi_anywhere_token_requests_total',
    help: 'Token requests answered, by dialect, identity (name), resource audience and outcome code (HTTP status or error code).',
    labelNames: ['dialect', 'identity', 'audience', 'code'] as const,
    registers: [register],
  });
  const duration = new Histogram({
    name: 'mi_anywhere_token_request_duration_seconds',
    help: 'Time to answer a token request, from the first byte read to the response written.',
    labelNames: ['dialect'] as const,
    buckets: LATENCY_BUCKETS_SECONDS,
    registers: [register],
  });
  const rateLimitedRequests = new Counter({
    name: 'mi_anywhere_token_requests_rate_limited_total',
    help: 'Token requests refused with 429 because the configured rate was exceeded.',
    labelNames: ['dialect'] as const,
    registers: [register],
  });
  for (const dialect of DIALECTS) rateLimitedRequests.inc({ dialect }, 0);
  const tokenRequest = (labels: TokenRequestLabels, durationSeconds: number): void => {
    requests.inc({ dialect: labels.dialect, identity: labels.identity, audience: audienceLabel(labels.resource), code: labels.code });
    duration.observe({ dialect: labels.dialect }, durationSeconds);
  };
  const rateLimited = (dialect: Dialect): void => rateLimitedRequests.inc({ dialect });
  return { tokenRequest, rateLimited };
}

function createUpstreamMetrics(register: Registry, sources: ScrapeSources) {
  const requests = new Counter({
    name: 'mi_anywhere_upstream_requests_total',
    help: 'Token requests sent to Entra ID (or the dev issuer), by identity and outcome class.',
    labelNames: ['identity', 'outcome'] as const,
    registers: [register],
  });
  const duration = new Histogram({
    name: 'mi_anywhere_upstream_request_duration_seconds',
    help: 'Latency of token requests to Entra ID, including retries inside the client library, by identity and outcome class.',
    labelNames: ['identity', 'outcome'] as const,
    buckets: LATENCY_BUCKETS_SECONDS,
    registers: [register],
  });
  const suppressed = new Counter({
    name: 'mi_anywhere_upstream_suppressed_total',
    help: 'Token requests answered with an error without calling Entra ID: backoff (a recent failure is remembered until its retry time) or saturated (the upstream call budget is exhausted).',
    labelNames: ['reason'] as const,
    registers: [register],
  });
  for (const reason of SUPPRESSION_REASONS) suppressed.inc({ reason }, 0);
  const unusableTokens = new Counter({
    name: 'mi_anywhere_upstream_unusable_tokens_total',
    help: 'Tokens from Entra ID refused because they were already expired or inside the refresh margin (clock skew), by identity.',
    labelNames: ['identity'] as const,
    registers: [register],
  });
  new Gauge({
    name: 'mi_anywhere_upstream_in_flight',
    help: 'Upstream token acquisitions in progress (bounded by the global concurrency limit).',
    registers: [register],
    collect() {
      this.set(sources.upstreamLoad().inFlight);
    },
  });
  new Gauge({
    name: 'mi_anywhere_upstream_queued',
    help: 'Upstream token acquisitions waiting for a free slot of the global concurrency limit.',
    registers: [register],
    collect() {
      this.set(sources.upstreamLoad().queued);
    },
  });
  return { requests, duration, suppressed, unusableTokens };
}

function createCacheMetrics(register: Registry, sources: ScrapeSources, audienceLabel: (resource: string) => string, nowSeconds: () => number) {
  const lookups = new Counter({
    name: 'mi_anywhere_token_cache_lookups_total',
    help: 'Token cache lookups by result (hit: served from cache; miss: had to wait for a token).',
    labelNames: ['result'] as const,
    registers: [register],
  });
  for (const result of CACHE_RESULTS) lookups.inc({ result }, 0);
  const refreshes = new Counter({
    name: 'mi_anywhere_token_cache_refreshes_total',
    help: 'Background refreshes of cached tokens ahead of expiry, by identity and result.',
    labelNames: ['identity', 'result'] as const,
    registers: [register],
  });
  const evictions = new Counter({
    name: 'mi_anywhere_token_cache_evictions_total',
    help: 'Cache entries dropped, by reason: capacity (LRU bound reached), idle (not requested for a day), rotation (credential changed).',
    labelNames: ['reason'] as const,
    registers: [register],
  });
  for (const reason of EVICTION_REASONS) evictions.inc({ reason }, 0);
  const supersededServed = new Counter({
    name: 'mi_anywhere_token_cache_superseded_served_total',
    help: 'Tokens obtained with a replaced credential served because the rotated-in credential fails, by identity.',
    labelNames: ['identity'] as const,
    registers: [register],
  });
  createCachedTokenGauges(register, sources, audienceLabel, nowSeconds);
  return { lookups, refreshes, evictions, supersededServed };
}

/** The cache's size and each cached token's time to expiry, computed at scrape time. */
function createCachedTokenGauges(register: Registry, sources: ScrapeSources, audienceLabel: (resource: string) => string, nowSeconds: () => number): void {
  new Gauge({
    name: 'mi_anywhere_token_cache_entries',
    help: 'Tokens currently held in the cache.',
    registers: [register],
    collect() {
      this.set(sources.cachedTokens().length);
    },
  });
  new Gauge({
    name: 'mi_anywhere_token_expiry_seconds',
    help: 'Seconds until each cached token expires, by identity and resource audience.',
    labelNames: ['identity', 'audience'] as const,
    registers: [register],
    collect() {
      this.reset();
      const now = nowSeconds();
      for (const token of sources.cachedTokens()) {
        this.set({ identity: token.identity, audience: audienceLabel(token.resource) }, token.expiresOnSeconds - now);
      }
    },
  });
}

function createIdentityMetrics(register: Registry) {
  const credentialExpiry = new Gauge({
    name: 'mi_anywhere_credential_expiry_timestamp_seconds',
    help: 'When an identity\'s credential expires (certificate notAfter, or client-secret expiry when known), unix seconds.',
    labelNames: ['identity', 'kind'] as const,
    registers: [register],
  });
  const loads = new Counter({
    name: 'mi_anywhere_identity_loads_total',
    help: 'Identity (re)loads from mounted Secrets, by identity and result.',
    labelNames: ['identity', 'result'] as const,
    registers: [register],
  });
  const loadFailing = new Gauge({
    name: 'mi_anywhere_identity_load_failing',
    help: 'Whether the most recent (re)load of an identity failed (1) or succeeded (0); after a failed reload the last good version keeps serving.',
    labelNames: ['identity'] as const,
    registers: [register],
  });
  const loaded = new Gauge({
    name: 'mi_anywhere_identities',
    help: 'Identities currently loaded and servable.',
    registers: [register],
  });
  return { credentialExpiry, loads, loadFailing, loaded };
}

/**
 * Creates an identity's failure counters at 0 the first time the identity is seen. Prometheus' `increase()`
 * and `rate()` need a sample before the first failure: a counter that appears directly at 1 shows no increase,
 * so the alerts on refresh, upstream and reload failures would miss the first incident after a restart.
 */
function createIdentitySeries(metrics: {
  upstream: ReturnType<typeof createUpstreamMetrics>;
  cache: ReturnType<typeof createCacheMetrics>;
  identities: ReturnType<typeof createIdentityMetrics>;
}): { precreate(identity: string): void } {
  const { upstream, cache, identities } = metrics;
  const known = new Set<string>();
  return {
    precreate(identity) {
      if (known.has(identity)) return;
      known.add(identity);
      for (const result of ['success', 'failure'] as const) {
        identities.loads.inc({ identity, result }, 0);
        cache.refreshes.inc({ identity, result }, 0);
      }
      cache.supersededServed.inc({ identity }, 0);
      upstream.unusableTokens.inc({ identity }, 0);
      for (const outcome of UPSTREAM_OUTCOMES) upstream.requests.inc({ identity, outcome }, 0);
    },
  };
}
