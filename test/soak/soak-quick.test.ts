/**
 * The soak in its quick form inside `npm test` (issue 8): `node test/soak/soak.ts --quick` — about 60 s of mixed
 * traffic on every dialect with identity rotations and upstream faults — must end with zero unexpected failures,
 * a flat memory profile and every dialect served. The full 10-minute run is `npm run soak`.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';

it('quick soak: zero unexpected failures, memory flat, every dialect served', async (t) => {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'soak.ts'), '--quick'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  // Bounded: the run takes about 60 s plus start-up; a stuck run is killed and fails.
  const killer = setTimeout(() => child.kill('SIGKILL'), 240_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(killer);
  for (const line of output.split('\n').filter((l) => l.startsWith('soak summary') || l.startsWith('memory:'))) t.diagnostic(line);
  assert.equal(code, 0, output);
  const summary = JSON.parse(/^soak summary (.*)$/m.exec(output)?.[1] ?? '{}') as { unexpectedFailures?: number; cycles?: number; rotations?: number; faults?: string[] };
  assert.equal(summary.unexpectedFailures, 0);
  assert.ok((summary.cycles ?? 0) >= 3 && (summary.rotations ?? 0) >= 3, output);
  assert.ok(new Set(summary.faults).size >= 3, `too few distinct faults: ${summary.faults?.join(', ')}`);
  assert.match(output, /^memory: RSS .* flat$/m);
});
