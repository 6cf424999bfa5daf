/**
 * ESLint flat config: the rules CONTRIBUTING.md lists under "Rules the linter enforces" — "Module boundaries",
 * "Pure core", "One configuration module per program", "Type-checked rules" and "Budgets". Type-checked
 * typescript-eslint rules over every TypeScript tree we own, plus the module boundaries as "must" rules:
 *
 * - configuration: only `config.ts` of each program touches `process.env` (`loadProcessConfig()`, called once by
 *   `main.ts`; `loadConfig(env, …)` is the one place variables are parsed);
 *   tests, scripts and benchmarks may read the environment;
 * - programs: `sidecar/**` imports nothing from `webhook/`; `webhook/**` imports only `sidecar/contract.ts`;
 *   `common/**` (the plumbing both programs share: settings reader, logger factory, the listen/drain idiom of
 *   `common/http-server.ts`) imports from neither and reads no environment, so sharing it couples the programs to
 *   nothing but itself; its pure modules are listed in PURE like the programs' own;
 * - pure core: the modules whose header says "Pure" import no network / filesystem / express module and
 *   use no `process`, `fetch`, clock or timer — callers pass `now`, `fetch` and schedulers in.
 *
 * ESLint replaces (does not merge) a rule's options when a later block sets the same rule for a file, so the
 * restriction lists are composed per file group by the helpers below instead of being layered.
 *
 * Node 24 runs the sources directly (type stripping): imports carry `.ts` extensions and only erasable syntax
 * is used; tsconfig.json (`allowImportingTsExtensions`, `erasableSyntaxOnly`) already states both, and the
 * project service reads it.
 */
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

const TS = ['common/**/*.ts', 'sidecar/**/*.ts', 'webhook/**/*.ts', 'test/**/*.ts', 'scripts/**/*.ts', 'bench/**/*.ts'];

/**
 * The modules whose header comment declares them pure (no I/O, no clock, no timers). The two config.ts files call
 * themselves pure too (environment and argv are parameters) but stay out: they are the sanctioned env readers.
 */
const PURE = [
  'common/settings.ts',
  'sidecar/contract.ts',
  'sidecar/memoise.ts',
  'sidecar/protocol/**/*.ts',
  'sidecar/identity/identity.ts',
  'sidecar/token/token-cache-policy.ts',
  'sidecar/token/token-source.ts',
  'sidecar/token/authority.ts',
  'sidecar/token/entra-errors.ts',
  'sidecar/http/rate-limit.ts',
  'sidecar/http/readiness.ts',
  'webhook/admission/**/*.ts',
  'webhook/inject/**/*.ts',
];

/** The files allowed to read `process.env` inside the programs. */
const ENV_READERS = ['sidecar/config.ts', 'webhook/config.ts'];

const IO_MODULES = ['http', 'https', 'http2', 'net', 'tls', 'dgram', 'fs', 'fs/promises', 'child_process', 'process', 'timers', 'timers/promises'];
const PURE_IMPORTS = [
  ...IO_MODULES.flatMap((name) => [`node:${name}`, name]).map((name) => ({ name, message: 'pure module: I/O and time belong to the shell (CONTRIBUTING.md, "Pure core"); take what you need as a parameter' })),
  { name: 'express', message: 'pure module: only the http/ layer touches express (CONTRIBUTING.md, "Pure core")' },
];
const SIDECAR_BOUNDARY = { regex: '^(\\.\\./)+webhook/', message: 'sidecar/** imports nothing from webhook/ (CONTRIBUTING.md, "Module boundaries")' };
const COMMON_BOUNDARY = { regex: '^(\\.\\./)+(sidecar|webhook)/', message: 'common/** imports nothing from either program (CONTRIBUTING.md, "Module boundaries")' };
const WEBHOOK_BOUNDARY = {
  regex: '^(\\.\\./)+sidecar/(?!contract\\.ts$)',
  message: 'webhook/** may import only sidecar/contract.ts from the sidecar (CONTRIBUTING.md, "Module boundaries")',
};

const PROCESS_ENV = { object: 'process', property: 'env', message: 'only config.ts reads process.env (CONTRIBUTING.md, "One configuration module per program"); main.ts calls loadProcessConfig()' };
const DATE_NOW = { object: 'Date', property: 'now', message: 'pure module: take `now` as a parameter (CONTRIBUTING.md, "Pure core")' };
const PURE_GLOBALS = [
  ...['process', 'fetch', 'setTimeout', 'setInterval', 'setImmediate', 'performance'].map((name) => ({
    name,
    message: 'pure module: I/O, time and timers belong to the shell (CONTRIBUTING.md, "Pure core"); take what you need as a parameter',
  })),
];
const PURE_SYNTAX = [
  { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'pure module: `new Date()` reads the clock; take `now` as a parameter (CONTRIBUTING.md, "Pure core")' },
];

/** Restrictions for one group of program files. */
function restrictions({ boundary, pure, envReader }) {
  const rules = {
    'no-restricted-imports': ['error', { paths: pure ? PURE_IMPORTS : [], patterns: [boundary] }],
  };
  const properties = [...(envReader ? [] : [PROCESS_ENV]), ...(pure ? [DATE_NOW] : [])];
  rules['no-restricted-properties'] = properties.length > 0 ? ['error', ...properties] : 'off';
  rules['no-restricted-globals'] = pure ? ['error', ...PURE_GLOBALS] : 'off';
  rules['no-restricted-syntax'] = pure ? ['error', ...PURE_SYNTAX] : 'off';
  return rules;
}

const commonPure = PURE.filter((p) => p.startsWith('common/'));
const sidecarPure = PURE.filter((p) => p.startsWith('sidecar/'));
const webhookPure = PURE.filter((p) => p.startsWith('webhook/'));

export default defineConfig(
  { ignores: ['node_modules/**', 'dist/**', '.cache/**', 'charts/**', 'examples/**', 'test/compat/go/**', 'test/compat/java/**', 'test/compat/python/**'] },
  {
    files: TS,
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // node:test's describe/it/test return promises the runner itself awaits; awaiting them is not the idiom.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }] },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'inline-type-imports' }],
      // `let app; … app = build()` with closures that read `app` before the assignment is deliberate (requests racing
      // the wiring see `undefined`, not a temporal-dead-zone ReferenceError).
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // tsc already reports unused locals and parameters (noUnusedLocals, noUnusedParameters); one report is enough.
      '@typescript-eslint/no-unused-vars': 'off',
    },
  },
  // Budgets from pepr's config/eslint.root.config.mjs (https://github.com/defenseunicorns/pepr), as errors: split the
  // function rather than raise the budget (CONTRIBUTING.md, "Budgets").
  {
    files: ['common/**/*.ts', 'sidecar/**/*.ts', 'webhook/**/*.ts'],
    rules: {
      complexity: ['error', 10],
      'max-depth': ['error', 3],
      'max-params': ['error', 4],
      'max-statements': ['error', 20],
      '@typescript-eslint/explicit-module-boundary-types': 'error',
    },
  },
  { files: ['common/**/*.ts'], rules: restrictions({ boundary: COMMON_BOUNDARY, pure: false, envReader: false }) },
  { files: commonPure, rules: restrictions({ boundary: COMMON_BOUNDARY, pure: true, envReader: false }) },
  { files: ['sidecar/**/*.ts'], rules: restrictions({ boundary: SIDECAR_BOUNDARY, pure: false, envReader: false }) },
  { files: ['webhook/**/*.ts'], rules: restrictions({ boundary: WEBHOOK_BOUNDARY, pure: false, envReader: false }) },
  { files: ENV_READERS.filter((p) => p.startsWith('sidecar/')), rules: restrictions({ boundary: SIDECAR_BOUNDARY, pure: false, envReader: true }) },
  { files: ENV_READERS.filter((p) => p.startsWith('webhook/')), rules: restrictions({ boundary: WEBHOOK_BOUNDARY, pure: false, envReader: true }) },
  { files: sidecarPure, rules: restrictions({ boundary: SIDECAR_BOUNDARY, pure: true, envReader: false }) },
  { files: webhookPure, rules: restrictions({ boundary: WEBHOOK_BOUNDARY, pure: true, envReader: false }) },
  {
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Tests read untyped JSON (process output, HTTP bodies, API server objects) and let the assertions check its
      // shape at run time; typing every probe would add noise, not safety.
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // …and type such probes as `any` on purpose.
      '@typescript-eslint/no-explicit-any': 'off',
      // Fakes implement async interfaces with bodies that have nothing to await.
      '@typescript-eslint/require-await': 'off',
    },
  },
);
