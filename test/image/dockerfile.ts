/**
 * A small Dockerfile reader for the image tests: instructions (continuations joined, comments dropped) grouped
 * by stage, exec-form detection, ARG defaults, and a .dockerignore matcher (Docker's rules: last matching
 * pattern wins, `!` re-includes, a pattern matches a path or any of its parent directories).
 *
 * Pure: text in, data out.
 */

export interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
}

export interface Stage {
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: readonly Instruction[];
}

export interface ParsedDockerfile {
  /** Instructions before the first FROM (global ARGs). */
  readonly preamble: readonly Instruction[];
  readonly stages: readonly Stage[];
}

export function parseDockerfile(text: string): ParsedDockerfile {
  const instructions: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trimEnd();
    if (pending === '' && (/^\s*#/.test(line) || line.trim() === '')) return;
    if (pending !== '' && /^\s*#/.test(line)) return;
    if (pending === '') startLine = index + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const match = /^(\S+)\s*(.*)$/s.exec(full);
    if (match) instructions.push({ keyword: (match[1] ?? '').toUpperCase(), args: (match[2] ?? '').trim(), line: startLine });
  });
  const preamble: Instruction[] = [];
  const stages: { from: string; name: string | undefined; instructions: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const from = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      stages.push({ from: from?.[1] ?? '', name: from?.[2], instructions: [] });
    } else if (stages.length === 0) {
      preamble.push(instruction);
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return { preamble, stages };
}

/** JSON array (exec form) arguments of CMD/ENTRYPOINT/RUN, or undefined for shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  try {
    const parsed: unknown = JSON.parse(args);
    return Array.isArray(parsed) && parsed.every((a) => typeof a === 'string') ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Default values of `ARG NAME=value` instructions. */
export function argDefaults(instructions: readonly Instruction[]): Map<string, string> {
  const defaults = new Map<string, string>();
  for (const i of instructions) {
    if (i.keyword !== 'ARG') continue;
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(i.args);
    if (match) defaults.set(match[1] ?? '', (match[2] ?? '').replace(/^"(.*)"$/, '$1'));
  }
  return defaults;
}

function globToRegExp(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i] ?? '';
    if (c === '*' && pattern[i + 1] === '*') {
      source += '.*';
      i += 1;
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/** True when `.dockerignore` keeps `path` (relative, `/`-separated) in the build context. */
export function isInContext(dockerignore: string, path: string): boolean {
  const rules = dockerignore
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => ({ exclude: !l.startsWith('!'), re: globToRegExp(l.replace(/^!/, '').replace(/^\/+|\/+$/g, '')) }));
  const parts = path.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let excluded = false;
  for (const rule of rules) {
    if (prefixes.some((p) => rule.re.test(p))) excluded = rule.exclude;
  }
  return !excluded;
}
