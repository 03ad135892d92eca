{{/* The chart name, or nameOverride. */}}
{{- define "sts-docker-auth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's resource name: fullnameOverride, or <release>-<chart> (the release alone if it holds the chart name). */}}
{{- define "sts-docker-auth.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sts-docker-auth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sts-docker-auth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sts-docker-auth.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sts-docker-auth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "sts-docker-auth.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The base URL clients reach the server at: publicUrl, else the ingress host, else empty. */}}
{{- define "sts-docker-auth.publicUrl" -}}
{{- if .Values.publicUrl -}}
{{- trimSuffix "/" .Values.publicUrl -}}
{{- else if and .Values.ingress.enabled .Values.ingress.host -}}
{{- printf "%s://%s" (ternary "https" "http" (not (empty .Values.ingress.tlsSecretName))) .Values.ingress.host -}}
{{- end -}}
{{- end -}}

{{/* The server's path prefix (config.server.path_prefix), without a trailing slash. */}}
{{- define "sts-docker-auth.pathPrefix" -}}
{{- trimSuffix "/" (toString (dig "server" "path_prefix" "" .Values.config)) -}}
{{- end -}}

{{- define "sts-docker-auth.signingSecretName" -}}
{{- default (printf "%s-signing" (include "sts-docker-auth.fullname" .)) .Values.signingKey.existingSecret -}}
{{- end -}}

{{- define "sts-docker-auth.storeSecretName" -}}
{{- default (printf "%s-store" (include "sts-docker-auth.fullname" .)) .Values.store.url.existingSecret -}}
{{- end -}}

{{/*
Fails the rendering on settings that cannot work, naming the value to change. Included by the
Deployment, so `helm install`, `helm upgrade` and `helm template` all stop on them.
*/}}
{{- define "sts-docker-auth.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (ne .Values.store.driver "postgres") -}}
{{- fail (printf "replicaCount is %d but store.driver is %q: replicas share nothing but the store, so more than one replica needs store.driver: postgres (with store.url.existingSecret or store.url.value)" (int .Values.replicaCount) .Values.store.driver) -}}
{{- end -}}
{{- if and (eq .Values.store.driver "postgres") (not .Values.store.url.existingSecret) (not .Values.store.url.value) -}}
{{- fail "store.driver is postgres: set store.url.existingSecret (a Secret holding the connection string) or store.url.value" -}}
{{- end -}}
{{- if and (not .Values.signingKey.existingSecret) (or (not .Values.signingKey.certificate) (not .Values.signingKey.key)) -}}
{{- fail "signingKey: set existingSecret (a kubernetes.io/tls Secret) or both certificate and key; `sts-docker-auth init --data-dir ./keys` makes a pair" -}}
{{- end -}}
{{- range $key := list "addr" "certificate" "key" -}}
{{- if hasKey ($.Values.config.server | default dict) $key -}}
{{- fail (printf "config.server.%s is set by the chart (the pod listens on :5001 and TLS ends at the ingress); remove it" $key) -}}
{{- end -}}
{{- end -}}
{{- range $key := list "certificate" "key" -}}
{{- if hasKey ($.Values.config.token | default dict) $key -}}
{{- fail (printf "config.token.%s is set by the chart from signingKey; remove it" $key) -}}
{{- end -}}
{{- end -}}
{{- if hasKey .Values.config "store" -}}
{{- fail "config.store is set by the chart from the store values; remove it" -}}
{{- end -}}
{{- end -}}

{{/* config.yml: the user's config with the settings the chart owns. */}}
{{- define "sts-docker-auth.config" -}}
{{- $config := deepCopy (.Values.config | default dict) -}}
{{- $server := deepCopy (get $config "server" | default dict) -}}
{{- $_ := set $server "addr" ":5001" -}}
{{- $publicUrl := include "sts-docker-auth.publicUrl" . -}}
{{- if $publicUrl -}}
{{- $_ := set $server "public_url" $publicUrl -}}
{{- end -}}
{{- $_ := set $config "server" $server -}}
{{- $token := deepCopy (get $config "token" | default dict) -}}
{{- $_ := set $token "certificate" "/etc/sts-docker-auth/signing/tls.crt" -}}
{{- $_ := set $token "key" "/etc/sts-docker-auth/signing/tls.key" -}}
{{- $_ := set $config "token" $token -}}
{{- if eq .Values.store.driver "postgres" -}}
{{- $_ := set $config "store" (dict "driver" "postgres" "url_file" "/etc/sts-docker-auth/store/url") -}}
{{- else -}}
{{- $_ := set $config "store" (dict "driver" "sqlite" "path" "/data/store.db") -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}
