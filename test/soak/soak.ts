/**
 * Soak (issue 8): the real sidecar in entra mode under mixed traffic on every dialect (IMDS, App Service,
 * MSI_ENDPOINT GET, Cloud Shell POST, the Azure Arc challenge) for three identities, while identities are rotated
 * (kubelet-style `..data` symlink swaps, the authority accepting old and new secret during the switch) and upstream
 * faults come and go (5xx, 429 + Retry-After, connection resets, latency, a full outage).
 *
 *   node test/soak/soak.ts            full run: 10 minutes (`npm run soak`)
 *   node test/soak/soak.ts --quick    CI: about 60 s (run by test/soak/soak-quick.test.ts inside `npm test`)
 *   --duration-seconds=N              any other length
 *
 * Phases repeat: steady -> rotate -> settle -> fault -> recover. A failure is *expected* only for a token that
 * cannot be in the cache during a fault (a resource never asked for before: 503 with a clear cause); every other
 * non-success is an unexpected failure. Memory: the sidecar's RSS after warm-up and at the end; the run fails if the
 * end exceeds the start by more than max(64 MiB, 50 %). Exit 0 = no unexpected failure and memory flat.
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { PATHS, SIDECAR_ENV } from '../../sidecar/contract.ts';
import { rotateSecretDir } from '../integration/entra/kube-secret-dir.ts';
import { registerSecret } from '../security/collected-logs.ts';
import { startEntraSidecar, startUpstream } from '../reliability/upstream.ts';
import type { RegisteredApp } from '../authority/authority.ts';

type Dialect = 'imds' | 'app-service' | 'msi-endpoint' | 'cloud-shell' | 'arc';
const DIALECTS: readonly Dialect[] = ['imds', 'app-service', 'msi-endpoint', 'cloud-shell', 'arc'];
const RESOURCES = ['https://vault.azure.net', 'https://management.azure.com/', 'https://storage.azure.com/', 'api://soak-app'];
type Phase = 'steady' | 'rotate' | 'settle' | 'fault' | 'recover';

interface Args {
  readonly durationSeconds: number;
  readonly workers: number;
}

function parseArgs(argv: readonly string[]): Args {
  let durationSeconds = 600;
  for (const arg of argv) {
    if (arg === '--quick') durationSeconds = 60;
    else if (arg.startsWith('--duration-seconds=')) durationSeconds = Number(arg.split('=')[1]);
    else throw new Error(`unknown argument ${arg} (use --quick or --duration-seconds=N)`);
  }
  if (!(durationSeconds >= 20)) throw new Error('duration must be at least 20 s (one cycle of phases)');
  return { durationSeconds, workers: 4 };
}

function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? 0) * 1024;
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Identity {
  readonly name: string;
  readonly app: RegisteredApp;
  secrets: string[];
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const startedAt = Date.now();
  const upstream = await startUpstream();
  const identities: Identity[] = ['alpha', 'beta', 'gamma'].map((name) => {
    const secret = `soak-${name}-secret-0-${process.pid}`;
    registerSecret(`soak client secret ${name}`, secret);
    return { name, app: upstream.authority.registerApp({ secrets: [secret] }), secrets: [secret] };
  });
  const arcDir = mkdtempSync(join(tmpdir(), 'mi-anywhere-soak-arc-'));
  const entra = await startEntraSidecar(
    upstream,
    identities.map((i) => ({ name: i.name, app: i.app, secret: i.secrets[0]! })),
    { [SIDECAR_ENV.arcKeyDir]: arcDir },
  );
  const sidecar = entra.sidecar;
  const pid = sidecar.child.pid ?? 0;

  let phase: Phase = 'steady';
  let coldCounter = 0;
  const counts = { ok: 0, challenges: 0, expectedFailures: 0, byDialect: Object.fromEntries(DIALECTS.map((d) => [d, 0])) as Record<Dialect, number> };
  const unexpected: string[] = [];
  const rotations: string[] = [];
  const faults: string[] = [];
  let stop = false;

  function url(dialect: Dialect, resource: string, identity: Identity | undefined): { url: string; init: RequestInit } {
    const r = encodeURIComponent(resource);
    const clientId = identity?.app.clientId;
    switch (dialect) {
      case 'imds':
        return { url: `${sidecar.tokenUrl}${PATHS.imds}?api-version=2018-02-01&resource=${r}${clientId ? `&client_id=${clientId}` : ''}`, init: { headers: { Metadata: 'true' } } };
      case 'app-service':
        return { url: `${sidecar.tokenUrl}${PATHS.appService}?api-version=2019-08-01&resource=${r}${clientId ? `&client_id=${clientId}` : ''}`, init: { headers: { 'X-IDENTITY-HEADER': sidecar.identityHeader } } };
      case 'msi-endpoint':
        return { url: `${sidecar.tokenUrl}${PATHS.msiEndpoint}?api-version=2017-09-01&resource=${r}${clientId ? `&clientid=${clientId}` : ''}`, init: { headers: { secret: sidecar.identityHeader } } };
      case 'cloud-shell':
        return {
          url: `${sidecar.tokenUrl}${PATHS.msiEndpoint}`,
          init: { method: 'POST', headers: { Metadata: 'true', 'Content-Type': 'application/x-www-form-urlencoded' }, body: `resource=${r}${clientId ? `&client_id=${clientId}` : ''}` },
        };
      case 'arc':
        return { url: `${sidecar.tokenUrl}${PATHS.arc}?api-version=2020-06-01&resource=${r}${clientId ? `&client_id=${clientId}` : ''}`, init: { headers: { Metadata: 'true' } } };
    }
  }

  /** One token request in the dialect (Arc: challenge, read the key file, answer). Returns status and body. */
  async function request(dialect: Dialect, resource: string, identity: Identity | undefined): Promise<{ status: number; body: string }> {
    const { url: target, init } = url(dialect, resource, identity);
    let res = await fetch(target, init);
    if (dialect === 'arc' && res.status === 401 && res.headers.get('www-authenticate') !== null) {
      await res.text();
      counts.challenges += 1;
      const realm = /realm=(.+)$/.exec(res.headers.get('www-authenticate') ?? '')?.[1] ?? '';
      const key = readFileSync(join(arcDir, basename(realm)), 'utf8');
      // A sample is enough for the log scan (keys are random and single-use); thousands would slow the scan down.
      if (counts.challenges <= 20) registerSecret('soak Arc key', key);
      res = await fetch(target, { headers: { Metadata: 'true', Authorization: `Basic ${key}` } });
    }
    return { status: res.status, body: await res.text() };
  }

  async function worker(index: number): Promise<void> {
    let n = index;
    while (!stop) {
      n += 1;
      const dialect = DIALECTS[n % DIALECTS.length]!;
      // Default identity (no selector) or a user-assigned one by client id.
      const identity = n % 3 === 0 ? undefined : identities[n % identities.length];
      const currentPhase = phase;
      const cold = currentPhase === 'fault' && n % 10 === 0;
      const resource = cold ? `https://cold-${++coldCounter}.soak.example` : RESOURCES[n % RESOURCES.length]!;
      try {
        const { status, body } = await request(dialect, resource, identity);
        if (status === 200) {
          counts.ok += 1;
          counts.byDialect[dialect] += 1;
        } else if (cold && status === 503 && /Entra ID|retry later/.test(body)) counts.expectedFailures += 1;
        else unexpected.push(`${new Date().toISOString()} ${currentPhase} ${dialect} ${identity?.name ?? 'default'} ${resource}: ${status} ${body.slice(0, 200)}`);
      } catch (error) {
        unexpected.push(`${new Date().toISOString()} ${currentPhase} ${dialect} ${resource}: ${String(error)}`);
      }
      await sleep(20);
    }
  }

  const FAULTS = [
    { name: '503', inject: () => upstream.authority.setFault({ status: 503 }), clear: () => upstream.authority.setFault(undefined) },
    { name: '429 + Retry-After 1', inject: () => upstream.authority.setFault({ status: 429, retryAfterSeconds: 1 }), clear: () => upstream.authority.setFault(undefined) },
    { name: 'connection resets', inject: () => upstream.authority.setFault({ reset: true, scope: 'all' }), clear: () => upstream.authority.setFault(undefined) },
    { name: 'latency 800 ms', inject: () => upstream.authority.setFault({ latencyMs: 800 }), clear: () => upstream.authority.setFault(undefined) },
    { name: 'outage', inject: () => upstream.forwarder.down(), clear: () => upstream.forwarder.up() },
  ] as const;

  // Warm-up: readiness, then every (dialect, identity, resource) once.
  const deadline = Date.now() + 60_000;
  while ((await fetch(`${sidecar.healthUrl}/readyz`).then((r) => r.status)) !== 200) {
    if (Date.now() > deadline) throw new Error('sidecar not ready within 60 s');
    await sleep(200);
  }
  for (const d of DIALECTS) for (const i of [undefined, ...identities]) for (const r of RESOURCES) await request(d, r, i);
  const rssStart = rssBytes(pid);
  const workers = Array.from({ length: args.workers }, (_, i) => worker(i));

  // Five phases per cycle: 2 s each in the quick run (about five cycles: every fault once), up to 4 s in long runs.
  const phaseMs = Math.min(4_000, Math.max(2_000, Math.floor((args.durationSeconds * 1000) / 30)));
  let cycle = 0;
  let rssMax = rssStart;
  while (Date.now() - startedAt < args.durationSeconds * 1000) {
    const fault = FAULTS[cycle % FAULTS.length]!;
    const identity = identities[cycle % identities.length]!;
    phase = 'steady';
    await sleep(phaseMs);
    // Rotation: the authority accepts old and new; the Secret volume switches to the new one.
    phase = 'rotate';
    const next = `soak-${identity.name}-secret-${cycle + 1}-${process.pid}`;
    registerSecret(`soak client secret ${identity.name}`, next);
    identity.secrets = [identity.secrets.at(-1)!, next];
    upstream.authority.updateApp(identity.app.clientId, { secrets: identity.secrets });
    rotateSecretDir(entra.identityDir, identity.name, { tenantId: identity.app.tenantId, clientId: identity.app.clientId, clientSecret: next });
    rotations.push(`${identity.name} -> secret ${cycle + 1}`);
    await sleep(phaseMs);
    phase = 'settle';
    // Re-warm the rotated identity's tokens (its cache entries were dropped) before the next fault.
    for (const d of DIALECTS) for (const r of RESOURCES) await request(d, r, identity);
    await sleep(phaseMs);
    phase = 'fault';
    await fault.inject();
    faults.push(fault.name);
    await sleep(phaseMs);
    await fault.clear();
    phase = 'recover';
    // Recovery without a restart: a never-seen resource gets a token again within the phase.
    const recoverBy = Date.now() + Math.max(phaseMs, 15_000);
    let recovered = false;
    while (!recovered && Date.now() < recoverBy) {
      const probe = await request('imds', `https://recovery-${cycle}.soak.example`, undefined);
      recovered = probe.status === 200;
      if (!recovered) await sleep(250);
    }
    if (!recovered) unexpected.push(`no recovery after fault "${fault.name}" (cycle ${cycle})`);
    await sleep(phaseMs);
    rssMax = Math.max(rssMax, rssBytes(pid));
    cycle += 1;
  }
  stop = true;
  await Promise.all(workers);
  const rssEnd = rssBytes(pid);
  const alive = sidecar.exitCode() === undefined;
  await entra.cleanup();
  await upstream.stop();
  rmSync(arcDir, { recursive: true, force: true });

  const bound = rssStart + Math.max(64 * 1024 * 1024, rssStart * 0.5);
  const memoryFlat = rssEnd <= bound;
  const summary = {
    durationSeconds: Math.round((Date.now() - startedAt) / 1000),
    cycles: cycle,
    tokens: counts.ok,
    arcChallenges: counts.challenges,
    byDialect: counts.byDialect,
    expectedFailures: counts.expectedFailures,
    unexpectedFailures: unexpected.length,
    rotations: rotations.length,
    faults,
    rss: { start: mib(rssStart), end: mib(rssEnd), max: mib(rssMax), bound: mib(bound) },
  };
  process.stdout.write(`soak summary ${JSON.stringify(summary)}\n`);
  process.stdout.write(`memory: RSS ${mib(rssStart)} after warm-up -> ${mib(rssEnd)} at the end (max ${mib(rssMax)}; bound ${mib(bound)}): ${memoryFlat ? 'flat' : 'GROWING'}\n`);
  for (const line of unexpected.slice(0, 20)) process.stdout.write(`unexpected: ${line}\n`);
  const ok = unexpected.length === 0 && memoryFlat && alive && cycle > 0 && DIALECTS.every((d) => counts.byDialect[d] > 0);
  process.stdout.write(ok ? 'soak: PASS\n' : 'soak: FAIL\n');
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(2);
  },
);
