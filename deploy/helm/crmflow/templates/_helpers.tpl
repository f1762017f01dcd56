{{/*
Names, labels and the shared pieces every workload uses. Components are described once in
"crmflow.components" (values key -> service name, command, whether it serves rpcs); the
templates range over that table so the five Deployments cannot drift apart.
*/}}

{{- define "crmflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "crmflow.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "crmflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "crmflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crmflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "crmflow.labels" -}}
helm.sh/chart: {{ include "crmflow.chart" . }}
{{ include "crmflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: crmflow
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Component table. kind: service (Deployment + Service + HPA) or worker (Temporal worker). */}}
{{- define "crmflow.components" -}}
editorApi:
  name: editor-api
  args: [serve, editor-api]
  kind: service
  otelName: crmflow-editor-api
enrollment:
  name: enrollment
  args: [serve, enrollment]
  kind: service
  otelName: crmflow-enrollment
datasourceResolver:
  name: datasource-resolver
  args: [serve, datasource-resolver]
  kind: service
  otelName: crmflow-datasource-resolver
executor:
  name: executor
  args: [serve, executor]
  kind: worker
  otelName: crmflow-executor
executorCustomCode:
  name: executor-custom-code
  args: [serve, executor, --role, custom-code]
  kind: worker
  otelName: crmflow-executor-custom-code
{{- end -}}

{{/* Component resource name: <fullname>-<component>. Call with (dict "root" $ "name" "editor-api"). */}}
{{- define "crmflow.componentName" -}}
{{- printf "%s-%s" (include "crmflow.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "crmflow.componentLabels" -}}
{{ include "crmflow.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "crmflow.componentSelector" -}}
{{ include "crmflow.selectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* Whether a component has a ClusterIP Service. */}}
{{- define "crmflow.hasService" -}}
{{- $c := index .root.Values .key -}}
{{- if and $c.enabled (or (eq .meta.kind "service") (and (hasKey $c "service") $c.service.enabled)) -}}true{{- end -}}
{{- end -}}

{{/* In-cluster address of a component: <svc>.<ns>.svc.<domain>:<port> (matches TLS SANs). */}}
{{- define "crmflow.address" -}}
{{- $c := index .root.Values .key -}}
{{- printf "%s.%s.svc.%s:%d" (include "crmflow.componentName" (dict "root" .root "name" .name)) .root.Release.Namespace .root.Values.clusterDomain (int $c.port) -}}
{{- end -}}

{{- define "crmflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "crmflow.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "crmflow.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Plain (non-secret) settings shared by every component, as a YAML map. The ConfigMap holds
exactly this; the hook Jobs (which run before the ConfigMap exists) get it inline.
*/}}
{{- define "crmflow.configData" -}}
{{- $v := .Values -}}
CRMFLOW_BIND_HOST: "0.0.0.0"
CRMFLOW_DATA_DIR: /tmp/crmflow
CRMFLOW_LOG_LEVEL: {{ $v.config.logLevel | quote }}
CRMFLOW_LOG_FORMAT: {{ $v.config.logFormat | quote }}
CRMFLOW_GRACE_SECONDS: {{ $v.config.graceSeconds | toString | quote }}
CRMFLOW_CRM_MODE: {{ $v.crm.mode | quote }}
{{- if eq $v.crm.mode "grpc" }}
CRMFLOW_CRM_ADDRESS: {{ $v.crm.address | quote }}
{{- end }}
{{- $components := fromYaml (include "crmflow.components" .) }}
{{- range $key := list "editorApi" "enrollment" "executor" "datasourceResolver" }}
{{- $meta := index $components $key }}
CRMFLOW_{{ $meta.name | upper | replace "-" "_" }}_ADDRESS: {{ include "crmflow.address" (dict "root" $ "key" $key "name" $meta.name) | quote }}
{{- end }}
TEMPORAL_ADDRESS: {{ $v.temporal.address | quote }}
TEMPORAL_NAMESPACE: {{ $v.temporal.namespace | quote }}
CRMFLOW_TASK_QUEUE: {{ $v.temporal.taskQueue | quote }}
CRMFLOW_CUSTOM_CODE_TASK_QUEUE: {{ $v.temporal.customCodeTaskQueue | quote }}
{{- if $v.temporal.tls.enabled }}
TEMPORAL_TLS: "true"
{{- with $v.temporal.tls.serverName }}
TEMPORAL_TLS_SERVER_NAME: {{ . | quote }}
{{- end }}
{{- if $v.temporal.tls.existingSecret }}
TEMPORAL_TLS_CLIENT_CERT_PATH: /etc/crmflow/temporal-tls/{{ $v.temporal.tls.certKey }}
TEMPORAL_TLS_CLIENT_KEY_PATH: /etc/crmflow/temporal-tls/{{ $v.temporal.tls.keyKey }}
{{- if $v.temporal.tls.caKey }}
TEMPORAL_TLS_SERVER_CA_CERT_PATH: /etc/crmflow/temporal-tls/{{ $v.temporal.tls.caKey }}
{{- end }}
{{- end }}
{{- end }}
{{- if $v.grpcTls.enabled }}
CRMFLOW_GRPC_TLS_CERT_PATH: /etc/crmflow/grpc-tls/{{ $v.grpcTls.certKey }}
CRMFLOW_GRPC_TLS_KEY_PATH: /etc/crmflow/grpc-tls/{{ $v.grpcTls.keyKey }}
CRMFLOW_GRPC_TLS_CA_PATH: /etc/crmflow/grpc-tls/{{ $v.grpcTls.caKey }}
CRMFLOW_HEALTH_PORT: {{ $v.grpcTls.healthPort | toString | quote }}
{{- if $v.grpcTls.mtls }}
CRMFLOW_GRPC_TLS_CLIENT_CA_PATH: /etc/crmflow/grpc-tls/{{ $v.grpcTls.caKey }}
{{- end }}
{{- end }}
{{- with $v.config.otlpEndpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- with $v.config.webhookAllowPrivate }}
CRMFLOW_WEBHOOK_ALLOW_PRIVATE: {{ toJson . | quote }}
{{- end }}
CRMFLOW_CUSTOM_CODE_ISOLATION: {{ $v.config.customCodeIsolation | quote }}
{{- if $v.config.smtp.host }}
CRMFLOW_SMTP_HOST: {{ $v.config.smtp.host | quote }}
CRMFLOW_SMTP_PORT: {{ $v.config.smtp.port | toString | quote }}
CRMFLOW_SMTP_SENDER: {{ $v.config.smtp.sender | quote }}
{{- end }}
{{- range $name, $value := $v.config.extraEnv }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/*
Secret environment: only secretKeyRef entries, never values. Each pod gets only what it uses:
(dict "root" $ "component" <values block> "db" bool "crmDb" bool "temporal" bool "app" bool)
db: services' database URL; crmDb: the embedded CRM store URL; temporal: the Temporal API key;
app: the tenant secret-store key, secrets.extraEnv and the component's secretEnv.
*/}}
{{- define "crmflow.secretEnv" -}}
{{- $v := .root.Values -}}
{{- if .db }}
- name: CRMFLOW_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ $v.database.existingSecret | quote }}, key: {{ $v.database.urlKey | quote }}}
{{- end }}
{{- if and .crmDb (eq $v.crm.mode "embedded") }}
- name: CRMFLOW_CRM_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ $v.database.existingSecret | quote }}, key: {{ $v.database.crmUrlKey | quote }}}
{{- end }}
{{- if and .temporal $v.temporal.apiKey.existingSecret }}
- name: TEMPORAL_API_KEY
  valueFrom:
    secretKeyRef: {name: {{ $v.temporal.apiKey.existingSecret | quote }}, key: {{ $v.temporal.apiKey.key | quote }}}
{{- end }}
{{- if .app }}
{{- if $v.secrets.secretStore.existingSecret }}
- name: CRMFLOW_SECRET_STORE_KEY
  valueFrom:
    secretKeyRef: {name: {{ $v.secrets.secretStore.existingSecret | quote }}, key: {{ $v.secrets.secretStore.key | quote }}}
{{- end }}
{{- range $v.secrets.extraEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef: {name: {{ .existingSecret | quote }}, key: {{ .key | quote }}}
{{- end }}
{{- range .component.secretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef: {name: {{ .existingSecret | quote }}, key: {{ .key | quote }}}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Volumes: /tmp (read-only root fs) and the TLS material the pod uses.
(dict "root" $ "temporalTls" bool "grpcTls" bool)
*/}}
{{- define "crmflow.volumes" -}}
{{- $v := .root.Values -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ $v.tmpSizeLimit }}
{{- if and .temporalTls $v.temporal.tls.enabled $v.temporal.tls.existingSecret }}
- name: temporal-tls
  secret:
    secretName: {{ $v.temporal.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- if and .grpcTls $v.grpcTls.enabled }}
- name: grpc-tls
  secret:
    secretName: {{ $v.grpcTls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "crmflow.volumeMounts" -}}
{{- $v := .root.Values -}}
- name: tmp
  mountPath: /tmp
{{- if and .temporalTls $v.temporal.tls.enabled $v.temporal.tls.existingSecret }}
- name: temporal-tls
  mountPath: /etc/crmflow/temporal-tls
  readOnly: true
{{- end }}
{{- if and .grpcTls $v.grpcTls.enabled }}
- name: grpc-tls
  mountPath: /etc/crmflow/grpc-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* Hard errors for combinations the schema cannot express. */}}
{{- define "crmflow.validate" -}}
{{- if and (eq .Values.crm.mode "grpc") (not .Values.crm.address) -}}
{{- fail "crm.address is required when crm.mode is grpc (host:port of your CRM implementing crmflow.api.crm.v1)" -}}
{{- end -}}
{{- if and (eq .Values.crm.mode "embedded") (not .Values.datasourceResolver.enabled) -}}
{{- fail "crm.mode=embedded needs datasourceResolver.enabled: it owns the embedded CRM store" -}}
{{- end -}}
{{- if and .Values.grpcTls.enabled (not .Values.grpcTls.existingSecret) -}}
{{- fail "grpcTls.existingSecret is required when grpcTls.enabled (a kubernetes.io/tls Secret with ca.crt)" -}}
{{- end -}}
{{- range $key := list "executor" "executorCustomCode" -}}
{{- $c := index $.Values $key -}}
{{- if and $c.keda.enabled $c.autoscaling.enabled -}}
{{- fail (printf "%s: keda.enabled and autoscaling.enabled are exclusive (both would own the replica count)" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
