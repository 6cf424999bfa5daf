/**
 * Self-managed certificates: rotation decisions at chosen instants (injected clock, no sleeping), generated
 * chains that verify, and the reconcile loop against an in-memory store that can lose races like a second
 * replica would make it.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { planRotation, renewCertificates, serviceDnsNames, splitPem, type StoredCertificates } from '../../../webhook/cert/authority.ts';
import { inspectCertificate, watchCertificateFiles, type LoadedCertificate } from '../../../webhook/cert/files.ts';
import { reconcileCertificates, type CertificateStore } from '../../../webhook/cert/self-managed.ts';
import { loadConfig, type SelfManagedCertConfig } from '../../../webhook/config.ts';
import { createLogger } from '../../../webhook/log.ts';

const DAY = 86_400_000;
const T0 = Date.parse('2030-01-01T00:00:00Z');
const config = loadConfig({
  MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'img',
  MI_ANYWHERE_WEBHOOK_CERT_MODE: 'self-managed',
  MI_ANYWHERE_WEBHOOK_NAMESPACE: 'mi',
  MI_ANYWHERE_WEBHOOK_SERVICE_NAME: 'webhook',
  MI_ANYWHERE_WEBHOOK_CERT_SECRET_NAME: 'tls',
  MI_ANYWHERE_WEBHOOK_CONFIGURATION_NAME: 'mwc',
  MI_ANYWHERE_WEBHOOK_CERT_IP_ADDRESSES: '127.0.0.1',
}).cert as SelfManagedCertConfig;
const names = { dnsNames: serviceDnsNames('webhook', 'mi', []), ipAddresses: ['127.0.0.1'] };
const silent = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) });

describe('certificate rotation plan', () => {
  let initial: StoredCertificates;
  before(async () => {
    initial = await renewCertificates({ action: 'renew-ca', reason: 'test' }, { names, policy: config, now: T0 });
  });

  it('a fresh set chains, names every Service form and the IP, and is kept', () => {
    const ca = new X509Certificate(splitPem(initial.caBundle)[0] ?? '');
    const leaf = new X509Certificate(initial.cert);
    assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
    assert.ok(ca.ca && !leaf.ca);
    assert.equal(leaf.subjectAltName, 'DNS:webhook, DNS:webhook.mi, DNS:webhook.mi.svc, DNS:webhook.mi.svc.cluster.local, IP Address:127.0.0.1');
    assert.equal(Date.parse(leaf.validTo), T0 + 365 * DAY);
    assert.deepEqual(planRotation(initial, names, config, T0 + DAY), { action: 'keep' });
    inspectCertificate({ cert: initial.cert, key: initial.key });
  });

  const cases: Array<{ name: string; at: number; want: string; wantNames?: typeof names }> = [
    { name: 'just before the serving renewal window', at: T0 + 334 * DAY, want: 'keep' },
    { name: 'inside the serving renewal window (30 days)', at: T0 + 336 * DAY, want: 'renew-serving' },
    { name: 'inside the CA renewal window (365 days before 3650)', at: T0 + 3290 * DAY, want: 'renew-ca' },
    { name: 'a new name is wanted', at: T0, want: 'renew-serving', wantNames: { ...names, ipAddresses: ['10.0.0.1'] } },
  ];
  for (const tc of cases) {
    it(tc.name, () => assert.equal(planRotation(initial, tc.wantNames ?? names, config, tc.at).action, tc.want));
  }

  it('nothing stored, garbage, or a key that does not match: start over', async () => {
    assert.equal(planRotation(undefined, names, config, T0).action, 'renew-ca');
    assert.equal(planRotation({ ...initial, cert: 'garbage' }, names, config, T0).action, 'renew-ca');
    const other = await renewCertificates({ action: 'renew-ca', reason: 'test' }, { names, policy: config, now: T0 });
    assert.equal(planRotation({ ...initial, caKey: other.caKey }, names, config, T0).action, 'renew-ca');
    assert.equal(planRotation({ ...initial, key: other.key }, names, config, T0).action, 'renew-serving');
    assert.equal(planRotation({ ...initial, cert: other.cert, key: other.key }, names, config, T0).action, 'renew-serving', 'signed by another CA');
  });

  it('renewing the serving certificate keeps the CA; renewing the CA keeps the old one trusted', async () => {
    const serving = await renewCertificates({ action: 'renew-serving', reason: 'test' }, { stored: initial, names, policy: config, now: T0 + 340 * DAY });
    assert.equal(serving.caBundle, initial.caBundle);
    assert.notEqual(serving.cert, initial.cert);
    assert.equal(planRotation(serving, names, config, T0 + 340 * DAY).action, 'keep');
    const rotated = await renewCertificates({ action: 'renew-ca', reason: 'test' }, { stored: initial, names, policy: config, now: T0 + 3290 * DAY });
    const bundle = splitPem(rotated.caBundle);
    assert.equal(bundle.length, 2);
    assert.equal(bundle[1], splitPem(initial.caBundle)[0], 'old CA still in the bundle');
    assert.equal(planRotation(rotated, names, config, T0 + 3290 * DAY).action, 'keep');
    const expired = await renewCertificates({ action: 'renew-ca', reason: 'test' }, { stored: rotated, names, policy: config, now: T0 + 30 * 365 * DAY });
    assert.equal(splitPem(expired.caBundle).length, 1, 'expired CAs are dropped from the bundle');
  });
});

/** In-memory Secret + caBundle with a switch to make the next write lose a race against "another replica". */
function memoryStore(): CertificateStore & { stored: StoredCertificates | undefined; caBundle: string; version: number; loseNextWrite: StoredCertificates | undefined; writes: number } {
  const state = {
    stored: undefined as StoredCertificates | undefined,
    caBundle: '',
    version: 0,
    loseNextWrite: undefined as StoredCertificates | undefined,
    writes: 0,
    async read() {
      return state.version === 0 ? undefined : { certificates: state.stored, resourceVersion: String(state.version) };
    },
    async create(certificates: StoredCertificates) {
      if (state.loseNextWrite !== undefined) {
        state.stored = state.loseNextWrite;
        state.version += 1;
        state.loseNextWrite = undefined;
        return false;
      }
      if (state.version !== 0) return false;
      state.stored = certificates;
      state.version = 1;
      state.writes += 1;
      return true;
    },
    async replace(certificates: StoredCertificates, resourceVersion: string) {
      if (resourceVersion !== String(state.version)) return false;
      state.stored = certificates;
      state.version += 1;
      state.writes += 1;
      return true;
    },
    async ensureCaBundle(caBundle: string) {
      if (state.caBundle === caBundle) return false;
      state.caBundle = caBundle;
      return true;
    },
  };
  return state;
}

describe('reconcileCertificates', () => {
  it('creates, publishes the caBundle, then keeps; renews near expiry', async () => {
    const store = memoryStore();
    let now = T0;
    const options = { store, names, policy: config, now: () => now, logger: silent };
    const first = await reconcileCertificates(options);
    assert.equal(store.writes, 1);
    assert.equal(store.caBundle, store.stored?.caBundle);
    assert.equal(first.cert, store.stored?.cert);
    const again = await reconcileCertificates(options);
    assert.equal(store.writes, 1, 'nothing to do');
    assert.equal(again.cert, first.cert);
    now = T0 + 340 * DAY;
    const renewed = await reconcileCertificates(options);
    assert.equal(store.writes, 2);
    assert.notEqual(renewed.cert, first.cert);
  });

  it('a replica that loses the creation race adopts the winner\'s certificates', async () => {
    const store = memoryStore();
    const winner = await renewCertificates({ action: 'renew-ca', reason: 'other replica' }, { names, policy: config, now: T0 });
    store.loseNextWrite = winner;
    const loaded: LoadedCertificate = await reconcileCertificates({ store, names, policy: config, now: () => T0, logger: silent });
    assert.equal(loaded.cert, winner.cert);
    assert.equal(store.caBundle, winner.caBundle);
  });
});

describe('certificate files', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mi-anywhere-certfiles-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('loads, ignores an unusable pair, reloads on change', async () => {
    const a = await renewCertificates({ action: 'renew-ca', reason: 'a' }, { names, policy: config, now: Date.now() });
    const b = await renewCertificates({ action: 'renew-ca', reason: 'b' }, { names, policy: config, now: Date.now() });
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    const seen: LoadedCertificate[] = [];
    const problems: unknown[] = [];
    const watcher = watchCertificateFiles({ certFile, keyFile, intervalSeconds: 3600, readFile: (p) => readFile(p, 'utf8'), onCertificate: (c) => seen.push(c), onError: (e) => problems.push(e) });
    try {
      assert.equal(await watcher.check(), false, 'no files yet');
      writeFileSync(certFile, a.cert);
      writeFileSync(keyFile, a.key);
      assert.equal(await watcher.check(), true);
      assert.equal(await watcher.check(), false, 'unchanged');
      writeFileSync(certFile, b.cert); // key not yet updated: a mismatched pair
      assert.equal(await watcher.check(), false);
      assert.equal(problems.length, 2);
      writeFileSync(keyFile, b.key);
      assert.equal(await watcher.check(), true);
      assert.deepEqual(seen.map((c) => c.cert), [a.cert, b.cert]);
      assert.equal(seen[1]?.notAfterSeconds, Math.floor(Date.parse(new X509Certificate(b.cert).validTo) / 1000));
    } finally {
      watcher.stop();
    }
  });
});
