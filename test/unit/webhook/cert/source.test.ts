/**
 * webhook/cert/source.ts: a certificate change that arrives before the admission server subscribes is delivered on
 * subscription (only the newest), and the files source starts from the mounted pair and reports a rewritten one.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { renewCertificates, type StoredCertificates } from '../../../../webhook/cert/authority.ts';
import type { LoadedCertificate } from '../../../../webhook/cert/files.ts';
import { changeFeed, filesSource } from '../../../../webhook/cert/source.ts';
import { createLogger } from '../../../../webhook/log.ts';

const NAMES = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };
const POLICY = { certValidityDays: 2, certRenewBeforeDays: 1, caValidityDays: 3, caRenewBeforeDays: 1 };

const certificate = (cert: string): LoadedCertificate => ({ cert, key: 'k', notAfterSeconds: 0 });

describe('changeFeed', () => {
  it('holds the newest change until someone subscribes, then delivers each change as it comes', () => {
    const feed = changeFeed();
    const seen: string[] = [];
    feed.emit(certificate('a'));
    feed.emit(certificate('b'));
    feed.subscribe((c) => seen.push(c.cert));
    assert.deepEqual(seen, ['b']);
    feed.emit(certificate('c'));
    assert.deepEqual(seen, ['b', 'c']);
  });

  it('delivers nothing on subscription when nothing changed', () => {
    const feed = changeFeed();
    const seen: string[] = [];
    feed.subscribe((c) => seen.push(c.cert));
    assert.deepEqual(seen, []);
  });
});

describe('filesSource', () => {
  let dir: string;
  let a: StoredCertificates;
  let b: StoredCertificates;
  const logger = createLogger({ level: 'silent', destination: new Writable({ write: (_chunk, _encoding, done) => done() }) });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mi-anywhere-cert-source-'));
    a = await renewCertificates({ action: 'renew-ca', reason: 'a' }, { names: NAMES, policy: POLICY, now: Date.now() });
    b = await renewCertificates({ action: 'renew-serving', reason: 'b' }, { stored: a, names: NAMES, policy: POLICY, now: Date.now() });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('starts from the mounted pair and reports the pair that replaces it', { timeout: 20_000 }, async () => {
    const cert = { mode: 'files', certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), reloadIntervalSeconds: 1 } as const;
    await writeFile(cert.certFile, a.cert);
    await writeFile(cert.keyFile, a.key);
    const source = await filesSource(cert, logger);
    try {
      assert.equal(source.first.cert, a.cert);
      const changed = new Promise<LoadedCertificate>((resolve) => source.onChange(resolve));
      await writeFile(cert.keyFile, b.key);
      await writeFile(cert.certFile, b.cert);
      assert.equal((await changed).cert, b.cert);
    } finally {
      source.stop();
    }
  });
});
