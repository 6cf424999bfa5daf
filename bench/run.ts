/**
 * `npm run bench`: the performance benchmarks (speed, start-up, memory, each against its target), written into
 * docs/performance.md (between the generated-section markers; the hand-written analysis around them is kept).
 *
 *   node bench/run.ts                 full run (about 5 minutes), writes docs/performance.md
 *   node bench/run.ts --quick         smoke run for CI (well under a minute, figures too short to quote); writes
 *                                     a file in the temporary directory unless --out is given
 *   node bench/run.ts --out FILE      write the report there instead
 *   node bench/run.ts --only a,b      run only these sections (cached, peer, cold, webhook, footprint, reach)
 *
 * `reach` (bench/scenarios/webhook-reach.ts: the pod-creation latency the webhook adds to pods that did not opt
 * in, on a real kube-apiserver) writes its table into docs/webhook.md instead; a --quick run includes it only when
 * named in --only (it starts an API server and waits out webhook timeouts).
 *   node bench/run.ts --runtime R     `compiled` (default of a full run: the bundles of scripts/build.ts, as the image runs them) or
 *                                     `sources` (default of --quick: the .ts files through Node type stripping)
 *
 * Loopback only; every run is bounded in count and time; every process started is stopped (also on errors and
 * on SIGINT/SIGTERM). A section that cannot run is reported with its reason and makes the exit code 1.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAuthorityHost, type AuthorityHost } from './lib/authority.ts';
import { scratchDir } from './lib/processes.ts';
import { describeMachine, imageNodeFlags } from './lib/machine.ts';
import { mergeIntoDocument, renderGenerated, SECTION_NAMES, type BenchReport, type Section, type SectionName } from './lib/report.ts';
import { fetchBody, runCached } from './scenarios/cached.ts';
import { runCold } from './scenarios/cold.ts';
import { runFootprint } from './scenarios/footprint.ts';
import { runPeer } from './scenarios/peer.ts';
import { runWebhook } from './scenarios/webhook.ts';
import { renderReach, runWebhookReach, writeReachSection } from './scenarios/webhook-reach.ts';
import { imdsRequest, startSidecarProcess } from './lib/sidecar.ts';
import { preparePrograms, type Programs, type Runtime } from './lib/programs.ts';

const root = join(import.meta.dirname, '..');

interface Args {
  readonly quick: boolean;
  readonly runtime: Runtime;
  readonly out: string;
  readonly only: ReadonlySet<SectionName>;
  /** Run the reach scenario (docs/webhook.md). */
  readonly reach: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  let quick = false;
  let out: string | undefined;
  let only: Set<SectionName> = new Set(SECTION_NAMES);
  let reach: boolean | undefined;
  let runtime: Runtime | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') quick = true;
    else if (arg === '--out') out = argv[++i];
    else if (arg === '--runtime') {
      const value = argv[++i];
      if (value !== 'compiled' && value !== 'sources') throw new Error(`--runtime must be compiled or sources, not ${value}`);
      runtime = value;
    }
    else if (arg === '--only') {
      const names = (argv[++i] ?? '').split(',').filter(Boolean);
      reach = names.includes('reach');
      names.splice(0, names.length, ...names.filter((n) => n !== 'reach'));
      const unknown = names.filter((n) => !(SECTION_NAMES as readonly string[]).includes(n));
      if (unknown.length > 0) throw new Error(`unknown section(s) ${unknown.join(', ')}; known: ${SECTION_NAMES.join(', ')}, reach`);
      only = new Set(names as SectionName[]);
    } else throw new Error(`unknown argument ${arg}; usage: node bench/run.ts [--quick] [--out FILE] [--only ${SECTION_NAMES.join(',')}] [--runtime compiled|sources]`);
  }
  // A quick run's figures are too short to quote: by default they never overwrite docs/performance.md.
  const defaultOut = (): string =>
    quick ? join(mkdtempSync(join(tmpdir(), 'mi-anywhere-bench-report-')), 'performance.md') : join(root, 'docs', 'performance.md');
  return { quick, runtime: runtime ?? (quick ? 'sources' : 'compiled'), out: out ?? defaultOut(), only, reach: reach ?? !quick };
}

const log = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

async function measure<T>(name: SectionName, args: Args, run: () => Promise<T>): Promise<Section<T>> {
  if (!args.only.has(name)) return { ok: false, error: `not run (--only ${[...args.only].join(',')})` };
  log(`== ${name}`);
  const started = performance.now();
  try {
    const result = await run();
    log(`== ${name}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return { ok: true, result };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    log(`== ${name}: FAILED: ${message}`);
    return { ok: false, error: message.split('\n')[0] ?? message };
  }
}

/** The sidecar's answer body, for the memory reference (the cached section writes its own). */
async function tokenBodyFile(programs: Programs, nodeFlags: readonly string[]): Promise<string> {
  const sidecar = await startSidecarProcess({ program: programs.sidecarMain, nodeFlags, mode: { kind: 'dev' } });
  try {
    const request = imdsRequest();
    const file = join(scratchDir('token'), 'token.json');
    writeFileSync(file, await fetchBody(sidecar.baseUrl + request.path, request.headers));
    return file;
  } finally {
    await sidecar.server.stop();
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const startedAt = new Date().toISOString();
  const machine = describeMachine();
  const nodeFlags = imageNodeFlags(root);
  log(`mi-anywhere bench (${args.quick ? 'quick' : 'full'}): ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.nodeVersion}, load ${machine.loadAtStart.map((v) => v.toFixed(2)).join('/')}`);
  log(`runtime: ${args.runtime}${args.runtime === 'compiled' ? ' (bundling with scripts/build.ts)' : ''}`);
  const programs = await preparePrograms(root, args.runtime);
  const common = { root, programs, nodeFlags: nodeFlags.flags, quick: args.quick, log };
  // `--only reach`: nothing for docs/performance.md, so it is left alone.
  if (args.only.size === 0 && args.reach) return (await runReach(common, args, machine)) ? 0 : 1;

  const cached = await measure('cached', args, () => runCached(common));
  let authority: AuthorityHost | undefined;
  const needsAuthority = args.only.has('peer') || args.only.has('cold') || args.only.has('footprint');
  let authorityError: string | undefined;
  if (needsAuthority) {
    try {
      authority = await startAuthorityHost(root);
    } catch (error) {
      authorityError = `the test authority did not start: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
  const withAuthority = <T>(run: (a: AuthorityHost) => Promise<T>) => (): Promise<T> => {
    if (!authority) throw new Error(authorityError ?? 'no test authority');
    return run(authority);
  };
  let peer: Section<Awaited<ReturnType<typeof runPeer>>>;
  let cold: Section<Awaited<ReturnType<typeof runCold>>>;
  let webhook: Section<Awaited<ReturnType<typeof runWebhook>>>;
  let footprint: Section<Awaited<ReturnType<typeof runFootprint>>>;
  try {
    peer = await measure('peer', args, withAuthority((a) => runPeer({ ...common, authority: a })));
    cold = await measure('cold', args, withAuthority((a) => runCold({ ...common, authority: a })));
    webhook = await measure('webhook', args, () => runWebhook(common));
    footprint = await measure('footprint', args, async () =>
      runFootprint({ ...common, compileCache: nodeFlags.compileCache, authority, authorityError, bodyFile: await tokenBodyFile(programs, nodeFlags.flags) }),
    );
  } finally {
    await authority?.stop();
  }
  const reachFailed = args.reach ? !(await runReach(common, args, machine)) : false;

  const report: BenchReport = {
    schema: 1,
    quick: args.quick,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: { ...machine, loadAtEnd: loadavg() },
    nodeFlags,
    runtime: programs.description,
    sections: { cached, peer, cold, webhook, footprint },
  };
  const existing = existsSync(args.out) ? readFileSync(args.out, 'utf8') : undefined;
  writeFileSync(args.out, mergeIntoDocument(existing, renderGenerated(report)));
  log(`report: ${args.out}`);
  const failed = Object.entries(report.sections).filter(([name, s]) => !s.ok && args.only.has(name as SectionName));
  return failed.length > 0 || reachFailed ? 1 : 0;
}

/** The reach scenario; its table goes into docs/webhook.md (a quick run: a copy in the temporary directory). */
async function runReach(common: Parameters<typeof runWebhookReach>[0], args: Args, machine: ReturnType<typeof describeMachine>): Promise<boolean> {
  log('== reach');
  try {
    const result = await runWebhookReach(common);
    const doc = join(root, 'docs', 'webhook.md');
    const file = args.quick ? join(mkdtempSync(join(tmpdir(), 'mi-anywhere-bench-reach-')), 'webhook.md') : doc;
    if (file !== doc) writeFileSync(file, readFileSync(doc, 'utf8'));
    writeReachSection(file, renderReach(result, { date: new Date().toISOString().slice(0, 10), machine: `${machine.cores} × ${machine.cpuModel}` }));
    log(`== reach: written to ${file}`);
    return true;
  } catch (error) {
    log(`== reach: FAILED: ${error instanceof Error ? error.message : String(error)}`);
    return false;
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(2);
  },
);
