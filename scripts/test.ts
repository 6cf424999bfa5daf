/**
 * `npm test`: the one command that runs every test, locally and in CI.
 * 1. provisions toolchains and tools the tests need (scripts/provision.sh, cached, idempotent);
 * 2. type-checks the whole tree (tsc --noEmit), since Node only strips types, then lints it (eslint.config.js:
 *    module boundaries, pure core, one config module; errors fail the run, budget warnings are left to `npm run lint`);
 * 3. runs every `test/**\/*.test.ts` file with node:test (the summary line CI reads comes from here).
 * Extra arguments are passed to `node --test` (e.g. `npm test -- --test-name-pattern=imds`), and
 * `npm test -- test/unit` style path prefixes narrow the files.
 */
import { spawnSync } from 'node:child_process';
import { globSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pruneLogRoot } from '../test/security/collected-logs.ts';

const root = join(import.meta.dirname, '..');
const args = process.argv.slice(2);
const prefixes = args.filter((a) => !a.startsWith('-'));
const flags = args.filter((a) => a.startsWith('-'));

// Every program a test starts logs into this run's directory; the last test greps it for secrets (issue 8).
const logDir = process.env['MI_ANYWHERE_TEST_LOG_DIR'] ?? join(tmpdir(), 'mi-anywhere-test-logs', `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);
const env = { ...process.env, MI_ANYWHERE_TEST_LOG_DIR: logDir };
pruneLogRoot();

function status(command: string, commandArgs: readonly string[]): number {
  return spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit', env }).status ?? 1;
}

function run(command: string, commandArgs: readonly string[]): void {
  const code = status(command, commandArgs);
  if (code !== 0) process.exit(code);
}

run('bash', ['scripts/provision.sh']);
run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--noEmit']);
run(process.execPath, [join(root, 'node_modules/eslint/bin/eslint.js'), '--quiet']);
const files = globSync('test/**/*.test.ts', { cwd: root })
  .filter((f) => prefixes.length === 0 || prefixes.some((p) => f.startsWith(p)))
  .sort();
// `test/zz-*` files check what the others left behind (collected logs): node --test keeps file order only with
// --test-concurrency=1, so they run in a second invocation, after the rest — also when the rest failed.
const isLast = (f: string): boolean => f.startsWith('test/zz-');
const countFile = (name: string): string => join(logDir, `${name}.counts.json`);
const testArgs = (name: string): string[] => [
  '--test',
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  `--test-reporter=${join(root, 'scripts/count-reporter.ts')}`,
  `--test-reporter-destination=${countFile(name)}`,
  '--test-timeout=900000',
  ...flags,
];
const first = files.filter((f) => !isLast(f));
const last = files.filter(isLast);
mkdirSync(logDir, { recursive: true });
process.stdout.write(`test logs: ${logDir}\n`);
const firstCode = first.length > 0 ? status(process.execPath, [...testArgs('main'), ...first]) : 0;
const lastCode = last.length > 0 ? status(process.execPath, [...testArgs('last'), ...last]) : 0;

// One closing line for both invocations, in the plain form CI reads ("N passed, N failed, N skipped").
const totals = { passed: 0, failed: 0, skipped: 0 };
for (const name of ['main', 'last']) {
  try {
    const counts = JSON.parse(readFileSync(countFile(name), 'utf8')) as typeof totals;
    totals.passed += counts.passed;
    totals.failed += counts.failed;
    totals.skipped += counts.skipped;
  } catch {
    // No counts file: that invocation did not run (no files) or crashed before reporting; its exit code decides.
  }
}
const exitCode = firstCode !== 0 ? firstCode : lastCode;
if (exitCode !== 0 && totals.failed === 0) totals.failed = 1; // a crashed runner must never read as green
process.stdout.write(`\ntotal: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped\n`);
process.exit(exitCode);
