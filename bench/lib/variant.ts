/**
 * The `--variant` argument of bench/compare.ts: `name=tree[:ENV=VALUE,...]`. Each split happens at the first
 * separator only, so a value may itself contain `=` or `:` (a base64 secret, a URL); it cannot contain `,`, which
 * separates the pairs.
 */

export interface Variant {
  readonly name: string;
  readonly tree: string;
  readonly env: Record<string, string>;
}

/** Splits `text` at the first `separator`; the rest (separators included) is the second part. */
function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + separator.length)];
}

function parseEnv(envText: string, whole: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of envText.split(',').filter(Boolean)) {
    const [key, value] = splitOnce(pair, '=');
    if (key === '' || value === undefined) throw new Error(`--variant environment wants ENV=VALUE pairs, got ${pair} in ${whole}`);
    env[key] = value;
  }
  return env;
}

export function parseVariant(text: string): Variant {
  const [name, rest] = splitOnce(text, '=');
  if (name === '' || rest === undefined || rest === '') throw new Error(`--variant wants name=path[:ENV=VALUE,...], got ${text}`);
  const [tree, envText = ''] = splitOnce(rest, ':');
  return { name, tree, env: parseEnv(envText, text) };
}
