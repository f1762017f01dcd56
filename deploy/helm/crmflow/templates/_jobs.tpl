{{/*
Pod spec of the hook Jobs. They run before the release's ConfigMap and ServiceAccount exist
(pre-install), so the configuration is inlined from the same "crmflow.configData" the ConfigMap
uses, and they run under their own hook ServiceAccount (no token: they never call the API).
Call with (dict "root" $ "name" "migrate" "args" (list ...) "resources" ... "database" bool
"temporal" bool): a Job gets the database URLs or the Temporal credentials only if it uses them.
*/}}
{{- define "crmflow.hookPodSpec" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "crmflow.fullname" $root }}-hooks
automountServiceAccountToken: false
enableServiceLinks: false
restartPolicy: Never
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
containers:
  - name: {{ .name }}
    image: {{ include "crmflow.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args: {{ toJson .args }}
    env:
      {{- $temporal := .temporal }}
      {{- range $name, $value := fromYaml (include "crmflow.configData" $root) }}
      {{- /* No gRPC TLS files in Jobs (they serve nothing); Temporal's only where used. */}}
      {{- $unused := or (hasPrefix "CRMFLOW_GRPC_TLS_" $name) (eq $name "CRMFLOW_HEALTH_PORT") (and (not $temporal) (hasPrefix "TEMPORAL_TLS_" $name) (hasSuffix "_PATH" $name)) }}
      {{- if not $unused }}
      - name: {{ $name }}
        value: {{ $value | toString | quote }}
      {{- end }}
      {{- end }}
      {{- include "crmflow.secretEnv" (dict "root" $root "component" (dict) "db" .database "crmDb" .database "temporal" .temporal "app" false) | nindent 6 }}
    resources:
      {{- toYaml .resources | nindent 6 }}
    securityContext:
      {{- toYaml $root.Values.securityContext | nindent 6 }}
    volumeMounts:
      {{- include "crmflow.volumeMounts" (dict "root" $root "temporalTls" .temporal "grpcTls" false) | nindent 6 }}
volumes:
  {{- include "crmflow.volumes" (dict "root" $root "temporalTls" .temporal "grpcTls" false) | nindent 2 }}
{{- end -}}

{{/* Annotations of a hook resource; weight orders them (service account first). */}}
{{- define "crmflow.hookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ . | quote }}
# Keep a failed Job for `kubectl logs`; replace it on the next attempt; drop it on success.
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end -}}
