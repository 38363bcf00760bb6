# HAProxy from Debian's package, for running docker-compose.scale.yml where the official
# haproxy image cannot be pulled (deploy/scale-test.sh). It behaves like the official
# image for this stack: haproxy in master-worker mode in the foreground (-W -db) is the
# entrypoint, so the compose file's `command:` (-f <config>) applies unchanged, and it runs
# unprivileged (it only binds ports above 1024 and writes nothing).
ARG BASE_IMAGE=localhost/ecg-debian-base:bookworm
FROM ${BASE_IMAGE}

# The package's postinst reuses an existing "haproxy" system user; creating it first fixes
# its ids, so USER can be numeric. Not version-pinned, for the reason given in
# prometheus.Dockerfile (bookworm's archive keeps only the newest security build).
# hadolint ignore=DL3008
RUN groupadd --system --gid 991 haproxy \
    && useradd --system --uid 991 --gid haproxy --no-create-home \
        --home-dir /var/lib/haproxy --shell /usr/sbin/nologin haproxy \
    && apt-get update \
    && apt-get install -y --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/*

USER 991:991
EXPOSE 8080 8404
# SIGUSR1 is haproxy's soft stop: it stops listening and lets open connections finish.
STOPSIGNAL SIGUSR1
ENTRYPOINT ["/usr/sbin/haproxy", "-W", "-db"]
CMD ["-f", "/usr/local/etc/haproxy/haproxy.cfg"]
