/**
 * One bounded memo for the pure functions of one string that every token request calls with the same few values
 * (request targets, Host headers, queries, resources): looking a value up costs less than recomputing it
 * (docs/performance.md, "The HTTP layer on express").
 *
 * Bounded so a client inventing values cannot grow it: when full it is cleared, and keys longer than
 * `maxKeyLength` are computed every time without being kept.
 *
 * Pure: a cache of a pure function changes no answer.
 */
export interface MemoLimits {
  readonly maxEntries: number;
  readonly maxKeyLength?: number;
}

export function memoiseString<T>(fn: (key: string) => T, { maxEntries, maxKeyLength = Number.POSITIVE_INFINITY }: MemoLimits): (key: string) => T {
  const memo = new Map<string, T>();
  return (key) => {
    if (key.length > maxKeyLength) return fn(key);
    let value = memo.get(key);
    if (value === undefined) {
      value = fn(key);
      if (memo.size >= maxEntries) memo.clear();
      memo.set(key, value);
    }
    return value;
  };
}
