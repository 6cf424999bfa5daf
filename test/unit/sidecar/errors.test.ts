import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as errors from '../../../sidecar/errors.ts';

const root = join(import.meta.dirname, '..', '..', '..');
const source = readFileSync(join(root, 'sidecar', 'errors.ts'), 'utf8');
const doc = readFileSync(join(root, 'docs', 'errors.md'), 'utf8');

/** Every `SIDECAR_ERR_*` literal in errors.ts (new classes are picked up without touching this test). */
const codes = [...source.matchAll(/'(SIDECAR_ERR_[A-Z_]+)'/g)].map((m) => m[1] as string);

describe('error catalogue', () => {
  it('has codes', () => assert.ok(codes.length >= 10, `found only ${codes.length}`));
  it('codes are unique', () => assert.deepEqual(codes, [...new Set(codes)]));
  for (const code of codes) {
    it(`${code} is documented in docs/errors.md`, () => assert.ok(doc.includes(`\`${code}\``), `${code} missing from docs/errors.md`));
  }
  it('docs/errors.md documents no code that does not exist', () => {
    const documented = [...doc.matchAll(/`(SIDECAR_ERR_[A-Z_]+)`/g)].map((m) => m[1]);
    for (const code of documented) assert.ok(codes.includes(code as string), `${code} is documented but not defined`);
  });
  it('documented HTTP statuses match the classes', () => {
    const instances: errors.SidecarError[] = [
      new errors.BadRequestError('x'),
      new errors.MissingMetadataHeaderError(),
      new errors.ForwardedRequestError(),
      new errors.UnauthorizedError('x'),
      new errors.MethodNotAllowedError('PUT', ['GET']),
      new errors.NotFoundError(),
      new errors.PayloadTooLargeError('x', 1),
      new errors.IdentityNotFoundError('x'),
      new errors.UpstreamRejectedError({ oauthError: 'invalid_client', aadsts: undefined, hint: 'x' }),
      new errors.UpstreamUnavailableError('x'),
      new errors.CredentialUnavailableError('x'),
      new errors.RateLimitedError(1),
      new errors.InternalError(new Error('x')),
      new errors.NotAProxyError(),
      new errors.UriTooLongError(1),
      new errors.HeadersTooLargeError(1),
      new errors.DialectDisabledError('x'),
    ];
    for (const e of instances) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${e.code}\``));
      assert.ok(row, e.code);
      assert.equal(row.split('|')[2]?.trim(), String(e.httpStatus), `${e.code} status`);
      assert.ok(!/unreachable/i.test(e.message), `${e.code} must not say "unreachable" (SDKs read it as "no MI here")`);
    }
  });
  it('IdentityNotFoundError carries the text SDKs look for', () => {
    assert.match(new errors.IdentityNotFoundError('x').message, /^Identity not found/);
    assert.ok(!new errors.MissingMetadataHeaderError().message.includes('Identity not found'));
  });
});
