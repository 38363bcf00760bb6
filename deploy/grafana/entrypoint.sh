#!/bin/sh
# Grafana's entrypoint in docker-compose.yml: no default admin password. Then Grafana's own
# entrypoint (/run.sh) runs as usual.
#
# - GRAFANA_ADMIN_PASSWORD set (the host's environment or .env): that is the password.
# - Otherwise a random one is generated at the first start, into the Grafana data volume
#   ($GF_PATHS_DATA/admin-password, mode 0600, owned by Grafana's user) and reused on every
#   later start. The log says where it is, never what it is:
#     docker compose exec grafana cat /var/lib/grafana/admin-password
#
# Grafana sets the admin password only when it creates its database (the first start of a
# new volume); later a changed password has no effect, and `grafana cli admin
# reset-admin-password` changes it. A volume whose database is older than this script has no
# generated file: its password stays what it was (perhaps the former default, admin), and
# the log says so.
#
# POSIX sh (the image's busybox ash); tests/test_deployment.py runs it with a fake /run.sh.
# GRAFANA_RUN_SH (default /run.sh) is only for those tests.
set -eu

data=${GF_PATHS_DATA:-/var/lib/grafana}
file=$data/admin-password
log() { printf 'ecg-grafana-entrypoint: %s\n' "$*" >&2; }

if [ -n "${GRAFANA_ADMIN_PASSWORD:-}" ]; then
    GF_SECURITY_ADMIN_PASSWORD=$GRAFANA_ADMIN_PASSWORD
    log "admin password: from GRAFANA_ADMIN_PASSWORD"
    if [ -e "$data/grafana.db" ]; then
        log "note: Grafana's database exists already, so it keeps the admin password it was" \
            "created with; GRAFANA_ADMIN_PASSWORD only applies to a new one"
    fi
elif [ -n "${GF_SECURITY_ADMIN_PASSWORD:-}${GF_SECURITY_ADMIN_PASSWORD__FILE:-}" ]; then
    log "admin password: from GF_SECURITY_ADMIN_PASSWORD${GF_SECURITY_ADMIN_PASSWORD__FILE:+__FILE}"
elif [ -s "$file" ]; then
    GF_SECURITY_ADMIN_PASSWORD=$(cat "$file")
    log "admin password: generated at the first start, in $file (cat it in the container)"
elif [ -e "$data/grafana.db" ]; then
    # Too late to choose one: Grafana would not apply it to an existing database.
    log "WARNING: no GRAFANA_ADMIN_PASSWORD and no $file, but Grafana's database already" \
        "exists: its admin password is the one it was created with (before this entrypoint" \
        "the default was admin). Change it: grafana cli admin reset-admin-password <new>"
else
    umask 077
    # 24 random bytes as 48 hex digits: od and tr are in busybox and every POSIX system.
    password=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
    [ "${#password}" -eq 48 ] || { log "could not read /dev/urandom"; exit 1; }
    # Written whole, then renamed: an interrupted start leaves no half-written password.
    printf '%s\n' "$password" >"$file.tmp"
    mv "$file.tmp" "$file"
    GF_SECURITY_ADMIN_PASSWORD=$password
    log "admin password: generated (first start) into $file, mode 0600; read it with:" \
        "docker compose exec grafana cat $file"
fi
if [ -n "${GF_SECURITY_ADMIN_PASSWORD:-}" ]; then
    export GF_SECURITY_ADMIN_PASSWORD
fi
unset GRAFANA_ADMIN_PASSWORD

exec "${GRAFANA_RUN_SH:-/run.sh}" "$@"
