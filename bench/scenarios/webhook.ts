/**
 * Benchmark 4: the admission webhook. AdmissionReview round trips over HTTPS (keep-alive, as the API server
 * keeps its connections) for a typical pod — a Deployment's pod that opts in, from the webhook's own golden
 * fixtures — at 1, 10 and 50 connections. The webhook runs as in the chart: mounted certificate files (here
 * minted by the test PKI), log level info, metrics on, native sidecar form fixed so no API server is needed.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTestCertificateAuthority, issueServerCertificate } from '../../test/authority/pki.ts';
import { runLoad, type LoadResult } from '../lib/load.ts';
import { freePort, scratchDir, spawnServer } from '../lib/processes.ts';
import type { Programs } from '../lib/programs.ts';
import { median } from '../lib/stats.ts';
import { loopbackWebhookListeners } from '../../test/helpers/webhook-env.ts';

/** The "typical pod": created by a ReplicaSet (generateName), one app container, opted in with the label. */
export const TYPICAL_POD_FIXTURE = 'test/fixtures/admission/deployment-generate-name.review.json';

export interface WebhookCell {
  readonly connections: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly failures: number;
}

export interface WebhookResult {
  readonly fixture: string;
  readonly reviewBytes: number;
  readonly patched: boolean;
  readonly startupMs: number;
  readonly idleRssBytes: number;
  readonly cells: readonly WebhookCell[];
}

export interface WebhookOptions {
  readonly root: string;
  readonly programs: Programs;
  readonly nodeFlags: readonly string[];
  readonly quick: boolean;
  readonly log: (line: string) => void;
}

export async function runWebhook(options: WebhookOptions): Promise<WebhookResult> {
  const review = readFileSync(join(options.root, TYPICAL_POD_FIXTURE), 'utf8');
  const dir = scratchDir('webhook');
  const ca = await createTestCertificateAuthority('mi-anywhere bench webhook CA');
  const serving = await issueServerCertificate(ca, ['127.0.0.1', 'localhost']);
  writeFileSync(join(dir, 'tls.crt'), serving.certPem);
  writeFileSync(join(dir, 'tls.key'), serving.keyPem);
  const [port, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const server = await spawnServer({
    name: 'webhook',
    command: process.execPath,
    args: [...options.nodeFlags, options.programs.webhookMain],
    env: {
      ...loopbackWebhookListeners({ port, healthPort, metricsPort }),
      MI_ANYWHERE_WEBHOOK_CERT_MODE: 'files',
      MI_ANYWHERE_WEBHOOK_TLS_CERT_FILE: join(dir, 'tls.crt'),
      MI_ANYWHERE_WEBHOOK_TLS_KEY_FILE: join(dir, 'tls.key'),
      MI_ANYWHERE_WEBHOOK_NATIVE_SIDECAR: 'always',
      MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'registry.example/mi-anywhere:bench',
      MI_ANYWHERE_WEBHOOK_LOG_LEVEL: 'info',
    },
    readyUrl: `http://127.0.0.1:${healthPort}/readyz`,
    logFile: join(dir, 'webhook.log'),
    timeoutMs: 30_000,
  });
  try {
    const url = `https://127.0.0.1:${port}/mutate`;
    const headers = { 'content-type': 'application/json' };
    // One review through a verifying client first: the answer must be a patched review for this uid.
    const first = await import('node:https').then(
      ({ request }) =>
        new Promise<string>((resolve, reject) => {
          const req = request(url, { method: 'POST', headers, ca: ca.certPem }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (text += chunk));
            res.on('end', () => resolve(text));
          });
          req.on('error', reject);
          req.end(review);
        }),
    );
    const answer = JSON.parse(first) as { response?: { uid?: string; allowed?: boolean; patch?: string } };
    const uid = (JSON.parse(review) as { request: { uid: string } }).request.uid;
    if (answer.response?.uid !== uid || answer.response.allowed !== true) throw new Error(`unexpected admission answer: ${first.slice(0, 300)}`);
    const idleRssBytes = server.rssBytes();
    await runLoad({ url, headers, method: 'POST', body: review, connections: 10, durationSeconds: options.quick ? 0.3 : 2 });
    const cells: WebhookCell[] = [];
    for (const connections of [1, 10, 50]) {
      const rounds: LoadResult[] = [];
      for (let r = 0; r < (options.quick ? 1 : 3); r++) {
        rounds.push(await runLoad({ url, headers, method: 'POST', body: review, connections, durationSeconds: options.quick ? 0.8 : 3, settleMs: 300 }));
      }
      const cell = {
        connections,
        rps: median(rounds.map((r) => r.rps)),
        p50Ms: median(rounds.map((r) => r.p50Ms)),
        p99Ms: median(rounds.map((r) => r.p99Ms)),
        failures: rounds.reduce((sum, r) => sum + r.failures, 0),
      };
      cells.push(cell);
      options.log(`  webhook c=${connections}: ${cell.rps.toFixed(0)} reviews/s, p99 ${cell.p99Ms.toFixed(3)} ms`);
    }
    return { fixture: TYPICAL_POD_FIXTURE, reviewBytes: Buffer.byteLength(review), patched: typeof answer.response.patch === 'string', startupMs: server.readyMs, idleRssBytes, cells };
  } finally {
    await server.stop();
  }
}
