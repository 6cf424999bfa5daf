/**
 * Why the sidecar cannot start. The start-up steps throw it; main.ts catches it in one place, prints
 * `mi-anywhere sidecar: <message>` on stderr and exits with {@link StartupFailure.exitCode}: 2 when the operator's
 * configuration or identities are refused, 1 when the machine is in the way (a port already taken). Anything else
 * that ends start-up is unexpected (a bug) and printed by {@link unexpectedFailureText}, exit code 1.
 *
 * Not one of the typed errors of errors.ts: those become HTTP answers; this one only ever becomes an exit code.
 */
export class StartupFailure extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = 'StartupFailure';
    this.exitCode = exitCode;
  }
}

/** Log levels at which an unexpected start-up error also prints its stack. */
const STACK_LEVELS: ReadonlySet<string> = new Set(['debug', 'trace']);

/**
 * What is printed when start-up fails with anything but a {@link StartupFailure}: an error this code did not expect,
 * so a bug. One line like every other start-up failure; its stack only when the log level asks for detail
 * (`logLevel` is the raw `MI_ANYWHERE_LOG_LEVEL`: the configuration may be what failed), for a bug report.
 */
export function unexpectedFailureText(error: unknown, logLevel: string | undefined): string {
  const message = error instanceof Error ? error.message : String(error);
  const line = `mi-anywhere sidecar: unexpected error at start-up: ${message.split('\n')[0] ?? ''}`;
  if (STACK_LEVELS.has(logLevel ?? '') && error instanceof Error && error.stack !== undefined) return `${line}\n${error.stack}\n`;
  return `${line} (a bug: please report it; MI_ANYWHERE_LOG_LEVEL=debug also prints its stack)\n`;
}
