/**
 * Smoke test of `npm run bench -- --quick`: the benchmark runs end to end on this machine (sidecar, references,
 * test authority, the azwi peer, the webhook), stops everything it started, and writes a well-formed report.
 * No timing assertions: speed is what the report is for, not what this test checks.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BEGIN_MARKER, END_MARKER, extractResults, SECTION_NAMES } from '../../bench/lib/report.ts';

const root = join(import.meta.dirname, '..', '..');

interface Results {
  schema: number;
  quick: boolean;
  machine: { cpuModel: string; cores: number; memoryGiB: number; nodeVersion: string; loadAtStart: number[]; loadAtEnd: number[] };
  nodeFlags: { flags: string[]; source: string };
  sections: Record<string, { ok: boolean; error?: string; result?: Record<string, unknown> }>;
}

describe('npm run bench -- --quick', () => {
  it('runs every section and writes a well-formed report', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mi-anywhere-bench-test-'));
    try {
      const out = join(dir, 'performance.md');
      const run = spawnSync(process.execPath, [join(root, 'bench/run.ts'), '--quick', '--out', out], {
        cwd: root,
        encoding: 'utf8',
        // Bounded: a quick run takes well under a minute; a wedged one is killed, not waited for.
        timeout: 240_000,
        killSignal: 'SIGTERM',
      });
      assert.equal(run.error, undefined, `bench did not finish: ${String(run.error)}\n${run.stdout}`);
      assert.equal(run.status, 0, `bench exited ${run.status}\n${run.stdout}\n${run.stderr}`);

      const doc = readFileSync(out, 'utf8');
      assert.ok(doc.includes(BEGIN_MARKER) && doc.includes(END_MARKER), 'generated-section markers');
      for (const heading of ['### Targets', '### 1. Cached token', '### 2. Peer', '### 3. Cold path', '### 4. Webhook', '### 5. Start-up and memory']) {
        assert.ok(doc.includes(heading), `report has "${heading}"`);
      }
      assert.ok(!doc.includes('Not measured'), 'every section was measured');

      const results = extractResults(doc) as Results;
      assert.equal(results.schema, 1);
      assert.equal(results.quick, true);
      assert.ok(results.machine.cpuModel.length > 0);
      assert.ok(results.machine.cores >= 1);
      assert.ok(results.machine.memoryGiB > 0);
      assert.match(results.machine.nodeVersion, /^v24\./);
      assert.equal(results.machine.loadAtStart.length, 3);
      assert.deepEqual(Object.keys(results.sections).sort(), [...SECTION_NAMES].sort());
      for (const name of SECTION_NAMES) {
        const section = results.sections[name];
        assert.equal(section?.ok, true, `${name}: ${section?.error ?? ''}`);
      }

      const cached = results.sections.cached?.result as { cells: Array<{ target: string; connections: number; rps: number; failures: number }> };
      for (const target of ['sidecar-imds', 'sidecar-app-service', 'bare-http', 'express-route']) {
        for (const connections of [1, 10, 50]) {
          const cell = cached.cells.find((c) => c.target === target && c.connections === connections);
          assert.ok(cell, `${target} at ${connections} connections`);
          assert.ok(cell.rps > 0, `${target} at ${connections}: answered requests`);
          assert.equal(cell.failures, 0, `${target} at ${connections}: no failed requests`);
        }
      }
      const cold = results.sections.cold?.result as { rounds: Array<{ upstreamCalls: number; failures: number }> };
      assert.ok(cold.rounds.length > 0);
      for (const round of cold.rounds) {
        // Correctness, not speed: single-flight means one upstream call per cold key.
        assert.equal(round.upstreamCalls, 1);
        assert.equal(round.failures, 0);
      }
      const peer = results.sections.peer?.result as { cells: Array<{ target: string; failures: number; rps: number }> };
      for (const target of ['azwi-proxy', 'sidecar-entra']) {
        const cells = peer.cells.filter((c) => c.target === target);
        assert.equal(cells.length, 3, `${target}: three connection counts`);
        for (const c of cells) {
          assert.equal(c.failures, 0, `${target}: no failed requests`);
          assert.ok(c.rps > 0);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
