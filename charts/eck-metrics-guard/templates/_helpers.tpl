{{/* The chart name, or nameOverride. */}}
{{- define "eck-metrics-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of objects: fullnameOverride, else the release name if it contains the chart
name, else <release>-<chart>. Kept to 45 characters, so that "-metrics-reader" still fits
in 63.
*/}}
{{- define "eck-metrics-guard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "eck-metrics-guard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "eck-metrics-guard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: eck-metrics-guard
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the guard's pods. */}}
{{- define "eck-metrics-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eck-metrics-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{/* The ServiceAccount the guard runs as. */}}
{{- define "eck-metrics-guard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "eck-metrics-guard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create=false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Services of the webhook and of the guard's metrics. */}}
{{- define "eck-metrics-guard.webhookServiceName" -}}
{{- include "eck-metrics-guard.fullname" . }}-webhook
{{- end }}
{{- define "eck-metrics-guard.metricsServiceName" -}}
{{- include "eck-metrics-guard.fullname" . }}-metrics
{{- end }}

{{/* The one ClusterRoleBinding to system:auth-delegator the controller keeps. */}}
{{- define "eck-metrics-guard.authDelegatorBinding" -}}
{{- include "eck-metrics-guard.fullname" . }}:auth-delegator
{{- end }}

{{/* The Secret with the serving certificate, and the Certificate that writes it. */}}
{{- define "eck-metrics-guard.certSecretName" -}}
{{- default (printf "%s-webhook-tls" (include "eck-metrics-guard.fullname" .)) .Values.webhook.secretName }}
{{- end }}
{{- define "eck-metrics-guard.certificateName" -}}
{{- include "eck-metrics-guard.fullname" . }}-serving-cert
{{- end }}

{{/*
"true" when the guard makes its own serving certificate (--webhook-cert-mode=self-managed):
without cert-manager and without a caBundle of yours. Empty otherwise.
*/}}
{{- define "eck-metrics-guard.selfManaged" -}}
{{- if and (not .Values.certManager.enabled) (not .Values.webhook.caBundle) }}true{{ end }}
{{- end }}

{{/* Where the serving certificate is mounted. */}}
{{- define "eck-metrics-guard.certDir" -}}
/tmp/k8s-webhook-server/serving-certs
{{- end }}

{{/* The image reference: repository@digest, else repository:tag. */}}
{{- define "eck-metrics-guard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Checks of combinations of values that the schema cannot express. */}}
{{- define "eck-metrics-guard.validate" -}}
{{- if and .Values.serviceMonitor.enabled (not (and .Values.metrics.enabled .Values.metrics.secure)) }}
{{- fail "serviceMonitor.enabled needs metrics.enabled and metrics.secure" }}
{{- end }}
{{- if and (not .Values.leaderElection.enabled) .Values.controller.enabled (gt (int .Values.replicas) 1) }}
{{- fail "leaderElection.enabled=false with more than one replica would run the controller in every replica: turn leader election on, or controller.enabled off" }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (not (kindIs "string" $pdb.minAvailable)) (ge (int $pdb.minAvailable) (int .Values.replicas)) }}
{{- fail (printf "podDisruptionBudget.minAvailable=%v with replicas=%v would block every node drain: add replicas, or set podDisruptionBudget.enabled=false" $pdb.minAvailable .Values.replicas) }}
{{- end }}
{{- if and .Values.defaults.issuerKind (not .Values.defaults.issuer) }}
{{- fail "defaults.issuerKind needs defaults.issuer" }}
{{- end }}
{{- end }}

{{/*
A map as key=value pairs joined by commas, sorted by key: the form of --monitor-labels.
*/}}
{{- define "eck-metrics-guard.pairs" -}}
{{- $pairs := list -}}
{{- range $k, $v := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
