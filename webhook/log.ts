/**
 * The webhook's logger factory: one pino logger with a fixed redaction list (HS-8), passed down to every
 * module that logs. Requests are logged once on completion with `uid`, `namespace`, `name`, `operation`,
 * `outcome`, `reason`; AdmissionReview bodies are never logged, and patches only as operation paths at debug
 * level, because the sidecar's env in a patch carries the per-pod identity header.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.ts';

export type { Logger } from 'pino';

/** Paths censored in every log line. Fixed at start-up, never derived from input. */
export const REDACT_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  '*.privateKey',
  'privateKey',
  '*.keyPem',
  'keyPem',
  '*["tls.key"]',
  '*["ca.key"]',
  '*.data',
  'identityHeader',
  '*.identityHeader',
  'secret',
  '*.secret',
  '*.token',
  '*.password',
];

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Where lines go: stdout in main, an in-memory stream in tests. */
  readonly destination: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { program: 'mi-anywhere-webhook' },
      redact: { paths: [...REDACT_PATHS], censor: '[REDACTED]' },
      // ISO time reads better in `kubectl logs` than epoch milliseconds and sorts the same.
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination,
  );
}
