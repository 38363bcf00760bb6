"""Checks of the Helm chart (``deploy/helm/ecg-anomaly``) and its KServe InferenceService,
offline: no cluster and no API server, so no server-side dry run.

The chart is rendered by the real helm 4, and helm 3 must render the same objects (``make
helm`` puts both in the venv), with its default
values and with ``ci/all-on-values.yaml`` (every option on), and linted with
``helm lint --strict``. Every built-in object is validated by kubernetes-validate in strict
mode (unknown fields are errors) against the schemas of each Kubernetes version the chart
claims; a kind or apiVersion a version does not serve fails. The custom resources
(ServiceMonitor, PrometheusRule, InferenceService) have no built-in schema and their CRDs
cannot be had offline here, so their structure is asserted field by field instead. Then the
rendered objects are checked against the server itself: probes, scrape path and the
InferenceService's path are routes of the Flask app, ports are the ones it binds, the user
is the Dockerfile's, the grace period outlasts its drain, memory fits the benchmark's
numbers, and the alert rules are ``deploy/prometheus/alerts.yml`` and name only metrics the
server exports.
"""

from __future__ import annotations

import copy
import math
import re
import subprocess
from functools import cache
from pathlib import PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from werkzeug.exceptions import MethodNotAllowed, NotFound

from .conftest import REPO, require_tool
from .test_deployment import (
    ALERTS,
    DOCKERFILE,
    PROMETHEUS_SYNTHETIC,
    alert_rules,
    exported_names,
    load_yaml,
    promql_metric_names,
)

CHART = REPO / "deploy" / "helm" / "ecg-anomaly"
ALL_ON = CHART / "ci" / "all-on-values.yaml"
LITERT = CHART / "values-litert.yaml"  # the slim image (README, Runtimes)
RESULTS = REPO / "benchmarks" / "RESULTS.md"
RELEASE = "ecg-anomaly"  # the fullname is then the release name
NAMESPACE = "ml"

# The Kubernetes versions the chart claims (Chart.yaml kubeVersion >=1.29): every minor
# kubernetes-validate has schemas for from 1.29 on.
KUBERNETES_VERSIONS = [f"1.{minor}" for minor in range(29, 38)]
# Custom resources: no built-in schema; their structure is asserted below instead.
CUSTOM_RESOURCES = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("serving.kserve.io/v1beta1", "InferenceService"),
}
DEFAULT_KINDS = {
    "ServiceAccount", "ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler",
    "PodDisruptionBudget", "NetworkPolicy",
}  # fmt: skip
ALL_ON_KINDS = DEFAULT_KINDS | {"ServiceMonitor", "PrometheusRule", "InferenceService"}
VARIANTS = {"defaults": (), "all-on": ("-f", str(ALL_ON)), "litert": ("-f", str(LITERT))}


def helm(*args: str, binary: str = "helm") -> subprocess.CompletedProcess[str]:
    """helm 4 (``helm``), or helm 3 (``helm3``), which many platform teams still run."""
    path = require_tool(binary, "make helm installs it into the venv")
    return subprocess.run([path, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


@cache
def render(*args: str) -> tuple[dict[str, Any], ...]:
    """``helm template`` of the chart with these extra arguments, as parsed objects."""
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def one(docs, kind: str) -> dict[str, Any]:
    (obj,) = [d for d in docs if d["kind"] == kind]
    return obj


@pytest.fixture(params=list(VARIANTS), ids=list(VARIANTS))
def variant(request) -> str:
    return request.param


@pytest.fixture()
def docs(variant) -> tuple[dict[str, Any], ...]:
    return render(*VARIANTS[variant])


def pod_specs(docs) -> list[dict[str, Any]]:
    """The pod specs the manifests run: the Deployment's, and the InferenceService's
    predictor (a pod spec with KServe's fields added)."""
    specs = [d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"]
    specs += [d["spec"]["predictor"] for d in docs if d["kind"] == "InferenceService"]
    return specs


def deployment_pod(docs) -> dict[str, Any]:
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def server_container(spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = spec["containers"]
    return container


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def config_of(docs) -> dict[str, str]:
    return one(docs, "ConfigMap")["data"]


def bind_port(container: dict[str, Any], variable: str = "ECG_BIND") -> int:
    host, _, port = env_of(container)[variable].rpartition(":")
    assert host == "0.0.0.0", "the server must listen on all interfaces in a pod"
    return int(port)


def metrics_port(container: dict[str, Any]) -> int | None:
    """The port of the keyless /metrics listener (ECG_METRICS_BIND), if there is one."""
    return bind_port(container, "ECG_METRICS_BIND") if "ECG_METRICS_BIND" in env_of(container) else None


def settings_of(docs, container: dict[str, Any], monkeypatch):
    """The server's Settings as the container's environment makes them (ConfigMap, then
    env), parsed by the server's own pydantic model: what it would run with."""
    from service.settings import Settings

    for key, value in {**config_of(docs), **env_of(container)}.items():
        if key.startswith("ECG_"):
            monkeypatch.setenv(key, value)
    return Settings()


def route_problem(app, path: str, method: str = "GET") -> str | None:
    """Why the server cannot answer ``method path``, or None when a route matches."""
    adapter = app.url_map.bind("localhost")
    try:
        adapter.match(path, method=method)
    except NotFound:
        return f"no route {path}"
    except MethodNotAllowed:
        return f"{path} does not take {method}"
    return None


# --- helm and the Kubernetes schemas ----------------------------------------------------------


@pytest.mark.parametrize("binary", ["helm", "helm3"])
def test_helm_lint_strict(variant, binary):
    result = helm("lint", "--strict", str(CHART), *VARIANTS[variant], binary=binary)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_helm_3_renders_the_same_objects_as_helm_4(docs, variant):
    result = helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *VARIANTS[variant], binary="helm3"
    )
    assert result.returncode == 0, result.stderr
    assert tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc) == docs


def test_the_chart_renders_the_expected_objects(docs, variant):
    kinds = [d["kind"] for d in docs]
    assert len(kinds) == len(set(kinds))
    assert set(kinds) == (ALL_ON_KINDS if variant == "all-on" else DEFAULT_KINDS)
    for doc in docs:
        assert doc["metadata"]["name"] == RELEASE
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "ecg-anomaly"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "ecg-anomaly-0.1.0"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_builtin_object_validates_strictly(docs, version):
    validated = 0
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_RESOURCES:
            continue  # no built-in schema: asserted by the tests below
        # SchemaNotFoundError (a kind or apiVersion this version lacks) fails the test too.
        kubernetes_validate.validate(doc, version, strict=True)
        validated += 1
    assert validated == len(DEFAULT_KINDS)


def test_validation_refuses_a_removed_api_version_and_an_unknown_field():
    """The validation can fail: the PodDisruptionBudget as policy/v1beta1 (removed in
    1.25) is refused for 1.29, and a misspelt field of the Deployment in strict mode."""
    docs = render(*VARIANTS["defaults"])
    pdb = copy.deepcopy(one(docs, "PodDisruptionBudget"))
    kubernetes_validate.validate(pdb, "1.29", strict=True)
    pdb["apiVersion"] = "policy/v1beta1"
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(pdb, "1.29", strict=True)

    deployment = copy.deepcopy(one(docs, "Deployment"))
    server_container(deployment["spec"]["template"]["spec"])["readinesProbe"] = {"httpGet": {"port": 1}}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, "1.29", strict=True)


def test_values_outside_the_schema_are_refused():
    for args, message in [
        (("--set", "replicaCont=3"), "additional properties 'replicaCont' not allowed"),
        (("--set", "config.ECG_BIND=0.0.0.0:9000"), "ECG_BIND"),
        (("--set", "model.source=s3"), "/model/source"),
        (("--set", "model.source=pvc"), "model.pvc.claimName is required"),
    ]:
        result = helm("template", RELEASE, str(CHART), *args)
        assert result.returncode != 0, args
        assert message in result.stderr, result.stderr


def test_the_chart_claims_kubernetes_1_29_and_later():
    assert helm("template", RELEASE, str(CHART), "--kube-version", "1.29.0").returncode == 0
    refused = helm("template", RELEASE, str(CHART), "--kube-version", "1.28.9")
    assert refused.returncode != 0 and "kubeVersion" in refused.stderr, refused.stderr


# --- what the manifests name, against the server ------------------------------------------------


def manifest_problems(docs, app) -> list[str]:
    """Every route, port and metric the manifests name that the server does not have."""
    problems = []
    for spec in pod_specs(docs):
        container = server_container(spec)
        port, scrape = bind_port(container), metrics_port(container)
        numbers = {p["name"]: p["containerPort"] for p in container["ports"]}
        # The bind port first; the metrics port may be declared too (KServe's predictor
        # declares one port only: Knative takes no more).
        if list(numbers.values())[:1] != [port] or set(numbers.values()) - {port, scrape}:
            also = f" and the metrics port {scrape}" if scrape else ""
            problems.append(f"container ports {numbers} are not the bind port {port}{also}")
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind not in container:
                continue
            get = container[kind]["httpGet"]
            if (problem := route_problem(app, get["path"])) is not None:
                problems.append(f"{kind}: {problem}")
            if numbers.get(get["port"], get["port"]) != port:
                problems.append(f"{kind}: port {get['port']} is not the server's {port}")
    for doc in docs:
        if doc["kind"] == "Service":
            names = sorted(p["name"] for p in server_container(deployment_pod(docs))["ports"])
            for service_port in doc["spec"]["ports"]:
                if service_port["targetPort"] not in names:
                    problems.append(f"Service targets port {service_port['targetPort']!r}, not {names}")
        if doc["kind"] == "NetworkPolicy":
            names = sorted(p["name"] for p in server_container(deployment_pod(docs))["ports"])
            for rule in doc["spec"]["ingress"]:
                for port in rule["ports"]:
                    if port["port"] not in names:
                        problems.append(f"NetworkPolicy opens port {port['port']!r}, not {names}")
        if doc["kind"] == "ServiceMonitor":
            service_ports = {p["name"]: p["targetPort"] for p in one(docs, "Service")["spec"]["ports"]}
            container = server_container(deployment_pod(docs))
            numbers = {p["name"]: p["containerPort"] for p in container["ports"]}
            # /metrics is served on the metrics port when there is one, else on the API's.
            serving = metrics_port(container) or bind_port(container)
            for endpoint in doc["spec"]["endpoints"]:
                if endpoint["port"] not in service_ports:
                    problems.append(
                        f"ServiceMonitor scrapes port {endpoint['port']!r}, not {sorted(service_ports)}"
                    )
                elif numbers.get(service_ports[endpoint["port"]]) != serving:
                    problems.append(
                        f"ServiceMonitor scrapes port {endpoint['port']!r}, /metrics is on {serving}"
                    )
                if (problem := route_problem(app, endpoint["path"])) is not None:
                    problems.append(f"ServiceMonitor: {problem}")
        if doc["kind"] == "PrometheusRule":
            for group in doc["spec"]["groups"]:
                for rule in group["rules"]:
                    unknown = promql_metric_names(rule["expr"]) - exported_names() - PROMETHEUS_SYNTHETIC
                    if unknown:
                        problems.append(f"rule {rule['alert']} names metrics the server lacks: {unknown}")
        if doc["kind"] == "InferenceService":
            predictor = server_container(doc["spec"]["predictor"])
            model = env_of(predictor).get("ECG_MODEL_NAME", "ecg-autoencoder")
            for path, method in [
                (f"/v2/models/{model}/infer", "POST"),
                (f"/v2/models/{model}/ready", "GET"),
                ("/v2/health/ready", "GET"),
            ]:
                if (problem := route_problem(app, path, method)) is not None:
                    problems.append(f"InferenceService: {problem}")
    return problems


def test_manifests_name_only_routes_ports_and_metrics_the_server_has(docs, app):
    assert manifest_problems(docs, app) == []


def test_a_route_port_or_metric_the_server_lacks_is_caught(app):
    docs = render(*VARIANTS["all-on"], "--set", "probes.liveness.path=/healthz")
    assert manifest_problems(docs, app) == [
        "livenessProbe: no route /healthz",
        "livenessProbe: no route /healthz",  # the Deployment's and the InferenceService's
    ]
    broken = copy.deepcopy(render(*VARIANTS["all-on"]))
    one(broken, "Service")["spec"]["ports"][0]["targetPort"] = "metric"
    one(broken, "ServiceMonitor")["spec"]["endpoints"][0]["path"] = "/prometheus"
    rule = one(broken, "PrometheusRule")["spec"]["groups"][0]["rules"][0]
    rule["expr"] = 'rate(ecg_requests_total{job="ecg-api"}[5m]) > 1'
    deployment = server_container(deployment_pod(broken))
    deployment["readinessProbe"]["httpGet"]["port"] = 9000
    predictor = server_container(one(broken, "InferenceService")["spec"]["predictor"])
    predictor["ports"][0]["containerPort"] = 8000
    assert manifest_problems(broken, app) == [
        "readinessProbe: port 9000 is not the server's 8000",
        "container ports {'http1': 8000} are not the bind port 8080 and the metrics port 9100",
        "Service targets port 'metric', not ['http', 'metrics']",
        "rule EcgApiDown names metrics the server lacks: {'ecg_requests_total'}",
        "ServiceMonitor: no route /prometheus",
    ]
    # A scrape of the API port once /metrics has moved to the metrics port.
    moved = copy.deepcopy(render(*VARIANTS["all-on"]))
    one(moved, "ServiceMonitor")["spec"]["endpoints"][0]["port"] = "http"
    assert manifest_problems(moved, app) == ["ServiceMonitor scrapes port 'http', /metrics is on 9100"]


def test_probes_answer_on_a_warm_server(docs, client):
    """What the kubelet would see from a server whose model is loaded: 200 on every probe."""
    for spec in pod_specs(docs):
        container = server_container(spec)
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in container:
                assert client.get(container[kind]["httpGet"]["path"]).status_code == 200, kind


def test_the_startup_probe_waits_for_the_model_and_allows_a_slow_load(docs):
    """Liveness starts only once a worker is ready, and the kubelet waits minutes, not the
    benchmark's 3.3 s, for TensorFlow's import on a busy node."""
    container = server_container(deployment_pod(docs))
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/readyz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert "initialDelaySeconds" not in container["livenessProbe"]


def test_the_server_accepts_the_rendered_settings(docs, monkeypatch):
    from service.settings import Settings

    fields = {f"ECG_{name.upper()}" for name in Settings.model_fields}
    for spec in pod_specs(docs):
        container = server_container(spec)
        named = {k for k in [*env_of(container), *config_of(docs)] if k.startswith("ECG_")}
        assert named <= fields, f"not settings of the server: {named - fields}"
        config_map = one(docs, "ConfigMap")["metadata"]["name"]
        assert container["envFrom"] == [{"configMapRef": {"name": config_map}}]
        settings = settings_of(docs, container, monkeypatch)
        assert settings.bind == f"0.0.0.0:{bind_port(container)}"
        assert settings.workers == 2 and settings.tf_intra_op_threads == 1


def test_the_config_checksum_rolls_the_pods_on_a_settings_change():
    def checksum(*args: str) -> str:
        template = one(render(*args), "Deployment")["spec"]["template"]
        return template["metadata"]["annotations"]["checksum/config"]

    assert checksum() == checksum()
    assert checksum("--set", "config.ECG_LOG_LEVEL=debug") != checksum()


# --- lifecycle, user, filesystem, memory ---------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "graceful", "expected"), [(None, None, 30), ("12.5", "40", 58), ("0", "1", 6)]
)
def test_the_grace_period_outlasts_the_drain(delay, graceful, expected, monkeypatch):
    """terminationGracePeriodSeconds is computed from the server's own settings (the
    ConfigMap's, parsed by service.settings): the kubelet's SIGKILL never cuts the drain."""
    args: list[str] = []
    if delay is not None:
        args = [*VARIANTS["all-on"], "--set-string", f"config.ECG_SHUTDOWN_DELAY_SECONDS={delay}"]
        args += ["--set-string", f"config.ECG_GRACEFUL_TIMEOUT_SECONDS={graceful}"]
    docs = render(*args)
    margin = load_yaml(CHART / "values.yaml")["terminationGraceMarginSeconds"]
    specs = [deployment_pod(docs)]
    specs += [d["spec"]["predictor"] for d in docs if d["kind"] == "InferenceService"]
    for spec in specs:
        settings = settings_of(docs, server_container(spec), monkeypatch)
        drain = settings.shutdown_delay_seconds + settings.graceful_timeout_seconds
        assert spec["terminationGracePeriodSeconds"] > drain
        assert spec["terminationGracePeriodSeconds"] == expected
        assert spec["terminationGracePeriodSeconds"] == math.ceil(drain) + margin


def test_the_defaults_are_the_servers_own():
    """The chart's ECG_* defaults are the ones service/settings.py has (the chart adds only
    the one-thread TensorFlow layout), so the README's numbers hold in a pod."""
    from service.settings import Settings

    config = load_yaml(CHART / "values.yaml")["config"]
    defaults = Settings.model_fields
    assert float(config["ECG_SHUTDOWN_DELAY_SECONDS"]) == defaults["shutdown_delay_seconds"].default
    assert int(config["ECG_GRACEFUL_TIMEOUT_SECONDS"]) == defaults["graceful_timeout_seconds"].default
    assert int(config["ECG_WORKERS"]) == defaults["workers"].default


def dockerfile_user() -> tuple[int, int]:
    (user,) = re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(), re.MULTILINE)
    return int(user[0]), int(user[1])


def test_every_container_runs_as_the_dockerfiles_user_with_nothing_else_allowed(docs):
    uid, gid = dockerfile_user()
    for spec in pod_specs(docs):
        pod = spec.get("securityContext")
        if pod is not None:  # absent only under Knative, which does not take it
            assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (uid, gid, gid)
            assert pod["runAsNonRoot"] is True
            assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid), container["name"]
            assert context["runAsNonRoot"] is True
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_the_service_account_carries_no_token(docs):
    account = one(docs, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    for spec in pod_specs(docs):
        assert spec["serviceAccountName"] == account["metadata"]["name"]
        assert spec["automountServiceAccountToken"] is False


def dockerfile_env() -> dict[str, str]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    (line,) = [line for line in text.splitlines() if line.startswith("ENV PATH=")]
    return dict(pair.split("=", 1) for pair in line.split()[1:])


def test_what_the_image_writes_lands_on_memory_backed_empty_dirs(docs):
    env = dockerfile_env()
    writable = [env["PROMETHEUS_MULTIPROC_DIR"], env["KERAS_HOME"], env["ECG_WORKER_TMP_DIR"]]
    for spec in pod_specs(docs):
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in server_container(spec)["volumeMounts"]}
        for path in writable:
            (mount,) = [m for m in mounts if path == m or path.startswith(m.rstrip("/") + "/")]
            volume = volumes[mounts[mount]]
            assert volume["emptyDir"]["medium"] == "Memory", path
            assert volume["emptyDir"]["sizeLimit"]
        assert {"/tmp", "/dev/shm"} <= set(mounts)


def memory_table_row(row_start: str, alone: bool = False) -> dict[str, float]:
    """One server's row of RESULTS.md's memory tables (side by side, or started alone),
    as {column header: median}."""
    section = RESULTS.read_text().split("## Memory and start-up", 1)[1].split("\n## ", 1)[0]
    side_by_side, _, alone_table = section.partition("\nEach server alone")
    table = alone_table if alone else side_by_side
    header = [c.strip() for c in table.split("\n|", 1)[1].split("\n", 1)[0].strip("|").split("|")]
    (row,) = [line for line in table.splitlines() if line.startswith(row_start)]
    cells = [re.sub(r"\s*\(.*\)", "", c).replace(",", "").strip() for c in row.strip("|").split("|")]
    return {name: float(cell) for name, cell in zip(header[1:], cells[1:], strict=True)}


def benchmark_memory(row_start: str = "| **ours** (TensorFlow") -> dict[str, float]:
    """The bundled-model row of the side-by-side memory table."""
    row = memory_table_row(row_start)
    return {
        "rss_per_worker": row["RSS per worker after load, MiB"],
        "rss_total": row["total RSS after load, MiB"],
        "pss_total": row["total PSS after load, MiB"],
    }


def benchmark_pss_alone(row_start: str) -> float:
    """Total PSS after load of that server started alone."""
    return memory_table_row(row_start, alone=True)["total PSS after load, MiB"]


def mebibytes(quantity: str) -> float:
    match = re.fullmatch(r"([\d.]+)(Ki|Mi|Gi)", quantity)
    assert match, f"not a memory quantity in Ki, Mi or Gi: {quantity}"
    return float(match[1]) * {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}[match[2]]


def memory_problems(docs, measured: dict[str, Any]) -> list[str]:
    """Why a pod's memory does not fit the measurement: the limit must hold the RSS of the
    master plus every worker (nothing shared: the upper bound), the request at least the
    measured PSS total (what the cgroup is charged with shared pages counted once)."""
    workers = int(config_of(docs)["ECG_WORKERS"])
    master = measured["rssTotalMiB"] - measured["workers"] * measured["rssPerWorkerMiB"]
    rss_bound = master + workers * measured["rssPerWorkerMiB"]
    problems = []
    for spec in pod_specs(docs):
        resources = server_container(spec)["resources"]
        limit = mebibytes(resources["limits"]["memory"])
        request = mebibytes(resources["requests"]["memory"])
        if limit < rss_bound:
            problems.append(f"limit {limit:g} MiB < {rss_bound:g} MiB (master + {workers} workers' RSS)")
        pss = max(measured["pssTotalMiB"], measured["pssAloneMiB"])
        if request < pss:
            problems.append(f"request {request:g} MiB < the measured PSS {pss} MiB")
        if request > limit:
            problems.append("request over limit")
        if float(resources["requests"]["cpu"]) < workers:
            problems.append(f"cpu request {resources['requests']['cpu']} < one core per worker ({workers})")
    return problems


@pytest.mark.parametrize(
    ("values", "row", "four_workers"),
    [
        (
            "values.yaml",
            "| **ours** (TensorFlow",
            [
                "limit 1536 MiB < 2746 MiB (master + 4 workers' RSS)",
                "cpu request 2 < one core per worker (4)",
            ],
        ),
        (
            "values-litert.yaml",
            "| **ours, LiteRT runtime**",
            ["limit 320 MiB < 335 MiB (master + 4 workers' RSS)", "cpu request 2 < one core per worker (4)"],
        ),
    ],
    ids=["tensorflow", "litert"],
)
def test_memory_fits_what_the_benchmark_measured(values, row, four_workers):
    measured = load_yaml(CHART / values)["measuredMemory"]
    bench = benchmark_memory(row)
    # The values state the benchmark's numbers (a later run may move them by a few MiB).
    assert measured["rssPerWorkerMiB"] == pytest.approx(bench["rss_per_worker"], rel=0.05)
    assert measured["rssTotalMiB"] == pytest.approx(bench["rss_total"], rel=0.05)
    assert measured["pssTotalMiB"] == pytest.approx(bench["pss_total"], rel=0.05)
    # Alone, PSS falls when other processes share the runtime's pages: the values keep the
    # highest reading, never one under what this run saw.
    assert measured["pssAloneMiB"] >= 0.95 * benchmark_pss_alone(row)
    extra = () if values == "values.yaml" else ("-f", str(CHART / values))
    assert memory_problems(render(*extra), measured) == []
    # Four workers with the two-worker limit would not fit: the check can fail.
    four = render(*extra, "--set-string", "config.ECG_WORKERS=4")
    assert memory_problems(four, measured) == four_workers


def test_the_slim_values_run_the_litert_build_of_this_version():
    """values-litert.yaml names the slim image of the chart's own appVersion, and the pods
    say they run LiteRT: the server refuses at start a version without a LiteRT copy."""
    docs = render(*VARIANTS["litert"])
    app_version = load_yaml(CHART / "Chart.yaml")["appVersion"]
    assert server_container(deployment_pod(docs))["image"] == f"ecg-anomaly:{app_version}-litert"
    assert config_of(docs)["ECG_RUNTIME"] == "litert"
    assert "ECG_RUNTIME=${RUNTIME}" in DOCKERFILE.read_text()  # the image's own default agrees
    request = mebibytes(server_container(deployment_pod(docs))["resources"]["requests"]["memory"])
    assert request * 4 < mebibytes(
        server_container(deployment_pod(render()))["resources"]["requests"]["memory"]
    )


# --- scaling, disruption, placement, network ------------------------------------------------------


def test_the_autoscaler_scales_the_deployment_on_cpu_with_tf_aware_behaviour(docs):
    deployment, hpa = one(docs, "Deployment"), one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    up, down = hpa["spec"]["behavior"]["scaleUp"], hpa["spec"]["behavior"]["scaleDown"]
    assert 0 < up["stabilizationWindowSeconds"] <= 60
    assert down["stabilizationWindowSeconds"] >= 300
    assert up["policies"] and down["policies"]
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    # Without the HPA the Deployment says how many.
    fixed = render("--set", "autoscaling.enabled=false")
    assert [d["kind"] for d in fixed if d["kind"] == "HorizontalPodAutoscaler"] == []
    assert one(fixed, "Deployment")["spec"]["replicas"] == 2


def test_the_budget_spread_and_service_select_the_pods(docs):
    deployment = one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert pdb["spec"]["maxUnavailable"] == 1
    assert one(docs, "Service")["spec"]["selector"] == selector
    assert one(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"] == selector
    (spread,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == selector
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0, "a rollout keeps every ready pod until its replacement is"


def test_the_network_policy_opens_only_the_api_port_and_the_metrics_port(docs, variant):
    policy = one(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    if variant != "all-on":
        (rule,) = policy["spec"]["ingress"]
        assert rule == {"ports": [{"port": "http", "protocol": "TCP"}]}  # from anywhere
    else:
        values = load_yaml(ALL_ON)["networkPolicy"]
        rule, metrics = policy["spec"]["ingress"]
        assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
        assert rule["from"] == [
            *({"namespaceSelector": {"matchLabels": labels}} for labels in values["ingressNamespaces"]),
            {"podSelector": {}},
        ]
        # The keyless metrics port: only the scraper's namespace.
        assert metrics == {
            "ports": [{"port": "metrics", "protocol": "TCP"}],
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        }


# --- models from a volume ------------------------------------------------------------------------


def test_a_model_from_a_pvc_is_mounted_read_only_where_ecg_model_dir_points():
    docs = render("--set", "model.source=pvc", "--set", "model.pvc.claimName=ecg-models")
    kubernetes_validate.validate(one(docs, "Deployment"), KUBERNETES_VERSIONS[0], strict=True)
    spec = deployment_pod(docs)
    container = server_container(spec)
    model_dir = env_of(container)["ECG_MODEL_DIR"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == model_dir]
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["persistentVolumeClaim"] == {"claimName": "ecg-models", "readOnly": True}
    assert "initContainers" not in spec


def test_a_model_from_an_image_is_copied_by_an_init_container_into_the_served_folder():
    docs = render(*VARIANTS["all-on"])
    for spec in pod_specs(docs):
        container = server_container(spec)
        model_dir = env_of(container)["ECG_MODEL_DIR"]
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == model_dir]
        (init,) = spec["initContainers"]
        assert init["image"] == "registry.example.com/ecg-models:ecg-autoencoder-1"
        (init_mount,) = init["volumeMounts"]
        assert init_mount["name"] == mount["name"]
        # cp -R <the image's folder>/. <the volume>/: the folder's contents, not the folder
        assert init["command"] == ["cp", "-R", "/models/.", init_mount["mountPath"] + "/"]
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        assert "emptyDir" in volume


def test_the_bundled_model_needs_no_volume():
    spec = one(render(), "Deployment")["spec"]["template"]["spec"]
    assert "ECG_MODEL_DIR" not in env_of(server_container(spec))  # the image's /app/saved_models
    assert {v["name"] for v in spec["volumes"]} == {"tmp", "shm"}


# --- API keys and the metrics port ---------------------------------------------------------------

KEYS_SECRET = ("--set", "auth.existingSecret=ecg-api-keys")


def keys_problems(docs) -> list[str]:
    """Why a pod would not see its API keys as the server needs them: the file
    ECG_API_KEYS_FILE names, in the chart's Secret mounted read-only as a whole directory
    (a subPath never sees a rotated Secret), readable by the server's uid/gid."""
    uid, gid = dockerfile_user()
    problems = []
    for spec in pod_specs(docs):
        container = server_container(spec)
        keys_file = PurePosixPath(env_of(container)["ECG_API_KEYS_FILE"])
        mounts = [m for m in container["volumeMounts"] if keys_file.is_relative_to(m["mountPath"])]
        if len(mounts) != 1:
            problems.append(f"{keys_file} is in {len(mounts)} mounts")
            continue
        (mount,) = mounts
        if mount.get("readOnly") is not True:
            problems.append(f"{mount['mountPath']} is not mounted read-only")
        if "subPath" in mount or "subPathExpr" in mount:
            problems.append(f"{mount['mountPath']} is mounted with a subPath")
        if keys_file.parent != PurePosixPath(mount["mountPath"]):
            problems.append(f"{keys_file} is not directly in {mount['mountPath']}")
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        secret = volume.get("secret")
        if secret is None or secret["secretName"] != "ecg-api-keys":
            problems.append(f"{mount['mountPath']} is not the Secret ecg-api-keys: {volume}")
            continue
        if secret.get("items", [{"path": keys_file.name}]) != [{"key": "api-keys", "path": keys_file.name}]:
            problems.append(
                f"the Secret's key api-keys is not projected as {keys_file.name}: {secret['items']}"
            )
        # The kubelet writes the files as root:<fsGroup> with defaultMode.
        mode, fs_group = secret["defaultMode"], spec.get("securityContext", {}).get("fsGroup")
        if not (mode & 0o004 or (fs_group == gid and mode & 0o040)):
            problems.append(f"mode {mode:#o} with fsGroup {fs_group}: uid {uid} cannot read the keys")
        if mode & 0o222:
            problems.append(f"mode {mode:#o} lets the keys be written")
    return problems


@pytest.mark.parametrize(
    "args",
    [KEYS_SECRET, (*VARIANTS["all-on"],), (*VARIANTS["all-on"], "--set", "kserve.deploymentMode=Knative")],
    ids=["deployment", "all-on", "knative"],
)
def test_api_keys_come_from_the_named_secret_mounted_read_only_as_a_directory(args, monkeypatch):
    docs = render(*args)
    assert pod_specs(docs)
    assert keys_problems(docs) == []
    for spec in pod_specs(docs):
        container = server_container(spec)
        settings = settings_of(docs, container, monkeypatch)
        assert str(settings.api_keys_file) == env_of(container)["ECG_API_KEYS_FILE"]
        assert settings.api_keys_file == PurePosixPath("/etc/ecg-anomaly/secrets/api-keys")
        (volume,) = [v for v in spec["volumes"] if "secret" in v]
        # 0440 where the pod sets fsGroup 10001; 0444 under Knative, which sets none.
        assert volume["secret"]["defaultMode"] == (0o440 if "securityContext" in spec else 0o444)
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) not in CUSTOM_RESOURCES:
            for version in (KUBERNETES_VERSIONS[0], KUBERNETES_VERSIONS[-1]):
                kubernetes_validate.validate(doc, version, strict=True)
    # Rotating means updating the Secret: nothing of it is in the pod template, so the
    # Deployment is the same whatever the Secret holds, and no rollout is needed.
    deployment = one(docs, "Deployment")["spec"]["template"]
    assert "ecg-api-keys" not in str(deployment["metadata"])


def test_a_keys_mount_that_would_miss_a_rotation_or_be_unreadable_is_caught():
    docs = copy.deepcopy(render(*KEYS_SECRET))
    spec = deployment_pod(docs)
    (mount,) = [m for m in server_container(spec)["volumeMounts"] if m["name"] == "api-keys"]
    mount["subPath"] = "api-keys"
    del mount["readOnly"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "api-keys"]
    volume["secret"]["defaultMode"] = 0o400
    del spec["securityContext"]["fsGroup"]
    assert keys_problems(docs) == [
        "/etc/ecg-anomaly/secrets is not mounted read-only",
        "/etc/ecg-anomaly/secrets is mounted with a subPath",
        "mode 0o400 with fsGroup None: uid 10001 cannot read the keys",
    ]


def test_without_a_secret_keys_are_off_and_nothing_is_mounted():
    for spec in pod_specs(render("--set", "kserve.enabled=true")):
        container = server_container(spec)
        assert not {"ECG_API_KEYS_FILE", "ECG_METRICS_BIND"} & set(env_of(container))
        assert not [v for v in spec["volumes"] if "secret" in v]


@pytest.mark.parametrize("binary", ["helm", "helm3"])
def test_keys_inline_and_bad_names_or_ports_are_refused(binary):
    """Keys never go in values; the Secret's name must be one Kubernetes takes, the metrics
    port an unprivileged one other than the API's."""
    for args, message in [
        (("--set", "auth.keys=s3cr3t-s3cr3t-s3cr3t"), "additional properties 'keys' not allowed"),
        (("--set", "auth.existingSecret=ECG_Keys"), "/auth/existingSecret"),
        (("--set", "auth.existingSecret=-keys"), "/auth/existingSecret"),
        (("--set", f"auth.existingSecret={'k' * 254}"), "/auth/existingSecret"),
        (("--set", "auth.secretKey=keys/api-keys"), "/auth/secretKey"),
        (("--set", "auth.secretKey=.."), "/auth/secretKey"),
        (("--set", "config.ECG_API_KEYS_FILE=/keys.txt"), "ECG_API_KEYS_FILE"),
        (("--set", "config.ECG_METRICS_BIND=0.0.0.0:9100"), "ECG_METRICS_BIND"),
        (("--set", "metrics.port=80"), "/metrics/port"),
        (("--set", "metrics.port=65536"), "/metrics/port"),
        (("--set", "metrics.port=8000"), "metrics.port 8000 is containerPort's"),
        (
            ("--set", "kserve.enabled=true", "--set", "metrics.port=8080"),
            "metrics.port 8080 is kserve.port's",
        ),
    ]:
        result = helm("template", RELEASE, str(CHART), *args, binary=binary)
        assert result.returncode != 0, args
        if binary == "helm":  # helm 3 words schema errors its own way
            assert message in result.stderr, result.stderr
    name = ("--set", "auth.existingSecret=ecg.api-keys-2")  # dots and digits: a good name
    accepted = helm("template", RELEASE, str(CHART), *name, binary=binary)
    assert accepted.returncode == 0, accepted.stderr


def test_the_metrics_port_serves_the_scrape_without_a_key_and_the_api_port_does_not(monkeypatch):
    """metrics.port: the server's second listener (ECG_METRICS_BIND) is what the Service,
    the ServiceMonitor, the NetworkPolicy and KServe's scraping annotation point at."""
    docs = render("--set", "metrics.port=9100", "--set", "metrics.serviceMonitor.enabled=true")
    container = server_container(deployment_pod(docs))
    assert container["ports"] == [
        {"name": "http", "containerPort": 8000, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9100, "protocol": "TCP"},
    ]
    settings = settings_of(docs, container, monkeypatch)
    assert (settings.bind, settings.metrics_bind) == ("0.0.0.0:8000", "0.0.0.0:9100")
    service_ports = one(docs, "Service")["spec"]["ports"]
    assert {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"} in service_ports
    (endpoint,) = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    _, metrics_rule = one(docs, "NetworkPolicy")["spec"]["ingress"]
    assert metrics_rule == {"ports": [{"port": "metrics", "protocol": "TCP"}]}  # the API port's sources: any
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) not in CUSTOM_RESOURCES:
            kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)

    isvc = one(render(*VARIANTS["all-on"]), "InferenceService")
    annotations = isvc["metadata"]["annotations"]
    assert annotations["prometheus.kserve.io/port"] == "9100"
    assert annotations["prometheus.kserve.io/path"] == "/metrics"
    predictor = server_container(isvc["spec"]["predictor"])
    assert metrics_port(predictor) == 9100
    assert [p["containerPort"] for p in predictor["ports"]] == [8080]  # Knative takes one port


# --- Prometheus Operator ------------------------------------------------------------------------


def test_the_chart_reads_the_one_alerts_file():
    link = CHART / "files" / "alerts.yml"
    assert link.is_symlink(), "the chart must read deploy/prometheus/alerts.yml, not a copy"
    assert link.resolve() == ALERTS.resolve()


def test_the_prometheus_rule_is_alerts_yml():
    rule = one(render(*VARIANTS["all-on"]), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == load_yaml(ALERTS)["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_the_packaged_chart_carries_the_rules(tmp_path):
    """helm package dereferences the symlink: a published chart holds the rules themselves."""
    result = helm("package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (package,) = tmp_path.glob("ecg-anomaly-*.tgz")
    result = helm("template", RELEASE, str(package), "--set", "metrics.prometheusRule.enabled=true")
    assert result.returncode == 0, result.stderr
    (rule,) = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "PrometheusRule"]
    assert rule["spec"]["groups"] == load_yaml(ALERTS)["groups"]


def alerts_jobs() -> set[str]:
    return {job for r in alert_rules() for job in re.findall(r'job="([^"]+)"', r["expr"])}


def test_the_service_monitor_scrapes_metrics_under_the_alerts_job():
    docs = render(*VARIANTS["all-on"])
    monitor, service = one(docs, "ServiceMonitor"), one(docs, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    # The rules select job="ecg-api"; the scrape must carry that job.
    assert alerts_jobs() == {"ecg-api"}
    assert endpoint["relabelings"] == [{"targetLabel": "job", "replacement": "ecg-api"}]


# --- KServe -------------------------------------------------------------------------------------


def test_the_inference_service_runs_the_image_as_a_v2_custom_predictor(monkeypatch):
    docs = render(*VARIANTS["all-on"])
    isvc = one(docs, "InferenceService")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    predictor = isvc["spec"]["predictor"]
    assert set(predictor) >= {"containers", "minReplicas", "maxReplicas", "volumes"}
    assert not {"model", "tensorflow", "triton"} & set(predictor), "a custom container, not a runtime"
    container = server_container(predictor)
    assert container["name"] == "kserve-container"  # the name KServe looks the predictor up by
    assert container["image"] == server_container(deployment_pod(docs))["image"]
    assert container["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
    assert bind_port(container) == 8080
    assert env_of(container)["PROTOCOL"] == "v2"  # KServe's protocol setting for a custom predictor
    assert settings_of(docs, container, monkeypatch).bind == "0.0.0.0:8080"


def test_under_knative_the_predictor_leaves_out_the_pod_level_fields_and_the_startup_probe():
    docs = render(*VARIANTS["all-on"], "--set", "kserve.deploymentMode=Knative")
    predictor = one(docs, "InferenceService")["spec"]["predictor"]
    assert "startupProbe" not in server_container(predictor)
    assert "terminationGracePeriodSeconds" not in predictor
    assert "securityContext" not in predictor
    assert server_container(predictor)["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8080}


def test_kserve_alone_renders_no_deployment():
    docs = render("--set", "kserve.enabled=true", "--set", "deployment.enabled=false")
    assert {d["kind"] for d in docs} == {"ServiceAccount", "ConfigMap", "InferenceService"}


def test_notes_name_the_release():
    """helm install's dry run (client side: no cluster) prints NOTES.txt for the all-on values."""
    args = ("--dry-run=client", "-f", str(ALL_ON), "--namespace", NAMESPACE)
    result = helm("install", RELEASE, str(CHART), *args)
    assert result.returncode == 0, result.stderr
    assert f"rollout status deployment/{RELEASE}" in result.stdout
    assert "terminationGracePeriodSeconds is 39 s" in result.stdout
    assert "/v2/models/ecg-autoencoder/infer" in result.stdout
    # With keys on: the header, and how to create and rotate the Secret.
    assert 'curl -H "Authorization: Bearer $KEY"' in result.stdout
    assert "create secret generic ecg-api-keys --from-file=api-keys=./api-keys.txt --dry-run" in result.stdout
    assert "without a key on port 9100 only" in result.stdout
    off = helm("install", RELEASE, str(CHART), "--dry-run=client", "--namespace", NAMESPACE)
    assert off.returncode == 0, off.stderr
    assert "API keys are off: whoever reaches the Service can score" in off.stdout
