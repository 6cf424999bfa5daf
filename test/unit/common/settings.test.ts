import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deepFreeze, editDistance, isServiceLinkVariable, parseDecimal, SettingsReader, suggestName } from '../../../common/settings.ts';

describe('parseDecimal', () => {
  const cases: [string, number | undefined][] = [
    ['0', 0],
    ['80', 80],
    ['-1', -1],
    ['65535', 65535],
    ['0x0', undefined],
    ['0o17', undefined],
    ['0b1', undefined],
    ['1e3', undefined],
    [' 80', undefined],
    ['80 ', undefined],
    ['+80', undefined],
    ['08', undefined],
    ['1_000', undefined],
    ['1.0', undefined],
    ['', undefined],
    ['Infinity', undefined],
    ['9007199254740993', undefined],
  ];
  for (const [value, want] of cases) it(`${JSON.stringify(value)} → ${want}`, () => assert.equal(parseDecimal(value), want));
});

describe('isServiceLinkVariable', () => {
  const cases: [string, string, boolean][] = [
    ['MI_ANYWHERE_WEBHOOK_SERVICE_HOST', '10.96.0.1', true],
    ['MI_ANYWHERE_WEBHOOK_SERVICE_HOST', 'fd00::1', true],
    ['MI_ANYWHERE_WEBHOOK_SERVICE_PORT', '443', true],
    ['MI_ANYWHERE_WEBHOOK_SERVICE_PORT_HTTPS', '443', true],
    ['MI_ANYWHERE_WEBHOOK_PORT', 'tcp://10.96.0.1:443', true],
    ['MI_ANYWHERE_WEBHOOK_PORT_443_TCP', 'tcp://10.96.0.1:443', true],
    ['MI_ANYWHERE_WEBHOOK_PORT_443_TCP_PROTO', 'tcp', true],
    ['MI_ANYWHERE_WEBHOOK_PORT_443_TCP_PORT', '443', true],
    ['MI_ANYWHERE_WEBHOOK_PORT_443_TCP_ADDR', '10.96.0.1', true],
    // A real setting's shape with a real setting's value: not a link, so a typo in it is still reported.
    ['MI_ANYWHERE_TOKN_PORT', '8080', false],
    ['MI_ANYWHERE_WEBHOOK_SERVICE_HOST', 'example.com', false],
    ['MI_ANYWHERE_LOG_LEVL', 'debug', false],
  ];
  for (const [name, value, want] of cases) it(`${name}=${value} → ${want}`, () => assert.equal(isServiceLinkVariable(name, value), want));
});

describe('suggestName', () => {
  const known = ['MI_ANYWHERE_TOKEN_PORT', 'MI_ANYWHERE_HEALTH_PORT', 'MI_ANYWHERE_IDENTITY_DIR', 'MI_ANYWHERE_LOG_LEVEL', 'MI_ANYWHERE_MODE'];
  const cases: [string, string | undefined][] = [
    ['MI_ANYWHERE_TOKN_PORT', 'MI_ANYWHERE_TOKEN_PORT'],
    ['MI_ANYWHERE_TOKEN_PROT', 'MI_ANYWHERE_TOKEN_PORT'],
    ['MI_ANYWHERE_LOGLEVEL', 'MI_ANYWHERE_LOG_LEVEL'],
    ['MI_ANYWHERE_IDENTITY', 'MI_ANYWHERE_IDENTITY_DIR'],
    ['MI_ANYWHERE_MOD', 'MI_ANYWHERE_MODE'],
    ['MI_ANYWHERE_COLOUR', undefined],
    ['MI_ANYWHERE_CACHE_SIZE', undefined],
  ];
  for (const [name, want] of cases) it(`${name} → ${want}`, () => assert.equal(suggestName(name, known), want));
  it('edit distance counts an adjacent swap as one edit', () => assert.equal(editDistance('PROT', 'PORT'), 1));
});

describe('SettingsReader', () => {
  it('collects every problem and keeps reading with fallbacks', () => {
    const r = new SettingsReader({ A_PORT: 'x', A_LEVEL: 'loud', A_ON: 'maybe', A_CMD: 'node', A_URL: 'ftp://x' });
    assert.equal(r.port('A_PORT', 1), 1);
    assert.equal(r.oneOf('A_LEVEL', ['info', 'debug'] as const, 'info'), 'info');
    assert.equal(r.boolean('A_ON', false), false);
    assert.deepEqual(r.stringArray('A_CMD', ['node']), ['node']);
    assert.equal(r.url('A_URL'), undefined);
    assert.equal(r.problems.length, 5, r.problems.join('\n'));
  });
  it('blank means unset; numbers are not trimmed, other values are', () => {
    const r = new SettingsReader({ A: ' ', B: ' info ', C: '' });
    assert.equal(r.port('A', 7), 7);
    assert.equal(r.string('B', 'x'), 'info');
    assert.equal(r.raw('C'), undefined);
    assert.equal(r.isPresent('C'), true);
    assert.deepEqual(r.problems, []);
  });
  it('a range message replaces the default one', () => {
    const r = new SettingsReader({ N: '-1' });
    r.integer('N', 0, { min: 0, max: 10, rangeMessage: 'must be 0 (off) or more' });
    assert.deepEqual(r.problems, ['N: must be 0 (off) or more (got -1)']);
  });
  it('names under the prefix must be known; foreign ones are skipped', () => {
    const r = new SettingsReader(
      { P_ONE: '1', P_TOW: '2', P_OTHER_X: '3', Q_TOW: '4' },
      { prefix: 'P_', known: ['P_ONE', 'P_TWO'], foreign: (name) => name.startsWith('P_OTHER_'), docs: 'the docs' },
    );
    assert.deepEqual(r.problems, ['P_TOW: unknown setting; did you mean P_TWO?']);
  });
});

describe('deepFreeze', () => {
  it('freezes nested objects and arrays and returns the same object', () => {
    const value = { a: { b: [1, { c: 2 }] } };
    assert.equal(deepFreeze(value), value);
    assert.ok(Object.isFrozen(value) && Object.isFrozen(value.a) && Object.isFrozen(value.a.b) && Object.isFrozen(value.a.b[1]));
  });
});
