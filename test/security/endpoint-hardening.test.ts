/**
 * Hardening of the token endpoint itself (docs/security.md §4.2):
 * - loopback only by default; a non-loopback token address is refused at start-up with the reason, unless
 *   `MI_ANYWHERE_ALLOW_NON_LOOPBACK=true`;
 * - the shared secrets (`IDENTITY_HEADER` / `MSI_SECRET` / Arc key) are compared with `crypto.timingSafeEqual` on
 *   equal-length SHA-256 digests — observed by spying on node:crypto's export, not by reading the source;
 * - Azure Arc key files are created on the real filesystem with the configured restrictive mode, never through a
 *   pre-planted file or symlink, used once, deleted after use, expiry and shutdown, and rotated per challenge.
 */
import { after, before, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { chmod, unlink, writeFile } from 'node:fs/promises';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { isLoopbackAddress, loadConfig } from '../../sidecar/config.ts';
import { ARC_TOKENS_DIR, PATHS, SIDECAR_ENV } from '../../sidecar/contract.ts';
import { createArcKeyStore } from '../../sidecar/http/arc-keys.ts';
import { secretsEqual } from '../../sidecar/protocol/common.ts';
import { startInProcessSidecar, startSidecar } from '../helpers/sidecar.ts';
import { registerSecret } from '../helpers/collected-logs.ts';
import { portOf } from '../helpers/raw-http.ts';

describe('loopback only by default', () => {
  const refused = ['0.0.0.0', '::', '10.0.0.5', '192.0.2.2', 'fd00::2', '169.254.169.254'];
  const accepted = ['127.0.0.1', '127.0.0.53', '::1', 'localhost'];

  it('binds the token listener to 127.0.0.1 unless told otherwise', () => {
    assert.equal(loadConfig({}, ['--dev']).token.address, '127.0.0.1');
  });
  for (const address of refused) {
    it(`refuses ${address} and says why and how to allow it`, () => {
      assert.equal(isLoopbackAddress(address), false);
      assert.throws(
        () => loadConfig({ [SIDECAR_ENV.tokenAddress]: address }, ['--dev']),
        (e: Error) => e.message.includes('is not a loopback address') && e.message.includes(SIDECAR_ENV.allowNonLoopback) && e.message.includes('obtain tokens'),
      );
      assert.equal(loadConfig({ [SIDECAR_ENV.tokenAddress]: address, [SIDECAR_ENV.allowNonLoopback]: 'true' }, ['--dev']).token.address, address);
    });
  }
  for (const address of accepted) {
    it(`accepts ${address}`, () => assert.equal(loadConfig({ [SIDECAR_ENV.tokenAddress]: address }, ['--dev']).token.address, address));
  }

  it('the real program exits 2 with the reason on a non-loopback address, before listening', async () => {
    await assert.rejects(startSidecar({ env: { [SIDECAR_ENV.tokenAddress]: '0.0.0.0' }, startTimeoutMs: 30_000 }), (e: Error) => {
      assert.match(e.message, /exited \(code 2/);
      assert.match(e.message, /MI_ANYWHERE_TOKEN_ADDRESS=0\.0\.0\.0 is not a loopback address/);
      assert.doesNotMatch(e.message, /"msg":"listening"/);
      return true;
    });
  });

  it('the real program is not reachable on the machine\'s other addresses', async () => {
    const sidecar = await startSidecar();
    try {
      assert.equal(new URL(sidecar.tokenUrl).hostname, '127.0.0.1');
      const port = portOf(sidecar.tokenUrl);
      const external = Object.values(networkInterfaces())
        .flat()
        .filter((i) => i !== undefined && !i.internal && i.family === 'IPv4')
        .map((i) => i!.address);
      for (const address of external) {
        const outcome = await new Promise<string>((resolve) => {
          const socket = connect({ host: address, port });
          socket.setTimeout(3000, () => {
            socket.destroy();
            resolve('timeout');
          });
          socket.on('connect', () => {
            socket.destroy();
            resolve('connected');
          });
          socket.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
        });
        assert.notEqual(outcome, 'connected', `token port reachable on ${address}`);
      }
    } finally {
      await sidecar.stop();
    }
  });
});

describe('the listeners reachable from outside the pod serve no tokens', () => {
  // Health and metrics bind 0.0.0.0 by default (kubelet probes and Prometheus reach the pod IP); they must never
  // answer a token request, whatever the path or headers.
  it('health and metrics listeners answer token paths with 404 and no token', async () => {
    const sidecar = await startSidecar();
    try {
      for (const base of [sidecar.healthUrl, sidecar.metricsUrl]) {
        for (const [path, headers] of [
          [`${PATHS.imds}?api-version=2018-02-01&resource=x`, { Metadata: 'true' }],
          [`${PATHS.appService}?api-version=2019-08-01&resource=x`, { 'X-IDENTITY-HEADER': sidecar.identityHeader }],
          [`${PATHS.msiEndpoint}?resource=x`, { secret: sidecar.identityHeader }],
          [`${PATHS.devIssuer}/jwks`, {}],
        ] as const) {
          const res = await fetch(`${base}${path}`, { headers });
          const text = await res.text();
          assert.equal(res.status, 404, `${base}${path}: ${text}`);
          assert.ok(!text.includes('access_token'));
        }
      }
    } finally {
      await sidecar.stop();
    }
  });
});

describe('constant-time comparison of the shared secrets', () => {
  let calls: Array<[Buffer, Buffer]>;
  before(() => {
    calls = [];
    const original = crypto.timingSafeEqual;
    mock.method(crypto, 'timingSafeEqual', (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
      calls.push([Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)]);
      return original(a, b);
    });
    // Named ESM imports of builtins are live bindings of the CommonJS export: make them see the spy.
    syncBuiltinESMExports();
  });
  after(() => {
    mock.restoreAll();
    syncBuiltinESMExports();
  });

  const table = [
    { presented: 'the-secret-value-1234', expected: 'the-secret-value-1234', want: true },
    { presented: 'the-secret-value-1235', expected: 'the-secret-value-1234', want: false },
    { presented: 'short', expected: 'the-secret-value-1234', want: false },
    { presented: 'the-secret-value-1234-and-more', expected: 'the-secret-value-1234', want: false },
    { presented: '', expected: 'the-secret-value-1234', want: false },
    { presented: 'sécret-ünïcode-✓', expected: 'sécret-ünïcode-✓', want: true },
  ];
  for (const tc of table) {
    it(`${JSON.stringify(tc.presented)} vs ${JSON.stringify(tc.expected)} -> ${tc.want}, through timingSafeEqual on two 32-byte digests`, () => {
      calls.length = 0;
      assert.equal(secretsEqual(tc.presented, tc.expected), tc.want);
      assert.equal(calls.length, 1);
      const [a, b] = calls[0]!;
      assert.equal(a.length, 32);
      assert.equal(b.length, 32);
      assert.deepEqual(b, crypto.createHash('sha256').update(tc.expected, 'utf8').digest());
    });
  }

  it('every secret check of every dialect on the real HTTP edge goes through it', async () => {
    const sidecar = await startInProcessSidecar();
    try {
      const digest = crypto.createHash('sha256').update(sidecar.identityHeader, 'utf8').digest();
      const checks: Array<{ name: string; path: string; headers: Record<string, string> }> = [
        { name: 'X-IDENTITY-HEADER', path: `${PATHS.appService}?api-version=2019-08-01&resource=x`, headers: { 'X-IDENTITY-HEADER': 'wrong' } },
        { name: 'MSI secret', path: `${PATHS.msiEndpoint}?api-version=2017-09-01&resource=x`, headers: { secret: 'wrong-and-much-longer-than-the-real-one-0123456789' } },
      ];
      for (const check of checks) {
        calls.length = 0;
        const res = await fetch(`${sidecar.tokenUrl}${check.path}`, { headers: check.headers });
        assert.equal(res.status, 401, check.name);
        await res.text();
        assert.ok(
          calls.some(([a, b]) => a.length === 32 && b.length === 32 && b.equals(digest)),
          `${check.name} not compared with timingSafeEqual on digests`,
        );
      }
      // Arc: the presented key is compared with every pending key.
      const challenge = await fetch(`${sidecar.tokenUrl}${PATHS.arc}?api-version=2020-06-01&resource=x`, { headers: { Metadata: 'true' } });
      assert.equal(challenge.status, 401);
      await challenge.text();
      calls.length = 0;
      const wrong = await fetch(`${sidecar.tokenUrl}${PATHS.arc}?api-version=2020-06-01&resource=x`, { headers: { Metadata: 'true', Authorization: 'Basic wrong-key' } });
      assert.equal(wrong.status, 401);
      await wrong.text();
      assert.ok(calls.length >= 1 && calls.every(([a, b]) => a.length === 32 && b.length === 32), 'Arc key compared in constant time');
    } finally {
      await sidecar.stop();
    }
  });
});

describe('Azure Arc key files on the real filesystem', () => {
  let dir: string;
  let now: number;
  let names: string[];
  const keys: string[] = [];
  const store = (overrides: { maxPending?: number; fileMode?: number } = {}) =>
    createArcKeyStore({
      fs: { writeFile, chmod, unlink },
      keyDir: dir,
      fileMode: overrides.fileMode ?? 0o640,
      nowMs: () => now,
      randomName: () => names.shift() ?? crypto.randomUUID(),
      randomKey: () => {
        const key = crypto.randomBytes(32).toString('hex');
        keys.push(key);
        registerSecret('Arc key (test)', key);
        return key;
      },
      ttlMs: 60_000,
      ...(overrides.maxPending !== undefined ? { maxPending: overrides.maxPending } : {}),
    });
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mi-anywhere-arc-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const fileOf = (realm: string): string => join(dir, basename(realm));
  const modeOf = (path: string): number => statSync(path).mode & 0o777;

  for (const mode of [0o640, 0o600, 0o644]) {
    it(`creates each key file with mode ${mode.toString(8)} whatever the umask, under the realm the SDKs accept`, async () => {
      now = 0;
      names = [];
      const previous = process.umask(0o000);
      try {
        const s = store({ fileMode: mode });
        const realm = await s.issue();
        assert.ok(realm.startsWith(`${ARC_TOKENS_DIR}/`) && realm.endsWith('.key') && !realm.includes('='), realm);
        assert.equal(modeOf(fileOf(realm)), mode);
        await s.close();
      } finally {
        process.umask(previous);
      }
    });
  }

  it('a key is used once: redeemed -> file deleted; the same key again is refused', async () => {
    now = 0;
    names = [];
    const s = store();
    const realm = await s.issue();
    const contents = readFileSync(fileOf(realm), 'utf8');
    assert.equal(await s.redeem('not-the-key'), false);
    assert.ok(existsSync(fileOf(realm)), 'a wrong key does not consume the challenge');
    assert.equal(await s.redeem(contents), true);
    assert.equal(existsSync(fileOf(realm)), false);
    assert.equal(await s.redeem(contents), false);
  });

  it('rotates: every challenge gets a new file and a new key; expired ones are deleted by the sweep', async () => {
    now = 0;
    names = [];
    const s = store();
    const first = await s.issue();
    now = 30_000;
    const second = await s.issue();
    assert.notEqual(first, second);
    assert.notEqual(readFileSync(fileOf(first), 'utf8'), readFileSync(fileOf(second), 'utf8'));
    now = 60_001;
    await s.sweep();
    assert.equal(existsSync(fileOf(first)), false, 'expired key file deleted');
    assert.ok(existsSync(fileOf(second)));
    now = 90_001;
    await s.sweep();
    assert.equal(existsSync(fileOf(second)), false);
    assert.equal(s.pendingCount(), 0);
  });

  it('never writes through a pre-planted file or symlink (O_EXCL), leaving the target untouched', async () => {
    now = 0;
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'precious');
    symlinkSync(victim, join(dir, 'mi-anywhere-planted.key'));
    names = ['planted'];
    const s = store();
    // The O_EXCL refusal surfaces as the sidecar's typed error, with the filesystem's reason kept as the cause.
    await assert.rejects(
      s.issue(),
      (e: { code?: unknown; cause?: { code?: unknown } }) => e.code === 'SIDECAR_ERR_ARC_KEY_DIR' && e.cause?.code === 'EEXIST',
    );
    assert.equal(readFileSync(victim, 'utf8'), 'precious');
    assert.equal(s.pendingCount(), 0);
  });

  it('bounds the files a misbehaving client can make it write (the oldest challenge is dropped beyond maxPending) and deletes all on shutdown', async () => {
    now = 0;
    names = [];
    const s = store({ maxPending: 3 });
    const realms = [await s.issue(), await s.issue(), await s.issue(), await s.issue()];
    assert.equal(existsSync(fileOf(realms[0]!)), false, 'the oldest key file is deleted to make room');
    assert.deepEqual(realms.slice(1).map((r) => existsSync(fileOf(r))), [true, true, true]);
    await s.close();
    for (const realm of realms) assert.equal(existsSync(fileOf(realm)), false);
  });

  it('1000 concurrent challenges on the real filesystem never leave more than maxPending key files', async () => {
    now = 0;
    names = [];
    const earlier = new Set(readdirSync(dir));
    const ours = (): string[] => readdirSync(dir).filter((f) => !earlier.has(f));
    const s = store({ maxPending: 16 });
    await Promise.allSettled(Array.from({ length: 1000 }, () => s.issue()));
    assert.ok(ours().length <= 16, `${ours().length} key files`);
    await s.close();
    assert.deepEqual(ours(), []);
  });

  it('the real program writes the key file with mode 0640, accepts its contents once, and deletes it', async () => {
    const keyDir = mkdtempSync(join(tmpdir(), 'mi-anywhere-arc-sidecar-'));
    const sidecar = await startSidecar({ env: { [SIDECAR_ENV.arcKeyDir]: keyDir } });
    try {
      const url = `${sidecar.tokenUrl}${PATHS.arc}?api-version=2020-06-01&resource=https%3A%2F%2Fvault.azure.net`;
      const challenge = await fetch(url, { headers: { Metadata: 'true' } });
      assert.equal(challenge.status, 401);
      await challenge.text();
      const realm = /^Basic realm=(.+)$/.exec(challenge.headers.get('www-authenticate') ?? '')?.[1] ?? '';
      assert.ok(realm.startsWith(`${ARC_TOKENS_DIR}/`), realm);
      const file = join(keyDir, basename(realm));
      assert.equal(statSync(file).mode & 0o777, 0o640);
      const key = readFileSync(file, 'utf8');
      registerSecret('Arc key (spawned sidecar)', key);
      const ok = await fetch(url, { headers: { Metadata: 'true', Authorization: `Basic ${key}` } });
      assert.equal(ok.status, 200);
      await ok.json();
      assert.equal(existsSync(file), false, 'key file deleted after use');
      const replay = await fetch(url, { headers: { Metadata: 'true', Authorization: `Basic ${key}` } });
      assert.equal(replay.status, 401, 'a used key cannot be replayed');
      await replay.text();
      // A challenge left pending is cleaned up when the sidecar stops.
      const pending = await fetch(url, { headers: { Metadata: 'true' } });
      await pending.text();
      assert.equal(readdirSync(keyDir).length, 1);
      await sidecar.stop();
      assert.equal(sidecar.exitCode(), 0);
      assert.deepEqual(readdirSync(keyDir), [], 'pending key files deleted on shutdown');
    } finally {
      await sidecar.stop();
      rmSync(keyDir, { recursive: true, force: true });
    }
  });
});
