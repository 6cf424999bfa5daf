/**
 * `npm test`: the one command that runs every test, locally and in CI.
 * 1. provisions toolchains and tools the tests need (scripts/provision.sh, cached, idempotent);
 * 2. type-checks the whole tree (tsc --noEmit), since Node only strips types;
 * 3. runs every `test/**\/*.test.ts` file with node:test (the summary line CI reads comes from here).
 * Extra arguments are passed to `node --test` (e.g. `npm test -- --test-name-pattern=imds`), and
 * `npm test -- test/unit` style path prefixes narrow the files.
 */
import { spawnSync } from 'node:child_process';
import { globSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const args = process.argv.slice(2);
const prefixes = args.filter((a) => !a.startsWith('-'));
const flags = args.filter((a) => a.startsWith('-'));

function run(command: string, commandArgs: readonly string[]): void {
  const result = spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

run('bash', ['scripts/provision.sh']);
run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--noEmit']);
const files = globSync('test/**/*.test.ts', { cwd: root })
  .filter((f) => prefixes.length === 0 || prefixes.some((p) => f.startsWith(p)))
  .sort();
run(process.execPath, ['--test', '--test-reporter=spec', '--test-timeout=900000', ...flags, ...files]);
