/**
 * Shared set-up for the benchmarks that need Entra: the test authority host (its own process) and a sidecar in
 * entra mode serving the authority's federated app registration from a mounted-Secret style directory.
 */
import type { AuthorityHost } from '../lib/authority.ts';
import type { Programs } from '../lib/programs.ts';
import { startSidecarProcess, type SidecarProcess } from '../lib/sidecar.ts';

export function startEntraSidecar(options: { programs: Programs; nodeFlags: readonly string[]; authority: AuthorityHost; name?: string }): Promise<SidecarProcess> {
  const { info } = options.authority;
  return startSidecarProcess({
    program: options.programs.sidecarMain,
    nodeFlags: options.nodeFlags,
    name: options.name ?? 'sidecar-entra',
    mode: {
      kind: 'entra',
      env: {
        MI_ANYWHERE_IDENTITY_DIR: info.identityDir,
        MI_ANYWHERE_DEFAULT_IDENTITY: 'bench',
        MI_ANYWHERE_AUTHORITY_HOST: info.url,
        MI_ANYWHERE_FEDERATED_TOKEN_FILE: info.tokenFile,
        // The test authority's CA, as a user would trust a private authority.
        NODE_EXTRA_CA_CERTS: info.caFile,
      },
    },
  });
}
