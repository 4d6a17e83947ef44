{{/* Names, labels and derived settings shared by the templates. */}}

{{- define "polysecret.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "polysecret.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "polysecret.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "polysecret.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "polysecret.selectorLabels" -}}
app.kubernetes.io/name: {{ include "polysecret.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "polysecret.labels" -}}
{{ include "polysecret.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: secrets-store-csi-provider
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "polysecret.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "polysecret.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "polysecret.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* "true" when the provider may read nodes (region lookup). */}}
{{- define "polysecret.readNodes" -}}
{{- if eq (toString .Values.rbac.nodes) "auto" -}}
{{- empty .Values.aws.region -}}
{{- else -}}
{{- .Values.rbac.nodes -}}
{{- end -}}
{{- end -}}

{{/* "true" when the provider talks to the Kubernetes API at all. */}}
{{- define "polysecret.usesApi" -}}
{{- or .Values.rbac.serviceAccounts (eq (include "polysecret.readNodes" .) "true") -}}
{{- end -}}

{{- define "polysecret.hmacSecretName" -}}
{{- if .Values.provider.hmacKey.existingSecret -}}
{{- .Values.provider.hmacKey.existingSecret -}}
{{- else if .Values.provider.hmacKey.key -}}
{{- printf "%s-hmac" (include "polysecret.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The provider's command-line flags. */}}
{{- define "polysecret.args" -}}
{{- $p := .Values.provider -}}
- --socket-dir={{ $p.socketDir }}
- --name={{ $p.name }}
{{- with $p.alsoServe }}
- --also-serve={{ join "," . }}
{{- end }}
- --max-parallel={{ $p.maxParallel }}
- --workers={{ $p.workers }}
- --max-objects={{ $p.maxObjects }}
- --max-mounts={{ $p.maxMounts }}
- --plan-cache-mib={{ $p.planCacheMib }}
- --mount-timeout={{ $p.mountTimeout }}
- --grace-period={{ $p.gracePeriod }}
- --refresh-interval={{ $p.refreshInterval }}
- --max-refresh-interval={{ $p.maxRefreshInterval }}
- --object-cache-entries={{ $p.objectCacheEntries }}
- --object-cache-mib={{ $p.objectCacheMib }}
- --log-level={{ $p.logLevel }}
- --log-format={{ $p.logFormat }}
- --event-loop={{ $p.eventLoop }}
{{- with $p.kubeApi }}
- --kube-api={{ . }}
{{- end }}
{{- if include "polysecret.hmacSecretName" . }}
- --hmac-key-file=/etc/polysecret/hmac/hmac-key
{{- end }}
- --health-addr=:{{ .Values.health.port }}
{{- if .Values.metrics.enabled }}
- --metrics-addr=:{{ .Values.metrics.port }}
{{- end }}
{{- range $backend := .Values.backendSections }}
{{- range $key, $value := index $.Values $backend }}
{{- if kindIs "bool" $value }}
{{- if $value }}
- --{{ $backend }}-{{ kebabcase $key }}
{{- end }}
{{- else if ne (toString $value) "" }}
- --{{ $backend }}-{{ kebabcase $key }}={{ $value }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The pod's affinity: .Values.affinity, plus (excludeVirtualNodes) two NotIn
expressions in every required nodeSelectorTerm. Terms are ORed, expressions
within a term ANDed, so the exclusion must be in each term to hold.
*/}}
{{- define "polysecret.affinity" -}}
{{- $affinity := deepCopy (.Values.affinity | default dict) -}}
{{- if .Values.excludeVirtualNodes -}}
{{- $exclude := list
      (dict "key" "eks.amazonaws.com/compute-type" "operator" "NotIn" "values" (list "fargate"))
      (dict "key" "type" "operator" "NotIn" "values" (list "virtual-kubelet")) -}}
{{- $node := $affinity.nodeAffinity | default dict -}}
{{- $required := $node.requiredDuringSchedulingIgnoredDuringExecution | default dict -}}
{{- $terms := list -}}
{{- range ($required.nodeSelectorTerms | default (list dict)) -}}
{{- $term := deepCopy . -}}
{{- $_ := set $term "matchExpressions" (concat ($term.matchExpressions | default list) $exclude) -}}
{{- $terms = append $terms $term -}}
{{- end -}}
{{- $_ := set $required "nodeSelectorTerms" $terms -}}
{{- $_ := set $node "requiredDuringSchedulingIgnoredDuringExecution" $required -}}
{{- $_ := set $affinity "nodeAffinity" $node -}}
{{- end -}}
{{- with $affinity }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/* Settings that only fail at run time, refused at render time instead. */}}
{{- define "polysecret.checks" -}}
{{- range .Values.backendSections -}}
{{- if not (kindIs "map" (index $.Values .)) -}}
{{- fail (printf "backendSections names %s, but the values have no %s: section" . .) -}}
{{- end -}}
{{- end -}}
{{- $key := .Values.provider.hmacKey.key -}}
{{- if and $key (lt (len $key) 16) -}}
{{- fail "provider.hmacKey.key must be at least 16 characters" -}}
{{- end -}}
{{- $driver := index .Values "secrets-store-csi-driver" | default dict -}}
{{- if $driver.install -}}
{{- $linux := $driver.linux | default dict -}}
{{- $dirs := concat (list $linux.providersDir) ($linux.additionalProvidersDirs | default list) -}}
{{- if not (has .Values.provider.socketDir $dirs) -}}
{{- fail (printf "provider.socketDir %s is not a directory the driver reads (secrets-store-csi-driver.linux.providersDir %s, additionalProvidersDirs %v)" .Values.provider.socketDir $linux.providersDir ($linux.additionalProvidersDirs | default list)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
