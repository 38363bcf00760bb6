{{/* The chart's name, overridable. */}}
{{- define "ecg-anomaly.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* A fully qualified app name: the release name, with the chart name unless it already holds it. */}}
{{- define "ecg-anomaly.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ecg-anomaly.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ecg-anomaly.labels" -}}
helm.sh/chart: {{ include "ecg-anomaly.chart" . }}
{{ include "ecg-anomaly.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: model-server
{{- end }}

{{- define "ecg-anomaly.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ecg-anomaly.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ecg-anomaly.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ecg-anomaly.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ecg-anomaly.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
terminationGracePeriodSeconds from the server's own settings:
ceil(ECG_SHUTDOWN_DELAY_SECONDS) + ECG_GRACEFUL_TIMEOUT_SECONDS + terminationGraceMarginSeconds.
*/}}
{{- define "ecg-anomaly.terminationGracePeriodSeconds" -}}
{{- $delay := required "config.ECG_SHUTDOWN_DELAY_SECONDS is required (the grace period is computed from it)" .Values.config.ECG_SHUTDOWN_DELAY_SECONDS }}
{{- $graceful := required "config.ECG_GRACEFUL_TIMEOUT_SECONDS is required (the grace period is computed from it)" .Values.config.ECG_GRACEFUL_TIMEOUT_SECONDS }}
{{- add (ceil (float64 $delay) | int) (int $graceful) (int .Values.terminationGraceMarginSeconds) }}
{{- end }}

{{/* The server's security context: the Dockerfile's uid/gid 10001, nothing else allowed. */}}
{{- define "ecg-anomaly.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* ECG_MODEL_DIR and friends for the model source chosen. */}}
{{- define "ecg-anomaly.modelEnv" -}}
{{- if ne .Values.model.source "bundled" }}
- name: ECG_MODEL_DIR
  value: {{ .Values.model.mountPath | quote }}
{{- end }}
{{- with .Values.model.name }}
- name: ECG_MODEL_NAME
  value: {{ . | quote }}
{{- end }}
{{- with .Values.model.version }}
- name: ECG_MODEL_VERSION
  value: {{ . | toString | quote }}
{{- end }}
{{- end }}

{{/* Where the API keys Secret is mounted: a directory, as docker-compose.auth.yml mounts one. */}}
{{- define "ecg-anomaly.apiKeysDir" -}}
/etc/ecg-anomaly/secrets
{{- end }}

{{/*
ECG_API_KEYS_FILE (with auth.existingSecret) and ECG_METRICS_BIND (with metrics.port), and
the checks the schema cannot make: the metrics port differs from the API's.
*/}}
{{- define "ecg-anomaly.securityEnv" -}}
{{- with .Values.auth.existingSecret }}
- name: ECG_API_KEYS_FILE
  value: {{ printf "%s/%s" (include "ecg-anomaly.apiKeysDir" $) $.Values.auth.secretKey | quote }}
{{- end }}
{{- with (int .Values.metrics.port) }}
{{- if eq . (int $.Values.containerPort) }}
{{- fail (printf "metrics.port %d is containerPort's: the metrics port must be another" .) }}
{{- end }}
{{- if and $.Values.kserve.enabled (eq . (int $.Values.kserve.port)) }}
{{- fail (printf "metrics.port %d is kserve.port's: the metrics port must be another" .) }}
{{- end }}
- name: ECG_METRICS_BIND
  value: {{ printf "0.0.0.0:%d" . | quote }}
{{- end }}
{{- end }}

{{/* Volumes: memory-backed /tmp and /dev/shm, and the model's. */}}
{{- define "ecg-anomaly.volumes" -}}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.tmpSizeLimit }}
- name: shm
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.shmSizeLimit }}
{{- if eq .Values.model.source "pvc" }}
- name: model
  persistentVolumeClaim:
    claimName: {{ required "model.pvc.claimName is required with model.source pvc" .Values.model.pvc.claimName }}
    readOnly: true
{{- else if eq .Values.model.source "image" }}
- name: model
  emptyDir:
    sizeLimit: {{ .Values.model.image.sizeLimit }}
{{- end }}
{{- end }}

{{/*
The API keys Secret's volume (with auth.existingSecret): dict "root" $ "fsGroup" <whether
the pod sets fsGroup 10001>. Mounted whole, never with a subPath: the kubelet then swaps
in an updated Secret (a rotation) and the server rereads the file, no restart. Only the
keys file is projected, as 0440 (288), readable by the fsGroup, the server's group; a
pod without fsGroup (Knative) gets 0444 (292), as root owns the files there.
*/}}
{{- define "ecg-anomaly.apiKeysVolume" -}}
{{- with .root.Values.auth.existingSecret }}
- name: api-keys
  secret:
    secretName: {{ . }}
    defaultMode: {{ if $.fsGroup }}288{{ else }}292{{ end }}
    items:
      - key: {{ $.root.Values.auth.secretKey }}
        path: {{ $.root.Values.auth.secretKey }}
{{- end }}
{{- end }}

{{- define "ecg-anomaly.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: shm
  mountPath: /dev/shm
{{- if .Values.auth.existingSecret }}
- name: api-keys
  mountPath: {{ include "ecg-anomaly.apiKeysDir" . }}
  readOnly: true
{{- end }}
{{- if ne .Values.model.source "bundled" }}
- name: model
  mountPath: {{ .Values.model.mountPath }}
  readOnly: true
  {{- if and (eq .Values.model.source "pvc") .Values.model.pvc.subPath }}
  subPath: {{ .Values.model.pvc.subPath }}
  {{- end }}
{{- end }}
{{- end }}

{{/* The init container that copies a model image's folder into the model emptyDir. */}}
{{- define "ecg-anomaly.initContainers" -}}
{{- if eq .Values.model.source "image" }}
- name: copy-model
  image: {{ printf "%s:%s" (required "model.image.repository is required with model.source image" .Values.model.image.repository) (required "model.image.tag is required with model.source image" .Values.model.image.tag) | quote }}
  imagePullPolicy: {{ .Values.model.image.pullPolicy }}
  # The emptyDir is mounted elsewhere here, so it does not hide the image's own folder.
  command: ["cp", "-R", {{ printf "%s/." (trimSuffix "/" .Values.model.image.path) | quote }}, "/model-volume/"]
  securityContext:
    {{- include "ecg-anomaly.containerSecurityContext" . | nindent 4 }}
  resources:
    requests:
      cpu: 100m
      memory: 64Mi
    limits:
      memory: 256Mi
  volumeMounts:
    - name: model
      mountPath: /model-volume
{{- end }}
{{- end }}

{{/* An HTTP probe: dict "probe" <probes.x> "port" <name or number>. */}}
{{- define "ecg-anomaly.httpProbe" -}}
httpGet:
  path: {{ .probe.path }}
  port: {{ .port }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end }}

{{/* A NetworkPolicy rule's sources: dict "namespaces" <list of matchLabels> "sameNamespace" <bool>; none, any source. */}}
{{- define "ecg-anomaly.networkPolicyFrom" -}}
{{- if or .namespaces .sameNamespace }}
from:
  {{- range .namespaces }}
  - namespaceSelector:
      matchLabels:
        {{- toYaml . | nindent 8 }}
  {{- end }}
  {{- if .sameNamespace }}
  - podSelector: {}
  {{- end }}
{{- end }}
{{- end }}
