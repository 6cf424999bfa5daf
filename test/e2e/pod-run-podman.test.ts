/**
 * The kubelet stand-in of test/e2e/pod-run-podman.ts, without podman: `$(VAR)` expansion, env sources, security
 * context flags, Kubernetes command/args against ENTRYPOINT/CMD, volume files, and that whatever it does not
 * know is refused by name (a silently dropped field would make the podman run prove less than it claims).
 */
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { containerEnv, containerRunArgs, cpus, expand, memoryBytes, securityFlags, volumeFiles, writeKubeletVolume, type Json } from './pod-run-podman.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const secrets = new Map([['id', { clientId: b64('cid'), clientSecret: b64('s3cret') }]]);
const pod = (spec: Json = {}): Json => ({ metadata: { name: 'app', namespace: 'apps', uid: 'u-1' }, spec: { containers: [], ...spec } });

describe('pod-run kubelet stand-in', () => {
  it('expands $(VAR) like kubelet: defined names, $$ escapes, unknown references kept', () => {
    const cases: Array<[string, string]> = [
      ['$(A)/x', '1/x'],
      ['$$(A)', '$(A)'],
      ['$(MISSING)', '$(MISSING)'],
      ['plain', 'plain'],
    ];
    for (const [input, expected] of cases) assert.equal(expand(input, { A: '1' }), expected, input);
  });

  it('builds env in order, each value expanded against earlier ones, sources resolved', () => {
    const container = {
      name: 'c',
      env: [
        { name: 'BASE', value: 'http://127.0.0.1:50342' },
        { name: 'URL', value: '$(BASE)/msi/token' },
        { name: 'CID', valueFrom: { secretKeyRef: { name: 'id', key: 'clientId' } } },
        { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
        { name: 'LATER', value: '$(AFTER)' },
        { name: 'AFTER', value: 'x' },
      ],
    };
    assert.deepEqual(containerEnv(container, pod(), secrets), [
      ['BASE', 'http://127.0.0.1:50342'],
      ['URL', 'http://127.0.0.1:50342/msi/token'],
      ['CID', 'cid'],
      ['NS', 'apps'],
      ['LATER', '$(AFTER)'],
      ['AFTER', 'x'],
    ]);
  });

  it('refuses what it cannot resolve, naming it', () => {
    const cases: Array<[Json, RegExp]> = [
      [{ name: 'c', envFrom: [{ secretRef: { name: 'id' } }] }, /envFrom/],
      [{ name: 'c', env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'other', key: 'k' } } }] }, /other\/k/],
      [{ name: 'c', env: [{ name: 'X', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } }] }, /resourceFieldRef/],
    ];
    for (const [container, message] of cases) assert.throws(() => containerEnv(container, pod(), secrets), message);
  });

  it('maps the security context to podman flags, container over pod, and refuses the unknown', () => {
    const hardened = { runAsUser: 65532, runAsGroup: 65532, runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } };
    assert.deepEqual(securityFlags({ name: 'c', securityContext: hardened }, pod()), ['--user', '65532:65532', '--read-only', '--security-opt', 'no-new-privileges', '--cap-drop', 'ALL']);
    assert.deepEqual(securityFlags({ name: 'c' }, pod({ securityContext: { runAsUser: 1000 } })), ['--user', '1000']);
    assert.throws(() => securityFlags({ name: 'c', securityContext: { procMount: 'Unmasked' } }, pod()), /securityContext\.procMount/);
    assert.throws(() => securityFlags({ name: 'c', securityContext: { privileged: true } }, pod()), /privileged/);
    assert.throws(() => securityFlags({ name: 'c', securityContext: { seccompProfile: { type: 'Unconfined' } } }, pod()), /Unconfined/);
    assert.throws(() => securityFlags({ name: 'c' }, pod({ securityContext: { fsGroup: 2000 } })), /fsGroup/);
  });

  it('command replaces the ENTRYPOINT, args the CMD; limits and read-only mounts follow the spec', () => {
    const container = {
      name: 'sidecar',
      image: 'img',
      command: ['node'],
      args: ['dist/sidecar/main.js', '--port=$(PORT)'],
      env: [{ name: 'PORT', value: '1' }],
      volumeMounts: [{ name: 'id', mountPath: '/var/run/id', readOnly: true }],
      resources: { limits: { memory: '256Mi', cpu: '500m' } },
    };
    const plan = containerRunArgs(container, pod(), secrets, 'p', new Map([['id', '/host/id']]), ['--env', 'EXTRA=1']);
    assert.equal(plan.name, 'p-sidecar');
    assert.deepEqual(plan.runArgs, [
      '--pod', 'p', '--name', 'p-sidecar', '--pull', 'never',
      '--env', 'PORT=1',
      '--volume', '/host/id:/var/run/id:ro',
      '--memory', String(256 * 1024 * 1024),
      '--cpus', '0.5',
      '--env', 'EXTRA=1',
      '--entrypoint', '["node"]',
      'img', 'dist/sidecar/main.js', '--port=1',
    ]);
    // Neither command nor args: the image's own ENTRYPOINT and CMD.
    assert.deepEqual(containerRunArgs({ name: 'app', image: 'app' }, pod(), secrets, 'p', new Map()).runArgs.slice(-1), ['app']);
    assert.throws(() => containerRunArgs({ name: 'c', image: 'i', volumeMounts: [{ name: 'x', mountPath: '/x' }] }, pod(), secrets, 'p', new Map()), /volume x/);
  });

  it('quantities', () => {
    assert.equal(memoryBytes('128Mi'), 128 * 1024 * 1024);
    assert.equal(memoryBytes('1G'), 1e9);
    assert.equal(cpus('10m'), 0.01);
    assert.equal(cpus('2'), 2);
    assert.throws(() => memoryBytes('1Ei'), /1Ei/);
  });

  it('lays out a projected Secret volume as kubelet does, and refuses other volume kinds', () => {
    const volume = { name: 'id', projected: { defaultMode: 0o444, sources: [{ secret: { name: 'id' } }] } };
    const files = volumeFiles(volume, secrets);
    assert.deepEqual(files.map((f) => [f.path, f.content.toString(), f.mode]), [['clientId', 'cid', 0o444], ['clientSecret', 's3cret', 0o444]]);
    const dir = join(mkdtempSync(join(tmpdir(), 'mi-anywhere-pod-run-unit-')), 'vol');
    try {
      writeKubeletVolume(dir, files);
      assert.equal(readlinkSync(join(dir, 'clientId')), join('..data', 'clientId'));
      assert.ok(lstatSync(join(dir, '..data')).isSymbolicLink());
      assert.equal(readFileSync(join(dir, 'clientSecret'), 'utf8'), 's3cret');
      assert.equal(statSync(join(dir, 'clientSecret')).mode & 0o777, 0o444);
    } finally {
      rmSync(join(dir, '..'), { recursive: true, force: true });
    }
    const items = volumeFiles({ name: 'v', secret: { secretName: 'id', items: [{ key: 'clientId', path: 'client-id' }] } }, secrets);
    assert.deepEqual(items.map((f) => [f.path, f.mode]), [['client-id', 0o644]]);
    assert.throws(() => volumeFiles({ name: 'v', hostPath: { path: '/' } }, secrets), /hostPath/);
    assert.throws(() => volumeFiles({ name: 'v', projected: { sources: [{ serviceAccountToken: { path: 't' } }] } }, secrets), /serviceAccountToken/);
    assert.throws(() => volumeFiles({ name: 'v', projected: { sources: [{ secret: { name: 'nope' } }] } }, secrets), /Secret nope/);
  });
});
