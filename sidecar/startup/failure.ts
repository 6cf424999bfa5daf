/**
 * Why the sidecar cannot start. The start-up steps throw it; main.ts catches it in one place, prints
 * `mi-anywhere sidecar: <message>` on stderr and exits with {@link StartupFailure.exitCode}: 2 when the operator's
 * configuration or identities are refused, 1 when the machine is in the way (a port already taken).
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
