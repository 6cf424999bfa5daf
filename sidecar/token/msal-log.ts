/**
 * The bridge from msal-node's logger callback to the sidecar's logger. msal formats its lines as
 * `[<date>] : [<correlation id>] : @azure/msal-node@<version> : <Level> - <message>`; the bridge keeps the message,
 * moves the correlation id into a field, and names msal's level `msalLevel` (pino owns `level`: a second `level`
 * key makes the JSON line ambiguous for log collectors).
 *
 * Messages that describe the expected course of a client-credentials acquisition are dropped: msal warns
 * "No client info in response" on every token answer, but `client_info` is only ever returned in flows with a
 * signed-in user (https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference#client_info), so
 * it would be a WARN line per upstream call that nobody can act on.
 *
 * Pure: no I/O.
 */

export interface MsalLogLine {
  readonly fields: { readonly source: 'msal'; readonly msalLevel: 'error' | 'warning'; readonly correlationId?: string };
  readonly message: string;
}

/** msal messages expected in every client-credentials acquisition (matched on the message after the prefix). */
const EXPECTED_MESSAGES: readonly RegExp[] = [/^No client info in response$/];

const PREFIX = /^\[[^\]]*\] : \[([^\]]*)\] : @azure\/msal-[a-z]+@[^ ]+ : (?:Error|Warning|Info|Verbose|Trace) - /;

/** The log line to write for an msal message, or undefined when it is expected noise. */
export function msalLogLine(level: 'error' | 'warning', raw: string): MsalLogLine | undefined {
  const prefix = PREFIX.exec(raw);
  const message = prefix ? raw.slice(prefix[0].length) : raw;
  if (level === 'warning' && EXPECTED_MESSAGES.some((pattern) => pattern.test(message))) return undefined;
  const correlationId = prefix?.[1];
  return {
    fields: correlationId ? { source: 'msal', msalLevel: level, correlationId } : { source: 'msal', msalLevel: level },
    message,
  };
}
