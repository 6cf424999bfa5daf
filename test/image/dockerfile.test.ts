/**
 * The Dockerfile's rules, checked without a container engine (CONTRIBUTING.md, "The image"): digest-pinned Node 24 base, multi-stage
 * (build with all dependencies, runtime with the self-contained bundles only), numeric non-root user, exec-form
 * ENTRYPOINT ["node"] with the sidecar as default CMD, OCI labels, a tight .dockerignore; and the build stage's
 * `npm run build` really produces both entry files the chart and the webhook start.
 */
import assert from 'node:assert/strict';
import { existsSync, globSync, readFileSync, rmSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../webhook/config.ts';
import { REPO_ROOT } from '../helpers/sidecar.ts';
import { BUILD_INPUTS, buildInCopy, ENTRY_FILES } from '../helpers/build-context.ts';
import { argDefaults, execForm, isInContext, parseDockerfile, type Stage } from './dockerfile.ts';

const dockerfile = parseDockerfile(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8'));
const dockerignore = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8');
const finalStage = dockerfile.stages.at(-1) as Stage;

function runs(stage: Stage | undefined): string[] {
  return (stage?.instructions ?? []).filter((i) => i.keyword === 'RUN').map((i) => i.args);
}

function stageNamed(name: string): Stage | undefined {
  return dockerfile.stages.find((s) => s.name === name);
}

describe('Dockerfile rules', () => {
  const globals = argDefaults(dockerfile.preamble);

  it('the base image is Node 24 LTS pinned by digest, and every stage starts from it or an earlier stage', () => {
    const base = globals.get('NODE_IMAGE');
    assert.match(base ?? '', /^node:24(\.\d+){0,2}-[a-z0-9-]+@sha256:[0-9a-f]{64}$/);
    const names = new Set<string>();
    for (const stage of dockerfile.stages) {
      assert.ok(stage.from === '${NODE_IMAGE}' || names.has(stage.from), `FROM ${stage.from}`);
      if (stage.name) names.add(stage.name);
    }
  });

  it('is multi-stage: build (npm ci + npm run build), then a runtime that holds dist/ only', () => {
    assert.ok(dockerfile.stages.length >= 2);
    const build = stageNamed('build');
    assert.ok(runs(build).some((r) => /^npm ci\b/.test(r) && !r.includes('--omit=dev')), 'build stage: npm ci');
    assert.ok(runs(build).includes('npm run build'), 'build stage: npm run build');
    const copies = finalStage.instructions.filter((i) => i.keyword === 'COPY').map((i) => i.args);
    assert.ok(copies.some((c) => /^--from=build\s+\/app\/dist\s/.test(c)), 'runtime copies dist from the build stage');
    assert.ok(!copies.some((c) => /node_modules|package(-lock)?\.json/.test(c)), `the bundles are self-contained: no node_modules, no package files (${copies.join('; ')})`);
    assert.deepEqual(runs(finalStage), [], 'the runtime stage runs nothing (no package manager state in the final image)');
  });

  it('runs as a numeric non-root user', () => {
    const users = finalStage.instructions.filter((i) => i.keyword === 'USER');
    assert.equal(users.length, 1);
    const match = /^(\d+)(?::(\d+))?$/.exec(users[0]?.args ?? '');
    assert.ok(match, `USER ${users[0]?.args} is numeric`);
    assert.ok(Number(match[1]) > 0 && Number(match[2] ?? 1) > 0, 'not root');
    assert.equal(Number(match[1]), loadConfig({ MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'x' }).sidecar.runAsUser, 'same uid the webhook injects');
  });

  it('uses exec-form ENTRYPOINT ["node"] and the sidecar as default CMD; no shell-form CMD/ENTRYPOINT anywhere', () => {
    for (const stage of dockerfile.stages) {
      for (const i of stage.instructions.filter((x) => x.keyword === 'CMD' || x.keyword === 'ENTRYPOINT')) {
        assert.ok(execForm(i.args), `line ${i.line}: ${i.keyword} ${i.args} is exec form`);
      }
    }
    const entrypoint = finalStage.instructions.filter((i) => i.keyword === 'ENTRYPOINT').at(-1);
    const cmd = finalStage.instructions.filter((i) => i.keyword === 'CMD').at(-1);
    assert.deepEqual(execForm(entrypoint?.args ?? ''), ['node']);
    assert.deepEqual(execForm(cmd?.args ?? ''), [ENTRY_FILES.sidecar]);
    const sidecar = loadConfig({ MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'x' }).sidecar;
    assert.deepEqual([...sidecar.command, ...sidecar.args], ['node', ENTRY_FILES.sidecar], 'the webhook starts the sidecar the same way');
  });

  it('carries OCI labels', () => {
    const labels = finalStage.instructions.filter((i) => i.keyword === 'LABEL').map((i) => i.args).join(' ');
    for (const key of ['title', 'description', 'version', 'revision', 'licenses', 'source', 'base.name']) {
      assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${key.replace('.', '\\.')}=`), key);
    }
  });

  it('is read-only-root-filesystem friendly: the runtime writes nowhere and owns nothing it could change', () => {
    assert.ok(!finalStage.instructions.some((i) => i.keyword === 'VOLUME'), 'no VOLUME (it would need a writable mount)');
    assert.ok(!finalStage.instructions.some((i) => i.keyword === 'COPY' && /--chown|--chmod/.test(i.args)), 'files stay root-owned');
  });

  it('.dockerignore keeps exactly the build inputs in the context', () => {
    for (const input of BUILD_INPUTS) assert.ok(isInContext(dockerignore, input), `${input} in context`);
    assert.ok(isInContext(dockerignore, 'sidecar/main.ts'));
    for (const path of ['node_modules/express/index.js', '.git/config', 'dist/sidecar/main.js', 'test/unit/x.test.ts', 'examples/compose/identity/clientSecret', '.env', 'charts/mi-anywhere/values.yaml']) {
      assert.equal(isInContext(dockerignore, path), false, `${path} stays out`);
    }
    const copied = dockerfile.stages.flatMap((s) =>
      s.instructions.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from')).flatMap((i) => i.args.split(/\s+/).slice(0, -1)),
    );
    for (const source of copied) {
      assert.ok(isInContext(dockerignore, source.replace(/^\.\//, '')), `COPY ${source} is in the context`);
      assert.ok((BUILD_INPUTS as readonly string[]).includes(source), `COPY ${source} is a known build input`);
    }
  });
});

describe('the build stage output', () => {
  const dir = buildInCopy();
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('npm run build produces both entry files, the compile-cache warmer, the module type and the notices', () => {
    for (const file of Object.values(ENTRY_FILES)) assert.ok(existsSync(join(dir, file)), file);
    assert.ok(existsSync(join(dir, 'dist', 'warm-compile-cache.js')), 'dist/warm-compile-cache.js');
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'dist', 'package.json'), 'utf8')), { type: 'module', private: true });
  });

  it('THIRD-PARTY-NOTICES.md names every bundled package with its licence text', () => {
    const notices = readFileSync(join(dir, 'dist', 'THIRD-PARTY-NOTICES.md'), 'utf8');
    const named = new Set([...notices.matchAll(/^## ((?:@[^/\s]+\/)?[^@\s]+)@\S+$/gm)].map((m) => m[1]));
    for (const runtime of ['express', 'pino', 'prom-client', 'jose', '@azure/msal-node', '@azure/identity', 'node-forge', '@kubernetes/client-node', '@peculiar/x509', 'zod']) {
      assert.ok(named.has(runtime), `${runtime} in the notices`);
    }
    for (const dev of ['typescript', 'esbuild', 'eslint', 'fast-check']) assert.equal(named.has(dev), false, `${dev} is not bundled`);
    assert.match(notices, /## express@\S+\n\nLicence: MIT\n\n````text\n\(The MIT License\)/);
  });

  it('each program is bundled: its files import only Node built-ins and its own chunks, never a package or a .ts file', () => {
    const files = globSync('dist/**/*.js', { cwd: dir });
    assert.ok(files.length > 2, files.join(', '));
    for (const file of files) {
      const text = readFileSync(join(dir, file), 'utf8');
      // esbuild writes its own imports at the start of a line, and dynamic ones with double quotes (comments of the
      // bundled packages hold JSDoc type imports of declaration files, in single quotes).
      const specifiers = [...text.matchAll(/^\s*(?:import|export)\b[^'";]*?from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|(?<![{@\w])import\("([^"]+)"\)/gm)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
      for (const specifier of specifiers) {
        assert.ok(isBuiltin(specifier) || (specifier.startsWith('./') || specifier.startsWith('../')) && specifier.endsWith('.js'), `${file} imports ${specifier}`);
      }
    }
  });
});
