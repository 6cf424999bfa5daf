import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeComponent, parseParams, renderTokenBody, secretsEqual } from '../../../../sidecar/protocol/common.ts';

describe('decodeComponent', () => {
  const cases: [string, string][] = [
    ['https%3A%2F%2Fvault.azure.net', 'https://vault.azure.net'],
    ['https://vault.azure.net', 'https://vault.azure.net'],
    ['a+b', 'a b'],
    ['a%2Bb', 'a+b'],
    ['100%', '100%'],
    ['%E0%A4%A', '%E0%A4%A'],
    ['', ''],
  ];
  for (const [raw, want] of cases) it(JSON.stringify(raw), () => assert.equal(decodeComponent(raw), want));
});

describe('parseParams', () => {
  it('first value wins, duplicates reported once, empty segments ignored, names decoded', () => {
    const p = parseParams('&a=1&b=&a=2&a=3&c&msi%5Fres%5Fid=x&');
    assert.deepEqual([...p.values], [['a', '1'], ['b', ''], ['c', ''], ['msi_res_id', 'x']]);
    assert.deepEqual(p.duplicates, ['a']);
  });
  it('values may contain "=" (base64-like ids)', () => assert.equal(parseParams('k=a=b==').values.get('k'), 'a=b=='));
  it('names are case-sensitive like IMDS', () => assert.deepEqual(parseParams('Resource=x&resource=y').duplicates, []));
});

describe('secretsEqual', () => {
  const cases: [string, string, boolean][] = [
    ['abc', 'abc', true],
    ['abc', 'abd', false],
    ['abc', 'abcd', false],
    ['', 'abc', false],
    ['ABC', 'abc', false],
  ];
  for (const [a, b, want] of cases) it(`${a} vs ${b}`, () => assert.equal(secretsEqual(a, b), want));
});

describe('renderTokenBody', () => {
  const token = { accessToken: 't', expiresOnSeconds: 1000.9, notBeforeSeconds: 10.2, resource: 'r', clientId: 'c' };
  it('integers only (MSAL Go rejects floats, docs/protocols.md §3.1)', () => {
    const body = renderTokenBody(token, 400.5);
    assert.equal(body['expires_on'], '1000');
    assert.equal(body['expires_in'], '600');
    assert.equal(body['not_before'], '10');
  });
  it('expires_in never negative', () => assert.equal(renderTokenBody(token, 5000)['expires_in'], '0'));
  it('adds the echo key', () => assert.equal(renderTokenBody(token, 0, { key: 'object_id', value: 'o' })['object_id'], 'o'));
});
