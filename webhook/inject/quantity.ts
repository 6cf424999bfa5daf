/**
 * Kubernetes resource quantities (`100m`, `64Mi`, `1.5`, `2e3`), parsed the way apimachinery's
 * `resource.ParseQuantity` accepts them, to validate annotations and config and to compare a request with its
 * limit before the API server does (its own message names no annotation).
 *
 * Pure.
 */

const SUFFIX_FACTORS: Readonly<Record<string, number>> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/**
 * Grammar of https://github.com/kubernetes/apimachinery/blob/master/pkg/api/resource/quantity.go: signed decimal,
 * then a suffix or an exponent.
 */
const QUANTITY = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/;

/** The quantity's value in base units (cores, bytes), or undefined when the string is not a quantity. */
export function parseQuantity(text: string): number | undefined {
  const match = QUANTITY.exec(text);
  if (!match) return undefined;
  const number = Number(match[1]);
  if (match[2] !== undefined) return number * 10 ** Number(match[2].slice(1));
  const factor = SUFFIX_FACTORS[match[3] ?? ''];
  return factor === undefined ? undefined : number * factor;
}

/**
 * A quantity string for a value in base units, rounded up to what Kubernetes stores: whole millicores for cpu,
 * whole bytes for memory (Mi when exact, for readable pod specs). Sums of parsed values carry float noise, hence
 * the rounding to a millionth first.
 */
export function formatQuantity(value: number, kind: 'cpu' | 'memory'): string {
  if (kind === 'cpu') return `${Math.ceil(Math.round(value * 1e6) / 1e3)}m`;
  const bytes = Math.ceil(Math.round(value * 1e3) / 1e3);
  return bytes % 2 ** 20 === 0 ? `${bytes / 2 ** 20}Mi` : String(bytes);
}
