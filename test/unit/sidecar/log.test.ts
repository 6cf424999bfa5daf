import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../../../sidecar/log.ts';

describe('logger redaction', () => {
  it('never writes tokens, header secrets or client secrets', () => {
    let out = '';
    const sink = new Writable({
      write(chunk: Buffer, _e, done) {
        out += chunk.toString();
        done();
      },
    });
    const logger = createLogger({ level: 'debug', destination: sink });
    logger.info({
      req: { headers: { authorization: 'Basic ARC-KEY-123', 'x-identity-header': 'HEADER-SECRET-456', secret: 'MSI-SECRET-789' } },
      body: { access_token: 'eyJ.TOKEN.abc', refresh_token: 'REFRESH-1' },
      access_token: 'eyJ.TOP.level',
      identity: { clientSecret: 'CLIENT-SECRET-1', material: { clientSecret: 'CLIENT-SECRET-2' } },
      config: { identityHeader: 'CONFIG-HEADER', credentials: 'CREDS' },
      form: { client_secret: 'CS-3', client_assertion: 'ASSERT-4', password: 'PW-5' },
    }, 'request');
    for (const secret of ['ARC-KEY-123', 'HEADER-SECRET-456', 'MSI-SECRET-789', 'TOKEN', 'TOP.level', 'REFRESH-1', 'CLIENT-SECRET', 'CONFIG-HEADER', 'CREDS', 'CS-3', 'ASSERT-4', 'PW-5']) {
      assert.ok(!out.includes(secret), `${secret} leaked: ${out}`);
    }
    assert.match(out, /\[REDACTED\]/);
    assert.match(out, /"msg":"request"/);
  });
});
