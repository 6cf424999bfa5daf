/**
 * `npm test`: the one command that runs every test, locally and in CI.
 * 1. provisions toolchains and tools the tests need (scripts/provision.sh, cached, idempotent);
 * 2. type-checks the whole tree (tsc --noEmit), since Node only strips types, then lints it (eslint.config.js:
 *    module boundaries, pure core, one config module, the complexity and size budgets; any error or warning fails
 *    the run);
 * 3. runs every `test/**\/*.test.ts` file with node:test, those named in RUNS_AFTER_THE_OTHERS in a second
 *    invocation after the rest (the summary line CI reads comes from here).
 * Extra arguments are passed to `node --test` (e.g. `npm test -- --test-name-pattern=imds`), and
 * `npm test -- test/unit` style path prefixes narrow the files. `npm test -- --list` prints the files in the order
 * they would run, in their two invocations, and runs nothing.
 */
import { spawnSync } from 'node:child_process';
import { globSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pruneLogRoot } from '../test/helpers/collected-logs.ts';

const root = join(import.meta.dirname, '..');
const args = process.argv.slice(2);
const prefixes = args.filter((a) => !a.startsWith('-'));
const listOnly = args.includes('--list');
const flags = args.filter((a) => a.startsWith('-') && a !== '--list');

// Files that check what every other test left behind, so they must run after all of them — also when some
// failed. The secret scan greps the logs of every program the other tests started (CONTRIBUTING.md, "Nothing
// secret in logs"). node --test keeps file order only with --test-concurrency=1, which would make the whole suite
// serial, so these run in a second invocation instead.
const RUNS_AFTER_THE_OTHERS: readonly string[] = ['test/security/secrets-in-logs.test.ts'];
const isLast = (f: string): boolean => RUNS_AFTER_THE_OTHERS.includes(f);

const allFiles = globSync('test/**/*.test.ts', { cwd: root });
// A renamed file would otherwise silently run with the others, before the logs it checks are complete.
const missing = RUNS_AFTER_THE_OTHERS.filter((f) => !allFiles.includes(f));
if (missing.length > 0) {
  process.stderr.write(`scripts/test.ts: RUNS_AFTER_THE_OTHERS names files that do not exist: ${missing.join(', ')}\n`);
  process.exit(1);
}
const files = allFiles.filter((f) => prefixes.length === 0 || prefixes.some((p) => f.startsWith(p))).sort();
const first = files.filter((f) => !isLast(f));
const last = files.filter(isLast);
if (listOnly) {
  process.stdout.write(`first invocation (${first.length} files):\n${first.map((f) => `  ${f}\n`).join('')}`);
  process.stdout.write(`then, after the others (${last.length} files):\n${last.map((f) => `  ${f}\n`).join('')}`);
  process.exit(0);
}

// Every program a test starts logs into this run's directory; the secret scan that runs last greps it.
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
run(process.execPath, [join(root, 'node_modules/eslint/bin/eslint.js'), '--max-warnings', '0']);
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
