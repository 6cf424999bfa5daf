/**
 * A node:test reporter that counts finished tests (suites excluded, as node's own summary does) and writes
 * `{"passed":N,"failed":N,"skipped":N}` to its destination. `scripts/test.ts` runs the suite in two
 * invocations (the log checks must run after everything else) and sums both counts into one closing line.
 */
import type { TestEvent } from 'node:test/reporters';

export default async function* countReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    if (event.data.details.type === 'suite') continue;
    if (event.type === 'test:fail') failed += 1;
    else if (event.data.skip !== undefined || event.data.todo !== undefined) skipped += 1;
    else passed += 1;
  }
  yield JSON.stringify({ passed, failed, skipped });
}
