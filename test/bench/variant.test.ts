/**
 * The `--variant name=tree[:ENV=VALUE,...]` argument of bench/compare.ts: splits at the first `=` and `:` only, so
 * values keep their own `=` and `:`; malformed arguments are refused with the text that was given.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseVariant } from '../../bench/lib/variant.ts';

describe('parseVariant', () => {
  const cases = [
    { text: 'base=/tree', want: { name: 'base', tree: '/tree', env: {} } },
    { text: 'patched=/other/tree:MI_ANYWHERE_LOG_LEVEL=warn', want: { name: 'patched', tree: '/other/tree', env: { MI_ANYWHERE_LOG_LEVEL: 'warn' } } },
    { text: 'p=/t:A=1,B=2', want: { name: 'p', tree: '/t', env: { A: '1', B: '2' } } },
    { text: 'p=/t:SECRET=YWJj==', want: { name: 'p', tree: '/t', env: { SECRET: 'YWJj==' } } },
    { text: 'p=/t:URL=http://127.0.0.1:8080/?a=b', want: { name: 'p', tree: '/t', env: { URL: 'http://127.0.0.1:8080/?a=b' } } },
    { text: 'p=/t:EMPTY=', want: { name: 'p', tree: '/t', env: { EMPTY: '' } } },
  ];
  for (const tc of cases) it(`${tc.text}`, () => assert.deepEqual(parseVariant(tc.text), tc.want));

  for (const text of ['=/tree', 'base', 'base=', 'p=/t:NOVALUE', 'p=/t:=1']) {
    it(`refuses ${text}`, () => assert.throws(() => parseVariant(text), new RegExp(text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))));
  }
});
