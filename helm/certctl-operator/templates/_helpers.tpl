{{/*
Names, labels and small computed values shared by every template.
*/}}

{{- define "certctl-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: the release name when it already
contains the chart name, else <release>-<chart>.
*/}}
{{- define "certctl-operator.fullname" -}}
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

{{/*
The leader-election Lease: one per release, in the release namespace.
*/}}
{{- define "certctl-operator.leaseName" -}}
{{- include "certctl-operator.fullname" . }}
{{- end }}

{{- define "certctl-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "certctl-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "certctl-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "certctl-operator.labels" -}}
helm.sh/chart: {{ include "certctl-operator.chart" . }}
{{ include "certctl-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: certctl
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "certctl-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "certctl-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "certctl-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Argo CD sync wave annotation for one of: crds, operator.
*/}}
{{- define "certctl-operator.syncWave" -}}
{{- if .root.Values.argocd.syncWaves }}
argocd.argoproj.io/sync-wave: {{ get (dict "crds" "-2" "operator" "-1") .wave | quote }}
{{- end }}
{{- end }}

{{/*
Annotations of every object the chart installs, except the CRDs.
*/}}
{{- define "certctl-operator.annotations" -}}
{{- include "certctl-operator.syncWave" (dict "root" . "wave" "operator") }}
{{- end }}

{{/*
Whether the prometheus-operator API for a kind is there; fail with advice when
the user enabled the object and it is not.
*/}}
{{- define "certctl-operator.requireMonitoringAPI" -}}
{{- if not (.root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind)) }}
{{- fail (printf "%s is enabled but the cluster has no monitoring.coreos.com/v1 %s API: install the prometheus-operator CRDs first, or with helm template pass --api-versions monitoring.coreos.com/v1/%s" .value .kind .kind) }}
{{- end }}
{{- end }}

{{/*
Annotations of the CRDs: kept on uninstall (Helm) and never pruned (Argo CD)
when crds.keep is set, applied first by Argo CD.
*/}}
{{- define "certctl-operator.crdAnnotations" -}}
{{- if .Values.crds.keep }}
helm.sh/resource-policy: keep
argocd.argoproj.io/sync-options: Prune=false
{{- end }}
{{- include "certctl-operator.syncWave" (dict "root" . "wave" "crds") }}
{{- end }}
