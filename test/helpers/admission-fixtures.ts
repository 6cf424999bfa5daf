/**
 * Golden admission fixtures: `test/fixtures/admission/<case>.review.json` (a real AdmissionReview v1 request) and
 * `<case>.expected-pod.json` (what the webhook must answer: the pod after applying the patch, or the denial).
 * Auto-discovered; `UPDATE_GOLDEN=1` rewrites the expected files from the current code (review the diff like code).
 *
 * Cases named `regular-*` are answered with the regular-container sidecar form, all others with the native one.
 * Shared by the webhook's unit, integration, fuzz and security tests and the e2e test (which sends every expected pod
 * to a real API server).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import jsonPatch, { type Operation } from 'fast-json-patch';
import type { HandlerDeps } from '../../webhook/admission/handler.ts';
import { loadConfig } from '../../webhook/config.ts';

export const FIXTURE_DIR = join(import.meta.dirname, '..', 'fixtures', 'admission');

/** The webhook configuration every fixture is answered with. */
export const FIXTURE_ENV = {
  MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'registry.example/mi-anywhere:0.1.0',
  MI_ANYWHERE_WEBHOOK_IMDS_REDIRECT_IMAGE: 'registry.example/iptables:1.8',
} as const;

/** A fixed per-pod secret so expected files are stable (production uses 24 random bytes). */
export const FIXTURE_SECRET = 'fixture-identity-header-0123456789';

export type Expected =
  | { readonly allowed: true; readonly patched: boolean; readonly warnings: readonly string[]; readonly pod: unknown }
  | { readonly allowed: false; readonly status: { readonly code: number; readonly message: string } };

export interface Fixture {
  readonly name: string;
  /** Fresh parse per call: tests may not share mutable objects. */
  review(): { request: { uid: string; object: Record<string, unknown> } & Record<string, unknown> } & Record<string, unknown>;
  expected(): Expected | undefined;
  readonly expectedPath: string;
}

export function fixtureDeps(name: string): HandlerDeps {
  return { config: loadConfig(FIXTURE_ENV).sidecar, native: !name.startsWith('regular-'), newSecret: () => FIXTURE_SECRET };
}

export function listFixtures(): { fixtures: Fixture[]; orphans: string[] } {
  const files = readdirSync(FIXTURE_DIR);
  const names = files.filter((f) => f.endsWith('.review.json')).map((f) => f.slice(0, -'.review.json'.length)).sort();
  const orphans = files
    .filter((f) => f.endsWith('.expected-pod.json'))
    .map((f) => f.slice(0, -'.expected-pod.json'.length))
    .filter((name) => !names.includes(name));
  const fixtures = names.map((name): Fixture => {
    const expectedPath = join(FIXTURE_DIR, `${name}.expected-pod.json`);
    return {
      name,
      expectedPath,
      review: () => JSON.parse(readFileSync(join(FIXTURE_DIR, `${name}.review.json`), 'utf8')),
      expected: () => {
        try {
          return JSON.parse(readFileSync(expectedPath, 'utf8')) as Expected;
        } catch {
          return undefined;
        }
      },
    };
  });
  return { fixtures, orphans };
}

/** Decodes a base64 JSON patch from an AdmissionResponse. */
export function decodePatch(patch: string | undefined): Operation[] {
  return patch === undefined ? [] : (JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) as Operation[]);
}

/** Applies a patch to a deep copy (validating every operation, as the API server does). */
export function applyPatch<T>(document: T, patch: readonly Operation[]): T {
  return jsonPatch.applyPatch(structuredClone(document), patch as Operation[], true, false).newDocument;
}
