import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { unexpectedFailureText } from '../../../../sidecar/startup/failure.ts';

describe('unexpectedFailureText', () => {
  const bug = new TypeError("Cannot read properties of undefined (reading 'x')\nsecond line");
  const cases: ReadonlyArray<{ name: string; error: unknown; logLevel: string | undefined; lines: number; stack: boolean }> = [
    { name: 'default log level: one line, no stack, how to get it', error: bug, logLevel: undefined, lines: 1, stack: false },
    { name: 'info: one line', error: bug, logLevel: 'info', lines: 1, stack: false },
    { name: 'debug: the line, then the stack', error: bug, logLevel: 'debug', lines: 0, stack: true },
    { name: 'trace: the line, then the stack', error: bug, logLevel: 'trace', lines: 0, stack: true },
    { name: 'not an Error: its text, one line', error: 'boom', logLevel: 'debug', lines: 1, stack: false },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const text = unexpectedFailureText(tc.error, tc.logLevel);
      const [first] = text.split('\n');
      assert.match(first ?? '', /^mi-anywhere sidecar: unexpected error at start-up: (Cannot read properties of undefined \(reading 'x'\)|boom)/);
      assert.ok(text.endsWith('\n'));
      if (tc.lines > 0) assert.equal(text.trimEnd().split('\n').length, tc.lines, text);
      assert.equal(text.includes('    at '), tc.stack, text);
      if (!tc.stack && tc.error instanceof Error) assert.match(text, /MI_ANYWHERE_LOG_LEVEL=debug also prints its stack/);
    });
  }
});
