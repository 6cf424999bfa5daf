import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SidecarError } from '../../../../sidecar/errors.ts';
import { arcRealm, parseArcRequest, renderArcChallenge, type ArcRequest } from '../../../../sidecar/protocol/arc.ts';
import { renderToken } from '../../../../sidecar/protocol/render.ts';
import type { RequestLike } from '../../../../sidecar/protocol/common.ts';

const R = 'https%3A%2F%2Fmanagement.azure.com%2F';
const get = (query: string, headers: Record<string, string> = { metadata: 'true' }): RequestLike => ({ method: 'GET', query, headers });

describe('parseArcRequest', () => {
  const cases: { name: string; req: RequestLike; want: ArcRequest }[] = [
    { name: 'first request (no Authorization)', req: get(`api-version=2020-06-01&resource=${R}`), want: { dialect: 'arc', resource: 'https://management.azure.com/', selector: { kind: 'system' }, echo: undefined, presentedKey: undefined } },
    { name: 'azidentity (Go) <= 1.6 api-version 2019-08-15', req: get(`api-version=2019-08-15&resource=${R}`), want: { dialect: 'arc', resource: 'https://management.azure.com/', selector: { kind: 'system' }, echo: undefined, presentedKey: undefined } },
    { name: 'MSAL4J api-version 2019-11-01', req: get(`api-version=2019-11-01&resource=${R}`), want: { dialect: 'arc', resource: 'https://management.azure.com/', selector: { kind: 'system' }, echo: undefined, presentedKey: undefined } },
    { name: 'second request with Basic key (raw, not base64)', req: get(`api-version=2020-06-01&resource=${R}`, { metadata: 'true', authorization: 'Basic abc==def' }), want: { dialect: 'arc', resource: 'https://management.azure.com/', selector: { kind: 'system' }, echo: undefined, presentedKey: 'abc==def' } },
    { name: 'client_id echoed as sent', req: get(`api-version=2020-06-01&resource=${R}&client_id=AbC`), want: { dialect: 'arc', resource: 'https://management.azure.com/', selector: { kind: 'clientId', value: 'AbC' }, echo: { key: 'client_id', value: 'AbC' }, presentedKey: undefined } },
    { name: 'object_id echoed', req: get(`api-version=2020-06-01&resource=${R}&object_id=o`), want: { dialect: 'arc', resource: 'https://management.azure.com/', selector: { kind: 'objectId', value: 'o' }, echo: { key: 'object_id', value: 'o' }, presentedKey: undefined } },
    { name: 'msi_res_id echoed', req: get(`api-version=2020-06-01&resource=${R}&msi_res_id=%2Fsubscriptions%2FX`), want: { dialect: 'arc', resource: 'https://management.azure.com/', selector: { kind: 'resourceId', value: '/subscriptions/X' }, echo: { key: 'msi_res_id', value: '/subscriptions/X' }, presentedKey: undefined } },
  ];
  for (const tc of cases) it(tc.name, () => assert.deepEqual(parseArcRequest(tc.req), tc.want));

  const refused: { name: string; req: RequestLike; code: string; status: number }[] = [
    { name: 'missing Metadata', req: get(`api-version=2020-06-01&resource=${R}`, {}), code: 'SIDECAR_ERR_METADATA_HEADER', status: 400 },
    { name: 'X-Forwarded-For', req: get(`api-version=2020-06-01&resource=${R}`, { metadata: 'true', 'x-forwarded-for': 'x' }), code: 'SIDECAR_ERR_FORWARDED', status: 400 },
    { name: 'api-version older than Arc (2019-08-01)', req: get(`api-version=2019-08-01&resource=${R}`), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400 },
    { name: 'missing api-version', req: get(`resource=${R}`), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400 },
    { name: 'non-Basic Authorization', req: get(`api-version=2020-06-01&resource=${R}`, { metadata: 'true', authorization: 'Bearer x' }), code: 'SIDECAR_ERR_UNAUTHORIZED', status: 401 },
    { name: 'two selectors', req: get(`api-version=2020-06-01&resource=${R}&client_id=a&msi_res_id=b`), code: 'SIDECAR_ERR_BAD_REQUEST', status: 400 },
    { name: 'POST', req: { method: 'POST', query: `api-version=2020-06-01&resource=${R}`, headers: { metadata: 'true' } }, code: 'SIDECAR_ERR_METHOD', status: 405 },
  ];
  for (const tc of refused) {
    it(`refuses: ${tc.name}`, () =>
      assert.throws(() => parseArcRequest(tc.req), (e: unknown) => e instanceof SidecarError && e.code === tc.code && e.httpStatus === tc.status));
  }
});

describe('Arc rendering', () => {
  it('challenge: 401 and exactly "Basic realm=<path>"', () => {
    const r = renderArcChallenge('/var/opt/azcmagent/tokens/abc.key');
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], 'Basic realm=/var/opt/azcmagent/tokens/abc.key');
    // MSAL Python / MSAL.NET / MSAL4J split the header on "=" and need exactly two parts.
    assert.equal(r.headers['www-authenticate']?.split('=').length, 2);
  });
  it('realm refuses names that would break the SDKs', () => {
    assert.equal(arcRealm('/var/opt/azcmagent/tokens', 'a-b_1.key'), '/var/opt/azcmagent/tokens/a-b_1.key');
    for (const bad of ['a=b.key', '../x.key', 'x.txt', 'a/b.key']) assert.throws(() => arcRealm('/var/opt/azcmagent/tokens', bad));
  });
  it('token echoes the selector and keeps client_id', () => {
    const token = { accessToken: 't', expiresOnSeconds: 100, notBeforeSeconds: 0, resource: 'r', clientId: 'cid' };
    assert.equal(JSON.parse(renderToken('arc', token, 0, { key: 'msi_res_id', value: '/subscriptions/X' }).body).msi_res_id, '/subscriptions/X');
    const body = JSON.parse(renderToken('arc', token, 0, { key: 'client_id', value: 'CID' }).body);
    assert.equal(body.client_id, 'CID');
    assert.equal(JSON.parse(renderToken('arc', token, 0, undefined).body).client_id, 'cid');
  });
});
