/**
 * Pure parts of the compatibility matrix: how a driver result becomes a cell (the rules that decide FAIL vs
 * "not supported by that client"), the expectation lookup, the acceptance rules every driver applies, and the
 * rendering of docs/compatibility.md. The real clients run in compat.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acceptanceProblems, type DriverResult, type Observed } from './drivers/protocol.ts';
import { EXPECTATIONS, FINDINGS } from './expectations.ts';
import { axisKey, OLDER_VERSIONS } from './versions.ts';
import {
  CLIENTS,
  COLUMNS,
  cellKey,
  classify,
  expectation,
  profilesServingEveryClient,
  renderMarkdown,
  type Cell,
  type MatrixRun,
  type Unsupported,
} from './matrix.ts';

const versions = { lib: '1.0.0' };
const ok: DriverResult = { variant: 'v', status: 'ok', versions };
const refused: DriverResult = { variant: 'v', status: 'unsupported', error: 'CloudShell refuses user-assigned', versions };
const broken: DriverResult = { variant: 'v', status: 'fail', error: 'appid mismatch', versions };
const expected: Unsupported = { why: 'Cloud Shell is system-assigned only', error: /CloudShell refuses/ };

describe('classify', () => {
  const cases: Array<{ name: string; result: DriverResult | undefined; expected: Unsupported | undefined; kind: Cell['kind']; text?: RegExp }> = [
    { name: 'ok where supported', result: ok, expected: undefined, kind: 'ok' },
    { name: 'refusal that the table lists, with the listed error', result: refused, expected, kind: 'unsupported', text: /CloudShell refuses/ },
    { name: 'refusal in a supported cell is a FAIL', result: refused, expected: undefined, kind: 'fail', text: /CloudShell refuses/ },
    {
      name: 'listed cell failing with another error is a FAIL',
      result: { ...refused, error: 'ECONNREFUSED' },
      expected,
      kind: 'fail',
      text: /not with the expected error.*ECONNREFUSED/,
    },
    { name: 'a failed check is a FAIL even in a listed cell', result: broken, expected, kind: 'fail', text: /appid mismatch/ },
    { name: 'a listed cell that works is reported', result: ok, expected, kind: 'unexpected-ok', text: /expected "not supported"/ },
    { name: 'no result line is a FAIL with the process error', result: undefined, expected: undefined, kind: 'fail', text: /killed/ },
  ];
  it('a client expected to bypass the sidecar must not reach it', () => {
    const bypass: Unsupported = { ...expected, neverReachesSidecar: true };
    assert.equal(classify(refused, bypass, undefined, 0).kind, 'unsupported');
    assert.match(classify(refused, bypass, undefined, 2).text ?? '', /bypass the sidecar, but 2 requests reached it/);
  });
  for (const tc of cases) {
    it(tc.name, () => {
      const cell = classify(tc.result, tc.expected, 'driver process killed after 1 ms');
      assert.equal(cell.kind, tc.kind);
      if (tc.text) assert.match(cell.text ?? '', tc.text);
    });
  }
});

describe('expectation table', () => {
  it('a row entry and a client wildcard are both found; other cells are supported', () => {
    assert.match(expectation(EXPECTATIONS, 'js-msal', 'mi-client-id', 'msi-endpoint')?.why ?? '', /Cloud Shell/);
    assert.match(expectation(EXPECTATIONS, 'go', 'dac', 'pod-identity')?.why ?? '', /AZURE_POD_IDENTITY_AUTHORITY_HOST/);
    assert.equal(expectation(EXPECTATIONS, 'js-msal', 'mi-system', 'msi-endpoint'), undefined);
    assert.equal(expectation(EXPECTATIONS, 'go', 'dac', 'default'), undefined);
  });
  it('every key names a known client, row (or *) and profile; in the default profile only limitation rows are listed', () => {
    for (const [key, u] of EXPECTATIONS) {
      const [release, row, profile] = key.split('/');
      // `<client>@<version>` keys belong to a release of the version axis and only name its rows.
      const [client, version] = (release ?? '').split('@');
      const c = CLIENTS.find((x) => x.id === client);
      assert.ok(c, key);
      const axisRows = version === undefined ? undefined : OLDER_VERSIONS.find((cv) => axisKey(cv) === release)?.rows;
      if (version !== undefined) assert.ok(axisRows, `${key}: no such release in test/compat/versions.ts`);
      assert.ok(row === '*' || (axisRows ?? c.rows.map((r) => r.id)).includes(row ?? ''), key);
      assert.ok(COLUMNS.some((col) => col.profile === profile), key);
      // In the default profile a client may show a defect of its own (it got the token), never refuse.
      if (profile === 'default' && u.defect !== true) {
        assert.ok(c.rows.find((r) => r.id === row)?.limitation, `${key}: the default profile must serve every client`);
      }
    }
  });
  it('a client defect is its own cell kind, only where the table says so and only with the expected text', () => {
    const defect = { why: 'w', error: /no usable expiry/, defect: true as const };
    const failed = { variant: 'v', status: 'fail' as const, error: 'the client reported no usable expiry (NaN, NaN)', versions: {} };
    assert.equal(classify(failed, defect).kind, 'defect');
    assert.equal(classify(failed, undefined).kind, 'fail');
    assert.equal(classify({ ...failed, error: 'appid "x", expected "y"' }, defect).kind, 'fail');
    assert.equal(classify({ ...failed, status: 'unsupported' }, defect).kind, 'fail');
    assert.equal(classify({ variant: 'v', status: 'ok', versions: {} }, defect).kind, 'unexpected-ok');
  });
});

describe('acceptanceProblems (the rules every driver applies)', () => {
  const now = 1_800_000_000;
  const good: Observed = {
    requests1: 1,
    requests2: 0,
    expiresOn1: now + 86_400,
    expiresOn2: now + 86_400,
    sameToken: true,
    aud: 'https://vault.azure.net',
    appid: 'app',
    exp: now + 86_400,
  };
  const cases: Array<{ name: string; o: Partial<Observed>; options?: { expiryToleranceS?: number; processPerCall?: boolean }; problem?: RegExp }> = [
    { name: 'all good', o: {} },
    { name: 'first call never reached the endpoint', o: { requests1: 0 }, problem: /did not reach/ },
    { name: 'second call went to the endpoint', o: { requests2: 1 }, problem: /not served from the client's cache/ },
    { name: 'a CLI may call again if the token is the same', o: { requests2: 1 }, options: { processPerCall: true } },
    { name: 'expiry "now" (broken caching)', o: { expiresOn1: now, expiresOn2: now }, problem: /not far in the future/ },
    // @azure/identity 2.x: Date.parse of an epoch string; NaN compares false with everything.
    { name: 'expiry NaN', o: { expiresOn1: Number.NaN, expiresOn2: Number.NaN }, problem: /no usable expiry/ },
    { name: 'expiry not the token exp', o: { exp: now + 3600 }, problem: /differs from the token's exp/ },
    { name: 'second expiry moved', o: { expiresOn2: now + 86_401 }, problem: /different token or expiry/ },
    { name: 'second expiry moved within tolerance', o: { expiresOn2: now + 86_401 }, options: { expiryToleranceS: 2 } },
    { name: 'different token', o: { sameToken: false }, problem: /different token/ },
    { name: 'wrong audience', o: { aud: 'https://storage.azure.com' }, problem: /aud/ },
    { name: 'an aud that is not the requested resource string', o: { aud: 'https://vault.azure.net/' }, problem: /aud/ },
    { name: 'wrong identity', o: { appid: 'other' }, problem: /appid "other"/ },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const problems = acceptanceProblems('https://vault.azure.net', 'app', { ...good, ...tc.o }, now, tc.options);
      if (tc.problem === undefined) assert.deepEqual(problems, []);
      else assert.ok(problems.some((p) => tc.problem?.test(p)), problems.join('; '));
    });
  }
});

describe('renderMarkdown', () => {
  const cells = new Map<string, Cell>();
  for (const client of CLIENTS) for (const row of client.rows) for (const col of COLUMNS) cells.set(cellKey(client.id, row.id, col.id), { kind: 'ok' });
  const run: MatrixRun = { columns: COLUMNS, cells, versions: new Map([['go', { azidentity: 'v1.15.0' }]]), generatedAt: '2026-11-26T08:00:00Z', durationS: 1 };

  it('names the default profile when its column is all OK', () => {
    assert.ok(profilesServingEveryClient(run).includes('default'));
    const md = renderMarkdown(run, EXPECTATIONS, FINDINGS);
    assert.match(md, /injects the \*\*`default`\*\* profile/);
    assert.match(md, /azidentity v1\.15\.0/);
  });
  it('marks FAIL cells, numbers identical notes once, and withdraws the default when a cell fails', () => {
    const failing = new Map(cells);
    failing.set(cellKey('go', 'dac', 'default'), { kind: 'fail', text: 'boom' });
    failing.set(cellKey('go', 'mi-system', 'default'), { kind: 'fail', text: 'boom' });
    const md = renderMarkdown({ ...run, cells: failing }, EXPECTATIONS, FINDINGS);
    assert.match(md, /\*\*FAIL\*\* \[1\]/);
    assert.doesNotMatch(md, /\[2\]/);
    assert.match(md, /No profile serves every client/);
  });
});
