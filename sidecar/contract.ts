/**
 * The contract between the two programs: what the sidecar serves, what it reads, and what the webhook must put into
 * a pod so that the sidecar finds it there. The sidecar owns this interface and the webhook satisfies it; it is the
 * one sidecar module the webhook's logic imports (CONTRIBUTING.md, "Module boundaries"). In order:
 *
 * - what the sidecar serves: its ports and URL paths, the IMDS address, the Arc key directory, and the environment
 *   an app needs to reach it (one set per injection profile);
 * - what the sidecar reads: its own settings, the files of an identity directory, the CI platforms' variables;
 * - what the webhook injects for it: the container name and where the identity Secrets, the projected
 *   service-account token and the Arc key directory are mounted;
 * - the webhook's own Kubernetes-facing names, which the chart renders too: the pod annotations, and the paths and
 *   ports of the webhook's listeners. Nothing in the sidecar reads this last part; it sits here so that the pod
 *   settings a user writes and the pod changes they cause read side by side.
 *
 * Pure: constants and pure functions only, no I/O.
 */

// ---------------------------------------------------------------------------------------------------
// What the sidecar serves: ports, paths and addresses
// ---------------------------------------------------------------------------------------------------

/**
 * Default token port. 50342 is the port MSAL Python and the newest az CLI hard-code for Cloud Shell
 * (`http://localhost:50342/oauth2/token`, docs/protocols.md §2.4), so listening there serves them with no
 * configuration at all.
 */
export const DEFAULT_TOKEN_PORT = 50342;
/** Health-only listener (liveness/readiness). Binds the pod IP because kubelet probes do not reach loopback. */
export const DEFAULT_HEALTH_PORT = 50343;
/** Prometheus metrics listener, separate from the token port (never expose tokens and metrics on one socket). */
export const DEFAULT_METRICS_PORT = 50344;
/** Token listener address: loopback only, as real IMDS is reachable only from inside the VM. */
export const DEFAULT_TOKEN_ADDRESS = '127.0.0.1';

/**
 * The link-local IMDS address that SDKs without an override hard-code (docs/protocols.md §11 item 1). The sidecar
 * answers absolute-form requests for it (clients that use `HTTP_PROXY`); the webhook's optional init container
 * redirects it to the token port.
 */
export const IMDS_ADDRESS = '169.254.169.254';

/** URL paths of the token listener, one per dialect, so a request's dialect never has to be guessed. */
export const PATHS = {
  /** IMDS; also what `AZURE_POD_IDENTITY_AUTHORITY_HOST` + "/metadata/identity/oauth2/token" produces. */
  imds: '/metadata/identity/oauth2/token',
  /** App Service 2019-08-01 (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`). */
  appService: '/msi/token',
  /**
   * `MSI_ENDPOINT` dialects: Azure ML / App Service 2017 GET with `secret`, Cloud Shell POST. Same path MSAL
   * Python and az use for Cloud Shell on port 50342.
   */
  msiEndpoint: '/oauth2/token',
  /** Azure Arc challenge flow (`IDENTITY_ENDPOINT` + `IMDS_ENDPOINT`). */
  arc: '/arc/metadata/identity/oauth2/token',
  /** Built-in dev issuer: OIDC discovery lives below this path (`/dev-issuer/.well-known/openid-configuration`). */
  devIssuer: '/dev-issuer',
  liveness: '/healthz',
  readiness: '/readyz',
  metrics: '/metrics',
} as const;

/**
 * Directory the Azure SDKs insist the Arc key file lives in (msal-node, MSAL Go, MSAL.NET compare the
 * realm's directory with this constant; MSAL Python rebuilds the path from it; docs/protocols.md §7 step 3).
 */
export const ARC_TOKENS_DIR = '/var/opt/azcmagent/tokens';

// ---------------------------------------------------------------------------------------------------
// What an app needs to reach the sidecar: the environment variables the Azure SDKs read
// ---------------------------------------------------------------------------------------------------

/** Environment variables understood by the Azure SDKs (docs/protocols.md §1.1). */
export const APP_ENV = {
  identityEndpoint: 'IDENTITY_ENDPOINT',
  identityHeader: 'IDENTITY_HEADER',
  msiEndpoint: 'MSI_ENDPOINT',
  msiSecret: 'MSI_SECRET',
  podIdentityAuthorityHost: 'AZURE_POD_IDENTITY_AUTHORITY_HOST',
  imdsEndpoint: 'IMDS_ENDPOINT',
  defaultIdentityClientId: 'DEFAULT_IDENTITY_CLIENT_ID',
} as const;

export type AppEnvName = (typeof APP_ENV)[keyof typeof APP_ENV];

/**
 * Injection profiles: which of the SDK environment variables an app gets. The compatibility matrix
 * (docs/compatibility.md) shows which client speaks which; `default` is the one that serves every client.
 */
export const PROFILES = ['default', 'app-service', 'msi-endpoint', 'msi-secret', 'pod-identity', 'arc'] as const;
export type Profile = (typeof PROFILES)[number];

export interface ProfileEnvInput {
  /** Base URL of the token listener as the app sees it, e.g. `http://127.0.0.1:50342` (no trailing slash). */
  readonly baseUrl: string;
  /** Per-pod random value for `IDENTITY_HEADER` / `MSI_SECRET`. */
  readonly secret: string;
  /** Client id of the default identity (for `DEFAULT_IDENTITY_CLIENT_ID`, which MSAL.NET requires on Azure ML). */
  readonly defaultClientId?: string | undefined;
}

/**
 * The exact environment an app needs for a profile. Order is stable (it is printed and diffed).
 *
 * - `app-service`: every current SDK picks App Service 2019 when both variables are set (docs/protocols.md §1.3).
 * - `msi-endpoint`: Cloud Shell POST (JS, Python, Go, .NET) and az CLI 2.45; user-assigned refused by most.
 * - `msi-secret`: Azure ML GET with `secret` header (JS, Python, Go, .NET); Java's MSAL4J sends Cloud Shell GET.
 * - `pod-identity`: IMDS at our address (JS, Python, .NET, Java; not Go, not az 2.45).
 * - `arc`: Azure Arc challenge; needs the key directory shared with the app at {@link ARC_TOKENS_DIR}.
 * - `default`: App Service 2019 for every SDK, `MSI_ENDPOINT` for az CLI 2.45 (which ignores
 *   `IDENTITY_ENDPOINT`), and the IMDS override for anything that falls through to IMDS.
 */
export function profileEnv(profile: Profile, input: ProfileEnvInput): ReadonlyArray<readonly [AppEnvName, string]> {
  const base = input.baseUrl.replace(/\/+$/, '');
  const appService = [
    [APP_ENV.identityEndpoint, base + PATHS.appService],
    [APP_ENV.identityHeader, input.secret],
  ] as const;
  const msiEndpoint = [[APP_ENV.msiEndpoint, base + PATHS.msiEndpoint]] as const;
  const msiSecret = [[APP_ENV.msiSecret, input.secret]] as const;
  const defaultClientId = input.defaultClientId
    ? ([[APP_ENV.defaultIdentityClientId, input.defaultClientId]] as const)
    : ([] as const);
  const podIdentity = [[APP_ENV.podIdentityAuthorityHost, base]] as const;
  switch (profile) {
    case 'app-service':
      return appService;
    case 'msi-endpoint':
      return msiEndpoint;
    case 'msi-secret':
      return [...msiEndpoint, ...msiSecret, ...defaultClientId];
    case 'pod-identity':
      return podIdentity;
    case 'arc':
      return [
        [APP_ENV.identityEndpoint, base + PATHS.arc],
        [APP_ENV.imdsEndpoint, base],
      ];
    case 'default':
      return [...appService, ...msiEndpoint, ...msiSecret, ...defaultClientId, ...podIdentity];
  }
}

// ---------------------------------------------------------------------------------------------------
// What the sidecar reads: its settings (set by the webhook, by compose files, or by hand), identity files
// ---------------------------------------------------------------------------------------------------

/** Settings of the sidecar program. Parsed and validated only by `sidecar/config.ts`. */
export const SIDECAR_ENV = {
  /** `dev` (built-in dev issuer, no credentials) or `entra` (real identities from {@link SIDECAR_ENV.identityDir}). */
  mode: 'MI_ANYWHERE_MODE',
  tokenAddress: 'MI_ANYWHERE_TOKEN_ADDRESS',
  tokenPort: 'MI_ANYWHERE_TOKEN_PORT',
  /** Explicit consent to bind the token listener to a non-loopback address (compose without a shared netns). */
  allowNonLoopback: 'MI_ANYWHERE_ALLOW_NON_LOOPBACK',
  healthAddress: 'MI_ANYWHERE_HEALTH_ADDRESS',
  healthPort: 'MI_ANYWHERE_HEALTH_PORT',
  metricsAddress: 'MI_ANYWHERE_METRICS_ADDRESS',
  metricsPort: 'MI_ANYWHERE_METRICS_PORT',
  /** Directory with one subdirectory per identity (mounted Secrets). */
  identityDir: 'MI_ANYWHERE_IDENTITY_DIR',
  /** Name (subdirectory) of the identity served to system-assigned requests. */
  defaultIdentity: 'MI_ANYWHERE_DEFAULT_IDENTITY',
  /** Shared secret expected in `X-IDENTITY-HEADER` (App Service) and `secret` (MSI_ENDPOINT + MSI_SECRET). */
  identityHeader: 'MI_ANYWHERE_IDENTITY_HEADER',
  /** Where Arc key files are written; the app must see this directory at {@link ARC_TOKENS_DIR}. */
  arcKeyDir: 'MI_ANYWHERE_ARC_KEY_DIR',
  /** Octal file mode of Arc key files (default 0640: readable by the app through a shared group such as fsGroup). */
  arcKeyFileMode: 'MI_ANYWHERE_ARC_KEY_FILE_MODE',
  /**
   * Base URL of the token listener as apps reach it (printed environment lines, dev issuer `iss`). Default:
   * `http://<token address>:<port>`; set it when apps use another name (compose service name, pod IP).
   */
  advertiseUrl: 'MI_ANYWHERE_ADVERTISE_URL',
  /**
   * Comma-separated host names the token listener answers for besides loopback names and the advertised host (compose
   * service names); any other `Host` is refused (DNS-rebinding defence, docs/security.md).
   */
  allowedHosts: 'MI_ANYWHERE_ALLOWED_HOSTS',
  /** Entra authority host, e.g. https://login.microsoftonline.com (sovereign clouds and test authorities too). */
  authorityHost: 'MI_ANYWHERE_AUTHORITY_HOST',
  /** Projected service-account token for federated identities (re-read on every exchange). */
  federatedTokenFile: 'MI_ANYWHERE_FEDERATED_TOKEN_FILE',
  logLevel: 'MI_ANYWHERE_LOG_LEVEL',
  /** Token requests per second accepted before answering 429 + Retry-After. */
  rateLimitPerSecond: 'MI_ANYWHERE_RATE_LIMIT_PER_SECOND',
  /** GitLab CI: the ID token of the job (`id_tokens: MI_ANYWHERE_GITLAB_ID_TOKEN: aud: api://AzureADTokenExchange`). */
  gitlabIdToken: 'MI_ANYWHERE_GITLAB_ID_TOKEN',
} as const;

/** Federated credentials in Entra expect this audience on the service-account token by default. */
export const DEFAULT_FEDERATED_AUDIENCE = 'api://AzureADTokenExchange';

/** File names inside one identity's directory (keys of the mounted Secret). */
export const IDENTITY_FILES = {
  tenantId: 'tenantId',
  clientId: 'clientId',
  objectId: 'objectId',
  resourceId: 'resourceId',
  clientSecret: 'clientSecret',
  /** PEM certificate (the `kubernetes.io/tls` Secret key names, so cert-manager Secrets mount as they are). */
  certificate: 'tls.crt',
  privateKey: 'tls.key',
  /** Optional PKCS#12 alternative to tls.crt + tls.key. */
  pfx: 'certificate.pfx',
  /** Password of certificate.pfx, if it has one (surrounding whitespace is trimmed, as with every value file). */
  pfxPassword: 'certificate.pfx.password',
  /** Federated identities: audience of the projected token (optional; default api://AzureADTokenExchange). */
  federatedAudience: 'federatedAudience',
  /**
   * Where the credential comes from when it is not a file: one of {@link CREDENTIAL_SOURCES} (the developer's
   * Azure CLI login, or a CI platform's OIDC token as a federated assertion). Absent = the files above.
   */
  credentialSource: 'credentialSource',
  /** Azure Pipelines identities: id of the workload-identity service connection (a GUID). */
  serviceConnectionId: 'serviceConnectionId',
} as const;

/** Values of the `credentialSource` identity file. */
export const CREDENTIAL_SOURCES = ['azure-cli', 'github-actions', 'gitlab-ci', 'azure-pipelines'] as const;
export type CredentialSource = (typeof CREDENTIAL_SOURCES)[number];
/** The CI platforms among {@link CREDENTIAL_SOURCES}: their OIDC token is the client assertion of a federated credential. */
export type CiPlatform = Exclude<CredentialSource, 'azure-cli'>;

/**
 * CI platforms' own variables the sidecar reads (set by the platform in the job, not by the user), plus the one
 * GitLab variable the user names in `id_tokens:`. Read only by `sidecar/config.ts`.
 */
export const CI_ENV = {
  /** GitHub Actions, set when the job has `permissions: id-token: write`. */
  githubRequestUrl: 'ACTIONS_ID_TOKEN_REQUEST_URL',
  githubRequestToken: 'ACTIONS_ID_TOKEN_REQUEST_TOKEN',
  /** Azure Pipelines: OIDC endpoint of the job and the job's access token (map it with `env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)`). */
  azurePipelinesOidcUri: 'SYSTEM_OIDCREQUESTURI',
  azurePipelinesAccessToken: 'SYSTEM_ACCESSTOKEN',
} as const;

// ---------------------------------------------------------------------------------------------------
// What the webhook injects for the sidecar
// ---------------------------------------------------------------------------------------------------

/** Name of the injected container. */
export const SIDECAR_CONTAINER_NAME = 'mi-anywhere';
/** Where the webhook mounts identity Secrets in the sidecar: one subdirectory per Secret name. */
export const SIDECAR_IDENTITY_DIR = '/var/run/mi-anywhere/identities';
/** Where the webhook mounts the projected service-account token in the sidecar (federated kind). */
export const SIDECAR_FEDERATED_TOKEN_FILE = '/var/run/mi-anywhere/federated/token';
/** Where the sidecar writes Arc key files (the same emptyDir is mounted at {@link ARC_TOKENS_DIR} in apps). */
export const SIDECAR_ARC_KEY_DIR = '/var/run/mi-anywhere/arc';

// ---------------------------------------------------------------------------------------------------
// The webhook's own names: pod opt-in and per-pod settings, its listeners (the chart renders them too)
// ---------------------------------------------------------------------------------------------------

/** Domain that owns every label and annotation key of the project. */
export const ANNOTATION_PREFIX = 'mi-anywhere.io/';

/**
 * Opt-in key, used both as a label and as an annotation with the value `"true"`. Users asked for an
 * annotation; a MutatingWebhookConfiguration can only select by label, so the chart registers one webhook entry
 * for labelled pods (failurePolicy Fail: a down webhook blocks only them) and one for the rest (failurePolicy
 * Ignore: annotation-only opt-in never blocks anybody). The webhook treats both the same.
 */
export const INJECT_KEY = `${ANNOTATION_PREFIX}inject`;
/** The only value of {@link INJECT_KEY} that opts a pod in. */
export const INJECT_VALUE = 'true';

/** Per-pod settings (annotations). Parsed only by `webhook/inject/policy.ts`; documented in docs/webhook.md. */
export const ANNOTATIONS = {
  inject: INJECT_KEY,
  /** Comma-separated Secret names in the pod's namespace; the first is the default (system-assigned) identity. */
  identities: `${ANNOTATION_PREFIX}identities`,
  /** `secret` | `certificate` | `federated`. */
  credentialKind: `${ANNOTATION_PREFIX}credential-kind`,
  /** Audience of the projected service-account token (federated only). */
  federatedAudience: `${ANNOTATION_PREFIX}federated-audience`,
  /** expirationSeconds of the projected service-account token (federated only, >= 600). */
  federatedExpirationSeconds: `${ANNOTATION_PREFIX}federated-expiration-seconds`,
  /** One of {@link PROFILES}. */
  profile: `${ANNOTATION_PREFIX}profile`,
  cpuRequest: `${ANNOTATION_PREFIX}sidecar-cpu-request`,
  cpuLimit: `${ANNOTATION_PREFIX}sidecar-cpu-limit`,
  memoryRequest: `${ANNOTATION_PREFIX}sidecar-memory-request`,
  memoryLimit: `${ANNOTATION_PREFIX}sidecar-memory-limit`,
  /** Comma-separated container / init container names that get no environment variables. */
  skipContainers: `${ANNOTATION_PREFIX}skip-containers`,
  /** Sidecar log level (pino levels). */
  logLevel: `${ANNOTATION_PREFIX}log-level`,
  /** `"true"`: add an init container redirecting {@link IMDS_ADDRESS}:80 to the sidecar (needs NET_ADMIN). */
  imdsRedirect: `${ANNOTATION_PREFIX}imds-redirect`,
} as const;

/** URL paths of the webhook's listeners (the chart's MutatingWebhookConfiguration and probes use them). */
export const WEBHOOK_PATHS = {
  mutate: '/mutate',
  liveness: '/healthz',
  readiness: '/readyz',
  metrics: '/metrics',
} as const;

/** Default ports of the webhook: TLS admission endpoint, health (plain HTTP), metrics (plain HTTP). */
export const DEFAULT_WEBHOOK_PORT = 8443;
export const DEFAULT_WEBHOOK_HEALTH_PORT = 8081;
export const DEFAULT_WEBHOOK_METRICS_PORT = 8080;
