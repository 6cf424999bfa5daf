import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { handleReview } from '../../../webhook/admission/handler.ts';
import { allowed, denied, errored, parseReview, patched, salvageUid } from '../../../webhook/admission/review.ts';
import * as errors from '../../../webhook/errors.ts';
import { createLogger } from '../../../webhook/log.ts';
import { createWebhookMetrics } from '../../../webhook/metrics.ts';
import { fixtureDeps } from '../../helpers/admission-fixtures.ts';

const review = (request: unknown) => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request });
const podRequest = { uid: 'u-1', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'ns', object: { metadata: { name: 'p' }, spec: { containers: [{ name: 'a' }] } } };

describe('parseReview', () => {
  const bad: Array<{ name: string; body: unknown; want: RegExp; uid: string }> = [
    { name: 'not an object', body: [], want: /not a JSON object/, uid: '' },
    { name: 'v1beta1', body: { ...review(podRequest), apiVersion: 'admission.k8s.io/v1beta1' }, want: /apiVersion must be admission.k8s.io\/v1/, uid: 'u-1' },
    { name: 'wrong kind', body: { ...review(podRequest), kind: 'Pod' }, want: /kind must be AdmissionReview/, uid: 'u-1' },
    { name: 'no request', body: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, want: /request is missing/, uid: '' },
    { name: 'missing uid', body: review({ ...podRequest, uid: undefined }), want: /request.uid is missing/, uid: '' },
    { name: 'empty uid', body: review({ ...podRequest, uid: '' }), want: /request.uid is missing/, uid: '' },
    { name: 'no kind', body: review({ ...podRequest, kind: undefined }), want: /request.kind is missing/, uid: 'u-1' },
    { name: 'no operation', body: review({ ...podRequest, operation: 5 }), want: /request.operation is missing/, uid: 'u-1' },
    { name: 'object not an object', body: review({ ...podRequest, object: 'pod' }), want: /request.object is not an object/, uid: 'u-1' },
  ];
  for (const tc of bad) {
    it(`rejects ${tc.name}, and the handler still answers with the uid it could find`, () => {
      assert.throws(() => parseReview(tc.body), (e: unknown) => e instanceof errors.BadReviewError && tc.want.test(e.message));
      const result = handleReview(tc.body, fixtureDeps('x'));
      assert.equal(result.outcome, 'error');
      assert.equal(result.review.response.uid, tc.uid);
      assert.equal(result.review.response.allowed, false);
      assert.equal(result.review.response.status?.code, 400);
      assert.equal(salvageUid(tc.body), tc.uid);
    });
  }
  it('a pod creation without an object is an errored review', () => {
    const result = handleReview(review({ ...podRequest, object: undefined }), fixtureDeps('x'));
    assert.equal(result.review.response.status?.code, 400);
    assert.match(result.review.response.status?.message ?? '', /request.object is missing/);
  });
  it('other kinds and operations pass untouched', () => {
    for (const request of [{ ...podRequest, operation: 'UPDATE' }, { ...podRequest, kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }, { ...podRequest, subResource: 'ephemeralcontainers' }]) {
      const result = handleReview(review(request), fixtureDeps('x'));
      assert.deepEqual(result.review.response, { uid: 'u-1', allowed: true });
      assert.equal(result.outcome, 'skipped');
    }
  });
});

describe('review constructors', () => {
  it('allowed / patched / denied / errored', () => {
    assert.deepEqual(allowed('u'), { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u', allowed: true } });
    assert.deepEqual(allowed('u', ['w']).response.warnings, ['w']);
    assert.deepEqual(patched('u', []).response, { uid: 'u', allowed: true }, 'an empty patch is no patch');
    const p = patched('u', [{ op: 'add', path: '/a', value: 1 }]).response;
    assert.equal(p.patchType, 'JSONPatch');
    assert.deepEqual(JSON.parse(Buffer.from(p.patch ?? '', 'base64').toString()), [{ op: 'add', path: '/a', value: 1 }]);
    assert.deepEqual(denied('u', new errors.InvalidAnnotationError('k', 'why')).response, { uid: 'u', allowed: false, status: { code: 403, message: 'annotation k: why', reason: 'Forbidden' } });
    const hidden = errored('u', new errors.InternalError({ cause: new Error('secret detail') })).response;
    assert.deepEqual(hidden.status, { code: 500, message: 'internal error in the mi-anywhere webhook' });
  });
});

describe('error catalogue', () => {
  const instances: errors.WebhookError[] = [
    new errors.ConfigError(['x']),
    new errors.BadReviewError('x'),
    new errors.UnsupportedMediaTypeError('text/plain'),
    new errors.PayloadTooLargeError(1),
    new errors.InvalidAnnotationError('k', 'x'),
    new errors.PodRefusedError('x'),
    new errors.CertificateError('x'),
    new errors.InternalError(),
  ];
  it('every code is unique, listed, has a status, and is documented in docs/webhook.md', () => {
    const docs = readFileSync(join(import.meta.dirname, '..', '..', '..', 'docs', 'webhook.md'), 'utf8');
    const codes = instances.map((e) => e.code);
    assert.equal(new Set(codes).size, codes.length);
    assert.deepEqual([...codes].sort(), [...errors.WEBHOOK_ERROR_CODES].sort());
    for (const e of instances) {
      assert.ok(e.httpStatus >= 400 && e.httpStatus < 600, e.code);
      assert.ok(docs.includes(e.code), `${e.code} missing from docs/webhook.md`);
      assert.equal(e.name, e.constructor.name);
    }
  });
});

describe('logging', () => {
  it('redacts keys, tokens and the identity header', () => {
    let out = '';
    const destination = new Writable({ write(chunk, _enc, cb) { out += String(chunk); cb(); } });
    const logger = createLogger({ level: 'debug', destination });
    logger.info({ keyPem: 'PRIVATE-KEY-PEM', secret: { data: { 'tls.key': 'S0VZ' } }, identityHeader: 'per-pod-secret-value', req: { headers: { authorization: 'Bearer eyJ.token' } }, cert: { privateKey: 'PK' } }, 'x');
    for (const leaked of ['PRIVATE-KEY-PEM', 'S0VZ', 'per-pod-secret-value', 'eyJ.token', '"PK"']) assert.ok(!out.includes(leaked), `${leaked} leaked: ${out}`);
    assert.match(out, /\[REDACTED\]/);
  });
});

describe('metrics', () => {
  it('names, pre-created series, build info', async () => {
    const register = new Registry();
    const metrics = createWebhookMetrics({ register, version: '1.2.3' });
    metrics.admission('mutated', 0.002);
    metrics.certificateExpiry(1_900_000_000);
    const text = await register.metrics();
    assert.match(text, /^mi_anywhere_build_info\{version="1.2.3",program="webhook"\} 1$/m);
    assert.match(text, /^mi_anywhere_webhook_admission_requests_total\{outcome="mutated"\} 1$/m);
    for (const outcome of ['skipped', 'denied', 'error']) assert.match(text, new RegExp(`^mi_anywhere_webhook_admission_requests_total\\{outcome="${outcome}"\\} 0$`, 'm'));
    assert.match(text, /^mi_anywhere_webhook_admission_duration_seconds_bucket\{le="0.0025",outcome="mutated"\} 1$/m);
    assert.match(text, /^mi_anywhere_webhook_certificate_expiry_timestamp_seconds 1900000000$/m);
    assert.match(text, /^process_cpu_seconds_total /m);
  });
});
