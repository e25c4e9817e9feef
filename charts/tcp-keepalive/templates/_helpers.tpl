{{- define "tcp-keepalive.name" -}}
{{- printf "%s-agent" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tcp-keepalive.labels" -}}
app.kubernetes.io/name: tcp-keepalive-agent
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tcp-keepalive.selector" -}}
app.kubernetes.io/name: tcp-keepalive-agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
