/**
 * The sidecar's logger factory: one pino logger with a fixed redaction list (house style HS-8). Everything that
 * logs receives this logger (or a child) as a parameter; nothing creates its own.
 *
 * Never log a token, even redacted: callers log a short hash if they need correlation. The redaction list is a
 * second line of defence for header secrets and credential fields that reach a log object by accident.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.ts';

export type { Logger } from 'pino';

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

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Where lines go; main passes a synchronous stdout destination, tests an in-memory stream. */
  readonly destination: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { program: 'mi-anywhere-sidecar' },
      redact: { paths: [...REDACT_PATHS], censor: '[REDACTED]' },
      // ISO time reads better in `kubectl logs` than epoch milliseconds and sorts the same.
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination,
  );
}
