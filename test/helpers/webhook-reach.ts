/**
 * Pieces for measuring and testing the webhook's reach on a real API server (test/e2e/webhook-reach.test.ts and
 * bench/scenarios/webhook-reach.ts): the MutatingWebhookConfiguration exactly as the chart renders it (pointed at
 * a loopback URL with `webhook.urlOverride`), a "black-holed" webhook (a TCP listener that accepts connections
 * and never answers: what a NetworkPolicy drop or a dead node looks like to the API server, unlike a refused
 * connection, which fails at once), and a recording webhook that answers "allowed" and remembers which pods it
 * was asked about.
 *
 * Test helper: child processes (helm), sockets on 127.0.0.1.
 */
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Socket } from 'node:net';
import { createTestCertificateAuthority, issueServerCertificate } from '../authority/pki.ts';
import { findManifest, renderChart } from './helm.ts';

export type Json = any;

/** The namespace label the chart's default `webhook.annotationNamespaceSelector` asks for. */
export const INJECTION_NAMESPACE_LABEL = { 'mi-anywhere.io/injection': 'enabled' } as const;

export interface ChartRegistrationOptions {
  /** `https://127.0.0.1:<port>/mutate` */
  readonly url: string;
  /** PEM of the CA that signed the webhook's serving certificate. */
  readonly caPem: string;
  /** false renders `webhook.annotationNamespaceSelector=null`: annotation-only opt-in honoured in every namespace. */
  readonly scoped: boolean;
  /** The release namespace (excluded by the chart like kube-system). */
  readonly releaseNamespace: string;
  /** metadata.name of the object (default: what the chart names it). */
  readonly name?: string;
}

/** `helm template` of the chart, reduced to its MutatingWebhookConfiguration, ready to POST. */
export function chartWebhookConfiguration(options: ChartRegistrationOptions): Json {
  const manifests = renderChart({
    namespace: options.releaseNamespace,
    set: {
      'webhook.urlOverride': options.url,
      'webhook.caBundle': Buffer.from(options.caPem).toString('base64'),
      ...(options.scoped ? {} : { 'webhook.annotationNamespaceSelector': 'null' }),
    },
  });
  const mwc = structuredClone(findManifest(manifests, 'MutatingWebhookConfiguration')) as Json;
  if (options.name !== undefined) mwc.metadata.name = options.name;
  return mwc;
}

export interface ServingCertificate {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

/** A throw-away CA and a serving certificate for 127.0.0.1. */
export async function loopbackServingCertificate(): Promise<ServingCertificate> {
  const ca = await createTestCertificateAuthority('mi-anywhere reach CA');
  const serving = await issueServerCertificate(ca, ['127.0.0.1', 'localhost']);
  return { caPem: ca.certPem, certPem: serving.certPem, keyPem: serving.keyPem };
}

export interface BlackHole {
  readonly port: number;
  /** Connections accepted so far (each one is an API server call that will time out). */
  connections(): number;
  /** Resolves once more than `count` connections were accepted. */
  waitForConnectionsAbove(count: number): Promise<void>;
  stop(): Promise<void>;
}

/** Accepts TCP connections on 127.0.0.1 and never reads or writes: the TLS handshake never completes. */
export async function startBlackHole(): Promise<BlackHole> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const waiters: Array<{ above: number; resolve: () => void }> = [];
  const server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => sockets.delete(socket));
    for (const waiter of waiters.filter((w) => accepted > w.above)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    connections: () => accepted,
    waitForConnectionsAbove: (count) => (accepted > count ? Promise.resolve() : new Promise((resolve) => waiters.push({ above: count, resolve }))),
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface RecordingWebhook {
  readonly url: string;
  readonly caPem: string;
  /** `namespace/name` of every pod the API server asked about, in order (reinvocations included). */
  readonly seen: string[];
  stop(): Promise<void>;
}

/** An HTTPS admission webhook that allows everything unchanged and records which pods it was asked about. */
export async function startRecordingWebhook(): Promise<RecordingWebhook> {
  const pki = await loopbackServingCertificate();
  const seen: string[] = [];
  const server = createHttpsServer({ cert: pki.certPem, key: pki.keyPem }, (req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const request = (JSON.parse(body) as { request: Json }).request;
      seen.push(`${request.namespace}/${request.object?.metadata?.name ?? request.name ?? ''}`);
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: request.uid, allowed: true } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://127.0.0.1:${port}/mutate`,
    caPem: pki.caPem,
    seen,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
