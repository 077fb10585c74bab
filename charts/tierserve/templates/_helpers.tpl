{{- define "tierserve.labels" -}}
app.kubernetes.io/name: tierserve
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tierserve
{{- end }}
{{- define "tierserve.sa" -}}{{ .Values.serviceAccount.name }}{{- end }}
