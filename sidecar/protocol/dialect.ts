/**
 * The dialects of the token listener: the managed-identity protocols the sidecar speaks (docs/protocols.md §2), plus
 * `unknown` for answers given before a request's dialect is known (no route matched, a guard refused the request
 * target). Metrics label requests by these values and the renderers pick a response shape by them.
 *
 * Pure.
 */

export const DIALECTS = ['imds', 'app-service', 'msi-endpoint', 'cloud-shell', 'arc', 'unknown'] as const;
export type Dialect = (typeof DIALECTS)[number];

/**
 * The dialects with a path of their own (contract `PATHS`). Cloud Shell shares the `MSI_ENDPOINT` path and is told
 * apart by its method (POST) once routed; `unknown` has no path.
 */
export type PathDialect = Exclude<Dialect, 'cloud-shell' | 'unknown'>;
