"""Every manifest an operator applies: valid for recent Kubernetes, restricted, secret-free."""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from _k8s import (
    K8S_VERSIONS,
    KUSTOMIZE,
    OVERLAYS,
    REPO,
    TEES,
    WORKLOADS,
    containers,
    documents,
    job_text,
    kustomize,
    pod_specs,
)
from seml.cas import init_state_dir
from seml.deploy import CAS_CONFIGMAP, PLATFORM_SECRET, STORAGE_CONFIGMAP, VOLUMES_CLAIM
from seml.runtime import init_platform_key

DOCS = REPO / "docs" / "deploy-kubernetes.md"


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every overlay through kubectl kustomize, every TEE's Job through seml deploy k8s."""
    out = {
        f"overlay/{name}": documents(kustomize(KUSTOMIZE / "overlays" / name)) for name in OVERLAYS
    }
    out.update({f"job/{tee}": documents(job_text(tee)) for tee in TEES})
    return out


def _all(rendered: dict[str, list[dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [(where, obj) for where, objs in rendered.items() for obj in objs]


def test_there_is_something_to_check(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert set(OVERLAYS) == {"dev", "production"}
    kinds = {obj["kind"] for _, obj in _all(rendered)}
    assert {"StatefulSet", "Service", "NetworkPolicy", "PodDisruptionBudget", "Job"} <= kinds
    assert {"PersistentVolumeClaim", "ConfigMap", "Namespace"} <= kinds


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_validates_strictly(
    rendered: dict[str, list[dict[str, Any]]], version: str
) -> None:
    for where, obj in _all(rendered):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            pytest.fail(f"{where}: {obj['kind']}/{obj['metadata']['name']} at {path}: {e.message}")


def test_the_validator_rejects_what_a_cluster_would() -> None:
    """Strict validation is on: a misspelt field and a wrong type both fail."""
    job = documents(job_text("simulation"))[0]
    pod = job["spec"]["template"]["spec"]
    pod["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFilesytem"):
        kubernetes_validate.validate(job, K8S_VERSIONS[-1], strict=True)
    del pod["containers"][0]["securityContext"]["readOnlyRootFilesytem"]
    job["spec"]["backoffLimit"] = "none"
    with pytest.raises(kubernetes_validate.ValidationError, match="'none' is not of type"):
        kubernetes_validate.validate(job, K8S_VERSIONS[0], strict=True)


def _security_problems(pod: dict[str, Any]) -> list[str]:
    problems = []
    ctx = pod.get("securityContext", {})
    if ctx.get("runAsNonRoot") is not True:
        problems.append("pod runAsNonRoot is not true")
    if ctx.get("runAsUser", 1) == 0:
        problems.append("pod runs as uid 0")
    if ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile is not RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("service account token is mounted")
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            problems.append(f"{host} is set")
    problems += [f"volume {v['name']} is a hostPath" for v in pod["volumes"] if "hostPath" in v]
    for c in containers(pod):
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: privilege escalation allowed")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem writable")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc["capabilities"].get("add"):
            problems.append(f"{name}: capabilities not all dropped")
        if sc.get("runAsUser", 1) == 0 or sc.get("runAsNonRoot") is False:
            problems.append(f"{name}: runs as root")
        if sc.get("seccompProfile", {}).get("type", "RuntimeDefault") != "RuntimeDefault":
            problems.append(f"{name}: seccomp profile loosened")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for what in ("cpu", "memory"):
                if what not in res.get(kind, {}):
                    problems.append(f"{name}: no {what} {kind}")
        if c.get("image", "").endswith(":latest") or ":" not in c.get("image", ""):
            problems.append(f"{name}: image {c.get('image')!r} is not pinned to a tag")
    return problems


def test_every_workload_is_restricted(rendered: dict[str, list[dict[str, Any]]]) -> None:
    checked = 0
    for where, obj in _all(rendered):
        for pod in pod_specs(obj):
            problems = _security_problems(pod)
            assert not problems, f"{where} {obj['kind']}/{obj['metadata']['name']}: {problems}"
            checked += 1
    # the attestation service in each overlay, SeaweedFS in dev, one Job per TEE
    assert checked == len(OVERLAYS) + 1 + len(TEES)


def test_the_security_check_sees_a_dropped_setting(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """The check above fails when any one of the settings is removed (it can fail)."""
    cas = next(o for _, o in _all(rendered) if o["kind"] == "StatefulSet")
    pod = cas["spec"]["template"]["spec"]
    assert _security_problems(pod) == []
    edits = {
        "readOnlyRootFilesystem": "cas: root filesystem writable",
        "allowPrivilegeEscalation": "cas: privilege escalation allowed",
        "capabilities": "cas: capabilities not all dropped",
    }
    for key, problem in edits.items():
        saved = pod["containers"][0]["securityContext"].pop(key)
        assert problem in _security_problems(pod)
        pod["containers"][0]["securityContext"][key] = saved
    saved = pod["securityContext"].pop("seccompProfile")
    assert "pod seccompProfile is not RuntimeDefault" in _security_problems(pod)
    pod["securityContext"]["seccompProfile"] = saved
    saved = pod["containers"][0]["resources"].pop("limits")
    assert "cas: no memory limits" in _security_problems(pod)
    pod["containers"][0]["resources"]["limits"] = saved


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_long_running_workload_has_probes_service_policy_and_budget(overlay: str) -> None:
    objs = documents(kustomize(KUSTOMIZE / "overlays" / overlay))
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in objs:
        by_kind.setdefault(obj["kind"], []).append(obj)
    namespaces = by_kind["Namespace"]
    assert len(namespaces) == 1
    assert namespaces[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for sts in by_kind["StatefulSet"]:
        labels = sts["spec"]["template"]["metadata"]["labels"]
        pod = sts["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert c.get("readinessProbe") and c.get("livenessProbe"), sts["metadata"]["name"]
        assert sts["spec"]["volumeClaimTemplates"], "state on a persistent volume"

        def selects(obj: dict[str, Any], labels: dict[str, str] = labels) -> bool:
            sel = obj["spec"].get("selector") or obj["spec"].get("podSelector") or {}
            sel = sel.get("matchLabels", sel)
            return bool(sel) and all(labels.get(k) == v for k, v in sel.items())

        ports = {p["containerPort"] for p in c["ports"]}
        assert [s for s in by_kind["Service"] if selects(s)], "a Service"
        assert [b for b in by_kind["PodDisruptionBudget"] if selects(b)], "a PDB"
        (policy,) = [n for n in by_kind["NetworkPolicy"] if selects(n)]
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        admitted = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert admitted == ports, f"{sts['metadata']['name']} admits only its own port"
    (cas,) = [s for s in by_kind["StatefulSet"] if s["metadata"]["name"] == "seml-cas"]
    (c,) = cas["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert cas["spec"]["replicas"] == 1, "one writer on the SQLite state"
    assert c["image"] != "seml", "the overlay sets the image"


# -- secrets --------------------------------------------------------------------------------


def _referenced(objs: list[dict[str, Any]], kind: str) -> set[str]:
    """Names of Secrets ("secret") or ConfigMaps ("configMap") the pod specs refer to."""
    names: set[str] = set()
    for obj in objs:
        for pod in pod_specs(obj):
            for v in pod["volumes"]:
                if kind == "secret" and "secret" in v:
                    names.add(v["secret"]["secretName"])
                if kind == "configMap" and "configMap" in v:
                    names.add(v["configMap"]["name"])
            for c in containers(pod):
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get(f"{kind}KeyRef")
                    if ref:
                        names.add(ref["name"])
                for e in c.get("envFrom", []):
                    if f"{kind}Ref" in e:
                        names.add(e[f"{kind}Ref"]["name"])
            names.update(s["name"] for s in pod.get("imagePullSecrets", []) if kind == "secret")
    return names


def test_no_secret_is_rendered_and_every_referenced_one_is_documented(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objs = [obj for _, obj in _all(rendered)]
    assert not [o for o in objs if o["kind"] == "Secret"], "Secrets are created with kubectl"
    for o in objs:
        for pod in pod_specs(o):
            for c in containers(pod):
                plain = [e["name"] for e in c.get("env", []) if "value" in e]
                assert plain == [], f"{o['metadata']['name']}: env {plain} given as plain values"
    secrets = _referenced(objs, "secret")
    assert secrets == {
        "seml-cas-keys",
        "seml-cas-tls",
        "seml-storage",
        "seml-seaweedfs-s3",
        PLATFORM_SECRET,
    }
    docs = DOCS.read_text()
    for name in secrets:
        assert re.search(rf"kubectl .*create secret \w+ {name}\b", docs), f"{name}: not in docs"


def test_referenced_configmaps_and_claims_exist_in_every_overlay() -> None:
    jobs = [documents(job_text(tee))[0] for tee in TEES]
    for overlay in OVERLAYS:
        objs = documents(kustomize(KUSTOMIZE / "overlays" / overlay))
        configmaps = {o["metadata"]["name"] for o in objs if o["kind"] == "ConfigMap"}
        claims = {o["metadata"]["name"] for o in objs if o["kind"] == "PersistentVolumeClaim"}
        assert {CAS_CONFIGMAP, STORAGE_CONFIGMAP} <= configmaps, overlay
        assert _referenced(jobs, "configMap") <= configmaps, overlay
        assert VOLUMES_CLAIM in claims, overlay
        (pin,) = [
            o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == CAS_CONFIGMAP
        ]
        assert set(pin["data"]) == {"SEML_CAS", "SEML_CAS_FINGERPRINT"}


def test_no_secret_value_reaches_a_rendered_manifest(tmp_path: Path) -> None:
    """Real key material and credentials lying around (as on an operator's machine, in the
    environment and the working directory) appear in nothing rendered."""
    now = dt.datetime.now(dt.UTC)
    init_state_dir(tmp_path / "cas-secrets", hosts=["seml-cas"], now=now)
    init_platform_key(tmp_path / "platform.key")
    canary = "canary-" + os.urandom(12).hex()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": canary + "-id",
        "AWS_SECRET_ACCESS_KEY": canary + "-secret",
        "SEML_CRYPT_PASSWORD": canary + "-password",
        "SEML_PLATFORM_KEY": str(tmp_path / "platform.key"),
    }
    needles = [canary.encode()]
    for name in ("master.key", "identity.key", "tls.key"):
        raw = (tmp_path / "cas-secrets" / name).read_bytes()
        needles += [raw, raw.hex().encode(), base64.b64encode(raw)]
    needles.append((tmp_path / "platform.key").read_text().split()[1].encode())
    texts = [job_text(tee, env=env) for tee in TEES]
    texts += [kustomize(KUSTOMIZE / "overlays" / name) for name in OVERLAYS]
    for text in texts:
        blob = text.encode()
        assert b"PRIVATE KEY" not in blob
        assert [n[:16] for n in needles if n in blob] == []


def test_the_repository_deploy_tree_holds_no_key_material() -> None:
    for path in (REPO / "deploy").rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert "PRIVATE KEY" not in text, path
            assert not re.search(r"^\s*(data|stringData):", text, re.M), path
    for env_file in (KUSTOMIZE / "overlays").rglob("*.env"):
        settings = [ln for ln in env_file.read_text().splitlines() if not ln.startswith("#")]
        assert not re.search(r"(?i)secret|password|AWS_", "\n".join(settings)), env_file


def test_workload_kinds_are_all_known(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """A workload kind the walkers above do not know would escape the checks."""
    known = {*WORKLOADS, "Namespace", "ServiceAccount", "Service", "ConfigMap"}
    known |= {"PersistentVolumeClaim", "NetworkPolicy", "PodDisruptionBudget"}
    assert {obj["kind"] for _, obj in _all(rendered)} <= known
