/**
 * The injected pod runs for real. A real kube-apiserver (test/helpers/kube.ts) calls the webhook
 * (`node webhook/main.ts`) registered exactly as the chart renders it; the pod the API server stores (a native
 * sidecar injected before a sample app that knows nothing of mi-anywhere) is then run with podman, using the
 * project image built from the Dockerfile, and the app's real Azure SDK (`DefaultAzureCredential`, the sample app
 * of examples/compose/app) gets a token that the sidecar obtained from an Entra-compatible authority
 * (test/authority) with the identity Secret's client secret.
 *
 * What runs exactly as stored: images, command, args, env (secretKeyRefs resolved from the Secret), the identity
 * Secret's projected volume laid out as kubelet does and mounted read-only at the stored path, security context
 * (uid/gid, read-only root, no-new-privileges, all capabilities dropped, RuntimeDefault seccomp), memory/CPU
 * limits, and one network namespace shared by every container (loopback only). test/e2e/pod-run-podman.ts does
 * the translation and refuses anything it does not know.
 *
 * What stands in for what cannot run here (also in docs/webhook.md "The injected pod, run for real"):
 * - `podman kube play` itself: podman 4.3 (Debian bookworm) refuses projected volumes and crashes on secret
 *   volumes, and runs init containers to completion first, so a native sidecar (`restartPolicy: Always`) would
 *   never let the app start. The test plays kubelet instead: the native sidecar is started first, its stored
 *   startupProbe (HTTP GET inside the pod's network namespace) is polled until it succeeds, and only then the
 *   app container starts: the ordering Kubernetes guarantees for native sidecars.
 * - the pause container: podman's own needs `catatonit`, absent here; a `sleep infinity` image from the local
 *   Node base holds the pod's network namespace instead.
 * - the route to Entra: the pod has no network (no network plumbing in this sandbox), so a relay container in the
 *   pod forwards the authority's 127.0.0.1 port to the test authority through a Unix socket; and the sidecar
 *   gets NODE_EXTRA_CA_CERTS for the authority's test CA (real Entra uses public CAs). These two are the only
 *   additions to the stored pod.
 * - liveness/readiness probes and restarts are not exercised (the sample app prints one token and exits).
 *
 * Podman unusable (not installed, base image not provisioned, a build failing) fails the test with the reason.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ANNOTATIONS, INJECT_KEY, SIDECAR_CONTAINER_NAME, WEBHOOK_PATHS } from '../../sidecar/contract.ts';
import { WEBHOOK_ENV } from '../../webhook/config.ts';
import { startTestAuthority, type RegisteredApp, type TestAuthority } from '../authority/authority.ts';
import { cacheDir } from '../helpers/helm.ts';
import { startKubeApiServer, type KubeCluster } from '../helpers/kube.ts';
import { chartWebhookConfiguration, loopbackServingCertificate } from '../helpers/webhook-reach.ts';
import { collectChildOutput } from '../helpers/collected-logs.ts';
import { containerRunArgs, CONTAINERS_CONF, podman, podmanAsync, podmanOk, volumeFiles, writeKubeletVolume, type Json, type SecretData } from './pod-run-podman.ts';
import { freePort } from '../helpers/ports.ts';

const REPO_ROOT = join(import.meta.dirname, '..', '..');
const SAMPLE_APP_DIR = join(REPO_ROOT, 'examples', 'compose', 'app');
const PROJECT_IMAGE = 'localhost/mi-anywhere:pod-run';
const APP_IMAGE = 'localhost/mi-anywhere-sample-app:pod-run';
const PAUSE_IMAGE = 'localhost/mi-anywhere-pause:pod-run';
const RELEASE_NS = 'mi-anywhere-system';
const APPS_NS = 'apps';
const IDENTITY_SECRET = 'app-identity';
const CLIENT_SECRET = 'pod-run-client-secret-0123456789';
const SCOPE = 'https://vault.azure.net/.default';
const suffix = randomBytes(4).toString('hex');
const POD_NAME = `mi-anywhere-pod-run-${suffix}`;

/** Waits for something another process does (bounded wait on a condition, not a timing assertion). */
async function eventually<T>(what: () => string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 120_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  while (performance.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  throw new Error(`timed out waiting for ${what()}${lastError instanceof Error ? `: ${lastError.message}` : ''}`);
}

function npmCacheDir(): string {
  const result = spawnSync('npm', ['config', 'get', 'cache'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : join(homedir(), '.npm');
}

/** Fills the npm cache with a lockfile's packages (the image builds install offline from it). */
function fillNpmCache(work: string, from: string): void {
  const dir = mkdtempSync(join(work, 'npm-'));
  for (const file of ['package.json', 'package-lock.json']) cpSync(join(from, file), join(dir, file));
  const fill = spawnSync('npm', ['ci', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, encoding: 'utf8' });
  assert.equal(fill.status, 0, `filling the npm cache from ${from}: ${fill.stderr}`);
  rmSync(dir, { recursive: true, force: true });
}

describe('the injected pod, run with podman', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  let cluster: KubeCluster | undefined;
  let authority: TestAuthority | undefined;
  let identity: RegisteredApp;
  let webhook: ChildProcess | undefined;
  let webhookOutput = '';
  let relay: Server | undefined;
  let stored: Json;
  let secrets: SecretData;

  before(async () => {
    // Podman usable at all? Each failure names its cause (these tests never skip).
    const version = spawnSync('podman', ['--version'], { encoding: 'utf8' });
    assert.equal(version.status, 0, `podman is not usable (${version.error?.message ?? version.stderr}): run scripts/provision.d/41-podman.sh (npm test provisions it)`);
    const errorFile = join(cacheDir(), 'podman', 'base-image.error');
    if (existsSync(errorFile)) assert.fail(`scripts/provision.d/41-podman.sh failed:\n${readFileSync(errorFile, 'utf8')}`);
    const tagFile = join(cacheDir(), 'podman', 'base-image.ok');
    assert.ok(existsSync(tagFile), `no local Node 24 base image (${tagFile}): run scripts/provision.d/41-podman.sh`);
    const baseImage = readFileSync(tagFile, 'utf8').trim();

    work = mkdtempSync(join(tmpdir(), 'mi-anywhere-pod-run-'));
    chmodSync(work, 0o755);
    writeFileSync(join(work, 'containers.conf'), CONTAINERS_CONF);
    env = { ...process.env, CONTAINERS_CONF: join(work, 'containers.conf') };

    // The images, as test/image/podman.test.ts builds them (offline, from the npm cache; the layer cache makes a
    // rebuild of an unchanged tree quick).
    fillNpmCache(work, REPO_ROOT);
    fillNpmCache(work, SAMPLE_APP_DIR);
    writeFileSync(join(work, 'npmrc'), 'offline=true\nfund=false\naudit=false\nupdate-notifier=false\n');
    const build = ['build', '--network', 'none', '--build-arg', `NODE_IMAGE=${baseImage}`, '--volume', `${npmCacheDir()}:/root/.npm`, '--volume', `${join(work, 'npmrc')}:/root/.npmrc:ro`];
    podmanOk([...build, '--tag', PROJECT_IMAGE, '--file', join(REPO_ROOT, 'Dockerfile'), REPO_ROOT], env, 1_200_000);
    podmanOk([...build, '--tag', APP_IMAGE, SAMPLE_APP_DIR], env, 1_200_000);
    const pauseDir = join(work, 'pause');
    mkdirSync(pauseDir);
    writeFileSync(join(pauseDir, 'Containerfile'), `FROM ${baseImage}\nENTRYPOINT ["sleep", "infinity"]\n`);
    podmanOk(['build', '--network', 'none', '--tag', PAUSE_IMAGE, pauseDir], env);

    cluster = await startKubeApiServer();
    authority = await startTestAuthority();
    identity = authority.registerApp({ displayName: 'pod-run app', secrets: [CLIENT_SECRET] });
    await cluster.createNamespace(RELEASE_NS);
    await cluster.createNamespace(APPS_NS);
    const secret = await cluster.request('POST', `/api/v1/namespaces/${APPS_NS}/secrets`, {
      metadata: { name: IDENTITY_SECRET },
      stringData: { tenantId: identity.tenantId, clientId: identity.clientId, clientSecret: CLIENT_SECRET },
    });
    assert.equal(secret.status, 201, JSON.stringify(secret.json));

    // The webhook as a process with a serving certificate from files, registered as the chart registers it.
    const tls = await loopbackServingCertificate();
    writeFileSync(join(work, 'tls.crt'), tls.certPem);
    writeFileSync(join(work, 'tls.key'), tls.keyPem, { mode: 0o600 });
    const [port, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    webhook = spawn(process.execPath, [join(REPO_ROOT, 'webhook', 'main.ts')], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '',
        [WEBHOOK_ENV.address]: '127.0.0.1',
        [WEBHOOK_ENV.port]: String(port),
        [WEBHOOK_ENV.healthAddress]: '127.0.0.1',
        [WEBHOOK_ENV.healthPort]: String(healthPort),
        [WEBHOOK_ENV.metricsAddress]: '127.0.0.1',
        [WEBHOOK_ENV.metricsPort]: String(metricsPort),
        [WEBHOOK_ENV.certMode]: 'files',
        [WEBHOOK_ENV.tlsCertFile]: join(work, 'tls.crt'),
        [WEBHOOK_ENV.tlsKeyFile]: join(work, 'tls.key'),
        [WEBHOOK_ENV.kubeconfig]: cluster.kubeconfigPath,
        [WEBHOOK_ENV.nativeSidecar]: 'auto',
        [WEBHOOK_ENV.sidecarImage]: PROJECT_IMAGE,
        [WEBHOOK_ENV.sidecarImagePullPolicy]: 'Never',
        [WEBHOOK_ENV.sidecarAuthorityHost]: authority.url,
      },
    });
    collectChildOutput(webhook, 'pod-run-webhook');
    webhook.stdout?.setEncoding('utf8').on('data', (c: string) => (webhookOutput += c));
    webhook.stderr?.setEncoding('utf8').on('data', (c: string) => (webhookOutput += c));
    await eventually(() => `webhook readiness:\n${webhookOutput}`, async () => ((await fetch(`http://127.0.0.1:${healthPort}${WEBHOOK_PATHS.readiness}`)).status === 200 ? true : undefined));
    const mwc = chartWebhookConfiguration({ url: `https://127.0.0.1:${port}${WEBHOOK_PATHS.mutate}`, caPem: tls.caPem, scoped: true, releaseNamespace: RELEASE_NS, name: `mi-anywhere-pod-run-${suffix}` });
    const registered = await cluster.request('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', mwc);
    assert.equal(registered.status, 201, JSON.stringify(registered.json));

    const body = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'app', labels: { [INJECT_KEY]: 'true' }, annotations: { [ANNOTATIONS.identities]: IDENTITY_SECRET } },
      spec: {
        automountServiceAccountToken: false,
        containers: [{
          name: 'app',
          image: APP_IMAGE,
          imagePullPolicy: 'Never',
          env: [{ name: 'TOKEN_SCOPE', value: SCOPE }],
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } },
        }],
      },
    };
    // The API server loads the registration asynchronously: a dry run shows when it is in force.
    await eventually(() => `the API server calling the webhook:\n${webhookOutput}`, async () => {
      const res = await cluster?.request('POST', `/api/v1/namespaces/${APPS_NS}/pods?dryRun=All`, body);
      return res?.status === 201 && res.json.spec.initContainers?.length > 0 ? true : undefined;
    });
    const created = await cluster.request('POST', `/api/v1/namespaces/${APPS_NS}/pods`, body);
    assert.equal(created.status, 201, JSON.stringify(created.json));
    stored = (await cluster.request('GET', `/api/v1/namespaces/${APPS_NS}/pods/app`)).json;
    const secretData = (await cluster.request('GET', `/api/v1/namespaces/${APPS_NS}/secrets/${IDENTITY_SECRET}`)).json.data as Record<string, string>;
    secrets = new Map([[IDENTITY_SECRET, secretData]]);
  });

  after(async () => {
    if (env) podman(['pod', 'rm', '--force', '--time', '0', POD_NAME], env);
    if (webhook && webhook.exitCode === null) {
      const exited = new Promise((resolve) => webhook?.once('close', resolve));
      webhook.kill('SIGTERM');
      await exited;
    }
    if (relay) await new Promise((resolve) => relay?.close(resolve));
    await authority?.stop();
    await cluster?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the stored pod is the injected one: a native sidecar from the project image before the app', () => {
    assert.deepEqual(stored.spec.initContainers.map((c: Json) => [c.name, c.image, c.restartPolicy]), [[SIDECAR_CONTAINER_NAME, PROJECT_IMAGE, 'Always']]);
    assert.deepEqual(stored.spec.containers.map((c: Json) => c.name), ['app']);
    assert.ok(stored.spec.initContainers[0].startupProbe.httpGet, 'the sidecar has the startupProbe kubelet gates the app on');
  });

  it('runs under podman from the stored spec, and DefaultAzureCredential in the app gets a token through the sidecar', async () => {
    // The pod: one network namespace (loopback only), held by the pause stand-in.
    podmanOk(['pod', 'create', '--name', POD_NAME, '--network', 'none', '--infra-image', PAUSE_IMAGE], env);
    podmanOk(['pod', 'start', POD_NAME], env);

    // Stand-in for the route to Entra: 127.0.0.1:<authority port> inside the pod → Unix socket → the authority.
    const authorityPort = Number(new URL(authority?.url ?? '').port);
    const relayDir = join(work, 'relay');
    mkdirSync(relayDir, { mode: 0o755 });
    relay = createServer((client) => {
      const upstream = connect(authorityPort, '127.0.0.1');
      client.pipe(upstream).pipe(client);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => relay?.listen(join(relayDir, 'authority.sock'), resolve));
    const relayScript = `const net = require('node:net');
      net.createServer((c) => { const u = net.connect('/relay/authority.sock'); c.pipe(u).pipe(c); u.on('error', () => c.destroy()); c.on('error', () => u.destroy()); })
        .listen(${authorityPort}, '127.0.0.1', () => console.log('relay ready'));`;
    podmanOk(['run', '--detach', '--pod', POD_NAME, '--name', `${POD_NAME}-relay`, '--pull', 'never', '--volume', `${relayDir}:/relay`, '--entrypoint', '["node"]', PAUSE_IMAGE, '-e', relayScript], env);
    const probeFromPod = (url: string): number => {
      const result = podman(['exec', `${POD_NAME}-relay`, 'node', '-e', `fetch(${JSON.stringify(url)}).then((r) => console.log(r.status), () => console.log(0))`], env);
      return Number(result.stdout.trim() || 0);
    };

    // Volumes, from the Secret, as kubelet lays them out.
    const volumeDirs = new Map<string, string>();
    for (const volume of stored.spec.volumes as Json[]) {
      const dir = join(work, 'volumes', volume.name);
      mkdirSync(join(work, 'volumes'), { recursive: true, mode: 0o755 });
      writeKubeletVolume(dir, volumeFiles(volume, secrets));
      volumeDirs.set(volume.name, dir);
    }
    const caDir = join(work, 'authority-ca');
    mkdirSync(caDir, { mode: 0o755 });
    cpSync(authority?.caFile ?? '', join(caDir, 'ca.pem'));
    chmodSync(join(caDir, 'ca.pem'), 0o444);
    const trustAuthority = ['--env', 'NODE_EXTRA_CA_CERTS=/etc/mi-anywhere-test/ca.pem', '--volume', `${caDir}:/etc/mi-anywhere-test:ro`];

    // Native sidecars first; kubelet starts the next container once the startupProbe succeeded.
    const sidecars = (stored.spec.initContainers as Json[]).filter((c) => c.restartPolicy === 'Always');
    assert.deepEqual(sidecars.map((c) => c.name), (stored.spec.initContainers as Json[]).map((c) => c.name), 'only native sidecars among the init containers');
    for (const container of sidecars) {
      const plan = containerRunArgs(container, stored, secrets, POD_NAME, volumeDirs, trustAuthority);
      podmanOk(['run', '--detach', ...plan.runArgs], env);
      const probe = container.startupProbe.httpGet;
      await eventually(() => `the startupProbe of ${container.name}:\n${podman(['logs', plan.name], env).stderr}`, () => (probeFromPod(`http://127.0.0.1:${probe.port}${probe.path}`) === 200 ? true : undefined));
    }
    const inspect = JSON.parse(podmanOk(['inspect', `${POD_NAME}-${SIDECAR_CONTAINER_NAME}`], env))[0];
    assert.equal(inspect.Config.User, '65532:65532');
    assert.equal(inspect.HostConfig.ReadonlyRootfs, true);

    // The app, exactly as stored (no addition at all).
    const [app] = stored.spec.containers as Json[];
    const appPlan = containerRunArgs(app, stored, secrets, POD_NAME, volumeDirs);
    // Asynchronously: the authority and the relay's host side live in this process.
    const run = await podmanAsync(['run', ...appPlan.runArgs], env, 300_000);
    const sidecarLogs = podman(['logs', `${POD_NAME}-${SIDECAR_CONTAINER_NAME}`], env);
    assert.equal(run.status, 0, `app: ${run.stdout}\n${run.stderr}\nsidecar:\n${sidecarLogs.stdout}${sidecarLogs.stderr}`);
    const printed = JSON.parse(run.stdout) as { scope: string; claims: Record<string, unknown> };
    assert.equal(printed.scope, SCOPE);
    assert.equal(printed.claims['aud'], 'https://vault.azure.net');
    assert.equal(printed.claims['appid'] ?? printed.claims['azp'], identity.clientId);
    assert.equal(printed.claims['tid'], identity.tenantId);
    assert.ok((authority?.tokenCalls(identity.clientId) ?? 0) >= 1, 'the sidecar got the token from the authority with the Secret\'s credential');

    // The sidecar stops cleanly on SIGTERM (what kubelet sends when the pod ends).
    podmanOk(['stop', '--time', '20', `${POD_NAME}-${SIDECAR_CONTAINER_NAME}`], env);
    assert.equal(podmanOk(['inspect', '--format', '{{.State.ExitCode}}', `${POD_NAME}-${SIDECAR_CONTAINER_NAME}`], env).trim(), '0');
  });
});
