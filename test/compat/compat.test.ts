/**
 * The compatibility matrix: the real, current Azure client libraries of JavaScript, Python (azure-identity,
 * msal, Azure CLI), Go and Java, each in its own process with only the environment the webhook injects for one
 * profile, against a running sidecar — with the built-in dev issuer for every profile, and in entra mode against
 * the local test Entra authority (client-secret identities) for the combined `default` profile.
 *
 * Writes docs/compatibility.md and fails for every FAIL cell: a cell the client supports that is not OK, a cell the
 * expectation table (expectations.ts) says the client refuses that fails in some other way, and a listed cell that
 * starts to work (the table must then be updated).
 *
 * Needs the clients provisioned by scripts/provision.d/2*-*.sh (npm test runs them); a missing one fails its cells
 * with the exact reason. The Arc profile needs /var/opt/azcmagent/tokens (the directory every SDK insists the key
 * file lives in): created here when missing (the test runs as root in CI) and removed afterwards by the last run
 * that uses it (see prepareArcDir).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ARC_TOKENS_DIR } from '../../sidecar/contract.ts';
import { startTestAuthority, type TestAuthority } from '../authority/authority.ts';
import { node24, REPO_ROOT, startSidecar, type SpawnedSidecar } from '../helpers/sidecar.ts';
import { registerSecret } from '../helpers/collected-logs.ts';
import { EXPECTATIONS, FINDINGS } from './expectations.ts';
import {
  CLIENTS,
  COLUMNS,
  IDENTITIES,
  cellKey,
  profilesServingEveryClient,
  renderMarkdown,
  type MatrixRun,
} from './matrix.ts';
import { runMatrix, toolchain, type SidecarEndpoint } from './run-matrix.ts';
import { axisKey, OLDER_VERSIONS } from './versions.ts';

const DOC = join(REPO_ROOT, 'docs', 'compatibility.md');
/** Hand-written sections of the doc (version choice, accepted api-versions, client defects, .NET, run time). */
const DOC_SECTIONS = join(import.meta.dirname, 'doc');

function docSections(): string[] {
  return readdirSync(DOC_SECTIONS)
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => readFileSync(join(DOC_SECTIONS, f), 'utf8'));
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message.split('\n').slice(0, 6).join(' ') : String(err);
}

/**
 * The Arc key directory must be the real /var/opt/azcmagent/tokens (the SDKs insist on it). Several test runs may
 * share a machine, so each run puts a marker file in it, and the tree is removed only by the last run to leave and
 * only if a compat run created it (recorded next to it): `rmdir` of a directory that still holds another run's
 * marker (or a key file) fails, which is exactly the "still in use" test.
 */
const ARC_CREATED_RECORD = join(dirname(ARC_TOKENS_DIR), '.mi-anywhere-compat-created');

function prepareArcDir(): { ok: true; marker: string } | { ok: false; reason: string } {
  const marker = join(ARC_TOKENS_DIR, `.mi-anywhere-compat-${String(process.pid)}-${randomBytes(4).toString('hex')}`);
  try {
    for (let attempt = 0; ; attempt++) {
      if (!existsSync(ARC_TOKENS_DIR)) {
        const parts = ARC_TOKENS_DIR.split('/').filter(Boolean);
        const top = parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`).find((p) => !existsSync(p)) ?? ARC_TOKENS_DIR;
        mkdirSync(ARC_TOKENS_DIR, { recursive: true });
        writeFileSync(ARC_CREATED_RECORD, top);
      }
      try {
        writeFileSync(marker, '', { flag: 'wx' });
        return { ok: true, marker };
      } catch (err) {
        // Another run removed the directory between our check and the marker: create it again (once).
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 0) throw err;
      }
    }
  } catch (err) {
    return { ok: false, reason: `cannot create ${ARC_TOKENS_DIR} (the Arc key directory the SDKs insist on): ${errorText(err)}` };
  }
}

function releaseArcDir(marker: string): void {
  rmSync(marker, { force: true });
  if (!existsSync(ARC_CREATED_RECORD)) return; // not created by a compat run: never removed
  try {
    rmdirSync(ARC_TOKENS_DIR);
  } catch {
    return; // another run's marker or a key file is still there: that run cleans up
  }
  let top: string;
  try {
    top = readFileSync(ARC_CREATED_RECORD, 'utf8').trim();
    rmSync(ARC_CREATED_RECORD, { force: true });
  } catch {
    return;
  }
  for (let dir = dirname(ARC_TOKENS_DIR); top !== ARC_TOKENS_DIR && dir.startsWith(top) && dir !== '/'; dir = dirname(dir)) {
    try {
      rmdirSync(dir);
    } catch {
      return;
    }
  }
}

function writeIdentity(root: string, name: string, files: Record<string, string>): void {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, value] of Object.entries(files)) writeFileSync(join(dir, file), value, { mode: 0o600 });
}

describe('compatibility matrix: real Azure SDKs × injection profiles', () => {
  let run: MatrixRun | undefined;
  let runError: unknown;
  let devSidecar: SpawnedSidecar | undefined;
  let entraSidecar: SpawnedSidecar | undefined;
  let authority: TestAuthority | undefined;
  let work: string | undefined;
  let arcMarker: string | undefined;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'mi-anywhere-compat-'));
    const arc = prepareArcDir();
    if (arc.ok) arcMarker = arc.marker;

    let dev: SidecarEndpoint | string;
    try {
      devSidecar = await startSidecar({ env: arc.ok ? { MI_ANYWHERE_ARC_KEY_DIR: ARC_TOKENS_DIR } : {} });
      dev = devSidecar;
    } catch (err) {
      dev = `dev-mode sidecar did not start: ${errorText(err)}`;
    }

    // Entra mode against the local test authority: the same client/object/resource ids as the dev identities, so
    // every expectation is shared; each identity authenticates with its own client secret.
    let entra: SidecarEndpoint | string;
    try {
      authority = await startTestAuthority({ tenantId: IDENTITIES.tenantId });
      const identities = join(work, 'identities');
      const sysSecret = randomBytes(24).toString('base64url');
      const userSecret = randomBytes(24).toString('base64url');
      authority.registerApp({ clientId: IDENTITIES.system.clientId, objectId: IDENTITIES.system.objectId, secrets: [sysSecret] });
      authority.registerApp({ clientId: IDENTITIES.user.clientId, objectId: IDENTITIES.user.objectId, secrets: [userSecret] });
      writeIdentity(identities, IDENTITIES.system.name, {
        tenantId: IDENTITIES.tenantId,
        clientId: IDENTITIES.system.clientId,
        objectId: IDENTITIES.system.objectId,
        clientSecret: sysSecret,
      });
      writeIdentity(identities, IDENTITIES.user.name, {
        tenantId: IDENTITIES.tenantId,
        clientId: IDENTITIES.user.clientId,
        objectId: IDENTITIES.user.objectId,
        resourceId: IDENTITIES.user.resourceId,
        clientSecret: userSecret,
      });
      // The header is passed explicitly: in entra mode the sidecar prints `IDENTITY_HEADER=$MI_ANYWHERE_IDENTITY_HEADER`
      // (a reference, not the value), and the helper's `identityHeader` then holds that reference.
      const entraHeader = randomBytes(24).toString('hex');
      registerSecret('compat: dev-system client secret', sysSecret);
      registerSecret('compat: dev-user client secret', userSecret);
      entraSidecar = await startSidecar({
        args: [],
        env: {
          MI_ANYWHERE_IDENTITY_HEADER: entraHeader,
          MI_ANYWHERE_MODE: 'entra',
          MI_ANYWHERE_IDENTITY_DIR: identities,
          MI_ANYWHERE_DEFAULT_IDENTITY: IDENTITIES.system.name,
          MI_ANYWHERE_AUTHORITY_HOST: authority.url,
          NODE_EXTRA_CA_CERTS: authority.caFile,
        },
      });
      entra = { tokenUrl: entraSidecar.tokenUrl, identityHeader: entraHeader };
    } catch (err) {
      entra = `entra-mode sidecar with the test authority did not start: ${errorText(err)}`;
    }

    try {
      run = await runMatrix({
        columns: COLUMNS,
        // Without the key directory the Arc cells fail with the reason instead of a confusing SDK error.
        ...(arc.ok ? {} : { columnFailures: { arc: arc.reason } }),
        sidecars: { dev, entra },
        expectations: EXPECTATIONS,
        axis: OLDER_VERSIONS,
        toolchain: toolchain(process.env['MI_ANYWHERE_CACHE'], node24()),
        // Driver processes are mostly waiting (JVM/CLI start-up is the CPU part); two per core keeps a 2-core
        // machine busy without starving the sidecar.
        concurrency: Math.max(2, Math.min(4, availableParallelism() * 2)),
        processTimeoutMs: 120_000,
        callTimeoutMs: 20_000,
      });
      writeFileSync(DOC, renderMarkdown(run, EXPECTATIONS, FINDINGS, { axis: OLDER_VERSIONS, sections: docSections() }));
    } catch (err) {
      runError = err;
    }
  });

  after(async () => {
    await Promise.all([devSidecar?.stop(), entraSidecar?.stop()]);
    await authority?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
    if (arcMarker !== undefined) releaseArcDir(arcMarker);
  });

  test('the matrix ran and docs/compatibility.md was regenerated', () => {
    assert.equal(runError, undefined, `matrix run failed: ${errorText(runError)}`);
    assert.ok(run);
    const devColumns = COLUMNS.filter((c) => c.backend === 'dev').length;
    const expectedCells =
      CLIENTS.reduce((n, c) => n + c.rows.length, 0) * COLUMNS.length + OLDER_VERSIONS.reduce((n, cv) => n + cv.rows.length, 0) * devColumns;
    assert.equal(run.cells.size, expectedCells, 'every client × row × column has a cell');
    assert.ok(existsSync(DOC));
  });

  for (const client of CLIENTS) {
    for (const row of client.rows) {
      test(`${client.title}: ${row.title}`, () => {
        assert.ok(run, `matrix run failed: ${errorText(runError)}`);
        const bad: string[] = [];
        for (const column of COLUMNS) {
          const cell = run.cells.get(cellKey(client.id, row.id, column.id));
          if (cell === undefined) bad.push(`${column.id}: no result`);
          else if (cell.kind === 'fail') bad.push(`${column.id}: FAIL: ${cell.text ?? ''}`);
          else if (cell.kind === 'unexpected-ok') bad.push(`${column.id}: ${cell.text ?? ''} — update test/compat/expectations.ts`);
        }
        assert.deepEqual(bad, [], bad.join('\n'));
      });
    }
  }

  for (const cv of OLDER_VERSIONS) {
    test(`version axis: ${cv.client} ${cv.version}`, () => {
      assert.ok(run, `matrix run failed: ${errorText(runError)}`);
      const bad: string[] = [];
      for (const column of COLUMNS.filter((c) => c.backend === 'dev')) {
        for (const row of cv.rows) {
          const cell = run.cells.get(cellKey(axisKey(cv), row, column.id));
          if (cell === undefined) bad.push(`${row}/${column.id}: no result`);
          else if (cell.kind === 'fail') bad.push(`${row}/${column.id}: FAIL: ${cell.text ?? ''}`);
          else if (cell.kind === 'unexpected-ok') bad.push(`${row}/${column.id}: ${cell.text ?? ''} — update test/compat/expectations.ts`);
        }
      }
      assert.deepEqual(bad, [], bad.join('\n'));
    });
  }

  test('the default injection profile serves every client', () => {
    assert.ok(run, `matrix run failed: ${errorText(runError)}`);
    assert.ok(
      profilesServingEveryClient(run).includes('default'),
      `profileEnv('default') in sidecar/contract.ts does not serve every client; profiles that do: ${profilesServingEveryClient(run).join(', ') || 'none'}`,
    );
    // The test-authority column runs the same profile against real Entra-style token acquisition: the sidecar
    // really fetched both identities' tokens from the authority with their client secrets.
    assert.ok(authority, 'the test authority ran');
    for (const id of [IDENTITIES.system.clientId, IDENTITIES.user.clientId]) {
      assert.ok(authority.calls({ endpoint: 'token', clientId: id, status: 200, credentialType: 'secret' }).length > 0, `the authority issued a token to ${id}`);
    }
    for (const client of CLIENTS) {
      for (const row of client.rows.filter((r) => r.limitation !== true)) {
        assert.equal(run.cells.get(cellKey(client.id, row.id, 'default-entra'))?.kind, 'ok', `${client.id}/${row.id} with the test authority`);
      }
    }
  });
});
