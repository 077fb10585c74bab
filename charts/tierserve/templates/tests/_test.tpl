{{- /* One helm test pod running `tierserve check ...` in the chart's image; called with
(dict "root" $ "name" "<check>" "args" (list ...) "serviceAccount" "<name or empty>"). */ -}}
{{- define "tierserve.testPod" -}}
{{- $root := .root -}}
{{- $pod := dict "root" $root "component" "test" "values" dict }}
apiVersion: v1
kind: Pod
metadata:
  name: {{ $root.Release.Name }}-test-{{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels: {{- include "tierserve.labels" $root | nindent 4 }}
    app.kubernetes.io/component: test
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  restartPolicy: Never
  {{- if .serviceAccount }}
  serviceAccountName: {{ .serviceAccount }}
  {{- else }}
  automountServiceAccountToken: false
  {{- end }}
  {{- with include "tierserve.imagePullSecrets" $pod | trim }}{{ . | nindent 2 }}{{ end }}
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: check
      image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag }}"
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: {{- toYaml (concat (list "check" .name) .args) | nindent 8 }}
      resources: {{- toYaml $root.Values.tests.resources | nindent 8 }}
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
{{- end }}
