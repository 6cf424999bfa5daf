/**
 * The CI and developer-identity examples (examples/github-actions, gitlab-ci, azure-pipelines, developer-identity)
 * stay true to the project: their YAML parses, and every setting, identity file, credential source, platform
 * variable, image, program path, flag, npm script and command option they use exists here, with the values the
 * sidecar expects. (They cannot run here: they need the CI platforms and Docker.)
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseDocument } from 'yaml';
import pkg from '../../package.json' with { type: 'json' };
import { loadConfig } from '../../sidecar/config.ts';
import {
  CI_ENV,
  CREDENTIAL_SOURCES,
  DEFAULT_FEDERATED_AUDIENCE,
  DEFAULT_TOKEN_PORT,
  IDENTITY_FILES,
  PATHS,
  profileEnv,
  SIDECAR_ENV,
} from '../../sidecar/contract.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const IMAGE = `ghcr.io/mi-anywhere/mi-anywhere:${pkg.version}`;
const APP_SERVICE_ENDPOINT = profileEnv('app-service', { baseUrl: `http://127.0.0.1:${DEFAULT_TOKEN_PORT}`, secret: 's' })[0]![1];

function yamlOf(path: string): Record<string, unknown> {
  const doc = parseDocument(read(path));
  assert.deepEqual(doc.errors.map((e) => e.message), [], `${path} parses`);
  return doc.toJS() as Record<string, unknown>;
}

const examples = [
  { file: 'examples/github-actions/workflow.yml', source: 'github-actions' },
  { file: 'examples/gitlab-ci/.gitlab-ci.yml', source: 'gitlab-ci' },
  { file: 'examples/azure-pipelines/azure-pipelines.yml', source: 'azure-pipelines' },
] as const;

describe('CI examples use only what the project has', () => {
  for (const { file, source } of examples) {
    describe(file, () => {
      const text = read(file);
      it('parses as YAML', () => void yamlOf(file));
      it('every MI_ANYWHERE_* setting exists', () => {
        const used = new Set(text.match(/MI_ANYWHERE_[A-Z_]+/g) ?? []);
        assert.ok(used.size > 0);
        for (const name of used) assert.ok((Object.values(SIDECAR_ENV) as string[]).includes(name), `${name} is a sidecar setting`);
      });
      it(`describes a ${source} identity with known identity files`, () => {
        const written = [...text.matchAll(/> "[^"]*\/([A-Za-z.]+)"/g)].map((m) => m[1]!);
        assert.ok(written.includes(IDENTITY_FILES.credentialSource));
        for (const name of written) assert.ok((Object.values(IDENTITY_FILES) as string[]).includes(name), `${name} is an identity file`);
        const value = /printf '%s\\n' ([a-z-]+) > "[^"]*\/credentialSource"/.exec(text)?.[1];
        assert.equal(value, source);
        assert.ok((CREDENTIAL_SOURCES as readonly string[]).includes(value));
      });
      it('uses the published image of this version, its program paths and the --probe flag', () => {
        const images = text.match(/ghcr\.io\/mi-anywhere\/mi-anywhere:[\w.-]+/g) ?? [];
        assert.ok(images.length > 0);
        for (const image of images) assert.equal(image, IMAGE);
        for (const program of text.match(/dist\/sidecar\/[\w-]+\.js/g) ?? []) {
          assert.ok(existsSync(join(ROOT, program.replace(/^dist\//, '').replace(/\.js$/, '.ts'))), `${program} is built from the repository`);
        }
        assert.doesNotThrow(() => loadConfig({ [SIDECAR_ENV.mode]: 'dev' }, ['--probe']));
      });
      it('points the SDK at the App Service endpoint with the sidecar\'s secret, and runs the sample SDK app', () => {
        assert.ok(text.includes(APP_SERVICE_ENDPOINT), `uses ${APP_SERVICE_ENDPOINT}`);
        assert.ok(text.includes(SIDECAR_ENV.identityHeader));
        assert.ok(existsSync(join(ROOT, 'examples/compose/app/main.ts')));
        assert.match(text, /examples\/compose\/app/);
      });
    });
  }

  it('GitHub Actions: the job may request its OIDC token and hands both variables to the sidecar', () => {
    const workflow = yamlOf('examples/github-actions/workflow.yml');
    assert.equal((workflow.permissions as Record<string, string>)['id-token'], 'write');
    const text = read('examples/github-actions/workflow.yml');
    for (const name of [CI_ENV.githubRequestUrl, CI_ENV.githubRequestToken]) assert.ok(text.includes(`--env ${name}\n`) || text.includes(`--env ${name} `), name);
  });

  it('GitLab CI: the id_tokens entry is the variable the sidecar reads, with the federated audience', () => {
    const job = yamlOf('examples/gitlab-ci/.gitlab-ci.yml')['integration-tests'] as { id_tokens: Record<string, { aud: string }> };
    assert.deepEqual(Object.keys(job.id_tokens), [SIDECAR_ENV.gitlabIdToken]);
    assert.equal(job.id_tokens[SIDECAR_ENV.gitlabIdToken]!.aud, DEFAULT_FEDERATED_AUDIENCE);
  });

  it('Azure Pipelines: SYSTEM_ACCESSTOKEN is mapped into the sidecar step and both variables reach the sidecar', () => {
    const pipeline = yamlOf('examples/azure-pipelines/azure-pipelines.yml') as { steps: Array<{ script?: string; env?: Record<string, string> }> };
    const start = pipeline.steps.find((s) => s.script?.includes('docker run'));
    assert.equal(start?.env?.[CI_ENV.azurePipelinesAccessToken], '$(System.AccessToken)');
    for (const name of [CI_ENV.azurePipelinesOidcUri, CI_ENV.azurePipelinesAccessToken]) assert.ok(start?.script?.includes(`--env ${name}`), name);
    assert.ok(start?.script?.includes(`/${IDENTITY_FILES.serviceConnectionId}"`));
  });
});

describe('developer identity compose example', () => {
  const file = 'examples/developer-identity/compose.yaml';
  it('parses, reads the env file the command writes, and reaches the host through the host gateway', () => {
    const compose = yamlOf(file) as { services: { app: { build: string; env_file: string; extra_hosts: string[] } } };
    const app = compose.services.app;
    assert.ok(existsSync(join(ROOT, 'examples/developer-identity', app.build, 'Dockerfile')));
    const command = read('scripts/developer-identity.ts');
    assert.equal(app.env_file, 'mi-anywhere.env');
    assert.match(command, /'app-env': \{ type: 'string', default: 'mi-anywhere\.env' \}/);
    assert.match(command, /'host-name': \{ type: 'string', default: 'host\.docker\.internal' \}/);
    assert.deepEqual(app.extra_hosts, ['host.docker.internal:host-gateway']);
    assert.ok(command.includes('PATHS.appService'));
    assert.equal(PATHS.appService, '/msi/token');
  });
  it('the documented command exists as an npm script with the options the example passes', () => {
    const text = read(file);
    const scripts = pkg.scripts as Record<string, string>;
    for (const [, script, args] of text.matchAll(/npm run ([\w-]+) -- (.*?)\s+#/g)) {
      assert.ok(scripts[script!], `npm run ${script} exists`);
      for (const option of args!.match(/--[\w-]+/g) ?? []) assert.ok(read('scripts/developer-identity.ts').includes(`'${option.slice(2)}': {`), `${option} is an option`);
    }
    assert.match(text, /npm run developer-identity -- --app-env/);
  });
});
