{{- /*
What every component's pod template shares (operator, router, autoscaler, helm tests):
labels and annotations, image pull secrets, and the scheduling keys. Called with
(dict "root" $ "component" "<name>" "values" .Values.<name>).
*/ -}}

{{- /* the operator's leader-election Lease (its default name, in the release namespace) */ -}}
{{- define "tierserve.leaseName" -}}tierserve-operator{{- end }}

{{- define "tierserve.selectorLabels" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- /* podLabels first, the chart's own last: a user label never breaks the selector */ -}}
{{- define "tierserve.podLabels" -}}
{{- $own := include "tierserve.labels" .root | fromYaml -}}
{{- $_ := set $own "app.kubernetes.io/component" .component -}}
{{- toYaml (merge $own (deepCopy (.values.podLabels | default dict))) }}
{{- end }}

{{- /* extra: the chart's own annotations (a dict), which podAnnotations cannot replace */ -}}
{{- define "tierserve.podAnnotations" -}}
{{- $all := merge (deepCopy (.extra | default dict)) (deepCopy (.values.podAnnotations | default dict)) -}}
{{- with $all }}
annotations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- /* global.imagePullSecrets (a parent chart's) then imagePullSecrets; names or {name} */ -}}
{{- define "tierserve.imagePullSecrets" -}}
{{- $root := .root -}}
{{- $names := list -}}
{{- range concat (($root.Values.global | default dict).imagePullSecrets | default list) ($root.Values.imagePullSecrets | default list) -}}
{{- $name := . -}}
{{- if kindIs "map" . }}{{ $name = .name }}{{ end -}}
{{- if not (has $name $names) }}{{ $names = append $names $name }}{{ end -}}
{{- end -}}
{{- with $names }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{- /* The pod spec's scheduling keys; a spread constraint without a labelSelector
spreads this component's pods. */ -}}
{{- define "tierserve.podScheduling" -}}
{{- $v := .values -}}
{{- include "tierserve.imagePullSecrets" . }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.topologySpreadConstraints }}
{{- $selector := dict "matchLabels" (include "tierserve.selectorLabels" $ | fromYaml) }}
{{- $constraints := list }}
{{- range . }}
{{- if hasKey . "labelSelector" }}
{{- $constraints = append $constraints . }}
{{- else }}
{{- $constraints = append $constraints (merge (dict "labelSelector" (deepCopy $selector)) .) }}
{{- end }}
{{- end }}
topologySpreadConstraints: {{- toYaml $constraints | nindent 2 }}
{{- end }}
{{- end }}
