import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReadiness } from '../../../../sidecar/http/readiness.ts';

describe('readiness', () => {
  it('dev mode: ready once the default identity is loaded', () => {
    const r = createReadiness({ requireToken: false });
    assert.deepEqual(r.status(), { ready: false, reasons: ['the default identity is not loaded'] });
    r.defaultIdentityLoaded(true);
    assert.deepEqual(r.status(), { ready: true, reasons: [] });
  });
  it('entra mode: also needs a first token, and loses readiness when the default identity is lost', () => {
    const r = createReadiness({ requireToken: true });
    r.defaultIdentityLoaded(true);
    assert.deepEqual(r.status(), { ready: false, reasons: ['no token has been obtained for the default identity yet'] });
    r.tokenObtained();
    assert.equal(r.status().ready, true);
    r.defaultIdentityLoaded(false);
    assert.equal(r.status().ready, false);
  });
});
