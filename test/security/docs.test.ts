/**
 * docs/security.md backs every claim with a test. This keeps the citations honest: every cited test file
 * exists, and every word of every cited test name (`*…*` after the file) occurs in that file, so a renamed or
 * deleted test breaks the build instead of leaving a claim without proof. `<placeholders>` stand for template parts.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

it('every test cited in docs/security.md exists with that name', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'security.md'), 'utf8');
  let citations = 0;
  const problems: string[] = [];
  for (const line of doc.split('\n')) {
    const files = [...line.matchAll(/`(test\/[^`*]+?\.ts)`/g)].map((m) => m[1]!);
    if (files.length === 0) continue;
    for (const f of files) if (!existsSync(join(ROOT, f))) problems.push(`missing file ${f}`);
    const source = files.filter((f) => existsSync(join(ROOT, f))).map((f) => readFileSync(join(ROOT, f), 'utf8').replace(/\\'/g, "'")).join('\n');
    // Italics only: drop bold (`**x**`) and code spans (globs such as `invalid-*`) first.
    const prose = line.replace(/\*\*[^*]+\*\*/g, '').replace(/`[^`]*`/g, '');
    for (const m of prose.matchAll(/\*([^*]+)\*/g)) {
      const words = m[1]!.replace(/…/g, ' ').split(/\s+/).filter((w) => w.length >= 3 && !/[<>]/.test(w) && !/^\(.*\)$/.test(w));
      const absent = words.filter((w) => !source.includes(w));
      citations += 1;
      if (absent.length > 0) problems.push(`"${m[1]}" (${files.join(', ')}): ${absent.join(' ')}`);
    }
  }
  assert.ok(citations >= 50, `only ${citations} test names cited`);
  assert.deepEqual(problems, []);
});
