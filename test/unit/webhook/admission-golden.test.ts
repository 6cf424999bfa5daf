/**
 * Golden admission fixtures, table-driven over test/fixtures/admission (see test/helpers/admission-fixtures.ts): for
 * every case the handler's answer echoes the uid; the patch applied to the raw request object gives exactly the expected pod;
 * the input is never modified; a second pass over the mutated pod (reinvocation) changes nothing.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { handleReview } from '../../../webhook/admission/handler.ts';
import { applyPatch, decodePatch, fixtureDeps, listFixtures, type Expected } from '../../helpers/admission-fixtures.ts';

const update = process.env.UPDATE_GOLDEN === '1';
const { fixtures, orphans } = listFixtures();

describe('admission golden fixtures', () => {
  it('has fixtures and no expected file without its review', () => {
    assert.ok(fixtures.length >= 40, `only ${fixtures.length} fixtures found`);
    assert.deepEqual(orphans, [], 'expected-pod files without a review.json');
  });

  for (const fixture of fixtures) {
    it(fixture.name, () => {
      const review = fixture.review();
      const pristine = fixture.review();
      const result = handleReview(review, fixtureDeps(fixture.name));
      const response = result.review.response;
      assert.equal(result.review.apiVersion, 'admission.k8s.io/v1');
      assert.equal(result.review.kind, 'AdmissionReview');
      assert.equal(response.uid, review.request.uid, 'uid echoed');
      assert.deepEqual(review, pristine, 'the request object is not modified');

      let actual: Expected;
      if (response.allowed) {
        const patch = decodePatch(response.patch);
        if (response.patch !== undefined) assert.equal(response.patchType, 'JSONPatch');
        assert.deepEqual(patch, result.patch, 'the encoded patch is the computed one');
        const pod = applyPatch(review.request.object, patch);
        actual = { allowed: true, patched: patch.length > 0, warnings: response.warnings ?? [], pod };
        if (patch.length > 0) {
          // Reinvocation: the mutated pod goes through the webhook again and nothing changes.
          const again = handleReview({ ...review, request: { ...review.request, object: pod } }, { ...fixtureDeps(fixture.name), newSecret: () => 'another-secret-for-the-second-call' });
          assert.equal(again.review.response.allowed, true);
          assert.equal(again.review.response.patch, undefined, `second pass patched: ${JSON.stringify(again.patch)}`);
          assert.equal(again.outcome, 'skipped');
        }
      } else {
        assert.ok(response.status !== undefined);
        assert.equal(response.patch, undefined);
        actual = { allowed: false, status: { code: response.status.code, message: response.status.message } };
      }
      if (update) writeFileSync(fixture.expectedPath, `${JSON.stringify(actual, null, 2)}\n`);
      const expected = fixture.expected();
      assert.ok(expected !== undefined, `${fixture.expectedPath} is missing (run with UPDATE_GOLDEN=1 and review it)`);
      assert.deepEqual(actual, expected);
    });
  }
});
