/**
 * One version number (CHANGELOG.md): package.json, the chart's `version` and `appVersion` (the image tag the
 * chart deploys), the image's VERSION label default, CHANGELOG.md's newest release, and what both programs say
 * with `--version` and in their start-up log line.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { node24, REPO_ROOT } from '../helpers/sidecar.ts';

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
const chart = parse(readFileSync(join(REPO_ROOT, 'charts', 'mi-anywhere', 'Chart.yaml'), 'utf8')) as { version: unknown; appVersion: unknown };
const changelog = readFileSync(join(REPO_ROOT, 'CHANGELOG.md'), 'utf8');
const SEMVER = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/;

/** Release headings of CHANGELOG.md in file order: `## [1.2.3] - 2026-01-31`. */
function releases(): { version: string; date: string }[] {
  return [...changelog.matchAll(/^## \[(\d[^\]]*)\] - (\d{4}-\d{2}-\d{2})$/gm)].map((m) => ({ version: m[1] ?? '', date: m[2] ?? '' }));
}

/** Starts a program and resolves with its first log line whose msg is "starting", then stops it. */
async function startupLine(script: string, args: readonly string[], env: Record<string, string>): Promise<Record<string, unknown>> {
  const child = spawn(node24(), [join(REPO_ROOT, script), ...args], { cwd: REPO_ROOT, env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    for await (const line of createInterface({ input: child.stdout })) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry['msg'] === 'starting') return entry;
    }
    throw new Error(`${script} exited without a "starting" log line: ${stderr}`);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

describe('one version number', () => {
  const version = pkg.version;

  it('package.json has a semantic version', () => assert.match(version, SEMVER));

  it('Chart.yaml version and appVersion equal package.json (appVersion is the image tag the chart deploys)', () => {
    assert.equal(chart.version, version);
    assert.equal(chart.appVersion, version);
  });

  it("the Dockerfile's VERSION build argument defaults to it (the release workflow passes the tag's)", () => {
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, new RegExp(`^ARG VERSION=${version.replaceAll('.', '\\.')}$`, 'm'));
  });

  it('CHANGELOG.md keeps a changelog: Unreleased first, then releases newest first, the newest being this version', () => {
    assert.match(changelog, /^# Changelog\n/);
    const headings = [...changelog.matchAll(/^## (.*)$/gm)].map((m) => m[1] ?? '');
    assert.equal(headings[0], '[Unreleased]');
    const list = releases();
    assert.equal(list.length, headings.length - 1, `every other heading is "## [X.Y.Z] - YYYY-MM-DD": ${headings.join(' | ')}`);
    assert.equal(list[0]?.version, version);
    for (const r of list) assert.match(r.version, SEMVER);
    const dates = list.map((r) => r.date);
    assert.deepEqual(dates, [...dates].sort().reverse(), 'newest first');
    for (const name of ['Unreleased', ...list.map((r) => r.version)]) {
      assert.match(changelog, new RegExp(`^\\[${name.replaceAll('.', '\\.')}\\]: https://`, 'm'), `link definition for [${name}]`);
    }
    const sections = changelog.split(/^## /m).slice(2);
    for (const section of sections) {
      for (const heading of section.matchAll(/^### (.*)$/gm)) {
        assert.ok(['Added', 'Changed', 'Deprecated', 'Removed', 'Fixed', 'Security'].includes(heading[1] ?? ''), heading[1]);
      }
    }
  });

  for (const program of ['sidecar', 'webhook'] as const) {
    it(`${program} --version prints it, whatever the environment holds`, () => {
      const result = spawnSync(node24(), [join(REPO_ROOT, program, 'main.ts'), '--version'], {
        encoding: 'utf8',
        env: { PATH: process.env['PATH'] ?? '', MI_ANYWHERE_NOT_A_SETTING: 'x' },
      });
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout, `mi-anywhere ${program} ${version}\n`);
    });
  }

  it('the sidecar logs it at start-up', async () => {
    const line = await startupLine('sidecar/main.ts', ['--dev'], { MI_ANYWHERE_TOKEN_PORT: '0', MI_ANYWHERE_HEALTH_ADDRESS: '127.0.0.1', MI_ANYWHERE_HEALTH_PORT: '0', MI_ANYWHERE_METRICS_ADDRESS: '127.0.0.1', MI_ANYWHERE_METRICS_PORT: '0' });
    assert.equal(line['version'], version);
  });

  it('the webhook logs it at start-up', async () => {
    const loopback = { ADDRESS: '127.0.0.1', PORT: '0', HEALTH_ADDRESS: '127.0.0.1', HEALTH_PORT: '0', METRICS_ADDRESS: '127.0.0.1', METRICS_PORT: '0' };
    const env = Object.fromEntries(Object.entries(loopback).map(([k, v]) => [`MI_ANYWHERE_WEBHOOK_${k}`, v]));
    const line = await startupLine('webhook/main.ts', [], {
      ...env,
      MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: `ghcr.io/mi-anywhere/mi-anywhere:${version}`,
      // Files that do not exist: the webhook logs "starting" before it looks for its certificate.
      MI_ANYWHERE_WEBHOOK_TLS_CERT_FILE: join(REPO_ROOT, 'does-not-exist', 'tls.crt'),
      MI_ANYWHERE_WEBHOOK_TLS_KEY_FILE: join(REPO_ROOT, 'does-not-exist', 'tls.key'),
    });
    assert.equal(line['version'], version);
  });
});
