/**
 * Starts the real webhook program (`node webhook/main.ts`) for tests: every listener on 127.0.0.1 port 0, serving
 * certificate from PEM files, native sidecars forced (no API server needed). Resolves once the process logged its
 * `listening` line with the bound addresses; `stop()` sends SIGTERM and waits for the exit.
 *
 * Test support only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT, node24 } from '../helpers/sidecar.ts';
import { collectChildOutput } from '../helpers/collected-logs.ts';
import { loopbackWebhookListeners } from '../helpers/webhook-env.ts';

export interface RunningWebhook {
  /** `https://127.0.0.1:<port>` of the admission listener. */
  readonly webhookUrl: string;
  readonly healthUrl: string;
  readonly metricsUrl: string;
  readonly child: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

export interface StartWebhookOptions {
  readonly certFile: string;
  readonly keyFile: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly startTimeoutMs?: number;
}

interface Bound {
  readonly address: string;
  readonly port: number;
}

export function startWebhook(options: StartWebhookOptions): Promise<RunningWebhook> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => !k.startsWith('MI_ANYWHERE_') && v !== undefined)) as Record<string, string>;
  const env: Record<string, string> = {
    ...inherited,
    ...loopbackWebhookListeners({ port: 0, healthPort: 0, metricsPort: 0 }),
    MI_ANYWHERE_WEBHOOK_CERT_MODE: 'files',
    MI_ANYWHERE_WEBHOOK_TLS_CERT_FILE: options.certFile,
    MI_ANYWHERE_WEBHOOK_TLS_KEY_FILE: options.keyFile,
    MI_ANYWHERE_WEBHOOK_NATIVE_SIDECAR: 'always',
    MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'registry.example/mi-anywhere:test',
    ...options.env,
  };
  const child = spawn(node24(), [join(REPO_ROOT, 'webhook', 'main.ts')], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  collectChildOutput(child, 'webhook');
  const stop = async (): Promise<void> => {
    if (exited) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exit;
    clearTimeout(killer);
  };

  return new Promise<RunningWebhook>((resolve, reject) => {
    const timeoutMs = options.startTimeoutMs ?? 30_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`webhook did not start within ${timeoutMs} ms; output:\n${output}`));
    }, timeoutMs);
    const onExit = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`webhook exited (code ${code}) before listening; output:\n${output}`));
    };
    child.once('exit', onExit);
    let started = false;
    const onData = (chunk: string): void => {
      output += chunk;
      if (started) return;
      for (const line of output.split('\n')) {
        if (!line.startsWith('{')) continue;
        let parsed: { msg?: string; webhook?: Bound; health?: Bound; metrics?: Bound };
        try {
          parsed = JSON.parse(line) as typeof parsed;
        } catch {
          continue;
        }
        if (parsed.msg !== 'listening' || !parsed.webhook?.port || !parsed.health?.port || !parsed.metrics?.port) continue;
        started = true;
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve({
          webhookUrl: `https://127.0.0.1:${parsed.webhook.port}`,
          healthUrl: `http://127.0.0.1:${parsed.health.port}`,
          metricsUrl: `http://127.0.0.1:${parsed.metrics.port}`,
          child,
          logs: () => output,
          stop,
        });
        return;
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
  });
}
