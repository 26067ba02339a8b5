{{/* Chart name, shortened to the 63 characters a label value allows. */}}
{{- define "trustgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name; the release name alone when it already says trustgate. */}}
{{- define "trustgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "trustgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "trustgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trustgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "trustgate.labels" -}}
helm.sh/chart: {{ include "trustgate.chart" . }}
{{ include "trustgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "trustgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trustgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image as repository:tag, or repository:tag@digest when a digest pins it. */}}
{{- define "trustgate.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "trustgate.tlsSecretName" -}}
{{- if eq .Values.tls.mode "existing" }}
{{- required "tls.existing.secretName is required when tls.mode is existing" .Values.tls.existing.secretName }}
{{- else }}
{{- printf "%s-tls" (include "trustgate.fullname" .) }}
{{- end }}
{{- end }}

{{- define "trustgate.stateConfigMapName" -}}
{{- default (printf "%s-state" (include "trustgate.fullname" .)) .Values.state.configMap.name }}
{{- end }}

{{/* The Service's DNS name: what the API server connects to and the certificate must name. */}}
{{- define "trustgate.serviceHost" -}}
{{- printf "%s.%s.svc" (include "trustgate.fullname" .) .Release.Namespace }}
{{- end }}

{{/*
Refuses values that would make the webhook unsafe or broken; included by the Deployment.
The deadline must leave the API server time to receive the answer, or a slow trust server
turns into API server timeouts instead of clear denials.
*/}}
{{- define "trustgate.validate" -}}
{{- if ge (int .Values.server.deadlineSeconds) (int .Values.webhook.timeoutSeconds) }}
{{- fail "server.deadlineSeconds must be lower than webhook.timeoutSeconds" }}
{{- end }}
{{- if and (eq .Values.tls.mode "existing") (not .Values.tls.existing.caBundle) }}
{{- fail "tls.existing.caBundle is required when tls.mode is existing" }}
{{- end }}
{{- $seen := dict }}
{{- range .Values.rbac.secrets }}
{{- if not .names }}
{{- fail "rbac.secrets: every entry needs names (an empty resourceNames list would grant every Secret)" }}
{{- end }}
{{- if index $seen .namespace }}
{{- fail "rbac.secrets: list each namespace once" }}
{{- end }}
{{- $_ := set $seen .namespace true }}
{{- end }}
{{- end }}

{{/*
Settings both webhooks share. Fail closed by default: an unreachable or slow trustgate
denies rather than letting unverified images in (webhook.failurePolicy=Ignore is for an
outage; a release upgraded with --reuse-values from a chart without the value has none). kube-system and trustgate's own namespace are never sent
(so the cluster and trustgate itself can always recover), nor namespaces labelled
trustgate.dev/ignore=true (NotIn also matches namespaces without the label).
*/}}
{{- define "trustgate.webhookCommon" -}}
admissionReviewVersions: ["v1"]
sideEffects: None
failurePolicy: {{ .Values.webhook.failurePolicy | default "Fail" }}
matchPolicy: Equivalent
timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values:
        - kube-system
        - {{ .Release.Namespace | quote }}
        {{- range .Values.webhook.excludeNamespaces }}
        - {{ . | quote }}
        {{- end }}
    - key: trustgate.dev/ignore
      operator: NotIn
      values: ["true"]
{{- end }}
