/**
 * The identity model: what the sidecar knows about one identity it can serve, and how a token request
 * names the identity it wants. Loading identities from mounted Secrets lives in `identity/load.ts` (I/O);
 * this module is pure types plus the selector matching rule.
 */

import type { CiPlatform } from '../contract.ts';

/**
 * How the identity proves itself to Entra ID. Credential material is never part of this descriptor. `azure-cli`:
 * tokens come from the Azure CLI login of the machine the sidecar runs on (the developer identity).
 */
export type CredentialKind = 'secret' | 'certificate' | 'federated' | 'dev' | 'azure-cli';

/** One identity, as loaded from `<identityDir>/<name>/` (or built in, in dev mode). */
export interface IdentityDescriptor {
  /** Directory name; used in logs and metric labels (never secret). */
  readonly name: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly objectId?: string | undefined;
  /** ARM resource id of the user-assigned identity, compared case-insensitively. */
  readonly resourceId?: string | undefined;
  readonly credentialKind: CredentialKind;
  /** Served to requests without a selector (the "system-assigned" role). */
  readonly isDefault: boolean;
}

/**
 * Credential material for one identity, kept apart from the descriptor so that logging a descriptor can never
 * leak it. Fields hold secrets: never log, never serialise.
 */
export type CredentialMaterial =
  | { readonly kind: 'secret'; readonly clientSecret: string }
  | { readonly kind: 'certificate'; readonly certificatePem: string; readonly privateKeyPem: string }
  | { readonly kind: 'federated'; readonly tokenFile: string; readonly audience: string }
  /** Federated, with the CI platform's OIDC token of the running job as the assertion (fetched, not read from a file). */
  | { readonly kind: 'ci-oidc'; readonly platform: CiPlatform; readonly audience: string; readonly serviceConnectionId?: string | undefined }
  /** The Azure CLI login of the host; `tenantId` (optional) is passed to the CLI as `--tenant`. */
  | { readonly kind: 'azure-cli'; readonly tenantId?: string | undefined }
  | { readonly kind: 'dev' };

/** An identity ready to use: descriptor + material + a fingerprint that changes when the credential changes. */
export interface LoadedIdentity {
  readonly descriptor: IdentityDescriptor;
  readonly material: CredentialMaterial;
  /** Hash of the credential material (hex, not reversible); a change invalidates cached tokens. */
  readonly credentialFingerprint: string;
}

/**
 * Which identity a request asks for. `system` = no selector given. Wire names differ per dialect
 * (`client_id`, `clientid`, `object_id`, `principal_id`, `msi_res_id`, `mi_res_id`, `msi-res-id`);
 * the protocol parsers map them onto these four kinds.
 */
export type IdentitySelector =
  | { readonly kind: 'system' }
  | { readonly kind: 'clientId'; readonly value: string }
  | { readonly kind: 'objectId'; readonly value: string }
  | { readonly kind: 'resourceId'; readonly value: string };

/**
 * Finds the identity a selector names. GUIDs and ARM ids are compared case-insensitively (Azure treats both
 * case-insensitively; msal-node compares the Arc echo case-insensitively, docs/protocols.md §7).
 */
export function findIdentity<T extends { readonly descriptor: IdentityDescriptor }>(
  identities: readonly T[],
  selector: IdentitySelector,
): T | undefined {
  if (selector.kind === 'system') return identities.find((i) => i.descriptor.isDefault);
  const wanted = selector.value.toLowerCase();
  return identities.find((i) => {
    const d = i.descriptor;
    const candidate = selector.kind === 'clientId' ? d.clientId : selector.kind === 'objectId' ? d.objectId : d.resourceId;
    return candidate !== undefined && candidate.toLowerCase() === wanted;
  });
}
