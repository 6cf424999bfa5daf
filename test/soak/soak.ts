/**
 * Fault soak: the real sidecar in entra mode under mixed traffic on every dialect (IMDS, App Service, MSI_ENDPOINT
 * GET, Cloud Shell POST, the Azure Arc challenge) for three identities, while the test authority cycles through
 * 429 + Retry-After / 500 / slow answers / a body dripping one byte a second / healthy, and identities are rotated
 * (kubelet-style `..data` symlink swaps): once to a credential the authority accepts, once to one it rejects (fixed a
 * phase later).
 *
 *   node test/soak/soak.ts            full run: 10 minutes (`npm run soak`)
 *   node test/soak/soak.ts --quick    CI: one cycle of every fault, well under a minute (test/soak/soak-quick.test.ts)
 *   --duration-seconds=N              any other length
 *
 * Invariants (docs/security.md, "Upstream budget"), all counts, none a timing:
 * - warm: requests for a resource whose token was cached during warm-up never fail, whatever the fault or rotation
 *   (a rotated-in credential that fails is bridged by the previous credential's tokens);
 * - cold: a resource never asked for before may fail only with the sidecar's clear 503 (or a 400 naming the AADSTS
 *   code while its identity's credential is wrong); anything else is an unexpected failure;
 * - budget: per (app, resource) the upstream calls of each run of failures fit the sidecar's backoff (exponential
 *   from 0.5 s at the least, for the time the run spans), and all token calls fit the global rate budget;
 * - memory: the sidecar's RSS at the end stays within max(64 MiB, 50 %) of the RSS after warm-up.
 * Exit 0 = every invariant holds; the summary line is JSON for the quick test.
 */
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { tmpdir } from 'node:os';
import { PATHS, SIDECAR_ENV } from '../../sidecar/contract.ts';
import { rotateSecretDir } from '../helpers/kube-secret-dir.ts';
import { registerSecret } from '../helpers/collected-logs.ts';
import { startEntraSidecar, startUpstream, type Upstream } from '../helpers/upstream.ts';
import type { FaultSpec, RegisteredApp } from '../authority/authority.ts';
import { checkBudget } from '../helpers/upstream-budget.ts';

type Dialect = 'imds' | 'app-service' | 'msi-endpoint' | 'cloud-shell' | 'arc';
const DIALECTS: readonly Dialect[] = ['imds', 'app-service', 'msi-endpoint', 'cloud-shell', 'arc'];
const WARM_RESOURCES = ['https://vault.azure.net', 'https://management.azure.com/', 'https://storage.azure.com/', 'api://soak-app'];

/** The fault modes the authority cycles through, in order; `healthy` ends each cycle. */
const MODES: ReadonlyArray<{ readonly name: string; readonly fault: FaultSpec | undefined }> = [
  { name: '429 + Retry-After 1', fault: { status: 429, retryAfterSeconds: 1 } },
  { name: '500', fault: { status: 500 } },
  { name: 'slow (1.5 s)', fault: { latencyMs: 1500 } },
  { name: 'dripping (1 byte/s)', fault: { dripIntervalMs: 1000 } },
  { name: 'healthy', fault: undefined },
];

interface Args {
  readonly durationSeconds: number;
  readonly quick: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  let durationSeconds = 600;
  let quick = false;
  for (const arg of argv) {
    if (arg === '--quick') quick = true;
    else if (arg.startsWith('--duration-seconds=')) durationSeconds = Number(arg.split('=')[1]);
    else throw new Error(`unknown argument ${arg} (use --quick or --duration-seconds=N)`);
  }
  if (!quick && !(durationSeconds >= 20)) throw new Error('duration must be at least 20 s (one cycle of fault modes)');
  return { durationSeconds: quick ? 0 : durationSeconds, quick };
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

interface Counts {
  warmOk: number;
  coldOk: number;
  coldFailedClearly: number;
  challenges: number;
  byDialect: Record<Dialect, number>;
}

async function metricValue(metricsUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const upstream: Upstream = await startUpstream();
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

  let mode = 'warm-up';
  let coldCounter = 0;
  const counts: Counts = { warmOk: 0, coldOk: 0, coldFailedClearly: 0, challenges: 0, byDialect: Object.fromEntries(DIALECTS.map((d) => [d, 0])) as Record<Dialect, number> };
  const unexpected: string[] = [];
  const rotations: string[] = [];
  const modesSeen: string[] = [];
  let stop = false;

  function target(dialect: Dialect, resource: string, identity: Identity | undefined): { url: string; init: RequestInit } {
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

  /** One token request in the dialect (Arc: challenge, read the key file, answer). */
  async function request(dialect: Dialect, resource: string, identity: Identity | undefined): Promise<{ status: number; body: string }> {
    const { url, init } = target(dialect, resource, identity);
    let res = await fetch(url, init);
    if (dialect === 'arc' && res.status === 401 && res.headers.get('www-authenticate') !== null) {
      await res.text();
      counts.challenges += 1;
      const realm = /realm=(.+)$/.exec(res.headers.get('www-authenticate') ?? '')?.[1] ?? '';
      const key = readFileSync(join(arcDir, basename(realm)), 'utf8');
      // A sample is enough for the log scan (keys are random and single-use); thousands would slow the scan down.
      if (counts.challenges <= 20) registerSecret('soak Arc key', key);
      res = await fetch(url, { headers: { Metadata: 'true', Authorization: `Basic ${key}` } });
    }
    return { status: res.status, body: await res.text() };
  }

  async function worker(index: number): Promise<void> {
    let n = index;
    while (!stop) {
      n += 1;
      const dialect = DIALECTS[n % DIALECTS.length]!;
      // Default identity (no selector) or a user-assigned one by client id.
      const identity = n % 4 === 0 ? undefined : identities[n % identities.length];
      const cold = n % 25 === 0;
      const resource = cold ? `https://cold-${++coldCounter}.soak.example` : WARM_RESOURCES[n % WARM_RESOURCES.length]!;
      const during = mode;
      try {
        const { status, body } = await request(dialect, resource, identity);
        if (status === 200) {
          if (cold) counts.coldOk += 1;
          else counts.warmOk += 1;
          counts.byDialect[dialect] += 1;
        } else if (cold && ((status === 503 && /Entra ID|retry/.test(body)) || (status === 400 && /AADSTS/.test(body)))) {
          counts.coldFailedClearly += 1;
        } else {
          unexpected.push(`${during} ${dialect} ${identity?.name ?? 'default'} ${cold ? 'cold' : 'warm'} ${resource}: ${status} ${body.slice(0, 200)}`);
        }
      } catch (error) {
        unexpected.push(`${during} ${dialect} ${resource}: ${String(error)}`);
      }
      await sleep(20);
    }
  }

  function rotate(identity: Identity, secret: string, accepted: boolean): void {
    registerSecret(`soak client secret ${identity.name}`, secret);
    if (accepted) {
      identity.secrets = [identity.secrets.at(-1)!, secret];
      upstream.authority.updateApp(identity.app.clientId, { secrets: identity.secrets });
    }
    rotateSecretDir(entra.identityDir, identity.name, { tenantId: identity.app.tenantId, clientId: identity.app.clientId, clientSecret: secret });
    rotations.push(`${identity.name} -> ${accepted ? 'accepted' : 'rejected'} secret`);
  }

  /** Waits (bounded) until the sidecar bridged at least one request with a previous credential's token. */
  async function awaitBridge(identity: Identity): Promise<boolean> {
    const until = Date.now() + 20_000;
    while (Date.now() < until) {
      await request('imds', WARM_RESOURCES[0]!, identity);
      if ((await metricValue(sidecar.metricsUrl, 'mi_anywhere_token_cache_superseded_served_total')) > 0) return true;
      await sleep(200);
    }
    return false;
  }

  // Warm-up: readiness, then every (dialect, identity, resource) once.
  const readyBy = Date.now() + 60_000;
  while ((await fetch(`${sidecar.healthUrl}/readyz`).then((r) => r.status)) !== 200) {
    if (Date.now() > readyBy) throw new Error('sidecar not ready within 60 s');
    await sleep(200);
  }
  for (const d of DIALECTS) for (const i of [undefined, ...identities]) for (const r of WARM_RESOURCES) {
    const answer = await request(d, r, i);
    if (answer.status !== 200) throw new Error(`warm-up failed: ${d} ${i?.name ?? 'default'} ${r}: ${answer.status} ${answer.body}`);
  }
  upstream.authority.resetCalls();
  const startedAt = Date.now();
  const rssStart = rssBytes(pid);
  let rssMax = rssStart;
  const workers = Array.from({ length: 6 }, (_, i) => worker(i));

  // One phase per fault mode; 2 s in the quick run (one cycle), up to 10 s in long runs.
  const phaseMs = args.quick ? 2_000 : Math.min(10_000, Math.max(2_000, Math.floor((args.durationSeconds * 1000) / 30)));
  let cycle = 0;
  let bridged = false;
  do {
    for (const [index, m] of MODES.entries()) {
      mode = m.name;
      upstream.authority.setFault(m.fault);
      modesSeen.push(m.name);
      const identity = identities[(cycle + index) % identities.length]!;
      if (index === 0) rotate(identity, `soak-${identity.name}-secret-${cycle}-ok-${process.pid}`, true);
      if (index === 2) {
        // A rotation to a credential Entra rejects: the previous credential's tokens must bridge it...
        rotate(identity, `soak-${identity.name}-secret-${cycle}-bad-${process.pid}`, false);
        bridged = (await awaitBridge(identity)) || bridged;
        // ...and a fix two phases later is picked up.
        rotate(identity, `soak-${identity.name}-secret-${cycle}-fixed-${process.pid}`, true);
      }
      await sleep(phaseMs);
      rssMax = Math.max(rssMax, rssBytes(pid));
    }
    // Recovery without a restart: a never-seen resource gets a token again (bounded wait on answers, not on time).
    const recoverBy = Date.now() + 30_000;
    let recovered = false;
    while (!recovered && Date.now() < recoverBy) {
      recovered = (await request('imds', `https://recovery-${cycle}.soak.example`, undefined)).status === 200;
      if (!recovered) await sleep(250);
    }
    if (!recovered) unexpected.push(`no recovery after cycle ${cycle}`);
    cycle += 1;
  } while (Date.now() - startedAt < args.durationSeconds * 1000);
  stop = true;
  await Promise.all(workers);
  const durationMs = Date.now() - startedAt;
  const rssEnd = rssBytes(pid);
  const suppressed = await metricValue(sidecar.metricsUrl, 'mi_anywhere_upstream_suppressed_total');
  const alive = sidecar.exitCode() === undefined;
  const budget = checkBudget(upstream.authority.calls({ endpoint: 'token' }), durationMs);
  await entra.cleanup();
  await upstream.stop();
  rmSync(arcDir, { recursive: true, force: true });

  const bound = rssStart + Math.max(64 * 1024 * 1024, rssStart * 0.5);
  const memoryFlat = rssEnd <= bound;
  const summary = {
    durationSeconds: Math.round(durationMs / 1000),
    cycles: cycle,
    modes: [...new Set(modesSeen)],
    warmOk: counts.warmOk,
    coldOk: counts.coldOk,
    coldFailedClearly: counts.coldFailedClearly,
    arcChallenges: counts.challenges,
    byDialect: counts.byDialect,
    unexpectedFailures: unexpected.length,
    rotations: rotations.length,
    bridgedRotation: bridged,
    answeredWithoutUpstreamCall: suppressed,
    budget: { tokenCalls: budget.tokenCalls, keys: budget.keys, globalBound: budget.globalBound, violations: budget.violations.length },
    rss: { start: mib(rssStart), end: mib(rssEnd), max: mib(rssMax), bound: mib(bound) },
  };
  process.stdout.write(`soak summary ${JSON.stringify(summary)}\n`);
  process.stdout.write(`memory: RSS ${mib(rssStart)} after warm-up -> ${mib(rssEnd)} at the end (max ${mib(rssMax)}; bound ${mib(bound)}): ${memoryFlat ? 'flat' : 'GROWING'}\n`);
  for (const line of budget.violations.slice(0, 20)) process.stdout.write(`over budget: ${line}\n`);
  for (const line of unexpected.slice(0, 20)) process.stdout.write(`unexpected: ${line}\n`);
  const ok =
    unexpected.length === 0 &&
    budget.violations.length === 0 &&
    memoryFlat &&
    alive &&
    bridged &&
    cycle > 0 &&
    DIALECTS.every((d) => counts.byDialect[d] > 0);
  process.stdout.write(ok ? 'soak: PASS\n' : 'soak: FAIL\n');
  return ok ? 0 : 1;
}

if (import.meta.main) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(2);
    },
  );
}
