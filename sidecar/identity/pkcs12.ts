/**
 * Opens a PKCS#12 file (`certificate.pfx`: what Key Vault and Windows export) into the PEM certificate chain and
 * private key that msal-node takes. Node's crypto cannot read PKCS#12, so node-forge decodes it: it handles both the
 * legacy (3DES / RC2 with the PKCS#12 KDF, MAC over SHA-1) and the OpenSSL 3 default (PBES2 AES-256-CBC, MAC over
 * SHA-256) encodings. The leaf is the certificate whose key is in the file; the rest of the chain follows it (msal
 * sends it as `x5c`). An empty password is tried when none is configured (Kubernetes Secrets usually hold
 * password-less PFX).
 *
 * The identity loader (`load.ts`) opens the file when it reads it, so a PFX that cannot be used is reported like any
 * other unusable identity file: at start-up or rotation, naming the file, not on the first token request.
 *
 * node-forge is imported on the first PKCS#12 identity only: secret, PEM and federated identities never pay its
 * start-up time and memory (docs/performance.md).
 */
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import type forgeModule from 'node-forge';

export type OpenedPkcs12 =
  | { readonly ok: true; readonly certificatePem: string; readonly privateKeyPem: string }
  /** What is wrong with the file, worded to follow its name ("certificate.pfx holds no private key"). */
  | { readonly ok: false; readonly problem: string };

let forgeLoaded: Promise<typeof forgeModule> | undefined;
function loadForge(): Promise<typeof forgeModule> {
  forgeLoaded ??= import('node-forge').then((module) => module.default);
  return forgeLoaded;
}

/**
 * Files already opened, by the SHA-256 of their bytes and password. The rotation watcher reloads every identity
 * every 10 s (identity/watch.ts), and decoding a PFX blocks the event loop for 9-19 ms (3DES / AES-256, measured
 * here): an unchanged file is decoded once, a changed one gets a new key. Bounded: cleared when full.
 */
const opened = new Map<string, Promise<OpenedPkcs12>>();
const MAX_OPENED = 64;

export function openPkcs12(pfx: Buffer, passphrase: string | undefined): Promise<OpenedPkcs12> {
  const key = createHash('sha256').update(pfx).update('\0').update(passphrase ?? '').digest('hex');
  let result = opened.get(key);
  if (result === undefined) {
    if (opened.size >= MAX_OPENED) opened.clear();
    result = loadForge().then((forge) => decode(forge, pfx, passphrase));
    opened.set(key, result);
  }
  return result;
}

function decode(forge: typeof forgeModule, pfx: Buffer, passphrase: string | undefined): OpenedPkcs12 {
  let p12: forgeModule.pkcs12.Pkcs12Pfx;
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(pfx.toString('binary')));
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, passphrase ?? '');
  } catch {
    return { ok: false, problem: 'cannot be opened: not PKCS#12, or protected by a password this identity does not have' };
  }
  const bagsOf = (oid: string | undefined): forgeModule.pkcs12.Bag[] => (oid === undefined ? [] : (p12.getBags({ bagType: oid })[oid] ?? []));
  const keyBag = [...bagsOf(forge.pki.oids.pkcs8ShroudedKeyBag), ...bagsOf(forge.pki.oids.keyBag)][0];
  if (keyBag === undefined) return { ok: false, problem: 'holds no private key' };
  if (keyBag.key === undefined) return { ok: false, problem: 'holds a non-RSA key; Entra ID accepts RSA certificates only' };
  const privateKeyPem = forge.pki.privateKeyToPem(keyBag.key);
  const certificates = bagsOf(forge.pki.oids.certBag)
    .map((bag) => (bag.cert ? forge.pki.certificateToPem(bag.cert) : bag.asn1 ? derToPem(Buffer.from(forge.asn1.toDer(bag.asn1).getBytes(), 'binary'), 'CERTIFICATE') : undefined))
    .filter((pem): pem is string => pem !== undefined);
  if (certificates.length === 0) return { ok: false, problem: 'holds no certificate' };
  const key = createPrivateKey(privateKeyPem);
  const leafIndex = certificates.findIndex((pem) => new X509Certificate(pem).checkPrivateKey(key));
  if (leafIndex < 0) return { ok: false, problem: 'holds no certificate for its private key' };
  const ordered = [certificates[leafIndex]!, ...certificates.filter((_, i) => i !== leafIndex)];
  return { ok: true, certificatePem: ordered.join(''), privateKeyPem };
}

function derToPem(der: Buffer, label: string): string {
  const body = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}
