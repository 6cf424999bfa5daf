/**
 * The Node inspector never opens inside a pod: SIGUSR1 would start it on 127.0.0.1:9229, where anything in the
 * pod's network namespace could attach and run code in the sidecar (and read its tokens). `--disable-sigusr1` is
 * in the image's NODE_OPTIONS (every `node` in the image, the injected sidecar's plain `node` command included)
 * and on the chart's webhook command line (webhook.extraEnv may replace NODE_OPTIONS). Checked as configuration
 * and as behaviour: the sidecar started with the image's flags ignores SIGUSR1, while without them the same
 * procedure opens the inspector (so the check can fail).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { handleReview } from '../../webhook/admission/handler.ts';
import { renderChart, findManifest } from '../helpers/helm.ts';
import { REPO_ROOT, startSidecar } from '../helpers/sidecar.ts';
import { fixtureDeps, listFixtures } from '../helpers/admission-fixtures.ts';
import { parseDockerfile, type Stage } from './dockerfile.ts';

const DISABLE = '--disable-sigusr1';

/** NODE_OPTIONS of the image's final stage, as `docker run` and every pod see it. */
export function imageNodeOptions(): string {
  const stages = parseDockerfile(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8')).stages;
  const env = (stages.at(-1) as Stage).instructions.filter((i) => i.keyword === 'ENV' && /^NODE_OPTIONS[= ]/.test(i.args)).at(-1);
  assert.ok(env, 'the final stage sets NODE_OPTIONS');
  return env.args.replace(/^NODE_OPTIONS[= ]/, '').replace(/^"(.*)"$/, '$1');
}

/** Starts the sidecar (dev mode) with these NODE_OPTIONS, sends SIGUSR1, proves it still serves, then stops it. */
async function signalled(nodeOptions: string, waitForInspector: boolean): Promise<{ logs: string; exit: number | null | undefined }> {
  // --inspect-port=0: if an inspector does open, it takes a free port instead of 9229 (shared machine).
  const sidecar = await startSidecar({ env: { NODE_OPTIONS: `${nodeOptions} --inspect-port=0`.trim() } });
  try {
    const opened = waitForInspector
      ? new Promise<void>((resolve) => {
          const onData = (chunk: Buffer | string): void => {
            if (sidecar.logs().includes('Debugger listening') || String(chunk).includes('Debugger listening')) resolve();
          };
          sidecar.child.stderr?.on('data', onData);
        })
      : undefined;
    sidecar.child.kill('SIGUSR1');
    if (opened) await opened;
    // A full round trip after the signal: the process handled it and is still serving.
    const health = await fetch(`${sidecar.healthUrl}/healthz`);
    assert.equal(health.status, 200);
  } finally {
    await sidecar.stop();
  }
  return { logs: sidecar.logs(), exit: sidecar.exitCode() };
}

describe('Node inspector signal', () => {
  it('the image disables it for every program (NODE_OPTIONS of the final stage)', () => {
    assert.ok(imageNodeOptions().split(/\s+/).includes(DISABLE), imageNodeOptions());
  });

  it('the chart runs the webhook with it on the command line', () => {
    const deployment = findManifest(renderChart(), 'Deployment', (m) => m.metadata.name.endsWith('-webhook'));
    const container = (deployment as unknown as { spec: { template: { spec: { containers: Array<{ command?: string[] }> } } } }).spec.template.spec.containers[0];
    assert.deepEqual(container?.command, ['node', DISABLE]);
  });

  it('the injected sidecar runs plain `node` with no NODE_OPTIONS of its own, so the image\'s apply', () => {
    const fixture = listFixtures().fixtures.find((f) => f.name === 'annotation-minimal');
    assert.ok(fixture, 'fixture annotation-minimal');
    const patch = handleReview(fixture.review(), fixtureDeps(fixture.name)).patch;
    const sidecars = JSON.stringify(patch).match(/"name":"mi-anywhere"/g) ?? [];
    assert.ok(sidecars.length > 0, 'the sidecar is injected');
    assert.ok(!JSON.stringify(patch).includes('NODE_OPTIONS'), 'no NODE_OPTIONS in the injected containers');
  });

  it('with the image\'s flags the sidecar ignores SIGUSR1: no inspector, still serving, graceful exit', async () => {
    const { logs, exit } = await signalled(imageNodeOptions(), false);
    assert.ok(!logs.includes('Debugger listening'), logs);
    assert.equal(exit, 0);
  });

  it('without them the same procedure opens the inspector (the check above can fail)', async () => {
    const { logs } = await signalled('', true);
    assert.match(logs, /Debugger listening on ws:\/\/127\.0\.0\.1:\d+\//);
  });
});
