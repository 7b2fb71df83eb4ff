{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "inflight.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, unless it already holds the chart name. */}}
{{- define "inflight.fullname" -}}
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

{{- define "inflight.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "inflight.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inflight.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "inflight.labels" -}}
helm.sh/chart: {{ include "inflight.chart" . }}
{{ include "inflight.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The operator's ServiceAccount, bound by every (Cluster)RoleBinding. */}}
{{- define "inflight.serviceAccountName" -}}
{{- include "inflight.fullname" . }}
{{- end }}

{{- define "inflight.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Namespace of the Prometheus auth Secret. */}}
{{- define "inflight.authSecretNamespace" -}}
{{- default .Release.Namespace .Values.prometheus.authSecret.namespace }}
{{- end }}

{{/* The leader-election Lease (in the release namespace). */}}
{{- define "inflight.leaseName" -}}
{{- default (include "inflight.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Where the CA ConfigMap is mounted. */}}
{{- define "inflight.caDir" -}}
/etc/inflight/prometheus-ca
{{- end }}

{{/*
The rules the operator needs wherever it watches policies: one list, rendered
into the ClusterRole (all namespaces) or into one Role per watched namespace.
*/}}
{{- define "inflight.policyRules" -}}
- apiGroups: [inflight.dev]
  resources: [concurrencypolicies]
  verbs: [get, list, watch]
- apiGroups: [inflight.dev]
  resources: [concurrencypolicies/status]
  verbs: [get, patch, update]
{{- range .Values.scaleTargets }}
- apiGroups: [{{ .apiGroup | quote }}]
  resources: [{{ range $i, $r := .resources }}{{ if $i }}, {{ end }}{{ $r }}{{ end }}]
  verbs: [get, list, watch]
- apiGroups: [{{ .apiGroup | quote }}]
  resources: [{{ range $i, $r := .resources }}{{ if $i }}, {{ end }}{{ $r }}/scale{{ end }}]
  verbs: [get, patch, update]
{{- end }}
{{- /* Limit sinks: get (must exist) and patch (server-side apply), nothing else. */}}
{{- range .Values.limitSinks }}
- apiGroups: [{{ .apiGroup | quote }}]
  resources: [{{ range $i, $r := .resources }}{{ if $i }}, {{ end }}{{ $r }}{{ end }}]
  {{- if .resourceNames }}
  resourceNames: [{{ range $i, $n := .resourceNames }}{{ if $i }}, {{ end }}{{ $n | quote }}{{ end }}]
  {{- end }}
  verbs: [get, patch]
{{- end }}
{{- if .Values.prometheus.allowPolicyRefs }}
- apiGroups: [""]
  resources: [secrets, configmaps]
  verbs: [get]
{{- end }}
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end }}
