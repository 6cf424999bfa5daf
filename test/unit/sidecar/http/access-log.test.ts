/**
 * The hand-written access line (sidecar/http/access-log.ts) is byte for byte what the sidecar's pino logger
 * (sidecar/log.ts) writes for the same fields: log collectors and the suite-wide secrets scan see one format.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { ACCESS_LINE_MESSAGE, createAccessLog, formatAccessLine, type AccessLine } from '../../../../sidecar/http/access-log.ts';
import { createLogger } from '../../../../sidecar/log.ts';

const base: AccessLine = {
  reqId: '3e2929d2-633f-4f65-a8e0-82b66aaaaaaa',
  dialect: 'imds',
  identity: 'dev-system',
  audience: 'https://vault.azure.net',
  status: 200,
  durationMs: 0.25,
  errorCode: undefined,
  error: undefined,
};

const lines: ReadonlyArray<[string, AccessLine]> = [
  ['a cached token', base],
  ['no audience (unrouted)', { ...base, dialect: 'unknown', identity: '-', audience: undefined, status: 404, errorCode: 'SIDECAR_ERR_NOT_FOUND', error: 'No such endpoint' }],
  ['an error message with quotes, backslashes, controls and non-ASCII', { ...base, dialect: 'cloud-shell', status: 400, errorCode: 'SIDECAR_ERR_BAD_REQUEST', error: 'bad "x" \\ \n\t\u0001 é ✓ \u2028' }],
  ['an unexposed error (code only)', { ...base, dialect: 'app-service', status: 500, errorCode: 'SIDECAR_ERR_INTERNAL' }],
  ['an identity name with odd characters', { ...base, dialect: 'arc', identity: 'team-"a"', durationMs: 12 }],
];

function pinoLine(line: AccessLine, nowMs: number): string {
  let out = '';
  const logger = createLogger({ level: 'info', destination: new Writable({ write: (chunk, _e, done) => ((out += String(chunk)), done()) }) });
  const realNow = Date.now;
  Date.now = () => nowMs;
  try {
    logger.child({}, { redact: [] }).info(line, ACCESS_LINE_MESSAGE);
  } finally {
    Date.now = realNow;
  }
  return out;
}

describe('access line', () => {
  const nowMs = Date.UTC(2026, 11, 4, 18, 30, 0, 123);
  for (const [name, line] of lines) {
    it(`${name}: identical to pino's`, () => {
      assert.equal(formatAccessLine(line, new Date(nowMs).toISOString(), 'mi-anywhere-sidecar'), pinoLine(line, nowMs));
    });
  }
  it('writes nothing when info lines are off', () => {
    const written: string[] = [];
    createAccessLog({ enabled: false, program: 'p', destination: { write: (t) => written.push(t) }, nowMs: () => 0 })(base);
    assert.equal(written.length, 0);
    createAccessLog({ enabled: true, program: 'p', destination: { write: (t) => written.push(t) }, nowMs: () => 0 })(base);
    assert.equal(written.length, 1);
    const { errorCode: _code, error: _error, ...present } = base;
    assert.deepEqual(JSON.parse(written[0]!), { level: 'info', time: '1970-01-01T00:00:00.000Z', program: 'p', ...present, msg: 'token request' });
  });
});
