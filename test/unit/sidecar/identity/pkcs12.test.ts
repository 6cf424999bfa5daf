/**
 * certificate.pfx opened into the PEM pair msal takes (sidecar/identity/pkcs12.ts): both encodings in use, with and
 * without a password, and a clear problem for a file that cannot be used.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import forge from 'node-forge';
import { openPkcs12 } from '../../../../sidecar/identity/pkcs12.ts';
import { buildClientCredential, credentialExpirySeconds } from '../../../../sidecar/token/client-credential.ts';
import { createClientCertificate, toPfx } from '../../../authority/pki.ts';

/** A PKCS#12 file of this key (or none) and these certificates, as a tool that exports odd files would write it. */
function pack(keyPem: string | undefined, certPems: readonly string[]): Buffer {
  const key = keyPem === undefined ? null : forge.pki.privateKeyFromPem(keyPem);
  const asn1 = forge.pkcs12.toPkcs12Asn1(key, certPems.map((pem) => forge.pki.certificateFromPem(pem)), '', { algorithm: 'aes256' });
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
}

describe('openPkcs12', () => {
  it('the leaf is the certificate of the key, whatever its place in the file; the chain follows it', async () => {
    const [leaf, other] = [await createClientCertificate(), await createClientCertificate()];
    const opened = await openPkcs12(pack(leaf.keyPem, [other.certPem, leaf.certPem]), undefined);
    assert.ok(opened.ok);
    const blocks = opened.certificatePem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    assert.equal(blocks.length, 2);
    const fromPfx = buildClientCredential({ kind: 'certificate', ...opened }, async () => '');
    assert.ok('clientCertificate' in fromPfx);
    assert.equal(fromPfx.clientCertificate.thumbprintSha256, leaf.thumbprintSha256);
  });

  for (const algorithm of ['aes256', '3des'] as const) {
    it(`${algorithm}: opened into the same credential as the PEM pair, with and without a password`, async () => {
      const cert = await createClientCertificate();
      const fromPem = buildClientCredential({ kind: 'certificate', certificatePem: cert.certPem, privateKeyPem: cert.keyPem }, async () => '');
      for (const password of [undefined, 'pw']) {
        const opened = await openPkcs12(toPfx(cert, { algorithm, ...(password ? { password } : {}) }), password);
        assert.ok(opened.ok, JSON.stringify(opened));
        const fromPfx = buildClientCredential({ kind: 'certificate', certificatePem: opened.certificatePem, privateKeyPem: opened.privateKeyPem }, async () => '');
        assert.ok('clientCertificate' in fromPem && 'clientCertificate' in fromPfx);
        assert.equal(fromPfx.clientCertificate.thumbprintSha256, cert.thumbprintSha256);
        assert.equal(fromPfx.clientCertificate.privateKey, fromPem.clientCertificate.privateKey);
        assert.equal(credentialExpirySeconds({ kind: 'certificate', ...opened }), Math.floor(cert.notAfter.getTime() / 1000));
      }
    });
  }

  it('an unchanged file is decoded once (the rotation watcher re-reads it every poll); a new password is a new decode', async () => {
    const pfx = toPfx(await createClientCertificate(), { password: 'pw' });
    const first = await openPkcs12(pfx, 'pw');
    assert.equal(await openPkcs12(Buffer.from(pfx), 'pw'), first);
    const wrong = await openPkcs12(pfx, 'other');
    assert.equal(wrong.ok, false);
  });

  const unusable: ReadonlyArray<{ name: string; pfx: () => Promise<Buffer>; passphrase?: string; problem: RegExp }> = [
    { name: 'not PKCS#12', pfx: async () => Buffer.from('not a pfx'), problem: /^cannot be opened: not PKCS#12, or protected by a password this identity does not have$/ },
    { name: 'a password the identity does not have', pfx: async () => toPfx(await createClientCertificate(), { password: 'p@ss' }), problem: /^cannot be opened/ },
    { name: 'a wrong password', pfx: async () => toPfx(await createClientCertificate(), { password: 'p@ss' }), passphrase: 'other', problem: /^cannot be opened/ },
    { name: 'a certificate without its key', pfx: async () => pack(undefined, [(await createClientCertificate()).certPem]), problem: /^holds no private key$/ },
    { name: 'a key without its certificate', pfx: async () => pack((await createClientCertificate()).keyPem, [(await createClientCertificate()).certPem]), problem: /^holds no certificate for its private key$/ },
    { name: 'empty bytes', pfx: async () => Buffer.alloc(0), problem: /^cannot be opened/ },
  ];
  for (const tc of unusable) {
    it(`${tc.name}: a problem worded after the file name, never a throw`, async () => {
      const opened = await openPkcs12(await tc.pfx(), tc.passphrase);
      assert.equal(opened.ok, false);
      assert.ok(!opened.ok);
      assert.match(opened.problem, tc.problem);
    });
  }
});
