/**
 * The edge's two renderers: every dialect answers a token with the same body (Arc alone echoes the selector), and
 * each dialect's errors come in one of three shapes (IMDS, App Service, Cloud Shell).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IdentityNotFoundError } from '../../../../sidecar/errors.ts';
import { DIALECTS, type Dialect } from '../../../../sidecar/protocol/dialect.ts';
import { renderError, renderToken } from '../../../../sidecar/protocol/render.ts';

const token = { accessToken: 'jwt', expiresOnSeconds: 2000, notBeforeSeconds: 900, resource: 'https://vault.azure.net', clientId: 'cid' };
const echo = { key: 'object_id', value: 'OID' };

describe('renderToken', () => {
  const withoutEcho = renderToken('imds', token, 1000);
  for (const dialect of DIALECTS.filter((d) => d !== 'arc')) {
    it(`${dialect}: the common body, and no selector echo even when one is passed`, () => {
      assert.deepEqual(renderToken(dialect, token, 1000, echo), withoutEcho);
    });
  }
  it('arc: the common body plus the selector echo', () => {
    assert.deepEqual(JSON.parse(renderToken('arc', token, 1000, echo).body), { ...JSON.parse(withoutEcho.body), object_id: 'OID' });
  });
});

describe('renderError', () => {
  const error = new IdentityNotFoundError('no identity has client id x');
  const message = 'Identity not found: no identity has client id x';
  const imds = { error: 'invalid_request', error_description: message };
  const appService = { statusCode: 400, message, correlationId: 'c-1', error: 'invalid_request', error_description: message };
  const cloudShell = { error: { code: 'invalid_request', message } };
  const shapes: Readonly<Record<Dialect, unknown>> = {
    imds,
    arc: imds,
    unknown: imds,
    'app-service': appService,
    'msi-endpoint': appService,
    'cloud-shell': cloudShell,
  };
  for (const dialect of DIALECTS) {
    it(`${dialect}: its own shape, status and error code header`, () => {
      const r = renderError(dialect, error, 'c-1');
      assert.equal(r.status, 400);
      assert.equal(r.headers['x-mi-anywhere-error'], 'SIDECAR_ERR_IDENTITY_NOT_FOUND');
      assert.deepEqual(JSON.parse(r.body), shapes[dialect]);
    });
  }
});
