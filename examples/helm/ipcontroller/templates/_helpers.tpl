{{- define "ipcontroller.labels" -}}
app.kubernetes.io/name: ipcontroller
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "ipcontroller.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
