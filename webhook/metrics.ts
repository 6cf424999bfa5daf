/**
 * Every metric of the webhook, created on a Registry passed in (never prom-client's global one), plus the
 * standard process/Node.js metrics. Served on the separate metrics port by http/server.ts. Labels are closed
 * enums: no pod name, namespace or message ever becomes a label.
 *
 * Instrumentation happens in the HTTP shell around the pure handler.
 */
import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client';
import { OUTCOMES, type Outcome } from './admission/handler.ts';

/** Event-loop lag sampling interval of the default Node.js metrics (ms). */
const EVENT_LOOP_MONITORING_PRECISION_MS = 1000;

/**
 * Admission latency buckets, 1 ms to 10 s: a mutation is sub-millisecond work plus TLS; the API server's
 * default webhook timeout is 10 s, so anything beyond is a failed call anyway.
 */
const DURATION_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Default prom-client metrics that break Prometheus naming rules; see the comment where they are removed. */
const LINT_FAILING_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

export interface WebhookMetricsOptions {
  readonly register: Registry;
  readonly version: string;
}

/** What the HTTP shell records; the only way metrics are touched. */
export interface WebhookMetrics {
  /** One answered AdmissionReview, with its outcome and its duration in seconds. */
  admission(outcome: Outcome, durationSeconds: number): void;
  /** notAfter of the serving certificate now in use, unix seconds. */
  certificateExpiry(notAfterSeconds: number): void;
}

export function createWebhookMetrics(options: WebhookMetricsOptions): WebhookMetrics {
  const { register } = options;
  // The event-loop lag monitor samples on a timer: prom-client's default 10 ms wakes an idle process 100 times a
  // second (about 3.5 ms of CPU per second per pod, docs/performance.md); one sample a second still shows a
  // blocked loop, at a tenth of the wake-ups.
  collectDefaultMetrics({ register, eventLoopMonitoringPrecision: EVENT_LOOP_MONITORING_PRECISION_MS });
  // prom-client exports three *gauges* named `_total` (nodejs_active_{handles,requests,resources}_total), which
  // `promtool check metrics` rejects ("non-counter metrics should not have _total suffix"). Each is only the sum
  // of its labelled twin (`sum(nodejs_active_handles)`), so nothing is lost by not exporting them.
  for (const name of LINT_FAILING_DEFAULT_METRICS) register.removeSingleMetric(name);

  const buildInfo = new Gauge({
    name: 'mi_anywhere_build_info',
    help: 'Build information of the webhook; always 1.',
    labelNames: ['version', 'program'] as const,
    registers: [register],
  });
  buildInfo.set({ version: options.version, program: 'webhook' }, 1);

  const requests = new Counter({
    name: 'mi_anywhere_webhook_admission_requests_total',
    help: 'AdmissionReview requests answered, by outcome (mutated: sidecar injected; skipped: allowed unchanged; denied: opted-in pod refused; error: unreadable request or internal error).',
    labelNames: ['outcome'] as const,
    registers: [register],
  });
  const duration = new Histogram({
    name: 'mi_anywhere_webhook_admission_duration_seconds',
    help: 'Time from the first byte of an AdmissionReview to the answer written, by outcome.',
    labelNames: ['outcome'] as const,
    buckets: DURATION_BUCKETS_SECONDS,
    registers: [register],
  });
  const certificateExpiry = new Gauge({
    name: 'mi_anywhere_webhook_certificate_expiry_timestamp_seconds',
    help: 'notAfter of the serving certificate currently in use, unix seconds.',
    registers: [register],
  });
  // Pre-create every series so that rate() and alerts see zeros instead of absent series.
  for (const outcome of OUTCOMES) {
    requests.inc({ outcome }, 0);
    duration.zero({ outcome });
  }

  return {
    admission(outcome: Outcome, durationSeconds: number): void {
      requests.inc({ outcome });
      duration.observe({ outcome }, durationSeconds);
    },
    certificateExpiry(notAfterSeconds: number): void {
      certificateExpiry.set(notAfterSeconds);
    },
  };
}
