/**
 * Where the sidecar's log lines go: two stdout destinations. Start-up, warning and error lines are written at once
 * (in order, never lost); the per-request access lines are buffered (one write per 8 KB instead of one per request:
 * the line is on every request's path), flushed every second and before the process exits. The buffer is written
 * synchronously: sonic-boom's asynchronous mode cost more CPU per line than a synchronous write per line (3.8 against
 * 2.6 µs), the buffered synchronous one 1.6 µs (docs/performance.md).
 */
import { pino, type DestinationStream } from 'pino';
import { createAccessLog, type AccessLog } from '../http/access-log.ts';
import { PROGRAM, type Logger } from '../log.ts';

/** How often buffered access lines are written even when less than the buffer's worth has accumulated. */
const ACCESS_LOG_FLUSH_MS = 1_000;
/**
 * Access lines are written in chunks of this size (about 30 lines; sonic-boom requires less than its 16 KB write
 * size); a hard kill loses at most this much.
 */
const ACCESS_LOG_BUFFER_BYTES = 8 * 1024;

export interface LogOutput {
  /** Every line but the access lines, written at once. */
  readonly main: DestinationStream;
  /** The access lines, buffered. */
  readonly access: DestinationStream;
}

/** Runs the program with both destinations open; the access buffer is flushed when it returns or throws. */
export async function withLogOutput(run: (output: LogOutput) => Promise<number>): Promise<number> {
  const main = pino.destination({ dest: 1, sync: true });
  // Lines go in as bytes: in its default string mode sonic-boom measures its whole pending buffer
  // (Buffer.byteLength, flattening the concatenated string) on every write, ~1 µs per line with 8 KB pending; in
  // buffer mode it adds up lengths (docs/performance.md).
  const bytes = pino.destination({ dest: 1, sync: true, minLength: ACCESS_LOG_BUFFER_BYTES, contentMode: 'buffer' });
  const access = { write: (line: string): boolean => bytes.write(Buffer.from(line) as unknown as string), flushSync: () => bytes.flushSync() };
  const flusher = setInterval(() => access.flushSync(), ACCESS_LOG_FLUSH_MS);
  flusher.unref();
  try {
    return await run({ main, access });
  } finally {
    clearInterval(flusher);
    access.flushSync();
  }
}

/** The access log on the buffered destination, in the logger's own line format (off below level info). */
export function accessLogFor(logger: Logger, access: DestinationStream, nowMs: () => number): AccessLog {
  return createAccessLog({ enabled: logger.isLevelEnabled('info'), program: PROGRAM, destination: access, nowMs });
}
