/**
 * The GitHub Actions workflows (.github/workflows/) can only run on the code host, so what can be checked here is:
 * actionlint (scripts/provision.d/32-actionlint.sh; with shellcheck on the `run:` scripts when installed) passes;
 * CI runs exactly `.ci/run`; third-party actions are pinned by commit digest and every job declares its own
 * least-privilege permissions; and the release workflow's version handling and names — through
 * scripts/release.sh, which it calls — match package.json, the chart and the README's install commands.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse } from 'yaml';
import { REPO_ROOT } from '../helpers/sidecar.ts';
import { cacheDir, helmPath, runHelm } from '../helpers/helm.ts';
import { readmeInstall } from '../helpers/readme-install.ts';

interface Step {
  readonly uses?: string;
  readonly run?: string;
  readonly with?: Record<string, unknown>;
  readonly env?: Record<string, string>;
}
interface Job {
  readonly permissions?: Record<string, string>;
  readonly needs?: string | string[];
  readonly steps: Step[];
}
interface Workflow {
  readonly on: Record<string, unknown>;
  readonly permissions?: Record<string, string>;
  readonly jobs: Record<string, Job>;
}

const WORKFLOWS = join(REPO_ROOT, '.github', 'workflows');
const text = (name: string): string => readFileSync(join(WORKFLOWS, name), 'utf8');
const ci = parse(text('ci.yml')) as Workflow;
const release = parse(text('release.yml')) as Workflow;
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
const CHART_DIR = join(REPO_ROOT, 'charts', 'mi-anywhere');
const chartMeta = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as { name: string; version: string; appVersion: string; home: string };
const values = parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as { image: { repository: string } };
const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');


function releaseScript(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('bash', [join(REPO_ROOT, 'scripts', 'release.sh'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${join(cacheDir(), 'bin')}:${process.env['PATH'] ?? ''}` },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function outputs(stdout: string): Record<string, string> {
  return Object.fromEntries(stdout.trim().split('\n').map((line) => line.split('=', 2) as [string, string]));
}

function steps(workflow: Workflow): Step[] {
  return Object.values(workflow.jobs).flatMap((job) => job.steps);
}

/** The owner of the repository the chart names as its home (https://github.com/<owner>/<name>). */
const homeOwner = /^https:\/\/github\.com\/([^/]+)\/[^/]+$/.exec(chartMeta.home)?.[1] ?? '';

describe('workflows: actionlint', () => {
  it('passes (shellcheck on the run: scripts when installed)', () => {
    const actionlint = join(cacheDir(), 'bin', 'actionlint');
    assert.ok(existsSync(actionlint), `actionlint is not built: ${actionlint} is missing (run: bash scripts/provision.d/32-actionlint.sh)`);
    const shellcheck = spawnSync('shellcheck', ['--version']).status === 0;
    const result = spawnSync(actionlint, ['-color=false', '-shellcheck', shellcheck ? 'shellcheck' : '', '.github/workflows/ci.yml', '.github/workflows/release.yml'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
    process.stdout.write(`# actionlint: clean (${shellcheck ? 'with' : 'without'} shellcheck)\n`);
  });
});

describe('workflows: CI and hardening', () => {
  it('CI runs exactly `bash .ci/run` on pushes and pull requests', () => {
    assert.deepEqual(Object.keys(ci.on).sort(), ['pull_request', 'push']);
    const runs = steps(ci).filter((s) => s.run !== undefined).map((s) => s.run?.trim());
    assert.deepEqual(runs, ['bash .ci/run']);
    assert.ok(existsSync(join(REPO_ROOT, '.ci', 'run')));
    // The advisory endpoint answers on GitHub's runners: there the audit must not be skipped (docs/security.md §8).
    assert.deepEqual((ci.jobs['ci'] as Job & { env?: Record<string, string> }).env, { MI_ANYWHERE_AUDIT_REQUIRED: '1' });
  });

  it('every action is pinned by a full commit digest, with its tag as a comment', () => {
    for (const name of ['ci.yml', 'release.yml']) {
      const lines = text(name).split('\n').filter((l) => /^\s*(- )?uses:/.test(l));
      assert.ok(lines.length > 0, name);
      for (const line of lines) assert.match(line, /uses: [\w.-]+\/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$/, `${name}: ${line.trim()}`);
    }
  });

  it('grants nothing at the top level; every job declares its own permissions, write scopes only where needed', () => {
    const allowedWrites: Record<string, string[]> = {
      'ci.yml/ci': [],
      'release.yml/prepare': [],
      'release.yml/image': ['packages', 'id-token', 'attestations'],
      'release.yml/chart': ['packages', 'id-token', 'attestations'],
      'release.yml/release': ['contents'],
    };
    const seen: Record<string, string[]> = {};
    for (const [file, workflow] of [['ci.yml', ci], ['release.yml', release]] as const) {
      assert.deepEqual(workflow.permissions, {}, `${file}: top-level permissions: {}`);
      for (const [name, job] of Object.entries(workflow.jobs)) {
        assert.ok(job.permissions, `${file}/${name} declares permissions`);
        seen[`${file}/${name}`] = Object.entries(job.permissions).filter(([, v]) => v === 'write').map(([k]) => k).sort();
        for (const [scope, level] of Object.entries(job.permissions)) assert.ok(level === 'write' || (level === 'read' && scope === 'contents'), `${file}/${name}: ${scope}: ${level}`);
      }
    }
    assert.deepEqual(seen, Object.fromEntries(Object.entries(allowedWrites).map(([k, v]) => [k, [...v].sort()])));
  });

  it('run: steps use an explicit bash (-e -o pipefail), so a failing command in a pipe fails the step', () => {
    for (const workflow of [ci, release]) assert.deepEqual((workflow as Workflow & { defaults?: unknown }).defaults, { run: { shell: 'bash' } });
  });

  it('no checkout keeps the token in .git/config', () => {
    for (const step of [...steps(ci), ...steps(release)].filter((s) => s.uses?.startsWith('actions/checkout@'))) {
      assert.equal(step.with?.['persist-credentials'], false);
    }
  });
});

describe('workflows: release', () => {
  const jobs = release.jobs;
  const find = (job: string, prefix: string): Step => {
    const step = jobs[job]?.steps.find((s) => s.uses?.startsWith(prefix));
    assert.ok(step, `${job} uses ${prefix}`);
    return step;
  };
  const owner = 'Some-Fork';

  it('runs on version tags only', () => {
    assert.deepEqual(release.on, { push: { tags: ['v*'] } });
  });

  it('builds the Dockerfile for linux/amd64 and linux/arm64, tagged with the checked version, with SBOM and provenance', () => {
    const build = find('image', 'docker/build-push-action@');
    assert.equal(build.with?.['file'], 'Dockerfile');
    assert.equal(build.with?.['platforms'], 'linux/amd64,linux/arm64');
    assert.equal(build.with?.['push'], true);
    assert.equal(build.with?.['tags'], '${{ needs.prepare.outputs.image }}:${{ needs.prepare.outputs.version }}');
    assert.match(String(build.with?.['build-args']), /^VERSION=\$\{\{ needs\.prepare\.outputs\.version \}\}$/m);
    assert.equal(build.with?.['sbom'], true);
    assert.equal(build.with?.['provenance'], 'mode=max');
    // The base image stays pinned by digest in the Dockerfile (the workflow passes no NODE_IMAGE).
    assert.doesNotMatch(String(build.with?.['build-args']), /NODE_IMAGE/);
    assert.match(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8'), /^ARG NODE_IMAGE=[^\s@]+@sha256:[0-9a-f]{64}$/m);
  });

  it('derives version and names with scripts/release.sh from the tag and the lower-cased owner', () => {
    const check = jobs['prepare']?.steps.find((s) => s.run?.includes('scripts/release.sh check'));
    assert.equal(check?.run?.trim(), 'bash scripts/release.sh check "$TAG" "$OWNER" | tee -a "$GITHUB_OUTPUT"');
    assert.deepEqual(check?.env, { TAG: '${{ github.ref_name }}', OWNER: '${{ github.repository_owner }}' });
  });

  it("for this repository's owner, the names are the chart's image.repository and the README's chart", () => {
    const result = releaseScript('check', `v${pkg.version}`, homeOwner.toUpperCase());
    assert.equal(result.status, 0, result.stderr);
    const out = outputs(result.stdout);
    assert.deepEqual(out, { version: pkg.version, image: values.image.repository, chart: `oci://ghcr.io/${homeOwner.toLowerCase()}/charts`, prerelease: 'false' });
    assert.equal(chartMeta.appVersion, out['version']);
    const readme = readmeInstall();
    assert.equal(readme.published.chart, `${out['chart'] ?? ''}/${chartMeta.name}`, 'README installs the published chart');
    assert.equal(readme.published.version, pkg.version);
    const chartRef = `${(out['chart'] ?? '').replace(/^oci:\/\//, '')}/${chartMeta.name}:${pkg.version}`;
    assert.deepEqual(readme.verified, [`${values.image.repository}:${pkg.version}`, chartRef], 'README verifies the published image and chart');
    // The identity README tells cosign to expect is this workflow at a version tag of the chart's home repository.
    const identity = /--certificate-identity-regexp '([^']+)'/.exec(README)?.[1] ?? '';
    const signer = `${chartMeta.home}/.github/workflows/release.yml@refs/tags/v${pkg.version}`;
    assert.match(signer, new RegExp(identity));
    assert.doesNotMatch(`${chartMeta.home}/.github/workflows/ci.yml@refs/tags/v${pkg.version}`, new RegExp(identity));
    assert.match(README, /--certificate-oidc-issuer https:\/\/token\.actions\.githubusercontent\.com/);
  });

  it('refuses a tag that does not name the version of package.json, Chart.yaml and CHANGELOG.md, naming each', () => {
    const result = releaseScript('check', 'v99.0.0', owner);
    assert.equal(result.status, 1);
    for (const what of ['package.json version', 'Chart.yaml version', 'Chart.yaml appVersion', 'CHANGELOG.md has no']) assert.ok(result.stderr.includes(what), result.stderr);
    assert.equal(releaseScript('check', pkg.version, owner).status, 1, 'a tag without the leading v');
  });

  it('the release notes are the CHANGELOG.md section of the version', () => {
    const notes = releaseScript('notes', pkg.version);
    assert.equal(notes.status, 0, notes.stderr);
    const changelog = readFileSync(join(REPO_ROOT, 'CHANGELOG.md'), 'utf8');
    const start = changelog.indexOf(`## [${pkg.version}]`);
    const section = changelog.slice(changelog.indexOf('\n', start) + 1).split(/^## \[|^\[[^\]]+\]: /m)[0]?.trim();
    assert.equal(notes.stdout.trim(), section);
    const publish = jobs['release']?.steps.find((s) => s.run?.includes('gh release create'));
    assert.match(publish?.run ?? '', /bash scripts\/release\.sh notes "\$VERSION"/);
  });

  it('signs image and chart keylessly, and attests their provenance', () => {
    for (const job of ['image', 'chart']) {
      assert.ok(jobs[job]?.steps.some((s) => /^cosign sign --yes "\$\w+@\$DIGEST"$/.test(s.run?.trim() ?? '')), `${job}: cosign sign`);
      assert.equal(find(job, 'actions/attest-build-provenance@').with?.['push-to-registry'], true);
      find(job, 'sigstore/cosign-installer@');
    }
  });

  it("README's clone install builds and pushes the image the chart then deploys (repository from --set, tag appVersion)", () => {
    const { clone } = readmeInstall();
    assert.equal(clone.imageBuilt, `${clone.set['image.repository'] ?? '?'}:${chartMeta.appVersion}`);
    assert.equal(clone.imagePushed, clone.imageBuilt);
  });

  it('installs the same helm as the chart tests', () => {
    const provision = readFileSync(join(REPO_ROOT, 'scripts', 'provision.d', '31-helm.sh'), 'utf8');
    const pinned = /HELM_VERSION="\$\{MI_ANYWHERE_HELM_VERSION:-(v[\d.]+)\}"/.exec(provision)?.[1];
    assert.equal(find('chart', 'Azure/setup-helm@').with?.['version'], pinned);
  });

  describe('packages the chart with the version, defaulting to the image released with it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mi-anywhere-release-'));
    after(() => rmSync(dir, { recursive: true, force: true }));

    for (const [name, image] of [
      ['this repository', values.image.repository],
      ['a fork', `ghcr.io/${owner.toLowerCase()}/mi-anywhere`],
    ] as const) {
      it(name, () => {
        helmPath();
        const out = join(dir, name.replaceAll(' ', '-'));
        const packaged = releaseScript('chart', pkg.version, image, out);
        assert.equal(packaged.status, 0, packaged.stderr);
        const tgz = packaged.stdout.trim();
        assert.equal(tgz, join(out, `${chartMeta.name}-${pkg.version}.tgz`));
        const shown = parse(runHelm(['show', 'chart', tgz]).stdout) as { version: string; appVersion: string };
        assert.deepEqual([shown.version, shown.appVersion], [pkg.version, pkg.version]);
        const packagedValues = parse(runHelm(['show', 'values', tgz]).stdout) as { image: { repository: string } };
        assert.equal(packagedValues.image.repository, image);
        const rendered = runHelm(['template', 'mi', tgz]);
        assert.equal(rendered.status, 0, rendered.stderr);
        assert.ok(rendered.stdout.includes(`${image}:${pkg.version}`), 'the webhook and its injected sidecar use the released image');
      });
    }
  });
});
