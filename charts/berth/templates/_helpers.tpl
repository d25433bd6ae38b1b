{{- define "berth.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "berth.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: berth
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "berth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "berth.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "berth.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "berth.nginxImage" -}}
{{- printf "%s:%s" .Values.nginxImage.repository (default .Chart.AppVersion .Values.nginxImage.tag) -}}
{{- end -}}

{{/*
The operator configuration file: .Values.config over what the chart knows (its namespace
and the lease in the release namespace, the images of this release). Everything else keeps the defaults
of src/config.ts, so the operator, not the chart, owns them.
*/}}
{{- define "berth.config" -}}
{{- $chart := dict
  "namespace" .Release.Namespace
  "leaderElection" (dict "namespace" .Release.Namespace)
  "http" (dict "host" "0.0.0.0" "port" 8080)
  "loadBalancers" (dict "agentImage" (include "berth.image" .) "nginxImage" (include "berth.nginxImage" .))
  "admission" (include "berth.admissionConfig" . | fromYaml) -}}
{{- toYaml (mergeOverwrite $chart (deepCopy .Values.config)) -}}
{{- end -}}

{{- define "berth.leaderElection" -}}
{{- $le := (include "berth.config" . | fromYaml).leaderElection -}}
{{- toYaml (dict "enabled" (ne $le.enabled false) "namespace" $le.namespace "leaseName" (default "berth-operator" $le.leaseName)) -}}
{{- end -}}

{{/* Load-balancer pods never share the operator's namespace (the operator refuses them too). */}}
{{- define "berth.loadBalancerNamespaces" -}}
{{- if has .Release.Namespace .Values.loadBalancerNamespaces -}}
{{- fail (printf "loadBalancerNamespaces: %s is the release namespace, where load-balancer pods could reach the operator; use a namespace of their own" .Release.Namespace) -}}
{{- end -}}
{{- toYaml .Values.loadBalancerNamespaces -}}
{{- end -}}

{{/* Objects that outlive a release: helm leaves them in place on uninstall. */}}
{{- define "berth.keep" -}}
helm.sh/resource-policy: keep
{{- end -}}

{{/* The operator's admission settings that follow from the chart's values. */}}
{{- define "berth.admissionConfig" -}}
{{- $name := include "berth.fullname" . -}}
enabled: {{ .Values.admission.webhooks }}
port: {{ .Values.admission.port }}
secretName: {{ $name }}-webhook-tls
manageCertificate: {{ eq .Values.admission.certificate.source "operator" }}
certificateValiditySeconds: {{ mul .Values.admission.certificate.validityDays 86400 }}
subjectAltNames: [{{ $name }}-webhook.{{ .Release.Namespace }}.svc]
webhookConfigurations: {mutating: {{ $name }}, validating: {{ $name }}}
{{- end -}}
