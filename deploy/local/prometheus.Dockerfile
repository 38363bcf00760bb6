# Prometheus from Debian's package, for running docker-compose.yml where prom/prometheus
# cannot be pulled (see docker-compose.local.yml and deploy/container-test.sh). It behaves
# like the official image for this stack: prometheus is the entrypoint, so the compose
# file's `command:` flags apply unchanged, it runs unprivileged and stores data in
# /prometheus.
ARG BASE_IMAGE=localhost/ecg-debian-base:bookworm
FROM ${BASE_IMAGE}

# The package's postinst reuses an existing "prometheus" system user (uid in adduser's
# system range, 100-999); creating it first fixes its ids, so USER can be numeric. The package is not version-pinned: bookworm's
# archive only keeps the newest (security) build, so an exact pin breaks with each update.
# hadolint ignore=DL3008
RUN groupadd --system --gid 990 prometheus \
    && useradd --system --uid 990 --gid prometheus --no-create-home \
        --home-dir /var/lib/prometheus --shell /usr/sbin/nologin prometheus \
    && apt-get update \
    && apt-get install -y --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o prometheus -g prometheus /prometheus

USER 990:990
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
