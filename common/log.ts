/**
 * The one logger factory of both programs: pino with ISO timestamps, level names instead of numbers, the
 * program's name on every line and a fixed redaction list. Each program's log.ts names its program and its
 * redaction paths; everything that logs receives the logger (or a child) as a parameter, nothing creates its own.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './settings.ts';

export type { Logger } from 'pino';

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Where lines go; main passes a synchronous stdout destination, tests an in-memory stream. */
  readonly destination: DestinationStream;
}

export interface ProgramLogging {
  /** `program` field of every line. */
  readonly program: string;
  /** Paths censored in every line. Fixed at start-up, never derived from input. */
  readonly redactPaths: readonly string[];
}

export function createProgramLogger(program: ProgramLogging, options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { program: program.program },
      redact: { paths: [...program.redactPaths], censor: '[REDACTED]' },
      // ISO time reads better in `kubectl logs` than epoch milliseconds and sorts the same.
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination,
  );
}
