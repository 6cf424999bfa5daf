/**
 * Serving certificate from mounted files (cert-manager, or any Secret the chart mounts), reloaded when the files
 * change. Kubelet updates a mounted Secret by swapping a symlink, so watching inotify events is unreliable;
 * like cert-manager (https://github.com/cert-manager/cert-manager/blob/master/pkg/server/tls/file_source.go) we
 * poll and compare contents. A pair that does not load (half-written,
 * key not matching) is ignored and the previous one stays in use, with a warning.
 */
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { Certificate } from '../http/server.ts';

export interface LoadedCertificate extends Certificate {
  /** notAfter of the leaf certificate, unix seconds (for the expiry metric). */
  readonly notAfterSeconds: number;
}

/** Validates a PEM pair (parsable, key matches) and reads the leaf's expiry. Throws with a readable reason. */
export function inspectCertificate(certificate: Certificate): LoadedCertificate {
  // createSecureContext checks that the key matches the certificate (OpenSSL's SSL_CTX_check_private_key).
  createSecureContext({ cert: certificate.cert, key: certificate.key });
  const leaf = new X509Certificate(certificate.cert);
  return { ...certificate, notAfterSeconds: Math.floor(Date.parse(leaf.validTo) / 1000) };
}

export interface FileWatcherOptions {
  readonly certFile: string;
  readonly keyFile: string;
  readonly intervalSeconds: number;
  readonly readFile: (path: string) => Promise<string>;
  /** Called with every new valid pair (including the first). */
  readonly onCertificate: (certificate: LoadedCertificate) => void;
  /** Called when the files exist but do not form a valid pair, or cannot be read. */
  readonly onError: (error: unknown) => void;
}

export interface FileWatcher {
  /** Reads once now; resolves true when a valid pair was loaded (first load or a change). */
  check(): Promise<boolean>;
  stop(): void;
}

export function watchCertificateFiles(options: FileWatcherOptions): FileWatcher {
  let last = '';
  let timer: NodeJS.Timeout | undefined;
  const check = async (): Promise<boolean> => {
    try {
      const [cert, key] = await Promise.all([options.readFile(options.certFile), options.readFile(options.keyFile)]);
      if (cert + key === last) return false;
      const loaded = inspectCertificate({ cert, key });
      last = cert + key;
      options.onCertificate(loaded);
      return true;
    } catch (error) {
      options.onError(error);
      return false;
    }
  };
  timer = setInterval(() => void check(), options.intervalSeconds * 1000);
  timer.unref();
  return {
    check,
    stop(): void {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    },
  };
}
