/**
 * The real-API-server harness (test/helpers/kube.ts) logs a process's stdout and stderr into one file. When one
 * stream ends before the other writes again, the log must keep both and nothing may crash
 * (ERR_STREAM_WRITE_AFTER_END was seen with binaries that exit at once).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startProcess } from '../../helpers/kube.ts';

describe('kube harness process logs', () => {
  it('stdout closing first does not end the log under a later stderr write', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kube-harness-'));
    try {
      const log = join(dir, 'process.log');
      // Closes its stdout, then writes to stderr only when told to (SIGUSR1), i.e. after the parent saw stdout end.
      const script = 'echo out; exec 1>&-; trap "echo late-err >&2; exit 3" USR1; while :; do sleep 0.05; done';
      const child = startProcess('sh', ['-c', script], log);
      await once(child.stdout!, 'end');
      child.kill('SIGUSR1');
      const [code] = await once(child, 'close');
      assert.equal(code, 3);
      await child.logClosed;
      assert.equal(readFileSync(log, 'utf8'), 'out\nlate-err\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
