/**
 * Pure helpers of the token application (sidecar/http/app.ts); the application itself is exercised over sockets in
 * test/integration/sidecar/.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { sequentialRequestIds } from '../../../../sidecar/http/app.ts';

const UUID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('sequentialRequestIds', () => {
  it('keeps the seed prefix, counts in the last 12 hex digits, and stays UUID-shaped', () => {
    const seed = randomUUID();
    const next = sequentialRequestIds(seed);
    const ids = Array.from({ length: 3 }, () => next());
    assert.deepEqual(ids, [0, 1, 2].map((n) => `${seed.slice(0, 24)}${n.toString(16).padStart(12, '0')}`));
    for (const id of ids) assert.match(id, UUID_SHAPE);
  });

  it('never repeats within a process for any realistic count', () => {
    const next = sequentialRequestIds(randomUUID());
    const seen = new Set(Array.from({ length: 10_000 }, () => next()));
    assert.equal(seen.size, 10_000);
  });

  it('differs between processes (seeds)', () => {
    assert.notEqual(sequentialRequestIds(randomUUID())(), sequentialRequestIds(randomUUID())());
  });
});
