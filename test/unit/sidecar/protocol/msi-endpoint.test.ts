import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IdentityNotFoundError, SidecarError } from '../../../../sidecar/errors.ts';
import type { RequestLike, TokenRequest } from '../../../../sidecar/protocol/common.ts';
import { parseMsiEndpointRequest } from '../../../../sidecar/protocol/msi-endpoint.ts';
import { renderError } from '../../../../sidecar/protocol/render.ts';

const SECRET = 'a-very-long-msi-secret-value';
const ctx = { secret: SECRET };
const R = 'https://vault.azure.net';
const get = (query: string, headers: Record<string, string>): RequestLike => ({ method: 'GET', query, headers });
const post = (body: string, headers: Record<string, string>): RequestLike => ({ method: 'POST', query: '', headers, body });

describe('parseMsiEndpointRequest: accepted requests', () => {
  const ml = (selector: TokenRequest['selector']): TokenRequest => ({ dialect: 'msi-endpoint', resource: R, selector });
  const cs = (selector: TokenRequest['selector']): TokenRequest => ({ dialect: 'cloud-shell', resource: R, selector });
  const cases: { name: string; req: RequestLike; want: TokenRequest }[] = [
    { name: 'Azure ML GET with secret', req: get(`api-version=2017-09-01&resource=${encodeURIComponent(R)}`, { secret: SECRET }), want: ml({ kind: 'system' }) },
    { name: 'Azure ML GET with secret and Metadata (JS)', req: get(`api-version=2017-09-01&resource=${encodeURIComponent(R)}`, { secret: SECRET, metadata: 'true' }), want: ml({ kind: 'system' }) },
    { name: 'Azure ML clientid', req: get(`api-version=2017-09-01&resource=${R}&clientid=c1`, { secret: SECRET }), want: ml({ kind: 'clientId', value: 'c1' }) },
    { name: 'Azure ML empty clientid (MSAL Go) = system', req: get(`api-version=2017-09-01&resource=${R}&clientid=`, { secret: SECRET }), want: ml({ kind: 'system' }) },
    { name: 'clientid=DEFAULT placeholder = system', req: get(`api-version=2017-09-01&resource=${R}&clientid=DEFAULT`, { secret: SECRET }), want: ml({ kind: 'system' }) },
    { name: 'az App Service 2017 raw resource first', req: get(`resource=${R}&api-version=2017-09-01&clientid=c1`, { secret: SECRET }), want: ml({ kind: 'clientId', value: 'c1' }) },
    { name: 'Azure ML object_id (msal-python)', req: get(`api-version=2017-09-01&resource=${R}&object_id=o1`, { secret: SECRET }), want: ml({ kind: 'objectId', value: 'o1' }) },
    { name: 'Azure ML msi_res_id (msal-python)', req: get(`api-version=2017-09-01&resource=${R}&msi_res_id=%2Fsubscriptions%2Fs`, { secret: SECRET }), want: ml({ kind: 'resourceId', value: '/subscriptions/s' }) },
    { name: 'MSAL4J Cloud Shell GET: Metadata, no secret, no api-version', req: get(`resource=${encodeURIComponent(R)}`, { metadata: 'true' }), want: ml({ kind: 'system' }) },
    { name: 'Cloud Shell POST', req: post(`resource=${encodeURIComponent(R)}`, { metadata: 'true', 'content-type': 'application/x-www-form-urlencoded' }), want: cs({ kind: 'system' }) },
    { name: 'Cloud Shell POST without Content-Type (MSAL.NET sends "ContentType")', req: post(`resource=${R}`, { metadata: 'true', contenttype: 'application/x-www-form-urlencoded' }), want: cs({ kind: 'system' }) },
    { name: 'Cloud Shell POST client_id in body (az 2.45)', req: post(`resource=${R}&client_id=c1`, { metadata: 'true' }), want: cs({ kind: 'clientId', value: 'c1' }) },
    { name: 'Cloud Shell POST object_id in body', req: post(`resource=${R}&object_id=o1`, { metadata: 'true' }), want: cs({ kind: 'objectId', value: 'o1' }) },
    { name: 'Cloud Shell POST msi_res_id in body', req: post(`resource=${R}&msi_res_id=%2Fsubscriptions%2Fs`, { metadata: 'true' }), want: cs({ kind: 'resourceId', value: '/subscriptions/s' }) },
    { name: 'Cloud Shell POST with the right secret', req: post(`resource=${R}`, { metadata: 'true', secret: SECRET }), want: cs({ kind: 'system' }) },
  ];
  for (const tc of cases) it(tc.name, () => assert.deepEqual(parseMsiEndpointRequest(tc.req, ctx), tc.want));
});

describe('parseMsiEndpointRequest: refused requests', () => {
  const cases: { name: string; req: RequestLike; code: string; status: number; message: RegExp }[] = [
    { name: 'GET with wrong secret', req: get(`resource=${R}`, { secret: 'nope' }), code: 'SIDECAR_ERR_UNAUTHORIZED', status: 401, message: /secret does not match/ },
    { name: 'GET with wrong secret even with Metadata', req: get(`resource=${R}`, { secret: 'nope', metadata: 'true' }), code: 'SIDECAR_ERR_UNAUTHORIZED', status: 401, message: /secret/ },
    { name: 'GET with neither secret nor Metadata', req: get(`resource=${R}`, {}), code: 'SIDECAR_ERR_METADATA_HEADER', status: 400, message: /metadata header/ },
    { name: 'GET X-Forwarded-For', req: get(`resource=${R}`, { secret: SECRET, 'x-forwarded-for': '1.1.1.1' }), code: 'SIDECAR_ERR_FORWARDED', status: 400, message: /Forwarded/ },
    { name: 'GET old api-version', req: get(`api-version=2017-01-01&resource=${R}`, { secret: SECRET }), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /2017-09-01 or later/ },
    { name: 'GET missing resource', req: get('api-version=2017-09-01', { secret: SECRET }), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /resource is missing/ },
    { name: 'GET duplicate clientid', req: get(`resource=${R}&clientid=a&clientid=b`, { secret: SECRET }), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /Duplicate query parameter: clientid/ },
    { name: 'GET clientid and object_id', req: get(`resource=${R}&clientid=a&object_id=b`, { secret: SECRET }), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /Only one identity selector/ },
    { name: 'POST without Metadata', req: post(`resource=${R}`, {}), code: 'SIDECAR_ERR_METADATA_HEADER', status: 400, message: /metadata header/ },
    { name: 'POST with wrong secret', req: post(`resource=${R}`, { metadata: 'true', secret: 'nope' }), code: 'SIDECAR_ERR_UNAUTHORIZED', status: 401, message: /secret/ },
    { name: 'POST without resource', req: post('', { metadata: 'true' }), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /resource is missing/ },
    { name: 'POST two selectors', req: post(`resource=${R}&client_id=a&object_id=b`, { metadata: 'true' }), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /Only one identity selector/ },
    { name: 'POST duplicate resource', req: post(`resource=${R}&resource=${R}`, { metadata: 'true' }), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400, message: /Duplicate/ },
    { name: 'PUT', req: { method: 'PUT', query: '', headers: { metadata: 'true' } }, code: 'SIDECAR_ERR_METHOD', status: 405, message: /use GET or POST/ },
  ];
  for (const tc of cases) {
    it(tc.name, () =>
      assert.throws(
        () => parseMsiEndpointRequest(tc.req, ctx),
        (e: unknown) => e instanceof SidecarError && e.code === tc.code && e.httpStatus === tc.status && tc.message.test(e.message),
      ));
  }
});

describe('MSI_ENDPOINT error shapes', () => {
  const error = new IdentityNotFoundError('no identity has client id x');
  it('GET (Azure ML / App Service 2017): App Service shape', () => {
    assert.deepEqual(JSON.parse(renderError('msi-endpoint', error, 'c-1').body), {
      statusCode: 400,
      message: 'Identity not found: no identity has client id x',
      correlationId: 'c-1',
      error: 'invalid_request',
      error_description: 'Identity not found: no identity has client id x',
    });
  });
  it('Cloud Shell POST: nested error object', () => {
    assert.deepEqual(JSON.parse(renderError('cloud-shell', error, 'c-1').body), {
      error: { code: 'invalid_request', message: 'Identity not found: no identity has client id x' },
    });
  });
});
