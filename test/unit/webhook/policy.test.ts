import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ANNOTATIONS, INJECT_KEY } from '../../../sidecar/contract.ts';
import type { PodJson } from '../../../webhook/admission/types.ts';
import { loadConfig } from '../../../webhook/config.ts';
import { InvalidAnnotationError } from '../../../webhook/errors.ts';
import { decide, isOptedIn } from '../../../webhook/inject/policy.ts';
import { supportsNativeSidecar } from '../../../webhook/inject/native.ts';
import { formatQuantity, parseQuantity } from '../../../webhook/inject/quantity.ts';

const config = loadConfig({ MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'img' }).sidecar;
const pod = (labels: Record<string, string> = {}, annotations: Record<string, string> = {}): PodJson => ({
  metadata: { labels, annotations },
  spec: { containers: [{ name: 'app' }] },
});

describe('opt-in', () => {
  const cases: Array<{ name: string; pod: PodJson; want: boolean }> = [
    { name: 'label true', pod: pod({ [INJECT_KEY]: 'true' }), want: true },
    { name: 'annotation true', pod: pod({}, { [INJECT_KEY]: 'true' }), want: true },
    { name: 'label false, annotation true', pod: pod({ [INJECT_KEY]: 'false' }, { [INJECT_KEY]: 'true' }), want: true },
    { name: 'True (case matters, like label selectors)', pod: pod({ [INJECT_KEY]: 'True' }), want: false },
    { name: 'nothing', pod: pod(), want: false },
    { name: 'no metadata', pod: {}, want: false },
  ];
  for (const tc of cases) it(tc.name, () => assert.equal(isOptedIn(tc.pod), tc.want));
});

describe('decide', () => {
  it('the IMDS redirect is refused when the admin configured no image', () => {
    assert.throws(
      () => decide(pod({ [INJECT_KEY]: 'true' }, { [ANNOTATIONS.identities]: 'id', [ANNOTATIONS.imdsRedirect]: 'true' }), config),
      (error: unknown) => error instanceof InvalidAnnotationError && error.annotation === ANNOTATIONS.imdsRedirect && /disabled on this cluster/.test(error.message),
    );
  });
  it('defaults come from the config', () => {
    const custom = loadConfig({ MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'img', MI_ANYWHERE_WEBHOOK_DEFAULT_PROFILE: 'pod-identity', MI_ANYWHERE_WEBHOOK_DEFAULT_LOG_LEVEL: 'warn' }).sidecar;
    const decision = decide(pod({ [INJECT_KEY]: 'true' }, { [ANNOTATIONS.identities]: 'id' }), custom);
    assert.ok(decision.inject);
    assert.equal(decision.settings.profile, 'pod-identity');
    assert.equal(decision.settings.logLevel, 'warn');
    assert.equal(decision.settings.credentialKind, 'secret');
    assert.equal(decision.settings.federated, undefined);
  });
  it('a pod that did not opt in is never validated (typos cannot block it)', () => {
    const decision = decide(pod({}, { [ANNOTATIONS.profile]: 'nonsense', 'mi-anywhere.io/typo': 'x' }), config);
    assert.equal(decision.inject, false);
  });
});

describe('native sidecar support', () => {
  const cases: Array<[string, string, boolean]> = [
    ['1', '28', false],
    ['1', '29', true],
    ['1', '29+', true],
    ['1', '36', true],
    ['2', '0', true],
    ['', '', false],
  ];
  for (const [major, minor, want] of cases) it(`${major}.${minor} -> ${want}`, () => assert.equal(supportsNativeSidecar({ major, minor }), want));
});

describe('quantities', () => {
  const cases: Array<[string, number | undefined]> = [
    ['100m', 0.1],
    ['1', 1],
    ['1.5', 1.5],
    ['64Mi', 64 * 2 ** 20],
    ['1G', 1e9],
    ['2e3', 2000],
    ['.5', 0.5],
    ['1 GB', undefined],
    ['Mi', undefined],
    ['1MB', undefined],
    ['', undefined],
  ];
  for (const [text, want] of cases) it(JSON.stringify(text), () => assert.equal(parseQuantity(text), want));
});

describe('formatQuantity (pod-level resource sums)', () => {
  const cases: Array<[number, 'cpu' | 'memory', string]> = [
    [0.51, 'cpu', '510m'],
    [0.1 + 0.05, 'cpu', '150m'],
    [1.5, 'cpu', '1500m'],
    [0.0005, 'cpu', '1m'],
    [384 * 2 ** 20, 'memory', '384Mi'],
    [2 ** 30 + 1, 'memory', String(2 ** 30 + 1)],
  ];
  for (const [value, kind, want] of cases) it(`${value} ${kind} -> ${want}`, () => assert.equal(formatQuantity(value, kind), want));
});
