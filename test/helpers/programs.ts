/**
 * Starts the compiled programs the way the image does (`node dist/sidecar/main.js`, `node dist/webhook/main.js`)
 * from an installed application directory, optionally as the image's user (uid/gid 65532 via setpriv when the
 * test runs as root), and talks to them: a token from the sidecar, an AdmissionReview to the webhook.
 *
 * Test helper: processes and sockets on 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { ANNOTATIONS, INJECT_KEY, PATHS, WEBHOOK_PATHS } from '../../sidecar/contract.ts';
import { node24, startSidecar, type SpawnedSidecar } from './sidecar.ts';
import { ENTRY_FILES } from './build-context.ts';
import { collectChildOutput } from './collected-logs.ts';

/** The image's numeric user (Dockerfile `USER 65532:65532`). */
export const IMAGE_UID = 65532;

/** Effective uid of a running process (Linux /proc), to prove the programs ran as the image's user. */
export function processUid(pid: number | undefined): number {
  const status = readFileSync(`/proc/${String(pid)}/status`, 'utf8');
  return Number(/^Uid:\s+\d+\s+(\d+)/m.exec(status)?.[1]);
}

/** Prefix that drops root privileges to the image's user, or nothing when the test already runs unprivileged. */
export function asImageUser(): string[] {
  return process.getuid?.() === 0 ? ['setpriv', `--reuid=${IMAGE_UID}`, `--regid=${IMAGE_UID}`, '--clear-groups', '--'] : [];
}

/** The compiled sidecar in dev mode, started from `appDir` as the image would start it. */
export function startCompiledSidecar(appDir: string): Promise<SpawnedSidecar> {
  const [command = node24(), ...args] = [...asImageUser(), node24(), ENTRY_FILES.sidecar, '--dev'];
  return startSidecar({ command: [command, ...args], cwd: appDir, env: { HOME: '/nonexistent' } });
}

export interface TokenClaims {
  readonly aud?: string;
  readonly iss?: string;
  readonly [claim: string]: unknown;
}

/** An IMDS token request (`Metadata: true`), as every Azure SDK's IMDS source sends it; returns the JWT claims. */
export async function imdsToken(tokenUrl: string, resource: string): Promise<{ status: number; claims: TokenClaims; expiresIn: number }> {
  const url = `${tokenUrl}${PATHS.imds}?api-version=2018-02-01&resource=${encodeURIComponent(resource)}`;
  const response = await fetch(url, { headers: { Metadata: 'true' } });
  const body = (await response.json()) as { access_token?: string; expires_in?: string | number };
  const payload = body.access_token?.split('.')[1] ?? '';
  const claims = payload ? (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as TokenClaims) : {};
  return { status: response.status, claims, expiresIn: Number(body.expires_in) };
}

export interface RunningWebhook {
  readonly child: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

/** Starts `node dist/webhook/main.js` with `env`; resolves once `/readyz` answers 200. */
export async function startCompiledWebhook(options: { appDir: string; env: Record<string, string>; healthPort: number; command?: readonly string[] }): Promise<RunningWebhook> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MI_ANYWHERE_')));
  const [command, ...args] = (options.command ?? [...asImageUser(), node24(), ENTRY_FILES.webhook]) as [string, ...string[]];
  const child = spawn(command, args, { cwd: options.appDir, env: { ...inherited, HOME: '/nonexistent', ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  collectChildOutput(child, 'compiled-webhook');
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const webhook: RunningWebhook = {
    child,
    logs: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(killer);
      }
    },
  };
  // Readiness is a condition, not a clock: poll it, bounded by a generous deadline for a shared machine.
  const deadline = performance.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`webhook exited (${child.exitCode}) before ready:\n${output}`);
    const status = await fetch(`http://127.0.0.1:${options.healthPort}${WEBHOOK_PATHS.readiness}`).then((r) => r.status, () => 0);
    if (status === 200) return webhook;
    if (performance.now() > deadline) {
      await webhook.stop();
      throw new Error(`webhook not ready within 60 s (last /readyz: ${status}):\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A pod that opted in by annotation, referencing one identity Secret. */
export function optedInPod(identity: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'app', namespace: 'team-a', annotations: { [INJECT_KEY]: 'true', [ANNOTATIONS.identities]: identity } },
    spec: { containers: [{ name: 'app', image: 'registry.example.com/app:1' }] },
  };
}

export interface ReviewResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly patchType?: string;
  readonly patch?: string;
  readonly status?: { code?: number; message?: string };
}

/** POSTs an AdmissionReview for `pod` to the webhook over HTTPS (trusting `caPem`) and returns `response`. */
export function reviewPod(port: number, caPem: string, pod: Record<string, unknown>): Promise<ReviewResponse> {
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'team-a',
      operation: 'CREATE',
      object: pod,
    },
  };
  const body = JSON.stringify(review);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: WEBHOOK_PATHS.mutate, method: 'POST', ca: caPem, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          try {
            resolve((JSON.parse(text) as { response: ReviewResponse }).response);
          } catch (error) {
            reject(new Error(`HTTP ${res.statusCode}: ${text} (${String(error)})`));
          }
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
