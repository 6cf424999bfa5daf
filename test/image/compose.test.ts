/**
 * The docker compose example (examples/compose/) without a container engine: its structure (shared network
 * namespace, healthcheck-gated start, hardening, environment names from sidecar/contract.ts, the identity files
 * mounted into the sidecar only, the app holding no credential), and then the real thing as processes: the
 * sidecar started with the compose file's environment, the sample app (DefaultAzureCredential) started with the
 * app service's environment, printing the claims of the token it got: from the built-in dev issuer
 * (compose.dev.yaml), and from an Entra-compatible authority with the identity files (compose.yaml).
 * Plus the Kubernetes identity Secret example's key names.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import {
  APP_ENV,
  DEFAULT_TOKEN_PORT,
  IDENTITY_FILES,
  PATHS,
  profileEnv,
  SIDECAR_ENV,
} from '../../sidecar/contract.ts';
import { startTestAuthority } from '../authority/authority.ts';
import { node24, REPO_ROOT, startSidecar } from '../helpers/sidecar.ts';
import { execForm } from './dockerfile.ts';

const COMPOSE_DIR = join(REPO_ROOT, 'examples', 'compose');

interface ComposeService {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  network_mode?: string;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  read_only?: boolean;
  user?: string;
  cap_drop?: string[];
  security_opt?: string[];
  ports?: unknown[];
}

interface ComposeFile {
  name: string;
  services: Record<string, ComposeService>;
}

function readCompose(file: string): ComposeFile {
  return parse(readFileSync(join(COMPOSE_DIR, file), 'utf8')) as ComposeFile;
}

/** Compose's `${VAR}` / `${VAR:?message}` interpolation with the given variables. */
function interpolate(value: string, vars: Readonly<Record<string, string>>): string {
  return value.replace(/\$\{([A-Z_][A-Z0-9_]*)(?::\?[^}]*)?\}/g, (_, name: string) => {
    const v = vars[name];
    if (v === undefined) throw new Error(`compose variable ${name} is not set`);
    return v;
  });
}

/**
 * The sample app as compose runs it (`node main.ts`) with the given environment. Asynchronous on purpose: the
 * test authority serves from this process, so blocking it (spawnSync) would deadlock the token exchange.
 */
function runSampleApp(env: Readonly<Record<string, string>>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('MI_ANYWHERE_') && !k.startsWith('AZURE_') && !(Object.values(APP_ENV) as string[]).includes(k)),
  );
  const child = spawn(node24(), [join(COMPOSE_DIR, 'app', 'main.ts')], { cwd: REPO_ROOT, env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve) => {
    child.once('close', (status) => {
      clearTimeout(killer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** The app service's environment, interpolated, with the sidecar's real address instead of 127.0.0.1:50342. */
function appEnvFor(service: ComposeService, vars: Readonly<Record<string, string>>, tokenUrl: string): Record<string, string> {
  const composeBase = `http://127.0.0.1:${DEFAULT_TOKEN_PORT}`;
  return Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(v, vars).replace(composeBase, tokenUrl)]));
}

for (const [file, mode] of [['compose.yaml', 'entra'], ['compose.dev.yaml', 'dev']] as const) {
  describe(`examples/compose/${file}: structure`, () => {
    const compose = readCompose(file);
    const sidecar = compose.services['mi-anywhere'] as ComposeService;
    const app = compose.services['app'] as ComposeService;
    const header = mode === 'dev' ? 'dev-only-identity-header' : 'test-header';
    const vars = { MI_ANYWHERE_IDENTITY_HEADER: header };

    it('has exactly the sidecar and the app', () => {
      assert.deepEqual(Object.keys(compose.services).sort(), ['app', 'mi-anywhere']);
    });

    it('the app shares the sidecar network namespace and starts once the sidecar is ready', () => {
      assert.equal(app.network_mode, 'service:mi-anywhere');
      assert.deepEqual(app.depends_on, { 'mi-anywhere': { condition: 'service_healthy' } });
      assert.deepEqual(sidecar.healthcheck?.test, ['CMD', 'node', 'dist/sidecar/main.js', '--probe']);
      assert.equal(sidecar.ports, undefined, 'the token listener is never published');
      assert.equal(app.ports, undefined);
    });

    it('the sidecar runs the image entry point in the right mode, hardened like the chart', () => {
      assert.deepEqual(sidecar.command?.slice(0, 1), ['dist/sidecar/main.js']);
      assert.equal(sidecar.command?.includes('--dev'), mode === 'dev');
      assert.equal(sidecar.environment?.[SIDECAR_ENV.mode], mode);
      for (const service of [sidecar, app]) {
        assert.equal(service.read_only, true);
        assert.match(service.user ?? '', /^[1-9]\d*:[1-9]\d*$/);
        assert.deepEqual(service.cap_drop, ['ALL']);
        assert.deepEqual(service.security_opt, ['no-new-privileges:true']);
      }
      assert.equal(sidecar.user, '65532:65532');
    });

    it('uses only environment names the sidecar knows, and gives the app the "default" profile', () => {
      const known = new Set<string>(Object.values(SIDECAR_ENV));
      assert.deepEqual(Object.keys(sidecar.environment ?? {}).filter((k) => !known.has(k)), []);
      const appEnv = Object.fromEntries(Object.entries(app.environment ?? {}).map(([k, v]) => [k, interpolate(v, vars)]));
      const { TOKEN_SCOPE: scope, ...sdkEnv } = appEnv;
      assert.ok(scope?.endsWith('/.default'));
      const expected = Object.fromEntries(profileEnv('default', { baseUrl: `http://127.0.0.1:${DEFAULT_TOKEN_PORT}`, secret: header }));
      assert.deepEqual(sdkEnv, expected);
      assert.equal(interpolate(sidecar.environment?.[SIDECAR_ENV.identityHeader] ?? '', vars), header);
    });

    it('the app gets no credential: no identity files, no credential variables', () => {
      assert.equal(app.volumes, undefined);
      const credentialish = /CLIENT_SECRET|CLIENT_CERTIFICATE|PASSWORD|TENANT|CLIENT_ID|FEDERATED|TOKEN_FILE/;
      assert.deepEqual(Object.keys(app.environment ?? {}).filter((k) => credentialish.test(k)), []);
      if (mode === 'entra') {
        const identityDir = sidecar.environment?.[SIDECAR_ENV.identityDir] ?? '';
        const defaultIdentity = sidecar.environment?.[SIDECAR_ENV.defaultIdentity] ?? '';
        assert.deepEqual(sidecar.volumes, [`./identity:${identityDir}/${defaultIdentity}:ro`]);
      } else {
        assert.equal(sidecar.volumes, undefined);
      }
    });

    it('builds the sample app from a digest-pinned Node 24 base and never commits real identity files', () => {
      assert.equal(app.build, './app');
      const dockerfile = readFileSync(join(COMPOSE_DIR, 'app', 'Dockerfile'), 'utf8');
      assert.match(dockerfile, /^ARG NODE_IMAGE=node:24[.\d]*-[a-z-]+@sha256:[0-9a-f]{64}$/m);
      assert.deepEqual(execForm(/^ENTRYPOINT (.*)$/m.exec(dockerfile)?.[1] ?? ''), ['node', 'main.ts']);
      assert.match(readFileSync(join(COMPOSE_DIR, '.gitignore'), 'utf8'), /^identity\/$/m);
      const files = readdirSync(join(COMPOSE_DIR, 'identity.example')).sort();
      assert.deepEqual(files, [IDENTITY_FILES.clientId, IDENTITY_FILES.clientSecret, IDENTITY_FILES.tenantId].sort());
    });
  });
}

describe('examples/compose: the sample app gets a token from the sidecar', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('dev issuer (compose.dev.yaml)', async () => {
    const compose = readCompose('compose.dev.yaml');
    const service = compose.services['mi-anywhere'] as ComposeService;
    // The compose environment as it is, listeners moved to free ports (several tests share this machine).
    const sidecar = await startSidecar({ env: { ...service.environment, [SIDECAR_ENV.tokenPort]: '0' }, args: ['--dev'] });
    cleanups.push(() => sidecar.stop());
    const app = compose.services['app'] as ComposeService;
    const env = appEnvFor(app, {}, sidecar.tokenUrl);
    const result = await runSampleApp(env);
    assert.equal(result.status, 0, result.stderr);
    const printed = JSON.parse(result.stdout) as { scope: string; claims: Record<string, unknown> };
    assert.equal(printed.claims['aud'], 'https://management.azure.com');
    assert.ok(typeof printed.claims['iss'] === 'string' && printed.claims['iss'].startsWith(sidecar.tokenUrl), String(printed.claims['iss']));
    assert.doesNotMatch(result.stdout, /eyJ[\w-]+\.eyJ/, 'the token itself is never printed');
  });

  it('Entra mode with the identity files (compose.yaml) against an Entra-compatible authority', async () => {
    const authority = await startTestAuthority();
    cleanups.push(() => authority.stop());
    const registration = authority.registerApp({ secrets: ['compose-example-secret'] });
    const root = mkdtempSync(join(tmpdir(), 'mi-anywhere-compose-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    // What a user does: copy identity.example/ to identity/ and fill in the app registration.
    const identity = join(root, 'identity');
    cpSync(join(COMPOSE_DIR, 'identity.example'), identity, { recursive: true });
    writeFileSync(join(identity, IDENTITY_FILES.tenantId), `${registration.tenantId}\n`);
    writeFileSync(join(identity, IDENTITY_FILES.clientId), `${registration.clientId}\n`);
    writeFileSync(join(identity, IDENTITY_FILES.clientSecret), 'compose-example-secret\n');

    const compose = readCompose('compose.yaml');
    const service = compose.services['mi-anywhere'] as ComposeService;
    const vars = { MI_ANYWHERE_IDENTITY_HEADER: 'b3c1f0e2a4d5968778695a4b3c2d1e0f' };
    const env = Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(v, vars)]));
    // The volume `./identity:<dir>/<default identity>:ro`, as a directory on this machine.
    const [source, target] = (service.volumes?.[0] ?? '').split(':') as [string, string];
    assert.equal(source, './identity');
    const identityDir = join(root, 'identities');
    cpSync(identity, join(identityDir, target.slice((env[SIDECAR_ENV.identityDir] ?? '').length + 1)), { recursive: true });
    const sidecar = await startSidecar({
      args: [],
      env: {
        ...env,
        [SIDECAR_ENV.identityDir]: identityDir,
        [SIDECAR_ENV.tokenPort]: '0',
        [SIDECAR_ENV.authorityHost]: authority.url,
        NODE_EXTRA_CA_CERTS: authority.caFile,
      },
    });
    cleanups.push(() => sidecar.stop());
    const app = compose.services['app'] as ComposeService;
    const result = await runSampleApp(appEnvFor(app, vars, sidecar.tokenUrl));
    assert.equal(result.status, 0, `${result.stderr}\n${sidecar.logs()}`);
    const printed = JSON.parse(result.stdout) as { claims: Record<string, unknown> };
    assert.equal(printed.claims['appid'], registration.clientId);
    assert.equal(printed.claims['tid'], registration.tenantId);
    assert.equal(printed.claims['aud'], 'https://management.azure.com');
    assert.ok(authority.tokenCalls(registration.clientId) >= 1, 'the token came from the authority, with the identity files');
    assert.equal(existsSync(join(COMPOSE_DIR, 'identity')), false, 'the test never writes into the example directory');
  });
});

describe('examples/identity-secret.yaml', () => {
  const docs = parseAllDocuments(readFileSync(join(REPO_ROOT, 'examples', 'identity-secret.yaml'), 'utf8')).map((d) => d.toJS() as Record<string, unknown>);

  it('every Secret uses only the sidecar identity file names, with tenantId and clientId', () => {
    const secrets = docs.filter((d) => d['kind'] === 'Secret');
    assert.equal(secrets.length, 3);
    const known = new Set<string>(Object.values(IDENTITY_FILES));
    for (const secret of secrets) {
      const keys = Object.keys(secret['stringData'] as Record<string, string>);
      assert.deepEqual(keys.filter((k) => !known.has(k)), []);
      assert.ok(keys.includes(IDENTITY_FILES.tenantId) && keys.includes(IDENTITY_FILES.clientId));
    }
  });

  it('the example pod opts in by label and annotation and names an existing example Secret', () => {
    const pod = docs.find((d) => d['kind'] === 'Pod') as { metadata: { labels: Record<string, string>; annotations: Record<string, string> } };
    assert.equal(pod.metadata.labels['mi-anywhere.io/inject'], 'true');
    assert.equal(pod.metadata.annotations['mi-anywhere.io/inject'], 'true');
    const names = docs.filter((d) => d['kind'] === 'Secret').map((d) => (d['metadata'] as { name: string }).name);
    assert.ok(names.includes(pod.metadata.annotations['mi-anywhere.io/identities'] ?? ''));
  });

  it('mentions the token endpoint paths the SDKs use (documentation stays in sync)', () => {
    const compose = readFileSync(join(COMPOSE_DIR, 'compose.yaml'), 'utf8');
    assert.ok(compose.includes(PATHS.appService) && compose.includes(PATHS.msiEndpoint));
  });
});
