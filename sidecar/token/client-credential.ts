/**
 * Turns an identity's credential material into msal-node's confidential-client credential settings, and reports
 * when that credential expires (certificate notAfter, for the `mi_anywhere_credential_expiry_timestamp_seconds`
 * gauge). The federated credential reads the projected service-account token file on every exchange, because
 * kubelet rotates it (every hour by default, at 80 % of its lifetime) and a cached copy would expire.
 *
 * Parsing only (node:crypto); the one file read is the federated token, through the injected `readFile`.
 */
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { decodeJwt } from 'jose';
import type { ClientAssertionCallback } from '@azure/msal-node';
import type { CredentialMaterial } from '../identity/identity.ts';
import { CredentialUnavailableError } from '../errors.ts';
import type { CiAssertions } from './ci-oidc.ts';
import { IdentityFileError } from '../identity/bounded-read.ts';

/** The credential part of msal's `auth` options (exactly one field set). */
export type MsalClientCredential =
  | { readonly clientSecret: string }
  | { readonly clientCertificate: { readonly thumbprintSha256: string; readonly privateKey: string; readonly x5c: string } }
  | { readonly clientAssertion: ClientAssertionCallback };

export type ReadTextFile = (path: string) => Promise<string>;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** First certificate of a PEM bundle (the leaf: cert-manager and `kubernetes.io/tls` Secrets put it first). */
function leafCertificate(certificatePem: string): X509Certificate {
  const first = certificatePem.match(PEM_CERTIFICATE)?.[0];
  if (!first) throw new CredentialUnavailableError('tls.crt holds no PEM certificate');
  return new X509Certificate(first);
}

/**
 * Builds msal's certificate credential: SHA-256 thumbprint (msal then signs PS256 with `x5t#S256`, which Entra
 * requires for new certificates) and the PEM chain as `x5c` (lets subject-name/issuer authentication work).
 * The key is normalised to PKCS#8 because msal documents `-----BEGIN PRIVATE KEY-----`, while cert-manager
 * writes PKCS#1 (`BEGIN RSA PRIVATE KEY`) by default.
 */
function certificateCredential(certificatePem: string, privateKeyPem: string): MsalClientCredential {
  let leaf: X509Certificate;
  let key: ReturnType<typeof createPrivateKey>;
  try {
    leaf = leafCertificate(certificatePem);
    key = createPrivateKey(privateKeyPem);
  } catch (error) {
    if (error instanceof CredentialUnavailableError) throw error;
    throw new CredentialUnavailableError('tls.crt or tls.key is not valid PEM (encrypted keys are not supported)', { cause: error });
  }
  if (key.asymmetricKeyType !== 'rsa') throw new CredentialUnavailableError(`tls.key is a ${key.asymmetricKeyType ?? 'non-RSA'} key; Entra ID accepts RSA certificates only`);
  if (!leaf.checkPrivateKey(key)) throw new CredentialUnavailableError('tls.key does not belong to the certificate in tls.crt');
  return {
    clientCertificate: {
      thumbprintSha256: createHash('sha256').update(leaf.raw).digest('hex'),
      privateKey: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
      x5c: certificatePem,
    },
  };
}

/**
 * The projected token's audience is chosen by the pod spec (serviceAccountToken projection), not by us; when it
 * does not contain the audience the identity expects, Entra would answer AADSTS700212. Saying so before the
 * exchange names the actual file and both values, which Entra's answer cannot.
 */
function checkAudience(token: string, tokenFile: string, audience: string): void {
  let aud: unknown;
  try {
    aud = decodeJwt(token).aud;
  } catch {
    throw new CredentialUnavailableError(`the federated token file ${tokenFile} does not hold a JWT (a projected service-account token)`);
  }
  const audiences = Array.isArray(aud) ? aud : typeof aud === 'string' ? [aud] : [];
  if (!audiences.includes(audience)) {
    throw new CredentialUnavailableError(
      `the projected token in ${tokenFile} is for audience ${JSON.stringify(audiences)}, but the identity expects "${audience}": project the token with that audience or set federatedAudience`,
    );
  }
}

/** Federated: the assertion is the projected token, re-read from disk on every exchange. */
function federatedCredential(tokenFile: string, audience: string, readFile: ReadTextFile): MsalClientCredential {
  const clientAssertion: ClientAssertionCallback = async () => {
    let token: string;
    try {
      token = (await readFile(tokenFile)).trim();
    } catch (error) {
      // A refused file (symlink out of its directory, not a regular file, too large) says exactly that.
      if (error instanceof IdentityFileError && error.reason !== 'unreadable') {
        throw new CredentialUnavailableError(`the federated token file ${error.message}`, { cause: error });
      }
      throw new CredentialUnavailableError(`the federated token file ${tokenFile} is not readable; is the service-account token projected?`, { cause: error });
    }
    if (token === '') throw new CredentialUnavailableError(`the federated token file ${tokenFile} is empty`);
    checkAudience(token, tokenFile, audience);
    return token;
  };
  return { clientAssertion };
}

/**
 * Builds msal's credential settings for an identity. Throws CredentialUnavailableError for unusable material.
 * `ciAssertions` supplies the assertion of CI identities (`ci-oidc.ts`).
 */
export function buildClientCredential(material: CredentialMaterial, readFile: ReadTextFile, ciAssertions?: CiAssertions): MsalClientCredential {
  switch (material.kind) {
    case 'secret':
      return { clientSecret: material.clientSecret };
    case 'certificate':
      return certificateCredential(material.certificatePem, material.privateKeyPem);
    case 'federated':
      return federatedCredential(material.tokenFile, material.audience, readFile);
    case 'ci-oidc':
      if (ciAssertions === undefined) throw new CredentialUnavailableError('CI OIDC identities are not enabled in this process');
      return { clientAssertion: ciAssertions.callbackFor(material) };
    case 'azure-cli':
      throw new CredentialUnavailableError('the developer identity is served by the Azure CLI, not by a client credential');
    case 'dev':
      throw new CredentialUnavailableError('the dev identity is served by the built-in dev issuer, not by Entra ID');
  }
}

/** When the credential stops working, in unix seconds (certificate notAfter); undefined when unknown. */
export function credentialExpirySeconds(material: CredentialMaterial): number | undefined {
  try {
    if (material.kind === 'certificate') return Math.floor(Date.parse(leafCertificate(material.certificatePem).validTo) / 1000);
    return undefined;
  } catch {
    return undefined;
  }
}
