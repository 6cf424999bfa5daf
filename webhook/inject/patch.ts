/**
 * RFC 6902 patch between the raw request object and the mutated copy (controller-runtime's
 * PatchResponseFromRaw does the same): diffing the raw JSON, not a re-serialised typed object, keeps fields we
 * do not model untouched and produces no spurious operations.
 *
 * Pure.
 */
import jsonPatch, { type Operation } from 'fast-json-patch';
import type { PodJson } from '../admission/types.ts';

export function createPatch(original: PodJson, mutated: PodJson): Operation[] {
  return jsonPatch.compare(original as object, mutated as object);
}
