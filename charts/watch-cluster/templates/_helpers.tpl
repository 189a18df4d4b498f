{{/*
Names and labels shared by every template. The object names follow k8s/ with `watch-cluster` replaced by
the full name, so release `watch-cluster` gives exactly the names of `kubectl kustomize k8s/`.
*/}}

{{- define "watch-cluster.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "watch-cluster.fullname" -}}
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

{{/* `<fullname>-<suffix>`, the way k8s/ names its other objects `watch-cluster-<suffix>`. */}}
{{- define "watch-cluster.suffixed" -}}
{{- printf "%s-%s" (include "watch-cluster.fullname" .root) .suffix | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* What the controller selects its own Pods by: k8s/'s label plus the release, so two releases never mix. */}}
{{- define "watch-cluster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "watch-cluster.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "watch-cluster.labels" -}}
{{ include "watch-cluster.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret of the webhook and notification settings: the user's, or the one this chart creates. */}}
{{- define "watch-cluster.notificationsSecret" -}}
{{- .Values.notifications.existingSecret | default (include "watch-cluster.suffixed" (dict "root" . "suffix" "webhook")) }}
{{- end }}

{{- define "watch-cluster.eventsSecret" -}}
{{- .Values.events.existingSecret | default (include "watch-cluster.suffixed" (dict "root" . "suffix" "events")) }}
{{- end }}

{{- define "watch-cluster.verifyConfigMap" -}}
{{- .Values.verify.existingConfigMap | default (include "watch-cluster.suffixed" (dict "root" . "suffix" "verify-keys")) }}
{{- end }}

{{/* The namespaces of `config.watchNamespaces`, as a list (empty items skipped, as the controller does). */}}
{{- define "watch-cluster.watchedNamespaces" -}}
{{- $list := list }}
{{- range splitList "," .Values.config.watchNamespaces }}
{{- $ns := trim . }}
{{- if $ns }}{{ $list = append $list $ns }}{{ end }}
{{- end }}
{{- toJson (uniq $list) }}
{{- end }}

{{/* A setting whose null means "the controller's default": rendered as the empty string, which counts as unset. */}}
{{- define "watch-cluster.setting" -}}
{{- if kindIs "invalid" . }}{{ "" | quote }}{{ else }}{{ toString . | quote }}{{ end }}
{{- end }}

{{/* The rules of the ClusterRole (cluster-wide) or of each watched namespace's Role (namespaced): one list. */}}
{{- define "watch-cluster.workloadRules" -}}
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "list", "watch", "patch"]
# `list`: the digests the ready pods of a `latest` workload run (docs/annotations.md#strategy). `delete`:
# after a StatefulSet rollback, the pods left Not Ready on the quarantined image (docs/design.md).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "delete"]
# `get` by name only: the imagePullSecrets a workload names; never list or watch.
- apiGroups: [""]
  resources: ["secrets", "serviceaccounts"]
  verbs: ["get"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
