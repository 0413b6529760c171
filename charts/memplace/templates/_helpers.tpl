{{/* Chart name, shortened to a DNS label. */}}
{{- define "memplace.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name prefix: <release>-<chart>, or the release alone when it already holds the chart name. */}}
{{- define "memplace.fullname" -}}
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

{{- define "memplace.operatorName" -}}
{{- printf "%s-operator" (include "memplace.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "memplace.agentName" -}}
{{- printf "%s-agent" (include "memplace.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "memplace.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "memplace.labels" -}}
helm.sh/chart: {{ include "memplace.chart" . }}
app.kubernetes.io/name: {{ include "memplace.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: memplace
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels for one component; call with (dict "ctx" $ "component" "operator"). */}}
{{- define "memplace.selectorLabels" -}}
app.kubernetes.io/name: {{ include "memplace.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "memplace.componentLabels" -}}
{{ include "memplace.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "memplace.operatorServiceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "memplace.operatorName" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "memplace.agentServiceAccountName" -}}
{{- if .Values.agent.serviceAccount.create }}
{{- default (include "memplace.agentName" .) .Values.agent.serviceAccount.name }}
{{- else }}
{{- required "agent.serviceAccount.name is required when agent.serviceAccount.create is false" .Values.agent.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is set. */}}
{{- define "memplace.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Pod-level security context that passes the "restricted" Pod Security Standard. */}}
{{- define "memplace.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container-level security context that passes the "restricted" Pod Security Standard. */}}
{{- define "memplace.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The impossible combinations, refused with a message that says what to change. */}}
{{- define "memplace.validate" -}}
{{- if and (gt (int .Values.operator.replicas) 1) (not .Values.operator.peering.enabled) }}
{{- fail (printf "operator.replicas=%d needs operator.peering.enabled=true: without Kopf peering every replica would handle every ModelDeployment. Set operator.replicas=1 or enable peering." (int .Values.operator.replicas)) }}
{{- end }}
{{- end }}

{{/* NetworkPolicy egress rule to the API server; call with .Values.networkPolicy.apiServer. */}}
{{- define "memplace.apiServerEgress" -}}
- ports:
    {{- range .ports }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
  {{- with .cidrs }}
  to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  {{- end }}
{{- end }}

{{/* NetworkPolicy egress rule to kube-dns. */}}
{{- define "memplace.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end }}
