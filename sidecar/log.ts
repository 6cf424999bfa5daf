/**
 * The sidecar's logger: the shared factory (common/log.ts) with the sidecar's name and redaction list. Everything
 * that logs receives this logger (or a child) as a parameter; nothing creates its own.
 *
 * Never log a token, even redacted: callers log a short hash if they need correlation. The redaction list is a
 * second line of defence for header secrets and credential fields that reach a log object by accident.
 */
import { createProgramLogger, type Logger, type LoggerOptions } from '../common/log.ts';

export type { Logger, LoggerOptions } from '../common/log.ts';

/** Paths censored in every log line. Fixed at start-up, never derived from input. */
export const REDACT_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers["x-identity-header"]',
  'req.headers.secret',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-identity-header"]',
  'headers.secret',
  'access_token',
  '*.access_token',
  'accessToken',
  '*.accessToken',
  '*.refresh_token',
  'client_secret',
  '*.client_secret',
  'clientSecret',
  '*.clientSecret',
  '*.client_assertion',
  '*.password',
  'identityHeader',
  '*.identityHeader',
  'material',
  '*.material',
  'config.credentials',
];

/** The `program` binding of every log line (the hand-written access line repeats it, http/access-log.ts). */
export const PROGRAM = 'mi-anywhere-sidecar';

export function createLogger(options: LoggerOptions): Logger {
  return createProgramLogger({ program: PROGRAM, redactPaths: REDACT_PATHS }, options);
}
