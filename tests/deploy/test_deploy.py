"""The deployment files: the Kubernetes manifests and the Dockerfile's command.

No container engine runs here: the image build is documented (docs/deploy.md), the
manifests are read as YAML and checked for the probes and the drain, and the image's
command is run as it is, with the addresses made local, and must serve ``/healthz``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client import CollectorRegistry
from support.served_gateway import OMNIVOICE, running

from omnivoice.telemetry.metrics import GatewayMetrics

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"


def manifests() -> dict[str, dict[str, Any]]:
    documents = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            documents[document["kind"]] = document
    return documents


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (gateway,) = deployment["spec"]["template"]["spec"]["containers"]
    return gateway


def option(args: list[str], name: str) -> str:
    for arg in args:
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} is not set in {args}")


def test_the_manifests_are_a_deployment_service_and_autoscaler_that_fit_together() -> None:
    found = manifests()
    assert set(found) == {"Deployment", "Service", "HorizontalPodAutoscaler", "Kustomization"}
    listed = set(found["Kustomization"]["resources"])
    assert listed == {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}

    deployment, service, hpa = (
        found["Deployment"],
        found["Service"],
        found["HorizontalPodAutoscaler"],
    )
    pod = deployment["spec"]["template"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    gateway = container(deployment)
    ports = {port["name"]: port["containerPort"] for port in gateway["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
    args = gateway["args"]
    assert args[:2] == ["omnivoice", "serve"]
    assert int(option(args, "--port")) == ports["http"]
    assert int(option(args, "--metrics-port")) == ports["metrics"]

    # Readiness on /readyz (false while draining or at the call limit), liveness on /healthz.
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # The preStop pause, then SIGTERM's drain, fit in the grace period.
    pause = gateway["lifecycle"]["preStop"]["exec"]["command"]
    pause_s = float(re.search(r"sleep\((\d+(?:\.\d+)?)\)", " ".join(pause)).group(1))  # type: ignore[union-attr]
    drain_s = float(option(args, "--drain-timeout"))
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert pause_s + drain_s < grace
    assert option(args, "--max-calls")
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0

    # The autoscaler scales this Deployment on a metric the gateway exports.
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    (metric,) = hpa["spec"]["metrics"]
    name = metric["pods"]["metric"]["name"]
    assert name == GatewayMetrics(CollectorRegistry()).active_calls.describe()[0].name
    assert hpa["spec"]["minReplicas"] >= 2


def test_gateway_metrics_can_be_built_in_a_registry_of_their_own() -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    GatewayMetrics(registry).active_calls.inc()
    assert registry.get_sample_value("omnivoice_active_calls") == 1


def dockerfile_command() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    (line,) = [line for line in text.splitlines() if line.startswith("CMD ")]
    command: list[str] = json.loads(line[len("CMD ") :])
    return command


def test_the_dockerfile_runs_as_a_user_and_its_command_serves_healthz() -> None:
    text = (ROOT / "Dockerfile").read_text()
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in {"0", "root"}
    command = dockerfile_command()
    assert command[:2] == ["omnivoice", "serve"]
    assert "--host" in command
    assert command[command.index("--host") + 1] == "0.0.0.0"  # reachable from outside

    # The same command here: loopback and free ports instead of 0.0.0.0:8080 and 9100.
    local = [OMNIVOICE, *command[1:]]
    local[local.index("--host") + 1] = "127.0.0.1"
    for flag in ("--port", "--metrics-port"):
        local[local.index(flag) + 1] = "0"
    with running(local) as gateway:
        health = httpx.get(f"{gateway.url}/healthz", timeout=10)
        metrics = httpx.get(gateway.metrics_url, timeout=10)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert "omnivoice_active_calls 0.0" in metrics.text


def test_the_image_copies_only_what_the_dockerignore_lets_in() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (?!--)(\S+) ", dockerfile, re.MULTILINE)
    assert copied
    assert set(copied) <= kept
