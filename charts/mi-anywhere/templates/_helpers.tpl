{{/*
Shared helpers. Names follow CONTRIBUTING.md, "Names explain themselves": `mi-anywhere.<thing>`; object names are `<fullname>-<component>`.
*/}}

{{/* Chart name, overridable. */}}
{{- define "mi-anywhere.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Release-scoped base name. Truncated to 52 characters so that the longest component suffix ("-webhook-tls")
still fits the 63-character limit of DNS labels (Service names end up in certificate SANs).
*/}}
{{- define "mi-anywhere.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart label value: name-version. */}}
{{- define "mi-anywhere.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "mi-anywhere.labels" -}}
helm.sh/chart: {{ include "mi-anywhere.chart" . }}
{{ include "mi-anywhere.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mi-anywhere
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of the webhook pods (immutable once installed: keep them minimal). */}}
{{- define "mi-anywhere.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mi-anywhere.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{/* Webhook object names. */}}
{{- define "mi-anywhere.webhookName" -}}
{{- printf "%s-webhook" (include "mi-anywhere.fullname" .) }}
{{- end }}

{{/* Secret holding the webhook's serving certificate (self-managed or cert-manager). */}}
{{- define "mi-anywhere.tlsSecretName" -}}
{{- printf "%s-webhook-tls" (include "mi-anywhere.fullname" .) }}
{{- end }}

{{/*
Name of the MutatingWebhookConfiguration. Cluster-scoped, so it carries the release namespace too: two
releases in two namespaces must not fight over one object.
*/}}
{{- define "mi-anywhere.mwcName" -}}
{{- printf "%s-%s" (include "mi-anywhere.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* ServiceAccount of the webhook. */}}
{{- define "mi-anywhere.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mi-anywhere.webhookName" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: repository[:tag][@digest]. A digest pins the exact build (tag kept for humans).
Usage: include "mi-anywhere.image" (dict "image" .Values.image "default" .Chart.AppVersion)
*/}}
{{- define "mi-anywhere.image" -}}
{{- $tag := .image.tag | default .default -}}
{{- if .image.digest -}}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end }}

{{/* Image of the injected sidecar: its own values, each falling back to the webhook image's. */}}
{{- define "mi-anywhere.sidecarImage" -}}
{{- $image := dict "repository" (.Values.sidecar.image.repository | default .Values.image.repository) "tag" (.Values.sidecar.image.tag | default .Values.image.tag) "digest" (.Values.sidecar.image.digest | default (ternary .Values.image.digest "" (empty .Values.sidecar.image.repository))) -}}
{{- include "mi-anywhere.image" (dict "image" $image "default" .Chart.AppVersion) -}}
{{- end }}

{{/* Namespace for monitoring objects: their own override, else the release namespace. */}}
{{- define "mi-anywhere.monitoringNamespace" -}}
{{- .namespace | default .root.Release.Namespace }}
{{- end }}

{{/* cert-manager Certificate name (also the value of the cert-manager.io/inject-ca-from annotation). */}}
{{- define "mi-anywhere.certificateName" -}}
{{- printf "%s-webhook-tls" (include "mi-anywhere.fullname" .) }}
{{- end }}

{{/*
Environment of the webhook container: every setting the webhook reads (webhook/config.ts lists them; the
chart test checks both stay in sync). The injected sidecar's spec is built by the webhook from these values,
not templated here, so there is one source of truth.
*/}}
{{- define "mi-anywhere.webhookEnv" -}}
- name: MI_ANYWHERE_WEBHOOK_PORT
  value: {{ .Values.webhook.port | quote }}
- name: MI_ANYWHERE_WEBHOOK_HEALTH_PORT
  value: {{ .Values.webhook.healthPort | quote }}
- name: MI_ANYWHERE_WEBHOOK_METRICS_PORT
  value: {{ .Values.webhook.metricsPort | quote }}
- name: MI_ANYWHERE_WEBHOOK_LOG_LEVEL
  value: {{ .Values.webhook.logLevel | quote }}
- name: MI_ANYWHERE_WEBHOOK_TLS_MIN_VERSION
  value: {{ .Values.webhook.tlsMinVersion | quote }}
- name: MI_ANYWHERE_WEBHOOK_NATIVE_SIDECAR
  value: {{ .Values.webhook.nativeSidecar | quote }}
{{- if .Values.certManager.enabled }}
# cert-manager writes the Secret mounted at the webhook's default certificate paths; the webhook reloads it.
- name: MI_ANYWHERE_WEBHOOK_CERT_MODE
  value: files
- name: MI_ANYWHERE_WEBHOOK_TLS_CERT_FILE
  value: /etc/mi-anywhere/tls/tls.crt
- name: MI_ANYWHERE_WEBHOOK_TLS_KEY_FILE
  value: /etc/mi-anywhere/tls/tls.key
{{- else }}
- name: MI_ANYWHERE_WEBHOOK_CERT_MODE
  value: self-managed
- name: MI_ANYWHERE_WEBHOOK_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: MI_ANYWHERE_WEBHOOK_SERVICE_NAME
  value: {{ include "mi-anywhere.webhookName" . | quote }}
- name: MI_ANYWHERE_WEBHOOK_CERT_SECRET_NAME
  value: {{ include "mi-anywhere.tlsSecretName" . | quote }}
- name: MI_ANYWHERE_WEBHOOK_CONFIGURATION_NAME
  value: {{ include "mi-anywhere.mwcName" . | quote }}
- name: MI_ANYWHERE_WEBHOOK_CERT_VALIDITY_DAYS
  value: {{ .Values.webhook.certValidityDays | quote }}
{{- end }}
- name: MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE
  value: {{ include "mi-anywhere.sidecarImage" . | quote }}
- name: MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE_PULL_POLICY
  value: {{ .Values.sidecar.image.pullPolicy | quote }}
- name: MI_ANYWHERE_WEBHOOK_SIDECAR_CPU_REQUEST
  value: {{ .Values.sidecar.resources.requests.cpu | quote }}
- name: MI_ANYWHERE_WEBHOOK_SIDECAR_CPU_LIMIT
  value: {{ .Values.sidecar.resources.limits.cpu | quote }}
- name: MI_ANYWHERE_WEBHOOK_SIDECAR_MEMORY_REQUEST
  value: {{ .Values.sidecar.resources.requests.memory | quote }}
- name: MI_ANYWHERE_WEBHOOK_SIDECAR_MEMORY_LIMIT
  value: {{ .Values.sidecar.resources.limits.memory | quote }}
- name: MI_ANYWHERE_WEBHOOK_SIDECAR_METRICS_PORT
  value: {{ .Values.sidecar.metricsPort | quote }}
{{- with .Values.sidecar.authorityHost }}
- name: MI_ANYWHERE_WEBHOOK_SIDECAR_AUTHORITY_HOST
  value: {{ . | quote }}
{{- end }}
- name: MI_ANYWHERE_WEBHOOK_DEFAULT_PROFILE
  value: {{ .Values.sidecar.profile | quote }}
- name: MI_ANYWHERE_WEBHOOK_DEFAULT_LOG_LEVEL
  value: {{ .Values.sidecar.logLevel | quote }}
- name: MI_ANYWHERE_WEBHOOK_DEFAULT_FEDERATED_AUDIENCE
  value: {{ .Values.sidecar.federatedAudience | quote }}
- name: MI_ANYWHERE_WEBHOOK_DEFAULT_FEDERATED_EXPIRATION_SECONDS
  value: {{ .Values.sidecar.federatedExpirationSeconds | quote }}
{{- with .Values.sidecar.imdsRedirectImage }}
- name: MI_ANYWHERE_WEBHOOK_IMDS_REDIRECT_IMAGE
  value: {{ . | quote }}
{{- end }}
{{- end }}
