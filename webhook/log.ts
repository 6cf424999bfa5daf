/**
 * The webhook's logger: the shared factory (common/log.ts) with the webhook's name and redaction list, passed
 * down to every module that logs. Requests are logged once on completion with `uid`, `namespace`, `name`, `operation`,
 * `outcome`, `reason`; AdmissionReview bodies are never logged, and patches only as operation paths at debug
 * level, because the sidecar's env in a patch carries the per-pod identity header.
 */
import { createProgramLogger, type Logger, type LoggerOptions } from '../common/log.ts';

export type { Logger, LoggerOptions } from '../common/log.ts';

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

export function createLogger(options: LoggerOptions): Logger {
  return createProgramLogger({ program: 'mi-anywhere-webhook', redactPaths: REDACT_PATHS }, options);
}
