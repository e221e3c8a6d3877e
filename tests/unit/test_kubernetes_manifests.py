"""deploy/kubernetes: the manifests' structure, and that their probes, ports, grace period and
environment match what the pump really does — read from pump.config.model and the health
server, not restated here. The pump file in the ConfigMap is loaded by the pump's own loader
with the Secret's variables applied, so a key or a TYK_PMP_ name that matches nothing fails.

No schema validator can be had offline (kubeconform downloads its schemas at run time), so the
structure check is explicit: required fields and the known fields of the objects used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pump.config.load import load
from pump.config.model import Config, Telemetry
from pump.telemetry.health import HealthServer, Probe
from tests.helpers import ROOT

K8S = ROOT / "deploy" / "kubernetes"
CONTAINER_FIELDS = {
    "name", "image", "command", "args", "workingDir", "ports", "envFrom", "env", "resources", "resizePolicy", "restartPolicy",
    "volumeMounts", "volumeDevices", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "terminationMessagePath",
    "terminationMessagePolicy", "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty",
}  # fmt: skip
PROBE_FIELDS = {"httpGet", "tcpSocket", "exec", "grpc", "initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                "failureThreshold", "terminationGracePeriodSeconds"}  # fmt: skip
POD_FIELDS = {"containers", "initContainers", "volumes", "terminationGracePeriodSeconds", "serviceAccountName", "securityContext",
              "nodeSelector", "affinity", "tolerations", "restartPolicy", "imagePullSecrets", "topologySpreadConstraints"}  # fmt: skip
API_VERSIONS = {
    "Deployment": "apps/v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
}


def docs() -> list[dict[str, Any]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        out.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return out


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in docs() if d["kind"] == kind]


def pump_containers() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(deployment, pump container) for each Deployment that runs the pump."""
    out = []
    for dep in of_kind("Deployment"):
        spec = dep["spec"]["template"]["spec"]
        out.extend((dep, c) for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == "pump")
    return out


def pump_file() -> str:
    (cm,) = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == "tyk-pump-config"]
    return str(cm["data"]["pump.yaml"])


def pump_config(tmp_path: Path) -> Config:
    (secret,) = of_kind("Secret")
    path = tmp_path / "pump.yaml"
    path.write_text(pump_file())
    config, warnings = load(path, environ=dict(secret["stringData"]))
    assert warnings == [], "every key and every TYK_PMP_ variable of the manifests means something to the pump"
    return config


def test_every_document_is_a_known_kind_with_its_required_fields() -> None:
    kinds = [d["kind"] for d in docs()]
    assert sorted(set(kinds)) == sorted(API_VERSIONS)
    for d in docs():
        assert d["apiVersion"] == API_VERSIONS[d["kind"]], d["kind"]
        if d["kind"] == "Kustomization":
            assert {Path(r).name for r in d["resources"]} == {p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"}
            continue
        assert d["metadata"]["name"]
    for dep in of_kind("Deployment"):
        spec = dep["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        pod = spec["template"]["spec"]
        assert set(pod) <= POD_FIELDS, set(pod) - POD_FIELDS
        volumes = {v["name"] for v in pod.get("volumes", [])}
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            assert set(c) <= CONTAINER_FIELDS, (c["name"], set(c) - CONTAINER_FIELDS)
            assert c["name"] and c["image"]
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if probe in c:
                    assert set(c[probe]) <= PROBE_FIELDS
                    assert c[probe]["httpGet"]["port"] in ports, f"{c['name']} {probe} names a port the container does not declare"
            assert {m["name"] for m in c.get("volumeMounts", [])} <= volumes
    for svc in of_kind("Service"):
        (dep,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == svc["metadata"]["name"]]
        assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
        names = {p["name"] for _, c in pump_containers() for p in c["ports"]}
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= names


def test_the_sidecar_is_native_and_the_standalone_pump_is_a_plain_container() -> None:
    placed = {}
    for dep, c in pump_containers():
        pod = dep["spec"]["template"]["spec"]
        placed[dep["metadata"]["name"]] = "init" if c in pod.get("initContainers", []) else "main"
        if placed[dep["metadata"]["name"]] == "init":
            assert c["restartPolicy"] == "Always", "a native sidecar is an init container with restartPolicy: Always"
            assert any(x["name"] == "gateway" for x in pod["containers"])
    assert placed == {"tyk-gateway": "init", "tyk-pump": "main"}


def test_probes_and_ports_match_the_pumps_defaults_and_its_file(tmp_path: Path) -> None:
    config = pump_config(tmp_path)
    fields = Config.model_fields
    assert config.health_check_endpoint_port == fields["health_check_endpoint_port"].default
    health = HealthServer(Probe(lambda: True, lambda: (True, {})), registry=None, health_path=config.health_check_endpoint_name)  # type: ignore[arg-type]
    prom_port = int(config.pumps["prometheus"].meta["listen_address"].rsplit(":", 1)[1])
    for dep, c in pump_containers():
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["pump-health"] == config.health_check_endpoint_port
        assert ports["analytics"] == prom_port
        for probe in ("livenessProbe", "startupProbe", "readinessProbe"):
            path = c[probe]["httpGet"]["path"]
            assert health.respond("GET", path)[0] == 200, f"{dep['metadata']['name']} {probe}: the pump does not serve {path}"
        assert c["livenessProbe"]["httpGet"]["path"] == "/" + config.health_check_endpoint_name
        assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert c["args"][-1] == "/etc/pump/pump.yaml" and c["volumeMounts"][0]["mountPath"] == "/etc/pump"


def test_grace_period_is_above_the_shutdown_timeout(tmp_path: Path) -> None:
    timeout = pump_config(tmp_path).telemetry.shutdown_timeout
    assert timeout == Telemetry.model_fields["shutdown_timeout"].default, "the ConfigMap keeps the default (say so if it changes)"
    for dep, _ in pump_containers():
        grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= timeout + 10, f"{dep['metadata']['name']}: {grace}s leaves no room after shutdown_timeout {timeout}s"


@pytest.mark.parametrize("deployment", ["tyk-gateway", "tyk-pump"])
def test_secrets_reach_the_pump_as_tyk_pmp_variables(tmp_path: Path, deployment: str) -> None:
    (secret,) = of_kind("Secret")
    assert all(k.startswith("TYK_PMP_") for k in secret["stringData"])
    (c,) = [c for dep, c in pump_containers() if dep["metadata"]["name"] == deployment]
    assert [e["secretRef"]["name"] for e in c["envFrom"]] == [secret["metadata"]["name"]]
    config = pump_config(tmp_path)
    assert config.analytics_storage_config.password.get_secret_value() == secret["stringData"]["TYK_PMP_ANALYTICSSTORAGECONFIG_PASSWORD"]
    assert "change-me" not in pump_file(), "no secret in the ConfigMap"
    assert (
        config.pumps["sql"].meta["connection_string"].get_secret_value() == secret["stringData"]["TYK_PMP_PUMPS_SQL_META_CONNECTIONSTRING"]
    )


def test_resources_are_requested() -> None:
    for dep, c in pump_containers():
        req = c["resources"]["requests"]
        assert req["cpu"] and req["memory"].endswith("Mi") and int(req["memory"][:-2]) >= 150, dep["metadata"]["name"]
        assert int(c["resources"]["limits"]["memory"][:-2]) > int(req["memory"][:-2])
