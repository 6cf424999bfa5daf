/**
 * `npm run audit:high` (CI, .ci/run): `npm audit` at high severity that tells "no advisory" from "could not ask".
 *
 * - The advisory endpoint answered and lists high or critical advisories -> exit 1, listing package, severity, title.
 * - It answered with none -> exit 0 ("npm audit: no high or critical advisories").
 * - It could not be asked (no network, a registry mirror or proxy without the advisory endpoint — this project's
 *   build machines answer `405 Method Not Allowed` for POST /-/npm/v1/security/advisories/bulk) -> exit 0 with a
 *   loud "NOT CHECKED" line, unless MI_ANYWHERE_AUDIT_REQUIRED=1 (then exit 3), for runners that must not skip it.
 * - Anything else (npm crashed, unreadable output) -> exit 2.
 *
 * The lockfile itself is checked by test/security/dependencies.test.ts (pinned versions with integrity).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export type AuditOutcome =
  | { readonly kind: 'clean'; readonly counts: Readonly<Record<string, number>> }
  | { readonly kind: 'findings'; readonly counts: Readonly<Record<string, number>>; readonly advisories: readonly string[] }
  | { readonly kind: 'unreachable'; readonly reason: string }
  | { readonly kind: 'error'; readonly reason: string };

const BLOCKING = ['high', 'critical'] as const;

interface AuditJson {
  metadata?: { vulnerabilities?: Record<string, number> };
  vulnerabilities?: Record<string, { severity?: string; via?: Array<string | { title?: string; url?: string; severity?: string }> }>;
  message?: string;
  statusCode?: number;
  error?: { code?: string; summary?: string; detail?: string };
}

/** Network-level or endpoint-level reasons npm gives when it could not get an answer from the advisory endpoint. */
const UNREACHABLE = /audit endpoint returned an error|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|CERT|self[- ]signed|Method Not Allowed|\b(403|404|405|407|429|5\d\d)\b/i;

/** Classifies one `npm audit --json` run. Pure. */
export function classifyAudit(run: { readonly exitCode: number | null; readonly stdout: string; readonly stderr: string }): AuditOutcome {
  let json: AuditJson | undefined;
  try {
    json = JSON.parse(run.stdout) as AuditJson;
  } catch {
    json = undefined;
  }
  const counts = json?.metadata?.vulnerabilities;
  if (counts !== undefined) {
    const blocking = BLOCKING.reduce((sum, s) => sum + (counts[s] ?? 0), 0);
    if (blocking === 0) return { kind: 'clean', counts };
    const advisories = Object.entries(json?.vulnerabilities ?? {})
      .filter(([, v]) => (BLOCKING as readonly string[]).includes(v.severity ?? ''))
      .map(([name, v]) => {
        const via = (v.via ?? []).map((x) => (typeof x === 'string' ? `via ${x}` : `${x.title ?? ''} ${x.url ?? ''}`.trim())).join('; ');
        return `${name} (${v.severity}): ${via}`;
      });
    return { kind: 'findings', counts, advisories };
  }
  const message = json?.message ?? '';
  const firstStderrLine = run.stderr.trim().split('\n')[0] ?? '';
  const reason = [message, json?.error?.code ?? '', message !== '' && firstStderrLine.includes(message) ? '' : firstStderrLine]
    .filter((s) => s !== '')
    .join(' — ');
  if (UNREACHABLE.test(`${reason}\n${run.stderr}`)) return { kind: 'unreachable', reason: reason || 'no answer from the advisory endpoint' };
  return { kind: 'error', reason: reason || `npm audit exited ${run.exitCode} without a report` };
}

/** Exit code and the lines to print for an outcome. Pure. */
export function report(outcome: AuditOutcome, required: boolean): { readonly exitCode: number; readonly lines: readonly string[] } {
  switch (outcome.kind) {
    case 'clean':
      return { exitCode: 0, lines: [`npm audit: no high or critical advisories (${JSON.stringify(outcome.counts)})`] };
    case 'findings':
      return { exitCode: 1, lines: [`npm audit: ${outcome.advisories.length} package(s) with high or critical advisories:`, ...outcome.advisories.map((a) => `  ${a}`)] };
    case 'unreachable':
      return {
        exitCode: required ? 3 : 0,
        lines: [
          `npm audit: NOT CHECKED — the advisory endpoint could not be reached (${outcome.reason}).`,
          required ? 'MI_ANYWHERE_AUDIT_REQUIRED=1: failing.' : 'Dependencies were not checked for advisories on this run; set MI_ANYWHERE_AUDIT_REQUIRED=1 where the endpoint must answer.',
        ],
      };
    case 'error':
      return { exitCode: 2, lines: [`npm audit: failed to run (${outcome.reason})`] };
  }
}

if (import.meta.main) {
  const root = join(import.meta.dirname, '..');
  // Under `npm run`, npm_execpath is npm's own CLI script; run it with this Node. Otherwise use npm from PATH.
  const execPath = process.env['npm_execpath'];
  const [command, prefix]: [string, string[]] = execPath !== undefined && execPath.endsWith('.js') ? [process.execPath, [execPath]] : ['npm', []];
  const run = spawnSync(command, [...prefix, 'audit', '--audit-level=high', '--json'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  const outcome = classifyAudit({ exitCode: run.status, stdout: run.stdout ?? '', stderr: `${run.stderr ?? ''}${run.error ? String(run.error) : ''}` });
  const { exitCode, lines } = report(outcome, process.env['MI_ANYWHERE_AUDIT_REQUIRED'] === '1');
  for (const line of lines) process.stdout.write(`${line}\n`);
  process.exit(exitCode);
}
