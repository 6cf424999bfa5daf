/**
 * Test PKI: a throw-away certificate authority for the test authority's HTTPS listener, and the self-signed
 * client certificates that apps register with Entra ID (Entra takes the public certificate, not a chain, so a
 * self-signed RSA certificate is exactly what real users upload).
 *
 * Test-only code: keys are generated per run and never written anywhere except temp files the caller asks for.
 */
import 'reflect-metadata'; // @peculiar/x509 resolves its ASN.1 serializers through tsyringe, which needs it.
import * as x509 from '@peculiar/x509';
import { X509Certificate, createHash, webcrypto } from 'node:crypto';
import forge from 'node-forge';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKeyPair = webcrypto.CryptoKeyPair;
type CryptoKey = webcrypto.CryptoKey;

/** ECDSA P-256 for the CA and the TLS server certificate: fast to generate, and any TLS client accepts it. */
const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** Entra ID only accepts RSA keys for certificate credentials (client assertions are RS256/PS256). */
const RSA_ALG = { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } as const;

export interface PemPair {
  readonly certPem: string;
  /** PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the form msal-node and node:tls both accept. */
  readonly keyPem: string;
}

export interface TestCertificateAuthority extends PemPair {
  readonly keys: CryptoKeyPair;
  readonly cert: x509.X509Certificate;
}

export interface ClientCertificate extends PemPair {
  /** Hex SHA-1 thumbprint (the `x5t` Entra shows in the portal). */
  readonly thumbprintSha1: string;
  /** Hex SHA-256 thumbprint (`x5t#S256`). */
  readonly thumbprintSha256: string;
  readonly notAfter: Date;
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
}

function hours(n: number): number {
  return n * 3600_000;
}

/** Creates a CA valid for a day, its key usable only to sign certificates. */
export async function createTestCertificateAuthority(commonName = 'mi-anywhere test CA'): Promise<TestCertificateAuthority> {
  const keys = await webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm: EC_ALG,
    notBefore: new Date(now - hours(1)),
    notAfter: new Date(now + hours(24)),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { keys, cert, certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}

/** Issues a TLS server certificate for 127.0.0.1 / localhost signed by the CA. */
export async function issueServerCertificate(ca: TestCertificateAuthority, hosts: readonly string[] = ['127.0.0.1', 'localhost']): Promise<PemPair> {
  const keys = await webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify']);
  const now = Date.now();
  const names = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h }));
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${hosts[0] ?? 'localhost'}`,
    issuer: ca.cert.subject,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: EC_ALG,
    notBefore: new Date(now - hours(1)),
    notAfter: new Date(now + hours(23)),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}

export interface ClientCertificateOptions {
  readonly commonName?: string;
  readonly notBefore?: Date;
  /** Default: one year ahead. Pass a past date to make an expired credential. */
  readonly notAfter?: Date;
}

/** A self-signed RSA certificate as users create for an app registration (`az ad app credential reset --create-cert`). */
export async function createClientCertificate(options: ClientCertificateOptions = {}): Promise<ClientCertificate> {
  const keys = await webcrypto.subtle.generateKey(RSA_ALG, true, ['sign', 'verify']);
  const now = Date.now();
  const notAfter = options.notAfter ?? new Date(now + hours(24 * 365));
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${options.commonName ?? 'mi-anywhere test app'}`,
    keys,
    signingAlgorithm: RSA_ALG,
    notBefore: options.notBefore ?? new Date(Math.min(now - hours(1), notAfter.getTime() - hours(2))),
    notAfter,
    extensions: [new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
  });
  const certPem = cert.toString('pem') + '\n';
  return { certPem, keyPem: await exportKeyPem(keys.privateKey), ...thumbprints(certPem), notAfter };
}

/** Hex SHA-1 and SHA-256 thumbprints of a PEM certificate (DER hash, as Entra and msal compute them). */
export function thumbprints(certPem: string): { thumbprintSha1: string; thumbprintSha256: string } {
  const der = new X509Certificate(certPem).raw;
  return {
    thumbprintSha1: createHash('sha1').update(der).digest('hex'),
    thumbprintSha256: createHash('sha256').update(der).digest('hex'),
  };
}

/**
 * Packs a client certificate as PKCS#12 (what Key Vault and Windows export): `aes256` is OpenSSL 3's default
 * encoding, `3des` the legacy one most existing PFX files use.
 */
export function toPfx(cert: PemPair, options: { password?: string; algorithm?: '3des' | 'aes256' } = {}): Buffer {
  const asn1 = forge.pkcs12.toPkcs12Asn1(forge.pki.privateKeyFromPem(cert.keyPem), [forge.pki.certificateFromPem(cert.certPem)], options.password ?? '', {
    algorithm: options.algorithm ?? 'aes256',
  });
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
}
