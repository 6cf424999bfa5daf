/**
 * Where the serving certificate comes from, as one shape for both modes: the first certificate (awaited before the
 * admission listener starts, so readiness never turns true without one) and every later change (a rotated Secret,
 * a renewal). Mounted files are polled by files.ts; self-managed certificates are reconciled by self-managed.ts,
 * which is loaded only in that mode because it pulls in the Kubernetes client (docs/performance.md).
 */
import { readFile } from 'node:fs/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import type { FilesCertConfig, SelfManagedCertConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { watchCertificateFiles, type LoadedCertificate } from './files.ts';

/** Retry delay while no certificate is available yet (files not mounted, API server unreachable). */
const CERT_RETRY_MS = 2_000;

/** The serving certificate: the first one and later changes. */
export interface CertificateSource {
  readonly first: LoadedCertificate;
  onChange(listener: (certificate: LoadedCertificate) => void): void;
  stop(): void;
}

export interface ChangeFeed {
  emit(certificate: LoadedCertificate): void;
  subscribe(listener: (certificate: LoadedCertificate) => void): void;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Fan-out for certificate changes that may arrive before the admission server subscribes: the newest one is
 * delivered on subscription, so a rotation during start-up is never lost.
 */
export function changeFeed(): ChangeFeed {
  let listener: ((certificate: LoadedCertificate) => void) | undefined;
  let pending: LoadedCertificate | undefined;
  return {
    emit(certificate) {
      if (listener === undefined) pending = certificate;
      else listener(certificate);
    },
    subscribe(l) {
      listener = l;
      if (pending !== undefined) l(pending);
      pending = undefined;
    },
  };
}

/** Mounted files (cert-manager or a chart Secret), polled; waits until a valid pair exists. */
export async function filesSource(cert: FilesCertConfig, logger: Logger): Promise<CertificateSource> {
  const feed = changeFeed();
  let first: LoadedCertificate | undefined;
  const watcher = watchCertificateFiles({
    certFile: cert.certFile,
    keyFile: cert.keyFile,
    intervalSeconds: cert.reloadIntervalSeconds,
    readFile: (path) => readFile(path, 'utf8'),
    onCertificate: (certificate) => {
      if (first === undefined) first = certificate;
      else feed.emit(certificate);
    },
    onError: (error) => logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'serving certificate files not usable yet; keeping the previous certificate'),
  });
  while (first === undefined) if (!(await watcher.check())) await sleep(CERT_RETRY_MS);
  return { first, onChange: (listener) => feed.subscribe(listener), stop: () => watcher.stop() };
}

/** The first reconcile, retried until it works (the API server may not be reachable yet). */
async function untilReconciled(reconcile: () => Promise<LoadedCertificate>, logger: Logger): Promise<LoadedCertificate> {
  for (;;) {
    try {
      return await reconcile();
    } catch (error) {
      logger.error({ err: error }, 'could not obtain self-managed certificates; retrying');
      await sleep(CERT_RETRY_MS);
    }
  }
}

/** Self-managed CA: reconciled until it works, then every checkIntervalSeconds (renewal, caBundle repair). */
export async function selfManagedSource(cert: SelfManagedCertConfig, kubeConfig: KubeConfig, logger: Logger): Promise<CertificateSource> {
  const { kubernetesCertificateStore, reconcileCertificates, wantedNames } = await import('./self-managed.ts');
  const store = kubernetesCertificateStore(kubeConfig, cert);
  const reconcile = (): Promise<LoadedCertificate> => reconcileCertificates({ store, names: wantedNames(cert), policy: cert, now: Date.now, logger });
  const first = await untilReconciled(reconcile, logger);
  const feed = changeFeed();
  let lastCert = first.cert;
  const timer = setInterval(() => {
    reconcile().then(
      (certificate) => {
        if (certificate.cert === lastCert) return;
        lastCert = certificate.cert;
        feed.emit(certificate);
      },
      (error: unknown) => logger.error({ err: error }, 'certificate reconcile failed; serving the current certificate'),
    );
  }, cert.checkIntervalSeconds * 1000);
  timer.unref();
  return { first, onChange: (listener) => feed.subscribe(listener), stop: () => clearInterval(timer) };
}

/** The source the configuration names; the Kubernetes client is loaded only for self-managed certificates. */
export async function openCertificateSource(cert: FilesCertConfig | SelfManagedCertConfig, kubeConfig: () => Promise<KubeConfig>, logger: Logger): Promise<CertificateSource> {
  return cert.mode === 'files' ? filesSource(cert, logger) : selfManagedSource(cert, await kubeConfig(), logger);
}
