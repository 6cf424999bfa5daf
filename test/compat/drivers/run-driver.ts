/**
 * The loop shared by the JavaScript drivers: parse the one JSON argument, run each variant's two token calls,
 * apply {@link acceptanceProblems}, print one {@link DriverResult} line per variant.
 */
import {
  acceptanceProblems,
  jwtClaims,
  type AcceptanceOptions,
  type DriverInput,
  type DriverResult,
  type Observed,
  type Variant,
} from './protocol.ts';

export interface TokenLike {
  readonly token: string;
  /** Unix seconds. */
  readonly expiresOnS: number;
}

async function count(url: string): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const body = (await res.json()) as { count: number };
  return body.count;
}

export function oneLine(err: unknown): string {
  const text = (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).replace(/\s+/g, ' ').trim();
  return text.length <= 1500 ? text : `${text.slice(0, 1500)}…`;
}

export async function runTwoCalls<C>(
  input: DriverInput,
  variant: Variant,
  versions: Readonly<Record<string, string>>,
  make: () => C,
  get: (client: C) => Promise<TokenLike>,
  options: AcceptanceOptions = {},
): Promise<DriverResult> {
  const base = { variant: variant.id, versions };
  let before: number;
  try {
    before = await count(input.counterUrl);
  } catch (err) {
    return { ...base, status: 'fail', error: `driver: request counter: ${oneLine(err)}` };
  }
  let client: C;
  let t1: TokenLike;
  try {
    client = make();
    t1 = await get(client);
  } catch (err) {
    return { ...base, status: 'unsupported', error: oneLine(err) };
  }
  try {
    const mid = await count(input.counterUrl);
    const t2 = await get(client);
    const after = await count(input.counterUrl);
    const claims = jwtClaims(t1.token);
    const observed: Observed = {
      requests1: mid - before,
      requests2: after - mid,
      expiresOn1: Math.floor(t1.expiresOnS),
      expiresOn2: Math.floor(t2.expiresOnS),
      sameToken: t1.token === t2.token,
      aud: typeof claims['aud'] === 'string' ? claims['aud'] : '',
      appid: typeof claims['appid'] === 'string' ? claims['appid'] : '',
      exp: typeof claims['exp'] === 'number' ? claims['exp'] : 0,
    };
    const problems = acceptanceProblems(input.resource, variant.expectedAppId, observed, Math.floor(Date.now() / 1000), {
      ...options,
      // Without a client cache each call is answered anew and a release that derives the expiry from expires_in
      // moves it by the request's latency.
      ...(input.clientCache === false ? { processPerCall: true, expiryToleranceS: Math.max(options.expiryToleranceS ?? 0, 5) } : {}),
    });
    return problems.length === 0
      ? { ...base, status: 'ok', observed }
      : { ...base, status: 'fail', observed, error: problems.join('; ') };
  } catch (err) {
    return { ...base, status: 'fail', error: `after a first token: ${oneLine(err)}` };
  }
}

export async function driverMain(
  runVariant: (input: DriverInput, variant: Variant) => Promise<DriverResult>,
): Promise<void> {
  const arg = process.argv[2];
  if (arg === undefined) throw new Error('usage: driver <json input>');
  const input = JSON.parse(arg) as DriverInput;
  for (const variant of input.variants) {
    process.stdout.write(`${JSON.stringify(await runVariant(input, variant))}\n`);
  }
}
