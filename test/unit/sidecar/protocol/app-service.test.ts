import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IdentityNotFoundError, SidecarError, UpstreamUnavailableError } from '../../../../sidecar/errors.ts';
import { parseAppServiceRequest, renderAppServiceError } from '../../../../sidecar/protocol/app-service.ts';
import { renderToken } from '../../../../sidecar/protocol/render.ts';
import type { RequestLike, TokenRequest } from '../../../../sidecar/protocol/common.ts';

const SECRET = 'a-very-long-identity-header-value';
const ctx = { identityHeader: SECRET };
const RES = 'https%3A%2F%2Fvault.azure.net';
const req = (query: string, headers: Record<string, string> = { 'x-identity-header': SECRET }, method = 'GET'): RequestLike => ({ method, query, headers });
const base = `api-version=2019-08-01&resource=${RES}`;

describe('parseAppServiceRequest: accepted requests', () => {
  const want = (selector: TokenRequest['selector']): TokenRequest => ({ dialect: 'app-service', resource: 'https://vault.azure.net', selector });
  const cases: { name: string; req: RequestLike; want: TokenRequest }[] = [
    { name: 'system-assigned', req: req(base), want: want({ kind: 'system' }) },
    { name: 'extra Metadata: true (MSAL Python) tolerated', req: req(base, { 'x-identity-header': SECRET, metadata: 'true' }), want: want({ kind: 'system' }) },
    { name: 'client_id', req: req(`${base}&client_id=c`), want: want({ kind: 'clientId', value: 'c' }) },
    { name: 'object_id', req: req(`${base}&object_id=o`), want: want({ kind: 'objectId', value: 'o' }) },
    { name: 'principal_id (older azidentity)', req: req(`${base}&principal_id=o`), want: want({ kind: 'objectId', value: 'o' }) },
    { name: 'mi_res_id', req: req(`${base}&mi_res_id=/subscriptions/s`), want: want({ kind: 'resourceId', value: '/subscriptions/s' }) },
    { name: 'msi_res_id', req: req(`${base}&msi_res_id=/subscriptions/s`), want: want({ kind: 'resourceId', value: '/subscriptions/s' }) },
  ];
  for (const tc of cases) it(tc.name, () => assert.deepEqual(parseAppServiceRequest(tc.req, ctx), tc.want));
});

describe('parseAppServiceRequest: refused requests', () => {
  const cases: { name: string; req: RequestLike; code: string; status: number; message: RegExp }[] = [
    { name: 'missing X-IDENTITY-HEADER', req: req(base, {}), code: 'SIDECAR_ERR_UNAUTHORIZED', status: 401, message: /X-IDENTITY-HEADER is missing/ },
    { name: 'wrong X-IDENTITY-HEADER', req: req(base, { 'x-identity-header': 'wrong' }), code: 'SIDECAR_ERR_UNAUTHORIZED', status: 401, message: /does not match/ },
    { name: 'secret as a prefix is still wrong', req: req(base, { 'x-identity-header': SECRET.slice(0, -1) }), code: 'SIDECAR_ERR_UNAUTHORIZED', status: 401, message: /does not match/ },
    { name: 'X-Forwarded-For', req: req(base, { 'x-identity-header': SECRET, 'x-forwarded-for': '1.2.3.4' }), code: 'SIDECAR_ERR_FORWARDED', status: 400, message: /X-Forwarded-For/ },
    { name: 'POST', req: req(base, { 'x-identity-header': SECRET }, 'POST'), code: 'SIDECAR_ERR_METHOD', status: 405, message: /POST/ },
    { name: 'missing api-version', req: req(`resource=${RES}`), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /api-version was not specified/ },
    { name: 'api-version 2017-09-01 (other protocol)', req: req(`api-version=2017-09-01&resource=${RES}`), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /2019-08-01 or later/ },
    { name: 'missing resource', req: req('api-version=2019-08-01'), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /resource is missing/ },
    { name: 'duplicate selector', req: req(`${base}&client_id=a&client_id=b`), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /Duplicate/ },
    { name: 'object_id and principal_id together', req: req(`${base}&object_id=a&principal_id=a`), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /object_id and principal_id/ },
  ];
  for (const tc of cases) {
    it(tc.name, () =>
      assert.throws(
        () => parseAppServiceRequest(tc.req, ctx),
        (e: unknown) => e instanceof SidecarError && e.code === tc.code && e.httpStatus === tc.status && tc.message.test(e.message),
      ));
  }
});

describe('App Service rendering', () => {
  it('success body has every field and no error keys', () => {
    const r = renderToken('app-service', { accessToken: 't', expiresOnSeconds: 5000, notBeforeSeconds: 1000, resource: 'r', clientId: 'c' }, 1000);
    const body = JSON.parse(r.body) as Record<string, string>;
    assert.deepEqual(Object.keys(body).sort(), ['access_token', 'client_id', 'expires_in', 'expires_on', 'ext_expires_in', 'not_before', 'resource', 'token_type']);
    assert.equal(body['expires_in'], '4000');
  });
  it('error body: statusCode/message/correlationId plus error/error_description', () => {
    const r = renderAppServiceError(new IdentityNotFoundError('no identity has client id c'), 'corr-1');
    assert.equal(r.status, 400);
    assert.deepEqual(JSON.parse(r.body), {
      statusCode: 400,
      message: 'Identity not found: no identity has client id c',
      correlationId: 'corr-1',
      error: 'invalid_request',
      error_description: 'Identity not found: no identity has client id c',
    });
  });
  it('Retry-After when the error has one', () => {
    const r = renderAppServiceError(new UpstreamUnavailableError('Entra unreachable', { retryAfterSeconds: 4.2 }), 'c');
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '5');
  });
});
