/**
 * Self-managed certificates, the Kubernetes half: keep a CA + serving certificate in a Secret of the webhook's
 * namespace, keep the caBundle of our MutatingWebhookConfiguration equal to that CA bundle, and renew before
 * expiry. Safe with several replicas: writes use optimistic concurrency (create → 409, replace and patch with
 * the resourceVersion → 409/422), and the loser re-reads and adopts the winner's certificates.
 *
 * Order matters during rotation: Secret first, then caBundle, and only then does this replica serve the new
 * certificate — an API server never meets a certificate it was not yet told to trust.
 *
 * I/O goes through {@link CertificateStore}, so the reconcile logic runs against an in-memory store in unit tests
 * and against a real kube-apiserver in the e2e test.
 */
import { Buffer } from 'node:buffer';
import {
  AdmissionregistrationV1Api,
  ApiException,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Secret,
} from '@kubernetes/client-node';
import type { SelfManagedCertConfig } from '../config.ts';
import { CertificateError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { inspectCertificate, type LoadedCertificate } from './files.ts';
import { SECRET_KEYS, planRotation, renewCertificates, serviceDnsNames, type StoredCertificates, type WantedNames } from './authority.ts';

/** A stored Secret with its resourceVersion (for optimistic concurrency). */
export interface VersionedCertificates {
  readonly certificates: StoredCertificates | undefined;
  readonly resourceVersion: string;
}

/** What the reconcile loop needs from Kubernetes. */
export interface CertificateStore {
  /** undefined: the Secret does not exist. `certificates` undefined: it exists but lacks keys. */
  read(): Promise<VersionedCertificates | undefined>;
  /** Creates the Secret; resolves false on a conflict (another replica created it first). */
  create(certificates: StoredCertificates): Promise<boolean>;
  /** Replaces the Secret at `resourceVersion`; resolves false on a conflict. */
  replace(certificates: StoredCertificates, resourceVersion: string): Promise<boolean>;
  /** Sets every webhook entry's clientConfig.caBundle to `caBundle` if any differs; resolves true when patched. */
  ensureCaBundle(caBundle: string): Promise<boolean>;
}

export interface ReconcileOptions {
  readonly store: CertificateStore;
  readonly names: WantedNames;
  readonly policy: SelfManagedCertConfig;
  readonly now: () => number;
  readonly logger: Logger;
}

/** Names the serving certificate must carry for this configuration. */
export function wantedNames(config: SelfManagedCertConfig): WantedNames {
  return { dnsNames: serviceDnsNames(config.serviceName, config.namespace, config.extraDnsNames), ipAddresses: [...config.ipAddresses] };
}

/**
 * One reconcile pass: returns the serving certificate this replica should use now. Retries a lost race a few
 * times (each retry re-reads and adopts what the winner stored).
 */
export async function reconcileCertificates(options: ReconcileOptions): Promise<LoadedCertificate> {
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const current = await options.store.read();
    const plan = planRotation(current?.certificates, options.names, options.policy, options.now());
    let certificates = current?.certificates;
    if (plan.action !== 'keep') {
      certificates = await renewCertificates(plan, { stored: current?.certificates, names: options.names, policy: options.policy, now: options.now() });
      const written = current === undefined ? await options.store.create(certificates) : await options.store.replace(certificates, current.resourceVersion);
      if (!written) {
        options.logger.info({ attempt }, 'another replica updated the webhook certificate Secret first; re-reading');
        continue;
      }
      options.logger.info({ action: plan.action, reason: plan.reason }, 'webhook certificates renewed');
    }
    if (certificates === undefined) throw new CertificateError('no certificates after reconcile');
    if (await options.store.ensureCaBundle(certificates.caBundle)) options.logger.info('caBundle of the MutatingWebhookConfiguration updated');
    return inspectCertificate({ cert: certificates.cert, key: certificates.key });
  }
  throw new CertificateError('gave up after 5 conflicting updates of the certificate Secret');
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64');
}

function isStatus(error: unknown, ...codes: number[]): boolean {
  return error instanceof ApiException && codes.includes(error.code);
}

function secretBody(config: SelfManagedCertConfig, certificates: StoredCertificates, resourceVersion?: string): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: config.secretName,
      namespace: config.namespace,
      labels: { 'app.kubernetes.io/managed-by': 'mi-anywhere-webhook' },
      ...(resourceVersion !== undefined ? { resourceVersion } : {}),
    },
    type: 'kubernetes.io/tls',
    data: {
      [SECRET_KEYS.caBundle]: b64(certificates.caBundle),
      [SECRET_KEYS.caKey]: b64(certificates.caKey),
      [SECRET_KEYS.cert]: b64(certificates.cert),
      [SECRET_KEYS.key]: b64(certificates.key),
    },
  };
}

/** {@link CertificateStore} backed by the Kubernetes API (needs get/create/update on the one Secret, get/patch on the one MWC). */
export function kubernetesCertificateStore(kubeConfig: KubeConfig, config: SelfManagedCertConfig): CertificateStore {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const admission = kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  const wrap = (what: string, error: unknown): CertificateError =>
    new CertificateError(`${what}: ${error instanceof ApiException ? `HTTP ${error.code}` : error instanceof Error ? error.message : String(error)}`, { cause: error });
  return {
    async read() {
      let secret: V1Secret;
      try {
        secret = await core.readNamespacedSecret({ name: config.secretName, namespace: config.namespace });
      } catch (error) {
        if (isStatus(error, 404)) return undefined;
        throw wrap(`reading Secret ${config.namespace}/${config.secretName}`, error);
      }
      const data = secret.data ?? {};
      const get = (key: string): string | undefined => (data[key] === undefined ? undefined : Buffer.from(data[key], 'base64').toString('utf8'));
      const caBundle = get(SECRET_KEYS.caBundle);
      const caKey = get(SECRET_KEYS.caKey);
      const cert = get(SECRET_KEYS.cert);
      const key = get(SECRET_KEYS.key);
      const complete = caBundle !== undefined && caKey !== undefined && cert !== undefined && key !== undefined;
      return { certificates: complete ? { caBundle, caKey, cert, key } : undefined, resourceVersion: secret.metadata?.resourceVersion ?? '' };
    },
    async create(certificates) {
      try {
        await core.createNamespacedSecret({ namespace: config.namespace, body: secretBody(config, certificates) });
        return true;
      } catch (error) {
        if (isStatus(error, 409)) return false;
        throw wrap(`creating Secret ${config.namespace}/${config.secretName}`, error);
      }
    },
    async replace(certificates, resourceVersion) {
      try {
        await core.replaceNamespacedSecret({ name: config.secretName, namespace: config.namespace, body: secretBody(config, certificates, resourceVersion) });
        return true;
      } catch (error) {
        if (isStatus(error, 409)) return false;
        throw wrap(`replacing Secret ${config.namespace}/${config.secretName}`, error);
      }
    },
    async ensureCaBundle(caBundle) {
      const name = config.webhookConfigurationName;
      const wanted = b64(caBundle);
      for (let attempt = 0; attempt < 5; attempt += 1) {
        let mwc;
        try {
          mwc = await admission.readMutatingWebhookConfiguration({ name });
        } catch (error) {
          throw wrap(`reading MutatingWebhookConfiguration ${name}`, error);
        }
        const ops: object[] = [{ op: 'test', path: '/metadata/resourceVersion', value: mwc.metadata?.resourceVersion ?? '' }];
        (mwc.webhooks ?? []).forEach((webhook, index) => {
          if (webhook.clientConfig.caBundle !== wanted) ops.push({ op: 'add', path: `/webhooks/${index}/clientConfig/caBundle`, value: wanted });
        });
        if (ops.length === 1) return false;
        try {
          // JSON patch guarded by a resourceVersion test: a concurrent writer (helm upgrade, another replica)
          // makes it fail with 409/422, and we re-read and try again.
          await admission.patchMutatingWebhookConfiguration({ name, body: ops }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
          return true;
        } catch (error) {
          if (!isStatus(error, 409, 422)) throw wrap(`patching caBundle of MutatingWebhookConfiguration ${name}`, error);
        }
      }
      throw new CertificateError(`gave up patching the caBundle of MutatingWebhookConfiguration ${name} after 5 conflicts`);
    },
  };
}
