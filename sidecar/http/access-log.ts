/**
 * The per-request access line of the token listener, written by hand in exactly the format the pino logger writes
 * (`sidecar/log.ts`: `level` as a label, ISO `time`, the `program` binding, the fields, `msg`), straight into a
 * buffered pino destination. Why not `logger.info(...)`: the line has fixed keys and is written for every request;
 * pino's generic serialisation of it cost ~6 µs of the ~60 µs of CPU a cached token request took behind express
 * (docs/performance.md), building the string costs ~1 µs. test/unit/sidecar/http/access-log.test.ts holds the two
 * formats equal, line for line.
 *
 * Never the token, never a header secret: the resource only as its audience.
 */
import type { Dialect } from '../protocol/dialect.ts';

export interface AccessLine {
  readonly reqId: string;
  readonly dialect: Dialect;
  readonly identity: string;
  readonly audience: string | undefined;
  readonly status: number;
  readonly durationMs: number;
  readonly errorCode: string | undefined;
  /** The error message the caller saw (exposed errors only). */
  readonly error: string | undefined;
}

/** Message of the access line (`msg`). */
export const ACCESS_LINE_MESSAGE = 'token request';

/** The line as pino writes it for `logger.info(line, ACCESS_LINE_MESSAGE)`, newline included. */
export function formatAccessLine(line: AccessLine, isoTime: string, program: string): string {
  let out = `{"level":"info","time":"${isoTime}","program":${JSON.stringify(program)},"reqId":${JSON.stringify(line.reqId)}`;
  out += `,"dialect":"${line.dialect}","identity":${JSON.stringify(line.identity)}`;
  if (line.audience !== undefined) out += `,"audience":${JSON.stringify(line.audience)}`;
  out += `,"status":${line.status},"durationMs":${line.durationMs}`;
  if (line.errorCode !== undefined) out += `,"errorCode":${JSON.stringify(line.errorCode)}`;
  if (line.error !== undefined) out += `,"error":${JSON.stringify(line.error)}`;
  return `${out},"msg":"${ACCESS_LINE_MESSAGE}"}\n`;
}

export interface AccessLogOptions {
  /** Whether info lines are logged at the configured level. */
  readonly enabled: boolean;
  /** The `program` binding of the process's logger. */
  readonly program: string;
  /** A pino destination (sonic-boom): `write` buffers the string. */
  readonly destination: { write(text: string): unknown };
  readonly nowMs: () => number;
}

export type AccessLog = (line: AccessLine) => void;

export function createAccessLog(options: AccessLogOptions): AccessLog {
  if (!options.enabled) return () => undefined;
  // The ISO time changes once a millisecond and every request of that millisecond shares it: formatting it costs
  // ~0.5 µs, the comparison nothing (docs/performance.md).
  let lastMs = Number.NaN;
  let isoTime = '';
  return (line) => {
    const ms = options.nowMs();
    if (ms !== lastMs) {
      isoTime = new Date(ms).toISOString();
      lastMs = ms;
    }
    options.destination.write(formatAccessLine(line, isoTime, options.program));
  };
}
