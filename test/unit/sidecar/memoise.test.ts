import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { memoiseString } from '../../../sidecar/memoise.ts';

/** A function that counts its calls, to see which lookups were answered from the memo. */
function counted(): { fn: (key: string) => string; calls: string[] } {
  const calls: string[] = [];
  return { calls, fn: (key) => (calls.push(key), key.toUpperCase()) };
}

describe('memoiseString', () => {
  it('computes a key once and answers repeats from the memo', () => {
    const { fn, calls } = counted();
    const memo = memoiseString(fn, { maxEntries: 4 });
    assert.deepEqual(['a', 'b', 'a', 'a', 'b'].map(memo), ['A', 'B', 'A', 'A', 'B']);
    assert.deepEqual(calls, ['a', 'b']);
  });

  it('is cleared when full, so invented keys cannot grow it', () => {
    const { fn, calls } = counted();
    const memo = memoiseString(fn, { maxEntries: 2 });
    for (const key of ['a', 'b', 'c', 'a']) memo(key);
    // 'c' found the memo full and cleared it: 'a' is computed again.
    assert.deepEqual(calls, ['a', 'b', 'c', 'a']);
  });

  it('computes keys longer than maxKeyLength every time without keeping them', () => {
    const { fn, calls } = counted();
    const memo = memoiseString(fn, { maxEntries: 4, maxKeyLength: 3 });
    for (const key of ['long', 'long', 'abc', 'abc']) memo(key);
    assert.deepEqual(calls, ['long', 'long', 'abc']);
  });
});
