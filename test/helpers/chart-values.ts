/**
 * Reads the chart's values.yaml and values.schema.json into one list of documented values: every leaf key
 * (a key whose schema is not a closed object) with its `# --` comment and default. The chart tests use it to
 * check that every value is documented, in the schema, used by a template and listed in the chart README;
 * `renderValuesTable` produces that README table (UPDATE_GOLDEN=1 rewrites it).
 *
 * Test helper: reads files, no other I/O.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

export const CHART_DIR = join(import.meta.dirname, '..', '..', 'charts', 'mi-anywhere');

export interface SchemaNode {
  readonly type?: string | readonly string[];
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly additionalProperties?: boolean | SchemaNode;
  readonly description?: string;
  readonly enum?: readonly unknown[];
}

/** One documented chart value. */
export interface ChartValue {
  /** Dotted path, e.g. `webhook.podDisruptionBudget.enabled`. */
  readonly path: string;
  /** Text of the `# --` comment block above the key (joined lines), or undefined when missing. */
  readonly doc: string | undefined;
  /** Default from values.yaml. */
  readonly defaultValue: unknown;
}

export function readSchema(): SchemaNode {
  return JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as SchemaNode;
}

export function readValuesText(): string {
  return readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8');
}

function isClosedObject(schema: SchemaNode | undefined): schema is SchemaNode & { properties: Record<string, SchemaNode> } {
  return schema?.properties !== undefined && schema.additionalProperties === false;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Leaf paths of a values object, descending only where the schema is a closed object. */
export function leafPaths(values: unknown, schema: SchemaNode, prefix = ''): string[] {
  if (!isClosedObject(schema) || !isPlainObject(values) || Object.keys(values).length === 0) return [prefix];
  return Object.keys(values).flatMap((key) =>
    leafPaths(values[key], schema.properties[key] ?? {}, prefix === '' ? key : `${prefix}.${key}`),
  );
}

/** Leaf paths the schema declares (closed objects descended), whatever values.yaml holds. */
export function schemaLeafPaths(schema: SchemaNode, prefix = ''): string[] {
  if (!isClosedObject(schema)) return [prefix];
  return Object.entries(schema.properties).flatMap(([key, child]) =>
    schemaLeafPaths(child, prefix === '' ? key : `${prefix}.${key}`),
  );
}

/**
 * `# --` comment blocks by key path, from the text of values.yaml: a key's documentation is the contiguous
 * comment block right above it whose first line starts with `# --`.
 */
export function commentsByPath(text: string): Map<string, string> {
  const docs = new Map<string, string>();
  const stack: { indent: number; key: string }[] = [];
  let block: string[] = [];
  for (const line of text.split('\n')) {
    const comment = /^\s*#\s?(.*)$/.exec(line);
    if (comment) {
      block.push(comment[1] ?? '');
      continue;
    }
    const key = /^(\s*)([A-Za-z0-9_-]+):(\s|$)/.exec(line);
    if (key) {
      const indent = key[1]?.length ?? 0;
      while (stack.length > 0 && (stack.at(-1)?.indent ?? 0) >= indent) stack.pop();
      stack.push({ indent, key: key[2] ?? '' });
      const first = block[0];
      if (first?.startsWith('-- ')) {
        docs.set(stack.map((s) => s.key).join('.'), [first.slice(3), ...block.slice(1)].join(' ').trim());
      }
    }
    block = [];
  }
  return docs;
}

function valueAt(values: unknown, path: string): unknown {
  let current = values;
  for (const key of path.split('.')) current = isPlainObject(current) ? current[key] : undefined;
  return current;
}

/** Every leaf value of values.yaml with its documentation and default. */
export function readChartValues(): ChartValue[] {
  const text = readValuesText();
  const values: unknown = parse(text);
  const docs = commentsByPath(text);
  return leafPaths(values, readSchema()).map((path) => ({ path, doc: docs.get(path), defaultValue: valueAt(values, path) }));
}

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|');
}

/** The README table of values (between the `values:start` / `values:end` markers). */
export function renderValuesTable(values: readonly ChartValue[]): string {
  const rows = values.map(
    (v) => `| \`${v.path}\` | \`${escapeCell(JSON.stringify(v.defaultValue))}\` | ${escapeCell(v.doc ?? '')} |`,
  );
  return ['| Key | Default | Description |', '|---|---|---|', ...rows].join('\n');
}

export const README_MARKERS = { start: '<!-- values:start -->', end: '<!-- values:end -->' } as const;
