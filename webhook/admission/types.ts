/**
 * Narrow, read-only JSON types for AdmissionReview v1
 * (https://github.com/kubernetes/api/blob/master/admission/v1/types.go) and the parts of a Pod the webhook reads.
 * Admission objects stay raw JSON: they are never run through @kubernetes/client-node's ObjectSerializer, which
 * turns timestamps into Date objects and would make the JSON-patch diff emit spurious operations (CONTRIBUTING.md,
 * "Patches from explicit additions"). Only objects we *build* use the client's generated types.
 *
 * Pure: types only.
 */

export type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };
export type JsonObject = { readonly [key: string]: Json };

/** metav1.GroupVersionKind */
export interface GroupVersionKind {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
}

/** admissionv1.AdmissionRequest (fields the webhook reads). */
export interface AdmissionRequest {
  /** Identifies this call; the response must echo it. */
  readonly uid: string;
  readonly kind: GroupVersionKind;
  readonly resource?: { readonly group: string; readonly version: string; readonly resource: string };
  readonly subResource?: string;
  /** Namespace of the object; for pods created by controllers `object.metadata.namespace` is often empty. */
  readonly namespace?: string;
  readonly name?: string;
  /** CREATE | UPDATE | DELETE | CONNECT */
  readonly operation: string;
  readonly dryRun?: boolean;
  /** The object as the API server has it after defaulting and earlier mutations (raw JSON). */
  readonly object?: JsonObject;
}

/** admissionv1.AdmissionReview as received. */
export interface AdmissionReviewRequest {
  readonly apiVersion: 'admission.k8s.io/v1';
  readonly kind: 'AdmissionReview';
  readonly request: AdmissionRequest;
}

/** metav1.Status as used inside an AdmissionResponse. */
export interface ResponseStatus {
  readonly code: number;
  readonly message: string;
  readonly reason?: string;
}

/** admissionv1.AdmissionResponse */
export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly status?: ResponseStatus;
  /** base64 of an RFC 6902 JSON patch. */
  readonly patch?: string;
  readonly patchType?: 'JSONPatch';
  /** Shown by kubectl ("Warning: ..."); used to tell users why a pod that looked opted-in was not injected. */
  readonly warnings?: readonly string[];
}

export interface AdmissionReviewResponse {
  readonly apiVersion: 'admission.k8s.io/v1';
  readonly kind: 'AdmissionReview';
  readonly response: AdmissionResponse;
}

/** A Pod as raw JSON, typed only where the webhook looks. Unknown fields are preserved untouched. */
export interface PodJson {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: {
    readonly name?: string;
    readonly generateName?: string;
    readonly namespace?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
    readonly [key: string]: Json | undefined;
  };
  readonly spec?: PodSpecJson;
  readonly [key: string]: Json | undefined | object;
}

export interface PodSpecJson {
  readonly hostNetwork?: boolean;
  readonly containers?: readonly ContainerJson[];
  readonly initContainers?: readonly ContainerJson[];
  readonly volumes?: readonly VolumeJson[];
  readonly securityContext?: { readonly fsGroup?: number; readonly [key: string]: Json | undefined };
  readonly serviceAccountName?: string;
  readonly restartPolicy?: string;
  readonly os?: { readonly name?: string };
  readonly nodeSelector?: Readonly<Record<string, string>>;
  readonly affinity?: { readonly nodeAffinity?: { readonly requiredDuringSchedulingIgnoredDuringExecution?: { readonly nodeSelectorTerms?: readonly NodeSelectorTermJson[] } } };
  /** Pod-level resources (PodLevelResources); quantities as strings. */
  readonly resources?: { readonly requests?: Readonly<Record<string, string>>; readonly limits?: Readonly<Record<string, string>> };
  readonly [key: string]: Json | undefined | object;
}

export interface NodeSelectorTermJson {
  readonly matchExpressions?: readonly { readonly key: string; readonly operator: string; readonly values?: readonly string[] }[];
}

export interface EnvVarJson {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: JsonObject;
}

export interface ContainerJson {
  readonly name: string;
  readonly image?: string;
  readonly env?: readonly EnvVarJson[];
  readonly envFrom?: readonly JsonObject[];
  readonly volumeMounts?: readonly { readonly name: string; readonly mountPath: string; readonly readOnly?: boolean }[];
  readonly restartPolicy?: string;
  readonly ports?: readonly { readonly containerPort: number; readonly name?: string; readonly protocol?: string }[];
  readonly [key: string]: Json | undefined | object;
}

export interface VolumeJson {
  readonly name: string;
  readonly [key: string]: Json | undefined;
}
