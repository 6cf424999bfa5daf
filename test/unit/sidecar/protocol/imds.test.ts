import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SidecarError } from '../../../../sidecar/errors.ts';
import { parseImdsRequest, renderImdsError } from '../../../../sidecar/protocol/imds.ts';
import { renderToken } from '../../../../sidecar/protocol/render.ts';
import type { RequestLike, TokenRequest } from '../../../../sidecar/protocol/common.ts';
import { IdentityNotFoundError, RateLimitedError, InternalError, MethodNotAllowedError } from '../../../../sidecar/errors.ts';

const RES = 'https%3A%2F%2Fvault.azure.net';
const ok = (query: string, headers: Record<string, string> = { metadata: 'true' }, method = 'GET'): RequestLike => ({ method, query, headers });

describe('parseImdsRequest: accepted requests', () => {
  const cases: { name: string; req: RequestLike; want: TokenRequest }[] = [
    { name: 'system-assigned, encoded resource', req: ok(`api-version=2018-02-01&resource=${RES}`), want: { dialect: 'imds', resource: 'https://vault.azure.net', selector: { kind: 'system' } } },
    { name: 'raw resource (azure-identity Python)', req: ok('api-version=2018-02-01&resource=https://vault.azure.net'), want: { dialect: 'imds', resource: 'https://vault.azure.net', selector: { kind: 'system' } } },
    { name: 'resource before api-version (az CLI)', req: ok(`resource=${RES}&api-version=2018-02-01`), want: { dialect: 'imds', resource: 'https://vault.azure.net', selector: { kind: 'system' } } },
    { name: 'later api-version', req: ok(`api-version=2021-02-01&resource=${RES}`), want: { dialect: 'imds', resource: 'https://vault.azure.net', selector: { kind: 'system' } } },
    { name: 'client_id', req: ok(`api-version=2018-02-01&resource=${RES}&client_id=abc`), want: { dialect: 'imds', resource: 'https://vault.azure.net', selector: { kind: 'clientId', value: 'abc' } } },
    { name: 'object_id', req: ok(`api-version=2018-02-01&resource=${RES}&object_id=oid`), want: { dialect: 'imds', resource: 'https://vault.azure.net', selector: { kind: 'objectId', value: 'oid' } } },
    { name: 'msi_res_id', req: ok(`api-version=2018-02-01&resource=${RES}&msi_res_id=%2Fsubscriptions%2Fx`), want: { dialect: 'imds', resource: 'https://vault.azure.net', selector: { kind: 'resourceId', value: '/subscriptions/x' } } },
    { name: 'mi_res_id (MSAL4J)', req: ok(`api-version=2018-02-01&resource=${RES}&mi_res_id=/subscriptions/x`), want: { dialect: 'imds', resource: 'https://vault.azure.net', selector: { kind: 'resourceId', value: '/subscriptions/x' } } },
    { name: 'msi-res-id (.NET probe)', req: ok(`api-version=2018-02-01&resource=${RES}&msi-res-id=/subscriptions/x`), want: { dialect: 'imds', resource: 'https://vault.azure.net', selector: { kind: 'resourceId', value: '/subscriptions/x' } } },
    { name: 'empty selector counts as absent', req: ok(`api-version=2018-02-01&resource=${RES}&client_id=`), want: { dialect: 'imds', resource: 'https://vault.azure.net', selector: { kind: 'system' } } },
    { name: 'unknown parameters ignored (xms_cc, bypass_cache)', req: ok(`api-version=2018-02-01&resource=${RES}&xms_cc=cp1&bypass_cache=true`), want: { dialect: 'imds', resource: 'https://vault.azure.net', selector: { kind: 'system' } } },
    { name: 'Metadata value case-insensitive', req: ok(`api-version=2018-02-01&resource=${RES}`, { metadata: 'True' }), want: { dialect: 'imds', resource: 'https://vault.azure.net', selector: { kind: 'system' } } },
    { name: 'plus in resource decodes to space (form encoding)', req: ok('api-version=2018-02-01&resource=a+b'), want: { dialect: 'imds', resource: 'a b', selector: { kind: 'system' } } },
    { name: 'malformed percent escape kept raw', req: ok('api-version=2018-02-01&resource=https://x/%zz'), want: { dialect: 'imds', resource: 'https://x/%zz', selector: { kind: 'system' } } },
  ];
  for (const tc of cases) {
    it(tc.name, () => assert.deepEqual(parseImdsRequest(tc.req), tc.want));
  }
});

describe('parseImdsRequest: refused requests', () => {
  const cases: { name: string; req: RequestLike; code: string; status: number; message: RegExp }[] = [
    { name: 'missing Metadata header', req: ok(`api-version=2018-02-01&resource=${RES}`, {}), code: 'SIDECAR_ERR_METADATA_HEADER', status: 400, message: /^Required metadata header not specified$/ },
    { name: 'Metadata: false', req: ok(`api-version=2018-02-01&resource=${RES}`, { metadata: 'false' }), code: 'SIDECAR_ERR_METADATA_HEADER', status: 400, message: /metadata header/ },
    { name: 'X-Forwarded-For', req: ok(`api-version=2018-02-01&resource=${RES}`, { metadata: 'true', 'x-forwarded-for': '10.0.0.1' }), code: 'SIDECAR_ERR_FORWARDED', status: 400, message: /X-Forwarded-For/ },
    { name: 'Forwarded', req: ok(`api-version=2018-02-01&resource=${RES}`, { metadata: 'true', forwarded: 'for=10.0.0.1' }), code: 'SIDECAR_ERR_FORWARDED', status: 400, message: /X-Forwarded-For/ },
    { name: 'POST', req: ok(`api-version=2018-02-01&resource=${RES}`, { metadata: 'true' }, 'POST'), code: 'SIDECAR_ERR_METHOD', status: 405, message: /POST is not allowed/ },
    { name: 'missing api-version', req: ok(`resource=${RES}`), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /api-version was not specified/ },
    { name: 'too old api-version', req: ok(`api-version=2017-12-01&resource=${RES}`), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /2018-02-01 or later/ },
    { name: 'malformed api-version', req: ok(`api-version=latest&resource=${RES}`), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /not supported/ },
    { name: 'missing resource', req: ok('api-version=2018-02-01'), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /resource is missing/ },
    { name: 'empty resource', req: ok('api-version=2018-02-01&resource='), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /resource is missing/ },
    { name: 'duplicate resource', req: ok(`api-version=2018-02-01&resource=${RES}&resource=x`), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /Duplicate query parameter: resource/ },
    { name: 'duplicate client_id', req: ok(`api-version=2018-02-01&resource=${RES}&client_id=a&client_id=a`), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /Duplicate query parameter: client_id/ },
    { name: 'two different selectors', req: ok(`api-version=2018-02-01&resource=${RES}&client_id=a&object_id=b`), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /Only one identity selector may be given, got client_id and object_id/ },
    { name: 'two resource-id spellings', req: ok(`api-version=2018-02-01&resource=${RES}&msi_res_id=a&mi_res_id=a`), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /msi_res_id and mi_res_id/ },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      assert.throws(
        () => parseImdsRequest(tc.req),
        (e: unknown) => e instanceof SidecarError && e.code === tc.code && e.httpStatus === tc.status && tc.message.test(e.message),
      );
    });
  }
});

describe('IMDS rendering', () => {
  it('renders the success body with digit-string times consistent with the token', () => {
    const r = renderToken('imds', { accessToken: 'jwt', expiresOnSeconds: 2000, notBeforeSeconds: 900, resource: 'https://vault.azure.net', clientId: 'cid' }, 1000);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
    assert.deepEqual(JSON.parse(r.body), {
      access_token: 'jwt',
      client_id: 'cid',
      expires_in: '1000',
      expires_on: '2000',
      ext_expires_in: '1000',
      not_before: '900',
      resource: 'https://vault.azure.net',
      token_type: 'Bearer',
    });
  });
  const errors: { name: string; error: SidecarError; status: number; body: unknown; headers: Record<string, string> }[] = [
    { name: 'identity not found', error: new IdentityNotFoundError('no identity has client id x'), status: 400, body: { error: 'invalid_request', error_description: 'Identity not found: no identity has client id x' }, headers: {} },
    { name: 'rate limited carries Retry-After', error: new RateLimitedError(2), status: 429, body: { error: 'too_many_requests', error_description: 'Too many token requests; retry later' }, headers: { 'retry-after': '2' } },
    { name: 'method not allowed carries Allow', error: new MethodNotAllowedError('PUT', ['GET']), status: 405, body: { error: 'invalid_request', error_description: 'Method PUT is not allowed here; use GET' }, headers: { allow: 'GET' } },
    { name: 'internal error hides its cause', error: new InternalError(new Error('secret detail')), status: 500, body: { error: 'server_error', error_description: 'Internal error in the identity sidecar' }, headers: {} },
  ];
  for (const tc of errors) {
    it(`renders ${tc.name}`, () => {
      const r = renderImdsError(tc.error);
      assert.equal(r.status, tc.status);
      assert.deepEqual(JSON.parse(r.body), tc.body);
      assert.equal(r.headers['x-mi-anywhere-error'], tc.error.code);
      for (const [k, v] of Object.entries(tc.headers)) assert.equal(r.headers[k], v);
    });
  }
});
