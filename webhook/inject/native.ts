/**
 * Does the API server support native sidecars (init containers with `restartPolicy: Always`)? The feature
 * (KEP-753, SidecarContainers) is beta and enabled by default from Kubernetes 1.29; before that the field is
 * dropped or rejected and an "Always" init container would block the pod forever, so older servers get the
 * regular-container form.
 *
 * Pure: parses /version's major/minor (providers append "+", e.g. GKE's "29+").
 */
export const NATIVE_SIDECAR_MIN_MINOR = 29;

export function supportsNativeSidecar(version: { readonly major: string; readonly minor: string }): boolean {
  const major = Number.parseInt(version.major, 10);
  const minor = Number.parseInt(version.minor, 10);
  if (!Number.isFinite(major) || !Number.isFinite(minor)) return false;
  return major > 1 || (major === 1 && minor >= NATIVE_SIDECAR_MIN_MINOR);
}
