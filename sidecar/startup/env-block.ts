/**
 * The environment block the sidecar prints on stdout once it serves: the lines an app needs, one block per profile,
 * ending with {@link ENV_BLOCK_END} (test helpers and `scripts/developer-identity.ts` wait for that line).
 *
 * A plain function of its input: main.ts decides what the secret text is and writes the block.
 */
import type { Config } from '../config.ts';
import { PROFILES, profileEnv, SIDECAR_ENV, type Profile } from '../contract.ts';

export interface EnvBlockInput {
  readonly mode: Config['mode'];
  readonly baseUrl: string;
  /** Printed value of IDENTITY_HEADER / MSI_SECRET (the secret itself, or a `$VARIABLE` reference). */
  readonly secretText: string;
  readonly defaultClientId: string | undefined;
  readonly arcEnabled: boolean;
  /**
   * Entra mode with a secret generated at start-up: printed once, as the `MI_ANYWHERE_IDENTITY_HEADER` line the
   * profiles' `$MI_ANYWHERE_IDENTITY_HEADER` references resolve to (docs/security.md §5, "Endpoint secret on stdout").
   */
  readonly generatedSecret?: string | undefined;
}

/** Last line of the printed environment block (test helpers wait for it). */
export const ENV_BLOCK_END = '# end of profiles';

/**
 * The environment lines an app needs, one block per profile (`# profile <name>` then `NAME=value` lines), ready to
 * paste into a shell (`export` them), an env file or a compose `environment:` list.
 */
export function formatEnvBlock(input: EnvBlockInput): string {
  const lines = [
    `# mi-anywhere ${input.mode === 'dev' ? '(dev mode: tokens from the built-in dev issuer, not accepted by Azure) ' : ''}` +
      'is serving. Give an app the lines of ONE profile; "default" serves every Azure SDK.',
    ...generatedSecretLines(input.generatedSecret),
    ...PROFILES.filter((p) => p !== 'arc' || input.arcEnabled).flatMap((profile) => profileLines(profile, input)),
    ENV_BLOCK_END,
  ];
  return lines.join('\n') + '\n';
}

function generatedSecretLines(secret: string | undefined): string[] {
  if (secret === undefined) return [];
  return [
    `# endpoint secret, generated at start-up and printed only here; set ${SIDECAR_ENV.identityHeader} to choose it (it is then never printed)`,
    `${SIDECAR_ENV.identityHeader}=${secret}`,
  ];
}

function profileLines(profile: Profile, input: EnvBlockInput): string[] {
  const env = profileEnv(profile, { baseUrl: input.baseUrl, secret: input.secretText, defaultClientId: input.defaultClientId });
  return [`# profile ${profile}`, ...env.map(([name, value]) => `${name}=${value}`)];
}
