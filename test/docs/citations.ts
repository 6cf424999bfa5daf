/**
 * The citation checker behind test/docs/citations.test.ts: a newcomer reading any file of the repository must be
 * able to follow every reference it makes without anything from outside the repository but public URLs
 * (CONTRIBUTING.md, "Comments say why"). Given one file's text and what the repository holds, it lists every
 * reference that does not resolve:
 *
 * - house-style codes (two capitals, a dash and a number) instead of a CONTRIBUTING.md rule name;
 * - documents that are not in the repository (notes kept outside it, and anything under the
 *   shared work directory) and a protocols.md that does not say it is docs/protocols.md;
 * - "issue" and a number instead of saying what the thing is (GitHub issue URLs are fine);
 * - `docs/<name>.md §N` whose document has no heading numbered N;
 * - `CONTRIBUTING.md, "<rule>"` where CONTRIBUTING.md has no rule (bold lead words) or heading of that name;
 * - paths that look like repository paths (`sidecar/http/app.ts`, `http/routes.ts`) in comments and prose that
 *   name no file in the tree (checked in comments and prose only: paths in code are the compiler's and the tests'
 *   business, and data files carry none).
 *
 * Pure: the caller reads the files and passes their text in.
 */

/** One reference that does not resolve. */
export interface Finding {
  readonly file: string;
  readonly line: number;
  readonly kind: string;
  readonly text: string;
}

/** What the repository holds, as far as citations are concerned. */
export interface Repository {
  /** Every file path, relative to the repository root, with `/` separators. */
  readonly files: ReadonlySet<string>;
  /** Section numbers of each docs file (`docs/protocols.md` → {"1", "1.1", …}). */
  readonly sections: ReadonlyMap<string, ReadonlySet<string>>;
  /** Rule names of CONTRIBUTING.md: its bold lead words and its headings. */
  readonly rules: readonly string[];
}

/** The numbers of a markdown document's headings: `## 2. Requests` → "2", `### 2.4 Cloud Shell` → "2.4". */
export function sectionNumbers(markdown: string): Set<string> {
  const numbers = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s/gm)) numbers.add(m[1]!);
  return numbers;
}

/** CONTRIBUTING.md's rule names: the bold words that open a list item, and every heading. */
export function ruleNames(markdown: string): string[] {
  const bold = [...markdown.matchAll(/^\s*- \*\*([^*]+)\*\*/gm)].map((m) => m[1]!.replace(/[.:;,]+$/, '').trim());
  const headings = [...markdown.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => m[1]!.trim());
  return [...bold, ...headings];
}

/** A cited rule name resolves when a rule equals it or opens with it ("Names explain themselves; functions…"). */
function ruleExists(name: string, rules: readonly string[]): boolean {
  return rules.some((rule) => rule === name || (rule.startsWith(name) && /^[\s;:,.(]/.test(rule.slice(name.length))));
}

interface Context {
  readonly file: string;
  readonly repo: Repository;
}

type LineCheck = (line: string, context: Context) => string[];

// Notes kept outside the repository, written as patterns so this file names none of them as a citation.
const OFF_REPO_DOCUMENTS = /observed-[c]lients\.md|house-[s]tyle\.md|\/work\/[s]hared\b/g;

const houseStyleCodes: LineCheck = (line) => [...line.matchAll(/\bH[S]-\d+\b/g)].map((m) => `house-style code ${m[0]}: cite CONTRIBUTING.md, "<rule name>"`);

const offRepoDocuments: LineCheck = (line) => [...line.matchAll(OFF_REPO_DOCUMENTS)].map((m) => `${m[0]} is not in the repository: cite docs/protocols.md or docs/clients.md §N`);

/** `protocols.md` must be `docs/protocols.md`, except as a markdown link target inside docs/ (`](protocols.md)`). */
const bareProtocols: LineCheck = (line, { file }) => {
  const found: string[] = [];
  for (const m of line.matchAll(/protocols\.md/g)) {
    const before = line.slice(0, m.index);
    if (before.endsWith('docs/')) continue;
    const after = line.slice(m.index + m[0].length);
    const isLink = /\]\((?:\.\/)?$/.test(before) || (before.endsWith('[') && after.startsWith(']('));
    if (file.startsWith('docs/') && isLink) continue;
    found.push('protocols.md without docs/: cite docs/protocols.md §N');
  }
  return found;
};

/** "issue 17" says nothing to a reader; a GitHub issue or pull request URL with that number on the line is fine. */
const issueNumbers: LineCheck = (line) =>
  [...line.matchAll(/\b[Ii]ssue (\d+)\b/g)]
    .filter((m) => !new RegExp(`github\\.com/[^\\s)]+/(?:issues|pull)/${m[1]}\\b`).test(line))
    .map((m) => `"${m[0]}": say what is meant instead of an issue number`);

const SECTION_CITATION = /(?:docs\/|\]\((?:\.\/)?)([\w-]+)\.md\)?,?\s+§(\d+(?:\.\d+)*)((?:\s*(?:,|\/|and|or)\s*§\d+(?:\.\d+)*)*)/g;

/** `docs/<name>.md §N` (also `§N/§M`, `§N, §M`): the document exists and has a heading numbered N. */
const docSections: LineCheck = (line, { file, repo }) => {
  const found: string[] = [];
  for (const m of line.matchAll(SECTION_CITATION)) {
    const isDocsLink = m[0].startsWith('docs/') || file.startsWith('docs/');
    if (!isDocsLink) continue;
    const doc = `docs/${m[1]}.md`;
    const sections = repo.sections.get(doc);
    const numbers = [m[2]!, ...[...(m[3] ?? '').matchAll(/§(\d+(?:\.\d+)*)/g)].map((n) => n[1]!)];
    if (sections === undefined) found.push(`${doc} does not exist`);
    else for (const n of numbers) if (!sections.has(n)) found.push(`${doc} has no section ${n}`);
  }
  return found;
};

const contributingRules: LineCheck = (line, { repo }) =>
  [...line.matchAll(/CONTRIBUTING\.md,\s*"([^"]+)"/g)]
    .filter((m) => !m[1]!.includes('<') && !ruleExists(m[1]!, repo.rules))
    .map((m) => `CONTRIBUTING.md has no rule "${m[1]}"`);

/** Paths that look like the repository's: they start with a directory name the tree has and end in a checked type. */
const REPO_PATH = /(?<=^|[\s'"`([,:=])((?:\.\.?\/)*(?:[\w.-]+\/)+[\w.-]+\.(?:ts|md|yaml|sh))(?![\w/-])/g;

function directoryNames(files: ReadonlySet<string>): Set<string> {
  const names = new Set<string>();
  for (const f of files) for (const segment of f.split('/').slice(0, -1)) names.add(segment);
  return names;
}

const directoryCache = new WeakMap<ReadonlySet<string>, Set<string>>();

function normalise(path: string): string | undefined {
  const out: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment !== '..') out.push(segment);
    else if (out.pop() === undefined) return undefined;
  }
  return out.join('/');
}

function pathExists(path: string, file: string, files: ReadonlySet<string>): boolean {
  const dir = file.split('/').slice(0, -1).join('/');
  const candidates = [normalise(path), normalise(`${dir}/${path}`)];
  if (candidates.some((c) => c !== undefined && files.has(c))) return true;
  const tail = normalise(path);
  return tail !== undefined && !path.startsWith('.') && [...files].some((f) => f.endsWith(`/${tail}`));
}

/**
 * Repository paths of one line of prose that name no file. `relativeToFile` is false inside a markdown code block:
 * an example's `../helpers/kube.ts` is relative to wherever the example is pasted, not to the document.
 */
function missingPaths(line: string, { file, repo }: Context, relativeToFile: boolean): string[] {
  let directories = directoryCache.get(repo.files);
  if (directories === undefined) directoryCache.set(repo.files, (directories = directoryNames(repo.files)));
  const withoutUrls = line.replace(/\b[a-z][a-z0-9+.-]*:\/\/\S+/gi, ' ');
  const found: string[] = [];
  for (const m of withoutUrls.matchAll(REPO_PATH)) {
    const path = m[1]!;
    const first = path.replace(/^(?:\.\.?\/)+/, '').split('/')[0]!;
    if (!path.startsWith('.') && !directories.has(first)) continue;
    if (path.startsWith('.') && !relativeToFile) continue;
    if (!pathExists(path, file, repo.files)) found.push(`${path} names no file in the repository`);
  }
  return found;
}

const HASH_COMMENTS = /(?:\.sh|\.ya?ml|\.py|(?:^|\/)Dockerfile)$/;
const SLASH_COMMENTS = /\.(?:ts|js|mjs|go|java)$/;

/** The comment part of a source line (the whole line for prose files), where paths are cited; none for data. */
function proseOf(line: string, file: string): string | undefined {
  if (/\.(?:md|txt|tpl)$/.test(file)) return line;
  const trimmed = line.trimStart();
  if (HASH_COMMENTS.test(file)) return trimmed.startsWith('#') ? line : /\s#\s(.*)$/.exec(line)?.[1];
  if (!SLASH_COMMENTS.test(file)) return undefined;
  if (/^(?:\/\/|\/?\*)/.test(trimmed)) return line;
  return /\s\/\/\s(.*)$/.exec(line)?.[1];
}

const EVERYWHERE: readonly LineCheck[] = [houseStyleCodes, offRepoDocuments, bareProtocols, issueNumbers, docSections, contributingRules];

/**
 * CHANGELOG.md records history: its entries may name issues, files and documents of the past, but never a
 * house-style code (those were never the repository's vocabulary).
 */
function checksFor(file: string): readonly LineCheck[] {
  return file === 'CHANGELOG.md' ? [houseStyleCodes] : EVERYWHERE;
}

/** Joins a quoted rule name wrapped onto the next comment line, so `"Nothing\n// secret in logs"` reads whole. */
function joinWrappedQuotes(lines: readonly string[]): string[] {
  return lines.map((line, i) => {
    const next = lines[i + 1];
    if (next === undefined || !/CONTRIBUTING\.md,\s*"[^"]*$/.test(line)) return line;
    const continuation = next.replace(/^\s*(?:\/\/|\*|#)?\s*/, '');
    return `${line} ${continuation}`;
  });
}

/** Every reference of one file that does not resolve, with its 1-based line number. */
export function checkFile(file: string, text: string, repo: Repository): Finding[] {
  const context: Context = { file, repo };
  const checks = checksFor(file);
  const findings: Finding[] = [];
  let inCodeBlock = false;
  joinWrappedQuotes(text.split('\n')).forEach((line, index) => {
    if (file.endsWith('.md') && /^\s*```/.test(line)) inCodeBlock = !inCodeBlock;
    const found = checks.flatMap((check) => check(line, context));
    const prose = file === 'CHANGELOG.md' ? undefined : proseOf(line, file);
    if (prose !== undefined) found.push(...missingPaths(prose, context, !inCodeBlock));
    for (const kind of new Set(found)) findings.push({ file, line: index + 1, kind, text: line.trim().slice(0, 160) });
  });
  return findings;
}
