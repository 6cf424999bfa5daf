/**
 * The msal logger bridge: one `level` key per line (msal's level is `msalLevel`), the correlation id as a field,
 * and msal's per-acquisition "No client info in response" warning dropped (client credentials never carry
 * client_info). The end-to-end check that a token request writes no msal WARN line is in
 * test/integration/entra/sidecar-entra.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { msalLogLine } from '../../../../sidecar/token/msal-log.ts';

const PREFIX = '[Fri, 04 Dec 2026 18:19:12 GMT] : [7c5a5d78-f6e7-405f-8448-08954e177e76] : @azure/msal-node@7.2.3 : ';

describe('msalLogLine', () => {
  const cases = [
    { name: 'expected client-credentials noise is dropped', level: 'warning', raw: `${PREFIX}Warning - No client info in response`, expected: undefined },
    {
      name: 'other warnings keep their text, with msalLevel and correlationId fields',
      level: 'warning',
      raw: `${PREFIX}Warning - Region discovery returned an invalid region. Using the global authority.`,
      expected: {
        fields: { source: 'msal', msalLevel: 'warning', correlationId: '7c5a5d78-f6e7-405f-8448-08954e177e76' },
        message: 'Region discovery returned an invalid region. Using the global authority.',
      },
    },
    {
      name: 'an error with the same text as the noise is kept',
      level: 'error',
      raw: `${PREFIX}Error - No client info in response`,
      expected: { fields: { source: 'msal', msalLevel: 'error', correlationId: '7c5a5d78-f6e7-405f-8448-08954e177e76' }, message: 'No client info in response' },
    },
    { name: 'an unprefixed line is kept as is', level: 'error', raw: 'something odd', expected: { fields: { source: 'msal', msalLevel: 'error' }, message: 'something odd' } },
  ] as const;
  for (const tc of cases) {
    it(tc.name, () => {
      const line = msalLogLine(tc.level, tc.raw);
      assert.deepEqual(line, tc.expected);
      assert.ok(line === undefined || !('level' in line.fields), 'never a second `level` key');
    });
  }
});
