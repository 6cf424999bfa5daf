/**
 * Citations resolve inside the repository (CONTRIBUTING.md, "Comments say why"): the checker of
 * test/docs/citations.ts on small texts, so each kind of broken reference is shown to fail, then over every tracked
 * source, documentation, chart and fixture file of the repository (code, markdown, YAML, shell, the compatibility
 * drivers, the Dockerfile, chart templates, JSON fixtures). A failure lists `file:line: what` for every finding.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkFile, ruleNames, sectionNumbers, type Finding, type Repository } from './citations.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/** This file and its checker hold broken references as test data (paths that name no file, missing sections). */
const SELF = new Set(['test/docs/citations.test.ts', 'test/docs/citations.ts']);

const CONTRIBUTING = `
## Rules reviewers hold you to
- **I/O at the edge.** Parsing a token request…
- **Names explain themselves; functions stay short.**
- **Budgets**: complexity 10.
## Tests
`;

const PROTOCOLS = `
# Protocols
## 2. Requests, per source
### 2.4 Cloud Shell (\`MSI_ENDPOINT\` alone)
`;

const REPO: Repository = {
  files: new Set(['sidecar/http/app.ts', 'webhook/http/server.ts', 'docs/protocols.md', 'test/helpers/sidecar.ts', 'charts/mi-anywhere/values.yaml']),
  sections: new Map([['docs/protocols.md', sectionNumbers(PROTOCOLS)]]),
  rules: ruleNames(CONTRIBUTING),
};

/**
 * The broken forms the checker must catch, assembled from parts: spelled out whole, this file would itself cite
 * documents a reader of the repository cannot open.
 */
const HS = (n: number): string => ['HS', String(n)].join('-');
const CLIENT_NOTES = ['observed', 'clients.md'].join('-');
const STYLE_NOTES = ['house', 'style.md'].join('-');
const SHARED_DIR = ['', 'work', 'shared'].join('/');
const BARE_PROTOCOLS = ['protocols', 'md'].join('.');

describe('the citation checker', () => {
  const cases: { name: string; file: string; text: string; want: string[] }[] = [
    { name: 'a house-style code', file: 'sidecar/x.ts', text: `// one config module (${HS(6)})`, want: [`house-style code ${HS(6)}`] },
    { name: 'the notes on observed clients', file: 'sidecar/x.ts', text: `// ${CLIENT_NOTES} §3 b`, want: [`${CLIENT_NOTES} is not in the repository`] },
    { name: 'the house-style notes', file: 'README.md', text: `see ${STYLE_NOTES}`, want: [`${STYLE_NOTES} is not in the repository`] },
    { name: 'the shared work directory', file: 'test/x.ts', text: `// spec: ${SHARED_DIR}/${BARE_PROTOCOLS}`, want: [`${SHARED_DIR} is not in the repository`, `${BARE_PROTOCOLS} without docs/`] },
    { name: 'a bare protocols document', file: 'test/x.ts', text: `why: '${BARE_PROTOCOLS} §2.4'`, want: [`${BARE_PROTOCOLS} without docs/`] },
    { name: 'docs/protocols.md is fine', file: 'test/x.ts', text: "why: 'docs/protocols.md §2.4'", want: [] },
    { name: 'a relative link inside docs/ is fine', file: 'docs/security.md', text: `see [the protocols](${BARE_PROTOCOLS}) §2`, want: [] },
    { name: 'a link text naming the file inside docs/ is fine', file: 'docs/security.md', text: `[${BARE_PROTOCOLS}](${BARE_PROTOCOLS}) §2.4`, want: [] },
    { name: 'the same link outside docs/', file: 'README.md', text: `see [the protocols](${BARE_PROTOCOLS})`, want: [`${BARE_PROTOCOLS} without docs/`] },
    { name: 'a ./ link inside docs/ is fine', file: 'docs/security.md', text: '[docs/protocols.md](./protocols.md) §2.4', want: [] },
    { name: 'an issue number', file: 'test/x.ts', text: "it('issue 7: the dashboard', …)", want: ['"issue 7"'] },
    { name: 'a capitalised issue number', file: 'docs/a.md', text: "Issue 2's done when", want: ['"Issue 2"'] },
    { name: 'a GitHub issue URL', file: 'docs/a.md', text: 'see [issue 1234](https://github.com/Azure/azure-sdk-for-js/issues/1234)', want: [] },
    { name: 'a section that exists', file: 'sidecar/x.ts', text: '// docs/protocols.md §2.4', want: [] },
    { name: 'a section that does not', file: 'sidecar/x.ts', text: '// docs/protocols.md §2.9', want: ['docs/protocols.md has no section 2.9'] },
    { name: 'a second section in a list', file: 'sidecar/x.ts', text: '// docs/protocols.md §2/§7', want: ['docs/protocols.md has no section 7'] },
    { name: 'a missing document', file: 'sidecar/x.ts', text: '// docs/nothing.md §1', want: ['docs/nothing.md does not exist', 'docs/nothing.md names no file'] },
    { name: 'a markdown link and a section', file: 'CONTRIBUTING.md', text: 'See [docs/protocols.md](docs/protocols.md) §3.', want: ['docs/protocols.md has no section 3'] },
    { name: 'a rule that exists', file: 'sidecar/x.ts', text: '// CONTRIBUTING.md, "I/O at the edge"', want: [] },
    { name: 'a rule cited by its first words', file: 'sidecar/x.ts', text: '// CONTRIBUTING.md, "Names explain themselves"', want: [] },
    { name: 'a heading as a rule', file: 'sidecar/x.ts', text: '// CONTRIBUTING.md, "Tests"', want: [] },
    { name: 'a rule that does not exist', file: 'sidecar/x.ts', text: '// CONTRIBUTING.md, "Pure shell"', want: ['CONTRIBUTING.md has no rule "Pure shell"'] },
    { name: 'a prefix that is not a whole word', file: 'sidecar/x.ts', text: '// CONTRIBUTING.md, "Budget"', want: ['CONTRIBUTING.md has no rule "Budget"'] },
    { name: 'a rule name wrapped onto the next comment line', file: 'sidecar/x.ts', text: '// (CONTRIBUTING.md, "I/O\n// at the edge")', want: [] },
    { name: 'a repository path that exists', file: 'sidecar/x.ts', text: '// see sidecar/http/app.ts', want: [] },
    { name: 'a repository path that does not', file: 'sidecar/x.ts', text: '// see sidecar/http/routes.ts', want: ['sidecar/http/routes.ts names no file'] },
    { name: 'a short path that exists under some directory', file: 'docs/a.md', text: 'the `http/server.ts` module', want: [] },
    { name: 'a short path that exists nowhere', file: 'docs/a.md', text: 'the `http/routes.ts` module', want: ['http/routes.ts names no file'] },
    { name: 'a relative path from the file', file: 'test/unit/x.test.ts', text: '// like ../helpers/sidecar.ts', want: [] },
    { name: 'a relative path that does not resolve', file: 'test/unit/x.test.ts', text: '// like ../helpers/nothing.ts', want: ['../helpers/nothing.ts names no file'] },
    { name: 'a relative path in a markdown example is the example\'s', file: 'docs/a.md', text: '```ts\nimport { x } from \'../helpers/nothing.ts\';\n```', want: [] },
    { name: 'a repository path in a markdown example', file: 'docs/a.md', text: '```sh\nnode sidecar/http/routes.ts\n```', want: ['sidecar/http/routes.ts names no file'] },
    { name: 'paths of other projects are not ours to check', file: 'sidecar/x.ts', text: '// msal-node src/client/Imds.ts', want: [] },
    { name: 'URLs are not paths', file: 'docs/a.md', text: 'https://github.com/x/y/blob/main/sidecar/http/routes.ts', want: [] },
    { name: 'paths in code are left to the compiler', file: 'sidecar/x.ts', text: "const p = 'sidecar/http/routes.ts';", want: [] },
    { name: 'a path in a trailing comment', file: 'sidecar/x.ts', text: 'const p = 1; // sidecar/http/routes.ts', want: ['sidecar/http/routes.ts names no file'] },
    { name: 'a path in a yaml comment', file: 'charts/mi-anywhere/values.yaml', text: '# -- see charts/mi-anywhere/values.yml.ts', want: ['charts/mi-anywhere/values.yml.ts names no file'] },
    { name: 'a path in a Python comment', file: 'test/compat/python/x.py', text: '# like sidecar/http/routes.ts', want: ['sidecar/http/routes.ts names no file'] },
    { name: 'a Dockerfile comment', file: 'Dockerfile', text: `# one image (${HS(17)}), see sidecar/http/routes.ts`, want: [`house-style code ${HS(17)}`, 'sidecar/http/routes.ts names no file'] },
    { name: 'JSON fixtures: citations, but no path check', file: 'test/fixtures/x.json', text: '"source": "issue 2: sidecar/http/routes.ts"', want: ['"issue 2"'] },
    { name: 'CHANGELOG history may name issues and old files', file: 'CHANGELOG.md', text: 'issue 3: sidecar/http/routes.ts', want: [] },
    { name: 'but never a house-style code', file: 'CHANGELOG.md', text: `${HS(10)} hygiene`, want: [`house-style code ${HS(10)}`] },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const kinds = checkFile(tc.file, tc.text, REPO).map((f) => f.kind);
      assert.equal(kinds.length, tc.want.length, `got ${JSON.stringify(kinds)}`);
      tc.want.forEach((want, i) => assert.ok(kinds[i]?.startsWith(want), `finding ${i}: ${kinds[i]} should start with ${want}`));
    });
  }

  it('numbers findings by line', () => {
    const findings = checkFile('sidecar/x.ts', `ok\n// ${HS(1)}\nok\n// ${HS(2)}`, REPO);
    assert.deepEqual(findings.map((f) => f.line), [2, 4]);
  });
});

/** Every kind of file that can cite something; package-lock.json files are generated and hold no prose. */
const CHECKED = /(?:\.(?:ts|js|mjs|md|txt|yaml|yml|sh|py|go|java|tpl|json)|(?:^|\/)Dockerfile)$/;

function trackedFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' });
  return out.split('\n').filter((f) => f !== '' && !f.startsWith('node_modules') && existsSync(join(ROOT, f)));
}

function repositoryOf(files: readonly string[]): Repository {
  const sections = new Map<string, Set<string>>();
  for (const f of files.filter((f) => /^docs\/[^/]+\.md$/.test(f))) sections.set(f, sectionNumbers(readFileSync(join(ROOT, f), 'utf8')));
  return { files: new Set(files), sections, rules: ruleNames(readFileSync(join(ROOT, 'CONTRIBUTING.md'), 'utf8')) };
}

function format(findings: readonly Finding[]): string {
  return findings.map((f) => `${f.file}:${f.line}: ${f.kind}\n    ${f.text}`).join('\n');
}

it('every citation in the repository resolves', () => {
  const files = trackedFiles();
  const repo = repositoryOf(files);
  const checked = files.filter((f) => CHECKED.test(f) && !/(?:^|\/)package-lock\.json$/.test(f) && !SELF.has(f));
  assert.ok(checked.length > 200, `only ${checked.length} files found to check`);
  const findings = checked.flatMap((f) => checkFile(f, readFileSync(join(ROOT, f), 'utf8'), repo));
  assert.equal(findings.length, 0, `${findings.length} citations do not resolve:\n${format(findings)}`);
});
