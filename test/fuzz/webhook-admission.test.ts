/**
 * Fuzzing the webhook's AdmissionReview handling with fast-check:
 * - the pure handler with arbitrary JSON, with random pods in valid reviews, and with valid reviews mutated at random
 *   paths (keys deleted, values replaced, wrong types): it never throws, always answers an AdmissionReview v1 that
 *   echoes the uid it could read, never reports an internal error (500) for bad input, and every patch applies to
 *   the object it was computed for;
 * - the real HTTPS listener with random bodies (bytes, broken JSON, random content types): always HTTP 200 with an
 *   AdmissionReview, never a 5xx or a dropped connection, and never a log line carrying the per-pod secret;
 * - the real HTTPS listener with a valid review whose pod has a wrong-typed value, or JSON nested thousands of levels
 *   deep, at every field the webhook reads: refused with a 4xx naming the field, never a 500.
 * Bounded runs and time; the seed is printed and `FC_SEED=<seed>` replays a run.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import jsonPatch, { type Operation } from 'fast-json-patch';
import { Registry } from 'prom-client';
import { handleReview } from '../../webhook/admission/handler.ts';
import { salvageUid } from '../../webhook/admission/review.ts';
import { renewCertificates, type StoredCertificates } from '../../webhook/cert/authority.ts';
import { createAdmissionServer, type AdmissionServer } from '../../webhook/http/server.ts';
import { createLogger } from '../../webhook/log.ts';
import { createWebhookMetrics } from '../../webhook/metrics.ts';
import { FIXTURE_SECRET, fixtureDeps } from '../helpers/admission-fixtures.ts';
import { createTestLog, registerSecret } from '../helpers/collected-logs.ts';
import { DEEP_MARKER, READ_FIELDS, deepJson, fieldName, fuzzParameters, podArb, podWithEveryReadField, reviewOf, seedNote, uidArb, wrongValueArb } from '../helpers/pod-arbitraries.ts';

type Json = Record<string, any>;

const deps = fixtureDeps('native');

function checkReview(review: Json, expectedUid: string): void {
  assert.equal(review['apiVersion'], 'admission.k8s.io/v1');
  assert.equal(review['kind'], 'AdmissionReview');
  const response = review['response'] as Json;
  assert.equal(response['uid'], expectedUid, 'uid echoed');
  assert.equal(typeof response['allowed'], 'boolean');
  if (response['allowed'] === false) {
    const code = response['status']?.['code'];
    assert.ok(typeof code === 'number' && code >= 400 && code < 500, `bad input must give a 4xx status, got ${code}: ${response['status']?.['message']}`);
    assert.equal(typeof response['status']?.['message'], 'string');
  }
}

/** Sets `value` at a random path of `doc` (or deletes the key when value is undefined). */
function mutateAt(doc: Json, path: readonly number[], value: unknown): void {
  let node: any = doc;
  for (let i = 0; i < path.length; i++) {
    if (node === null || typeof node !== 'object') return;
    const keys = Object.keys(node);
    if (keys.length === 0) return;
    const key = keys[path[i]! % keys.length]!;
    if (i === path.length - 1 || node[key] === null || typeof node[key] !== 'object') {
      if (value === undefined) delete node[key];
      else node[key] = value;
      return;
    }
    node = node[key];
  }
}

describe('fuzz: AdmissionReviews', () => {
  it('arbitrary JSON bodies: never a throw, always a v1 review echoing the readable uid, never a 500', (t) => {
    const parameters = fuzzParameters<[unknown]>(1000);
    const body = fc.oneof(
      fc.jsonValue(),
      fc.record({ apiVersion: fc.constantFrom('admission.k8s.io/v1', 'admission.k8s.io/v1beta1'), kind: fc.constantFrom('AdmissionReview', 'Pod'), request: fc.jsonValue() }),
      fc.record({ apiVersion: fc.constant('admission.k8s.io/v1'), kind: fc.constant('AdmissionReview'), request: fc.record({ uid: fc.oneof(fc.uuid(), fc.jsonValue()), kind: fc.jsonValue(), operation: fc.jsonValue(), object: fc.jsonValue() }, { requiredKeys: [] }) }),
    );
    fc.assert(
      fc.property(body, (b) => {
        const result = handleReview(b, deps);
        checkReview(result.review, salvageUid(b));
      }),
      parameters,
    );
    t.diagnostic(seedNote(parameters));
  });

  it('random pods and randomly mutated reviews: a valid review echoing the uid, patches that apply', (t) => {
    const parameters = fuzzParameters<[Json, string, Array<{ path: number[]; value: unknown }>]>(600);
    let patchedCount = 0;
    fc.assert(
      fc.property(
        podArb as fc.Arbitrary<Json>,
        uidArb,
        fc.array(fc.record({ path: fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), value: fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 2 })) }), { maxLength: 3 }),
        (pod, uid, mutations) => {
          const review = reviewOf(pod, uid) as Json;
          for (const m of mutations) mutateAt(review, m.path, m.value);
          const before = JSON.stringify(review);
          const result = handleReview(review, deps);
          assert.equal(JSON.stringify(review), before, 'the request is never modified');
          checkReview(result.review, salvageUid(review));
          const encoded = (result.review.response as Json)['patch'];
          if (typeof encoded === 'string') {
            const patch = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8')) as Operation[];
            const object = structuredClone(review['request']['object']);
            assert.doesNotThrow(() => jsonPatch.applyPatch(object, patch, true, false), 'the patch applies to the object');
            patchedCount += 1;
          }
        },
      ),
      parameters,
    );
    t.diagnostic(`${patchedCount} patched; ${seedNote(parameters)}`);
    assert.ok(patchedCount > 0, `no review was patched (${seedNote(parameters)})`);
  });

  describe('over HTTPS', () => {
    let pki: StoredCertificates;
    let admission: AdmissionServer;
    let port: number;
    let logs = '';
    before(async () => {
      registerSecret('webhook per-pod identity header (fixture)', FIXTURE_SECRET);
      pki = await renewCertificates({ action: 'renew-ca', reason: 'test' }, { names: { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }, policy: { certValidityDays: 2, certRenewBeforeDays: 1, caValidityDays: 3, caRenewBeforeDays: 1 }, now: Date.now() });
      registerSecret('webhook serving key (test)', pki.key);
      const testLog = createTestLog('webhook-fuzz');
      const logger = createLogger({
        level: 'debug',
        destination: new Writable({
          write(chunk, _e, cb) {
            logs += String(chunk);
            testLog.write(String(chunk));
            cb();
          },
        }),
      });
      admission = createAdmissionServer({
        handle: (body: unknown) => handleReview(body, deps),
        logger,
        metrics: createWebhookMetrics({ register: new Registry(), version: 'test' }),
        nowSeconds: () => performance.now() / 1000,
        requestTimeoutSeconds: 10,
        certificate: { cert: pki.cert, key: pki.key },
        minVersion: 'TLSv1.3',
        maxBodyBytes: 64 * 1024,
      });
      await new Promise<void>((resolve) => admission.server.listen(0, '127.0.0.1', () => resolve()));
      port = (admission.server.address() as AddressInfo).port;
    });
    after(async () => {
      await new Promise<void>((resolve) => {
        admission.server.close(() => resolve());
        admission.server.closeAllConnections();
      });
    });

    const post = (body: Buffer, contentType: string | undefined): Promise<{ status: number; text: string }> =>
      new Promise((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port, path: '/mutate', method: 'POST', ca: pki.caBundle, agent: false, headers: { ...(contentType !== undefined ? { 'content-type': contentType } : {}), 'content-length': body.length } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          },
        );
        req.on('error', reject);
        req.end(body);
      });

    it('random bodies and content types: HTTP 200 with an AdmissionReview, never a 5xx; no secret logged', async (t) => {
      const parameters = fuzzParameters<[Buffer, string | undefined]>(150, 30_000);
      const bodyArb = fc.oneof(
        fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b)),
        fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
        fc.tuple(podArb, uidArb).map(([pod, uid]) => Buffer.from(JSON.stringify(reviewOf(pod, uid)))),
        fc.tuple(podArb, uidArb, fc.nat()).map(([pod, uid, cut]) => {
          const text = JSON.stringify(reviewOf(pod, uid));
          return Buffer.from(text.slice(0, cut % text.length));
        }),
        fc.constant(Buffer.alloc(64 * 1024 + 1, 0x20)),
      );
      const contentType = fc.oneof(
        { arbitrary: fc.constant('application/json'), weight: 6 },
        { arbitrary: fc.constantFrom('application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'APPLICATION/JSON'), weight: 1 },
        { arbitrary: fc.constant(undefined), weight: 1 },
      );
      await fc.assert(
        fc.asyncProperty(bodyArb, contentType, async (body, type) => {
          const res = await post(body, type);
          assert.equal(res.status, 200, res.text.slice(0, 300));
          const review = JSON.parse(res.text) as Json;
          let uid: string;
          try {
            uid = salvageUid(JSON.parse(body.toString('utf8')));
          } catch {
            uid = '';
          }
          // An unreadable body cannot be matched to a uid; a readable one is echoed unless the body was refused
          // before parsing (wrong content type, too large), where the uid is unknown too.
          const response = review['response'] as Json;
          if (response['uid'] !== '') assert.equal(response['uid'], uid);
          checkReview(review, response['uid'] as string);
        }),
        parameters,
      );
      t.diagnostic(seedNote(parameters));
      assert.ok(!logs.includes(FIXTURE_SECRET), 'the per-pod secret never reaches a log line');
      assert.doesNotMatch(logs, /admission failed unexpectedly/);
    });

    it('a wrong-typed or deeply nested value at every field the webhook reads: a 4xx naming the field, never a 500', async (t) => {
      // Every field at least once (deterministic sweep), then random field/value pairs.
      const sweep = READ_FIELDS.flatMap((path) => [null, DEEP_MARKER, 7].map((value) => ({ path, value, depth: 5000, kind: 'array' as const })));
      const parameters = fuzzParameters<[{ path: ReadonlyArray<string | number>; value: unknown; depth: number; kind: 'array' | 'object' }]>(300, 30_000);
      const caseArb = fc.record({ path: fc.constantFrom(...READ_FIELDS), value: wrongValueArb, depth: fc.integer({ min: 1000, max: 10_000 }), kind: fc.constantFrom('array' as const, 'object' as const) });
      let refusedNamingField = 0;
      const check = async ({ path, value, depth, kind }: { path: ReadonlyArray<string | number>; value: unknown; depth: number; kind: 'array' | 'object' }): Promise<void> => {
        const review = reviewOf(podWithEveryReadField(), 'wrong-type-uid') as Json;
        if (path.length === 0) review['request']['object'] = value;
        else {
          let node = review['request']['object'];
          for (const key of path.slice(0, -1)) node = node[key];
          node[path[path.length - 1]!] = value;
        }
        const text = JSON.stringify(review).replace(JSON.stringify(DEEP_MARKER), deepJson(depth, kind));
        const res = await post(Buffer.from(text), 'application/json');
        assert.equal(res.status, 200, res.text.slice(0, 300));
        const answer = JSON.parse(res.text) as Json;
        checkReview(answer, 'wrong-type-uid');
        const status = answer['response']['status'] as Json | undefined;
        if (status?.['code'] === 400) {
          const field = path.length === 0 ? 'request.object' : fieldName(path);
          assert.ok(String(status['message']).includes(field), `${field}: ${status['message']}`);
          refusedNamingField += 1;
        }
      };
      for (const c of sweep) await check(c);
      await fc.assert(fc.asyncProperty(caseArb, check), parameters);
      t.diagnostic(`${refusedNamingField} refused naming the field; ${seedNote(parameters)}`);
      assert.ok(refusedNamingField >= READ_FIELDS.length, `only ${refusedNamingField} refusals for ${READ_FIELDS.length} fields`);
      assert.doesNotMatch(logs, /admission failed unexpectedly/);
    });
  });
});
