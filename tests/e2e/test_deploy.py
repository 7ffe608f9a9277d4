"""The deployment files, checked by the tools that read them (Docker does not run here):

- deploy/compose.yaml: ``docker-compose config`` (Debian's docker-compose) parses and
  validates it; its imgserver environments are valid settings; its mounts exist.
- deploy/k8s/: every built-in resource against the Kubernetes OpenAPI schemas, strict
  (``kubernetes-validate``), for the oldest and newest versions we claim; KEDA's objects
  against a schema of the fields we use (kubernetes-validate has none for CRDs); the references
  between them (selectors, ports, ConfigMap/Secret names and keys, scale targets, queue names).
- deploy/prometheus/: ``promtool check rules`` and ``promtool test rules``.
- deploy/grafana/: every query's metric and label names exist in imgserver/metrics.py (that they
  are served, and that Prometheus evaluates the queries: tests/e2e/test_observability.py).
- Dockerfile: parsed by BuildKit's parser (the ``dockerfile`` package); its shape (stages, slim
  base, non-root user, HEALTHCHECK, COPY sources exist), and, marked slow, its build stage's RUN
  steps run in a fresh venv.

Each validator is also shown a broken file, to see that it can fail.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dockerfile
import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from imgserver.errors import ImgServerError
from imgserver.metrics import Metrics
from imgserver.names import AMQP_QUEUE
from imgserver.settings import Settings

from ..servers import REPO

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
IMGSERVER_ROLES = {"web1", "web2", "urgent", "background"}
K8S_VERSIONS = ("1.29.0", "1.37.0")  # the oldest we claim, the newest the schemas know


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run deploy/system-deps.sh (`make test` does)")
    return path


def settings_from(environment: dict[str, str]) -> Settings:
    """The settings an environment gives, with the image's graphs directory swapped for ours."""
    env = {k: str(v) for k, v in environment.items() if k != "IMGSERVER_GRAPHS_DIR"}
    return Settings.from_env(env)


# -- compose ------------------------------------------------------------------------------------


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIO_", "IMGSERVER_"))}
    return subprocess.run(
        [tool("docker-compose"), "-f", str(path), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=path.parent,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    result = compose_config(COMPOSE)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_has_every_role_and_its_dependencies(compose) -> None:
    services = compose["services"]
    assert set(services) == IMGSERVER_ROLES | {
        "nginx",
        "redis",
        "rabbitmq",
        "minio",
        "minio-init",
        "prometheus",
        "grafana",
    }
    commands = {name: services[name]["command"] for name in IMGSERVER_ROLES}
    assert commands == {
        "web1": ["python", "-m", "imgserver", "serve"],
        "web2": ["python", "-m", "imgserver", "serve"],
        "urgent": ["python", "-m", "workers", "urgent"],
        "background": ["python", "-m", "workers", "background"],
    }
    images = {services[name]["image"] for name in IMGSERVER_ROLES}
    assert images == {"imgserver:latest"}  # one image for every role
    for name in IMGSERVER_ROLES:
        svc = services[name]
        assert svc["build"]["context"] == str(REPO)
        assert svc["depends_on"] == {
            "redis": {"condition": "service_healthy"},
            "rabbitmq": {"condition": "service_healthy"},
            "minio-init": {"condition": "service_completed_successfully"},
        }
        assert svc["init"] is True
        assert svc["read_only"] is True
    assert services["nginx"]["depends_on"] == {
        "web1": {"condition": "service_healthy"},
        "web2": {"condition": "service_healthy"},
    }
    for name in ("redis", "rabbitmq", "minio", "nginx"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    # the workers are checked by the image's HEALTHCHECK, on their metrics port
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1]
    for ports in (services[s].get("ports", []) for s in services):
        for port in ports:
            assert port.startswith("127.0.0.1:"), port  # nothing published beyond loopback


def test_compose_settings_are_valid_and_agree(compose) -> None:
    services = compose["services"]
    for name in IMGSERVER_ROLES:
        settings = settings_from(services[name]["environment"])
        assert not settings.embedded
        assert settings.amqp_queue_type == "quorum"
        assert settings.s3_bucket == "imgserver"
        assert settings.s3_endpoint_url == "http://minio:9000"
        assert (settings.worker_metrics_port != 0) == (name in ("urgent", "background")), name
    # the bucket the init job makes is the one the service uses
    assert "local/imgserver" in " ".join(services["minio-init"]["entrypoint"])
    env = services["web1"]["environment"]
    assert env["AWS_ACCESS_KEY_ID"] == services["minio"]["environment"]["MINIO_ROOT_USER"]
    secret = services["minio"]["environment"]["MINIO_ROOT_PASSWORD"]
    assert env["AWS_SECRET_ACCESS_KEY"] == secret
    # the AMQP user and vhost are the ones rabbitmq/definitions.json creates
    definitions = json.loads((DEPLOY / "rabbitmq" / "definitions.json").read_text())
    amqp = re.match(r"amqp://(\w+):\w+@rabbitmq:5672/(\w+)$", env["IMGSERVER_AMQP_URL"])
    assert amqp is not None
    assert amqp.group(1) in {u["name"] for u in definitions["users"]}
    assert amqp.group(2) in {v["name"] for v in definitions["vhosts"]}


def test_compose_mounts_exist(compose) -> None:
    for svc in compose["services"].values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("/"):
                assert Path(source).exists(), source


def test_compose_nginx_conf_is_the_rendered_template() -> None:
    sys.path.insert(0, str(DEPLOY / "nginx"))
    try:
        import render  # deploy/nginx/render.py
    finally:
        sys.path.remove(str(DEPLOY / "nginx"))
    expected = render.render(
        ["web1:8080", "web2:8080"],
        listen="80",
        cache_dir="/var/cache/nginx/imgserver",
        cache_max_size="2g",
    )
    assert (DEPLOY / "compose" / "nginx.conf").read_text() == expected


def test_compose_observability_profile(compose, tmp_path: Path) -> None:
    """Prometheus's config (with the alert rules it mounts) passes ``promtool check config``;
    it scrapes every role on its port; Grafana is given the dashboard and the data source."""
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"]
    mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"] if "/" in v)
    config_text = Path(next(k for k, v in mounts.items() if v.endswith("prometheus.yml")))
    rules = next(k for k, v in mounts.items() if v.endswith("alerts.yaml"))
    assert Path(rules) == ALERTS
    config = yaml.safe_load(config_text.read_text())
    local = tmp_path / "prometheus.yml"
    local.write_text(config_text.read_text().replace("/etc/prometheus/alerts.yaml", rules))
    result = promtool("check", "config", str(local))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
    scraped = {
        (name, sd["port"])
        for job in config["scrape_configs"]
        for sd in job["dns_sd_configs"]
        for name in sd["names"]
    }
    assert scraped == {("web1", 8080), ("web2", 8080), ("urgent", 9100), ("background", 9100)}
    grafana = dict(v.split(":")[:2] for v in services["grafana"]["volumes"] if "/" in v)
    assert grafana[str(DASHBOARD)] == "/var/lib/grafana/dashboards/imgserver.json"
    provider_dir = Path(
        next(k for k, v in grafana.items() if v == "/etc/grafana/provisioning/dashboards")
    )
    (provider,) = yaml.safe_load((provider_dir / "imgserver.yaml").read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    source_dir = Path(
        next(k for k, v in grafana.items() if v == "/etc/grafana/provisioning/datasources")
    )
    (source,) = yaml.safe_load((source_dir / "prometheus.yaml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"


def test_compose_config_fails_on_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    text = COMPOSE.read_text().replace(
        "minio: {condition: service_healthy}", "minio: {condition: service_happy}"
    )
    broken.write_text(text)
    assert compose_config(broken).returncode != 0


# -- Kubernetes ---------------------------------------------------------------------------------

KEDA_SCHEMA: dict[str, Any] = {
    # The fields of KEDA v2 (keda.sh/v1alpha1) this repository uses, their types and required
    # ones, from KEDA's documentation (ScaledObject spec, the rabbitmq scaler,
    # TriggerAuthentication).
    # Not KEDA's own CRD schema: a field we add that is not listed here fails the test.
    "$defs": {
        "metadata": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "labels": {"type": "object"}},
            "required": ["name"],
            "additionalProperties": False,
        },
        "rabbitmq": {
            "type": "object",
            "properties": {
                "type": {"const": "rabbitmq"},
                "metadata": {
                    "type": "object",
                    "properties": {
                        "protocol": {"enum": ["amqp", "http", "auto"]},
                        "queueName": {"type": "string"},
                        "mode": {"enum": ["QueueLength", "MessageRate"]},
                        "value": {"type": "string", "pattern": r"^\d+(\.\d+)?$"},
                        "activationValue": {"type": "string", "pattern": r"^\d+(\.\d+)?$"},
                    },
                    "required": ["queueName", "mode", "value"],
                    "additionalProperties": False,
                },
                "authenticationRef": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"],
                    "additionalProperties": False,
                },
            },
            "required": ["type", "metadata", "authenticationRef"],
            "additionalProperties": False,
        },
    },
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "apiVersion": {"const": "keda.sh/v1alpha1"},
                "kind": {"const": "ScaledObject"},
                "metadata": {"$ref": "#/$defs/metadata"},
                "spec": {
                    "type": "object",
                    "properties": {
                        "scaleTargetRef": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}},
                            "required": ["name"],
                            "additionalProperties": False,
                        },
                        "minReplicaCount": {"type": "integer", "minimum": 0},
                        "maxReplicaCount": {"type": "integer", "minimum": 1},
                        "pollingInterval": {"type": "integer", "minimum": 1},
                        "cooldownPeriod": {"type": "integer", "minimum": 0},
                        "advanced": {
                            "type": "object",
                            "properties": {
                                "horizontalPodAutoscalerConfig": {
                                    "type": "object",
                                    "properties": {"behavior": {"type": "object"}},
                                    "additionalProperties": False,
                                }
                            },
                            "additionalProperties": False,
                        },
                        "triggers": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"$ref": "#/$defs/rabbitmq"},
                        },
                    },
                    "required": ["scaleTargetRef", "triggers"],
                    "additionalProperties": False,
                },
            },
            "required": ["apiVersion", "kind", "metadata", "spec"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "apiVersion": {"const": "keda.sh/v1alpha1"},
                "kind": {"const": "TriggerAuthentication"},
                "metadata": {"$ref": "#/$defs/metadata"},
                "spec": {
                    "type": "object",
                    "properties": {
                        "secretTargetRef": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "parameter": {"enum": ["host", "password", "username"]},
                                    "name": {"type": "string"},
                                    "key": {"type": "string"},
                                },
                                "required": ["parameter", "name", "key"],
                                "additionalProperties": False,
                            },
                        }
                    },
                    "required": ["secretTargetRef"],
                    "additionalProperties": False,
                },
            },
            "required": ["apiVersion", "kind", "metadata", "spec"],
            "additionalProperties": False,
        },
    ],
}


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_builtin_resources_pass_the_kubernetes_schemas_strictly() -> None:
    validated = []
    for doc in manifests():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)  # raises when invalid
        validated.append(f"{doc['kind']}/{doc['metadata']['name']}")
    assert sorted(validated) == sorted(
        [
            "Namespace/imgserver",
            "ConfigMap/imgserver-config",
            "Secret/imgserver-secrets",
            "Deployment/imgserver-web",
            "Service/imgserver",
            "PodDisruptionBudget/imgserver-web",
            "Deployment/imgserver-urgent",
            "PodDisruptionBudget/imgserver-urgent",
            "Deployment/imgserver-background",
            "PodDisruptionBudget/imgserver-background",
        ]
    )


def test_the_schemas_refuse_a_broken_deployment() -> None:
    web = by_kind(manifests(), "Deployment")["imgserver-web"]
    typo = copy.deepcopy(web)
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSIONS[0], strict=True)
    wrong_type = copy.deepcopy(web)
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, K8S_VERSIONS[0], strict=True)


def test_kubernetes_validate_has_no_schema_for_keda() -> None:
    """Why KEDA's objects get a schema of their own below: the tool cannot check CRDs."""
    scaled = by_kind(manifests(), "ScaledObject")["imgserver-urgent"]
    with pytest.raises(SchemaNotFoundError):
        kubernetes_validate.validate(scaled, K8S_VERSIONS[1], strict=True)


def test_keda_objects_pass_their_schema_and_refuse_a_broken_one() -> None:
    keda = [d for d in manifests() if d["apiVersion"].startswith("keda.sh/")]
    assert sorted(d["kind"] for d in keda) == [
        "ScaledObject",
        "ScaledObject",
        "TriggerAuthentication",
    ]
    for doc in keda:
        jsonschema.validate(doc, KEDA_SCHEMA)
    broken = copy.deepcopy(by_kind(keda, "ScaledObject")["imgserver-urgent"])
    broken["spec"]["triggers"][0]["metadata"]["queueLength"] = "10"  # a removed, old field
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, KEDA_SCHEMA)


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_kubernetes_references_agree() -> None:
    docs = manifests()
    deployments = by_kind(docs, "Deployment")
    configmaps, secrets = by_kind(docs, "ConfigMap"), by_kind(docs, "Secret")
    assert set(deployments) == {"imgserver-web", "imgserver-urgent", "imgserver-background"}
    for name, dep in deployments.items():
        assert dep["spec"]["selector"]["matchLabels"] == pod_labels(dep), name
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] in ports, (name, probe)
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert "memory" in resources["limits"], name
        env: dict[str, str] = {}
        for ref in container["envFrom"]:
            if "configMapRef" in ref:
                env |= configmaps[ref["configMapRef"]["name"]]["data"]
            else:
                env |= secrets[ref["secretRef"]["name"]]["stringData"]
        settings = settings_from(env)  # every value is one the service accepts
        assert settings.amqp_queue_type == "quorum"
        if name == "imgserver-web":
            assert container["command"] == ["python", "-m", "imgserver", "serve"]
            assert ports["http"] == settings.port
        else:
            role = name.removeprefix("imgserver-")
            assert container["command"] == ["python", "-m", "workers", role]
            assert ports["metrics"] == settings.worker_metrics_port
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/dev/shm" in mounts  # the runtime's 64 MB is too small for sources
    for service in by_kind(docs, "Service").values():
        assert any(
            selects(service["spec"]["selector"], pod_labels(d)) for d in deployments.values()
        )
    for name, pdb in by_kind(docs, "PodDisruptionBudget").items():
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert selects(selector, pod_labels(deployments[name])), name
        others = [d for n, d in deployments.items() if n != name]
        assert not any(selects(selector, pod_labels(d)) for d in others), name
    auth = by_kind(docs, "TriggerAuthentication")
    for name, scaled in by_kind(docs, "ScaledObject").items():
        target = scaled["spec"]["scaleTargetRef"]["name"]
        assert target == name and target in deployments
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["metadata"]["queueName"] == AMQP_QUEUE[name.removeprefix("imgserver-")]
        for ref in auth[trigger["authenticationRef"]["name"]]["spec"]["secretTargetRef"]:
            assert ref["key"] in secrets[ref["name"]]["stringData"]


# -- Prometheus and Grafana ---------------------------------------------------------------------

ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yaml"
DASHBOARD = DEPLOY / "grafana" / "imgserver.json"


def promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_unit_tests_the_alerts() -> None:
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {
        case["alertname"]
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    }
    assert len(tested) >= 5, tested


def test_promtool_fails_on_a_broken_rule_and_a_wrong_threshold(tmp_path: Path) -> None:
    text = ALERTS.read_text()
    (tmp_path / "alerts.yaml").write_text(text.replace("> 0.05", "> > 0.05"))
    assert promtool("check", "rules", str(tmp_path / "alerts.yaml")).returncode != 0
    (tmp_path / "alerts.yaml").write_text(text.replace("> 0.05", "> 0.5"))
    shutil.copy(ALERT_TESTS, tmp_path / "alerts_test.yaml")
    result = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "ImgserverHighErrorRatio" in result.stdout + result.stderr


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def all_queries() -> list[str]:
    return dashboard_queries() + [r["expr"] for r in alert_rules()]


# names of series every Prometheus target has, or that prometheus_client's process collector adds
OTHER_SERIES = {"up"}
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")
METRIC = re.compile(r"\b((?:imgserver|process)_[a-z_]+|up)\b(?!\s*\()")
SELECTOR = re.compile(r"\b([a-z_]+)\s*(?:=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def referenced(query: str) -> tuple[set[str], set[str]]:
    """The metric names and label names a query uses."""
    names = set(METRIC.findall(query))
    labels = set(SELECTOR.findall(query))
    for group in GROUPING.findall(query):
        labels |= {x.strip() for x in group.split(",") if x.strip()}
    return names, labels


def served_families() -> dict[str, set[str]]:
    """Every metric family imgserver/metrics.py declares, with its label names."""
    families: dict[str, set[str]] = {}
    for metric in Metrics().registry.collect():
        labels = set()
        for sample in metric.samples:
            labels |= set(sample.labels)
        families[metric.name] = labels
    for attr in vars(Metrics()).values():
        if hasattr(attr, "_labelnames"):
            families[family(attr._name)] = set(attr._labelnames) | {"le"}
    return families


def test_every_query_uses_metrics_and_labels_that_exist() -> None:
    families = served_families()
    target_labels = {"job", "instance"}
    assert len(dashboard_queries()) >= 20
    for query in all_queries():
        names, labels = referenced(query)
        assert names, query
        for name in names - OTHER_SERIES:
            assert family(name) in families, (name, query)
        known = set().union(*(families.get(family(n), set()) for n in names)) | target_labels
        assert labels <= known, (labels - known, query)


def test_outcome_labels_in_queries_are_error_codes() -> None:
    codes = {cls.code for cls in ImgServerError.__subclasses__()} | {"ok", "cached", "retried"}
    for query in all_queries():
        for value in re.findall(r'outcome\s*[=!]~?\s*"([^"]*)"', query):
            for alternative in value.split("|"):
                if ".*" in alternative:
                    prefix = alternative.removesuffix(".*")
                    assert any(c.startswith(prefix) for c in codes), (alternative, query)
                else:
                    assert alternative in codes, (alternative, query)


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job"}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            for target in panel["targets"]:
                assert 'job=~"$job"' in target["expr"], panel["title"]
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for wanted in ("hit ratio", "miss latency", "queue depth", "error code", "source fetch", "rss"):
        assert wanted in titles, wanted


# -- Dockerfile ---------------------------------------------------------------------------------


Instruction = tuple[str, tuple[str, ...], tuple[str, ...]]  # (instruction, flags, arguments)


def dockerfile_stages() -> dict[str, list[Instruction]]:
    """The Dockerfile's instructions by stage, parsed by BuildKit's own parser (the Go one,
    through the ``dockerfile`` package): a syntax error fails here."""
    stages: dict[str, list[Instruction]] = {}
    current: list[Instruction] = []
    for command in dockerfile.parse_file(str(REPO / "Dockerfile")):
        if command.cmd == "FROM":
            current = stages[command.value[-1]] = []
        current.append((command.cmd, command.flags, command.value))
    return stages


def copied(stage: list[Instruction]) -> Iterator[tuple[str, str]]:
    """(source, destination) of every COPY from the build context."""
    for instruction, flags, args in stage:
        if instruction == "COPY" and not any(f.startswith("--from") for f in flags):
            *sources, destination = args
            for source in sources:
                yield source, destination


def test_dockerfile_shape() -> None:
    stages = dockerfile_stages()
    assert list(stages) == ["build", "runtime"]
    for stage in stages.values():
        assert "-slim" in stage[0][2][0], stage[0]  # FROM python:…-slim-…
    runtime = stages["runtime"]
    users = [args[0] for ins, _, args in runtime if ins == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert users[-1].split(":")[0].isdigit()  # numeric: runAsNonRoot can check it
    (healthcheck,) = [(flags, args) for ins, flags, args in runtime if ins == "HEALTHCHECK"]
    assert healthcheck[1] == ("CMD", "python", "/app/healthcheck.py")
    assert "/app/healthcheck.py" in {dest for _, dest in copied(runtime)}
    assert not any(ins == "RUN" and "libvips" in args[0] for ins, _, args in runtime)
    ignored = (REPO / ".dockerignore").read_text().split()
    for stage in stages.values():
        for source, _ in copied(stage):
            assert (REPO / source).exists(), source
            assert source.rstrip("/") not in ignored, source


def test_the_images_healthcheck_asks_the_roles_port(start_service, tmp_path: Path) -> None:
    svc = start_service()
    script = [sys.executable, str(DEPLOY / "docker" / "healthcheck.py")]
    env = {**os.environ, "IMGSERVER_PORT": str(svc.port)}
    env.pop("IMGSERVER_WORKER_METRICS_PORT", None)
    ok = subprocess.run(script, env=env, capture_output=True, text=True, timeout=20)
    assert ok.returncode == 0, ok.stderr
    # a worker's port is asked when it is set: nothing listens there
    worker_env = {**env, "IMGSERVER_WORKER_METRICS_PORT": "9"}
    down = subprocess.run(script, env=worker_env, capture_output=True, text=True, timeout=20)
    assert down.returncode == 1
    assert "127.0.0.1:9/healthz" in down.stderr


@pytest.fixture
def build_context(tmp_path: Path) -> Iterator[Path]:
    """The files the build stage COPYs, where its WORKDIR would be."""
    workdir = tmp_path / "src"
    workdir.mkdir()
    for source, destination in copied(dockerfile_stages()["build"]):
        src = REPO / source
        target = workdir / destination if destination not in ("./", ".") else workdir
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, target / src.name)
    yield workdir


@pytest.mark.slow
def test_the_build_stage_installs_a_working_service(build_context: Path, tmp_path: Path) -> None:
    """The build stage's RUN steps, run as written (its ENV applied, the venv under tmp_path,
    BuildKit's cache mount dropped: pip's own cache stands in for it), then the installed
    service and worker answer --help and `check` from outside the source tree."""
    stages = dockerfile_stages()
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMGSERVER_", "PYTHON"))}
    bindir = tmp_path / "bin"  # `python` is the interpreter running the tests (the base's 3.11)
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    env["PATH"] = f"{bindir}:{env['PATH']}"
    runs = 0
    for ins, flags, args in stages["build"]:
        if ins == "ENV":  # (name, value) pairs
            env |= dict(zip(args[::2], args[1::2], strict=True))
            env["VENV"] = str(venv)
        elif ins == "RUN":
            assert all(f.startswith("--mount=type=cache") for f in flags), flags
            (command,) = args
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=build_context,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}{result.stderr}"
            runs += 1
    assert runs == 2
    python = venv / "bin" / "python"
    run_env = {**env, "IMGSERVER_GRAPHS_DIR": str(REPO / "graphs")}
    for args in (["-m", "imgserver", "--help"], ["-m", "workers", "--help"]):
        result = subprocess.run(
            [python, *args], cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
    check = subprocess.run(
        [python, "-m", "imgserver", "check"],
        cwd=tmp_path,
        env={**run_env, "IMGSERVER_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    where = subprocess.run(
        [python, "-c", "import imgserver, pyvips; print(imgserver.__file__, pyvips.API_mode)"],
        cwd=tmp_path,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr
    assert str(venv) in where.stdout  # the installed copy, not the source tree
