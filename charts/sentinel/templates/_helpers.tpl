{{/* Chart name, truncated to a DNS label. */}}
{{- define "sentinel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart>, or the release name when it already contains the chart name. At most
50 characters, which leaves 13 for a suffix (`-credentials`, `-operator`, `-ingress`, `-config`)
within a DNS label's 63; a longer suffix goes through sentinel.suffixedName.
*/}}
{{- define "sentinel.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
<fullname>-<suffix>, the full name shortened as much as the suffix needs for the whole to stay
within 63 characters (a DNS label: a Service name must be one):
include "sentinel.suffixedName" (dict "root" . "suffix" "operator-metrics")
*/}}
{{- define "sentinel.suffixedName" -}}
{{- $base := include "sentinel.fullname" .root | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base .suffix }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "sentinel.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "sentinel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sentinel
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: include "sentinel.selectorLabels" (dict "root" . "component" "operator") */}}
{{- define "sentinel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sentinel.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The image of every role. */}}
{{- define "sentinel.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The engines' image (defaults to the image of every role). */}}
{{- define "sentinel.engineImage" -}}
{{- printf "%s:%s" (default .Values.image.repository .Values.engine.imageRepository) (default (default .Chart.AppVersion .Values.image.tag) .Values.engine.imageTag) }}
{{- end }}

{{/* Secret with DATABASE_URL and SENTINEL_JWT_SECRET. */}}
{{- define "sentinel.credentialsSecret" -}}
{{- default (printf "%s-credentials" (include "sentinel.fullname" .)) .Values.credentials.existingSecret }}
{{- end }}

{{- define "sentinel.configMap" -}}
{{- printf "%s-config" (include "sentinel.fullname" .) }}
{{- end }}

{{- define "sentinel.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (printf "%s-operator" (include "sentinel.fullname" .)) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sentinel.ingressServiceAccount" -}}
{{- if .Values.ingress.serviceAccount.create }}
{{- default (printf "%s-ingress" (include "sentinel.fullname" .)) .Values.ingress.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.ingress.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Namespaces that get the engines' ServiceAccount, ConfigMap and Secret, as a JSON list. */}}
{{- define "sentinel.engineNamespaces" -}}
{{- $namespaces := .Values.engine.namespaces }}
{{- if not $namespaces }}
{{- $namespaces = list (default .Release.Namespace .Values.operator.watchNamespace) }}
{{- end }}
{{- toJson (uniq $namespaces) }}
{{- end }}

{{/* The JWT secret: the value given, else the one already in the cluster, else a new random one. */}}
{{- define "sentinel.jwtSecret" -}}
{{- if .Values.credentials.jwtSecret }}
{{- .Values.credentials.jwtSecret }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (printf "%s-credentials" (include "sentinel.fullname" .)) }}
{{- if and $existing (index $existing.data "SENTINEL_JWT_SECRET") }}
{{- index $existing.data "SENTINEL_JWT_SECRET" | b64dec }}
{{- else }}
{{- randAlphaNum 48 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Default anti-affinity: spread replicas of a component over nodes. */}}
{{- define "sentinel.spreadAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "sentinel.selectorLabels" . | nindent 12 }}
{{- end }}

{{/*
A digest of the shared engine settings (the data of engine-namespaces.yaml's ConfigMap and Secret),
which the operator puts on every engine pod template: a change rolls the engines. The database URL
(a password in it) goes in through scrypt (sprig's derivePassword), not a plain hash: the digest is
on every pod spec, and a fast hash would let anyone who reads pod specs test password guesses
against it at speed.
*/}}
{{- define "sentinel.engineSettingsHash" -}}
{{- $settings := dict "redisUrl" .Values.config.redisUrl "natsUrl" .Values.config.natsUrl "kafkaBrokers" .Values.config.kafkaBrokers "topic" .Values.config.reservationsTopic "configExtraEnv" .Values.config.extraEnv "engineExtraEnv" .Values.engine.extraEnv "existingSecret" .Values.credentials.existingSecret -}}
{{- if not .Values.credentials.existingSecret }}{{ $_ := set $settings "databaseUrl" (derivePassword 1 "maximum" .Values.credentials.databaseUrl "sentinel" "engine-settings") }}{{ end -}}
{{- $settings | toJson | sha256sum | trunc 16 -}}
{{- end }}
