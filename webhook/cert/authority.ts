/**
 * Self-managed certificates, the crypto half: create a CA and a serving certificate (ECDSA P-256, which every
 * Go TLS client and kube-apiserver accept), read back what a Secret holds, and decide — as a pure function of
 * the stored certificates, the wanted names and `now` — whether to keep them, renew the serving certificate or
 * renew the CA. The Kubernetes half (Secret, caBundle) lives in self-managed.ts.
 *
 * CA rotation keeps the old CA in the trust bundle until it expires, so API servers that still hold the old
 * caBundle keep trusting serving certificates during the switch.
 */
import 'reflect-metadata'; // @peculiar/x509 resolves its ASN.1 serializers through tsyringe, which needs it.
import * as x509 from '@peculiar/x509';
import { X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

// @peculiar/x509 types its keys with the DOM's CryptoKey, which this Node-only project does not load (lib has no
// "dom"); Node's webcrypto keys have the same shape and are passed as they are.

const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/**
 * Backdating absorbs clock skew between this pod and the API servers (a certificate "not yet valid" by a few
 * seconds fails every call).
 */
const BACKDATE_MS = 3600_000;

/** Keys of the Secret: the `kubernetes.io/tls` names plus the CA, like cert-manager's CA issuer Secrets. */
export const SECRET_KEYS = { caBundle: 'ca.crt', caKey: 'ca.key', cert: 'tls.crt', key: 'tls.key' } as const;

/** What the Secret stores (PEM text). `caBundle` starts with the signing CA; an older, still valid CA may follow. */
export interface StoredCertificates {
  readonly caBundle: string;
  readonly caKey: string;
  readonly cert: string;
  readonly key: string;
}

export interface WantedNames {
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
}

export interface RotationPolicy {
  readonly certValidityDays: number;
  readonly certRenewBeforeDays: number;
  readonly caValidityDays: number;
  readonly caRenewBeforeDays: number;
}

export type RotationPlan =
  | { readonly action: 'keep' }
  | { readonly action: 'renew-serving'; readonly reason: string }
  | { readonly action: 'renew-ca'; readonly reason: string };

/** Splits a PEM bundle into its certificate blocks. */
export function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((pem) => `${pem}\n`) ?? [];
}

/** The DNS names a serving certificate needs for a Service (every form the API server may dial), plus extras. */
export function serviceDnsNames(service: string, namespace: string, extra: readonly string[]): string[] {
  return [...new Set([service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`, ...extra])];
}

function sanSet(cert: X509Certificate): Set<string> {
  return new Set(
    (cert.subjectAltName ?? '')
      .split(',')
      .map((entry) => entry.trim())
      .filter((entry) => entry !== ''),
  );
}

/** The stored CA and serving certificate, parsed, each with a key that matches it. */
interface UsableCertificates {
  readonly ca: X509Certificate;
  readonly leaf: X509Certificate;
}

/** Parses what the Secret holds; a plan instead when it cannot be used as it is. */
function readStored(stored: StoredCertificates): UsableCertificates | RotationPlan {
  try {
    const first = splitPem(stored.caBundle)[0];
    if (first === undefined) return { action: 'renew-ca', reason: 'stored CA bundle is empty' };
    const ca = new X509Certificate(first);
    const leaf = new X509Certificate(stored.cert);
    if (!ca.checkPrivateKey(createPrivateKey(stored.caKey))) return { action: 'renew-ca', reason: 'stored CA key does not match the CA' };
    if (!leaf.checkPrivateKey(createPrivateKey(stored.key))) return { action: 'renew-serving', reason: 'stored serving key does not match the certificate' };
    return { ca, leaf };
  } catch {
    return { action: 'renew-ca', reason: 'stored certificates are unreadable' };
  }
}

/** Why the serving certificate must be replaced (wrong issuer, about to expire, not valid yet), if it must. */
function servingValidityProblem({ ca, leaf }: UsableCertificates, renewBeforeDays: number, now: number): string | undefined {
  if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) return 'serving certificate is not signed by the current CA';
  if (Date.parse(leaf.validTo) - now < renewBeforeDays * DAY_MS) return `serving certificate expires ${leaf.validTo}`;
  if (Date.parse(leaf.validFrom) > now + BACKDATE_MS) return 'serving certificate is not valid yet';
  return undefined;
}

/** The wanted names the serving certificate lacks, as one reason, if it lacks any. */
function missingNamesProblem(leaf: X509Certificate, names: WantedNames): string | undefined {
  const sans = sanSet(leaf);
  const missing = [...names.dnsNames.map((n) => `DNS:${n}`), ...names.ipAddresses.map((ip) => `IP Address:${ip}`)].filter((san) => !sans.has(san));
  return missing.length > 0 ? `serving certificate lacks ${missing.join(', ')}` : undefined;
}

/**
 * Decides what to do with stored certificates at time `now` (ms). Pure.
 * - missing / unreadable / key not matching → `renew-ca` (start over)
 * - CA within `caRenewBeforeDays` of expiry → `renew-ca`
 * - serving cert within `certRenewBeforeDays` of expiry, not signed by the current CA, or missing a wanted name → `renew-serving`
 */
export function planRotation(stored: StoredCertificates | undefined, names: WantedNames, policy: RotationPolicy, now: number): RotationPlan {
  if (stored === undefined) return { action: 'renew-ca', reason: 'no certificates stored yet' };
  const usable = readStored(stored);
  if ('action' in usable) return usable;
  if (Date.parse(usable.ca.validTo) - now < policy.caRenewBeforeDays * DAY_MS) return { action: 'renew-ca', reason: `CA expires ${usable.ca.validTo}` };
  const problem = servingValidityProblem(usable, policy.certRenewBeforeDays, now) ?? missingNamesProblem(usable.leaf, names);
  return problem === undefined ? { action: 'keep' } : { action: 'renew-serving', reason: problem };
}

async function exportKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
}

async function importKeyPem(pem: string): Promise<webcrypto.CryptoKey> {
  const der = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return webcrypto.subtle.importKey('pkcs8', der, EC_ALG, true, ['sign']);
}

function serial(): string {
  // Positive 128-bit serial (RFC 5280 §4.1.2.2 allows up to 20 octets; the top bit cleared keeps it positive).
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

async function generateKeys(): Promise<webcrypto.CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify']);
}

async function createCa(commonName: string, validityDays: number, now: number): Promise<{ cert: string; key: string; keys: webcrypto.CryptoKeyPair }> {
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm: EC_ALG,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + validityDays * DAY_MS),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await exportKeyPem(keys.privateKey), keys };
}

async function createServing(
  ca: { cert: string; privateKey: webcrypto.CryptoKey },
  names: WantedNames,
  validityDays: number,
  now: number,
): Promise<{ cert: string; key: string }> {
  const keys = await generateKeys();
  const caCert = new x509.X509Certificate(ca.cert);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${names.dnsNames[0] ?? names.ipAddresses[0] ?? 'mi-anywhere-webhook'}`,
    issuer: caCert.subject,
    publicKey: keys.publicKey,
    signingKey: ca.privateKey,
    signingAlgorithm: EC_ALG,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + validityDays * DAY_MS),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      // Go's TLS verification ignores the CN: the names must be SANs.
      new x509.SubjectAlternativeNameExtension([
        ...names.dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...names.ipAddresses.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await exportKeyPem(keys.privateKey) };
}

/** What a renewal starts from and must produce. */
export interface Renewal {
  /** What the Secret holds now; undefined when there is nothing yet. */
  readonly stored?: StoredCertificates | undefined;
  readonly names: WantedNames;
  readonly policy: RotationPolicy;
  /** Milliseconds since the epoch. */
  readonly now: number;
}

/** The CAs of a bundle still valid at `now` (unreadable blocks are dropped). */
function stillValidCas(caBundle: string, now: number): string[] {
  return splitPem(caBundle).filter((pem) => {
    try {
      return Date.parse(new X509Certificate(pem).validTo) > now;
    } catch {
      return false;
    }
  });
}

/** A new CA and a serving certificate it signed; the previous CAs stay in the bundle while they are valid. */
async function withNewCa({ stored, names, policy, now }: Renewal): Promise<StoredCertificates> {
  const ca = await createCa(`mi-anywhere webhook CA ${new Date(now).toISOString().slice(0, 10)}`, policy.caValidityDays, now);
  const serving = await createServing({ cert: ca.cert, privateKey: ca.keys.privateKey }, names, policy.certValidityDays, now);
  const previous = stored === undefined ? [] : stillValidCas(stored.caBundle, now);
  return { caBundle: [ca.cert, ...previous].join(''), caKey: ca.key, cert: serving.cert, key: serving.key };
}

/** A new serving certificate signed by the stored CA (the first of the bundle). */
async function withNewServing(stored: StoredCertificates, { names, policy, now }: Renewal): Promise<StoredCertificates> {
  const signing = splitPem(stored.caBundle)[0] ?? '';
  const serving = await createServing({ cert: signing, privateKey: await importKeyPem(stored.caKey) }, names, policy.certValidityDays, now);
  return { ...stored, cert: serving.cert, key: serving.key };
}

/**
 * Carries out a plan that is not `keep`, returning what to store. `renew-ca` keeps the previous CA in the
 * bundle while it is still valid at `now`.
 */
export async function renewCertificates(plan: Exclude<RotationPlan, { action: 'keep' }>, renewal: Renewal): Promise<StoredCertificates> {
  if (plan.action === 'renew-ca' || renewal.stored === undefined) return withNewCa(renewal);
  return withNewServing(renewal.stored, renewal);
}
