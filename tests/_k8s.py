"""Rendering what an operator applies: each overlay through `kubectl kustomize`, Jobs through
`seml deploy k8s`; and walking the rendered objects' pod templates."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from seml.cli import seml_command

REPO = Path(__file__).resolve().parents[1]
KUSTOMIZE = REPO / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (KUSTOMIZE / "overlays").iterdir() if p.is_dir())
# Recent Kubernetes releases whose OpenAPI schemas kubernetes-validate bundles.
K8S_VERSIONS = ("1.33.0", "1.35.0", "1.37.0")
WORKLOADS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")
TEES = ("simulation", "sgx", "coco", "cvm")
TEE_OPTIONS = {
    "simulation": [],
    "sgx": ["--sgx-epc", "128Mi"],
    "coco": ["--runtime-class", "kata-cc-isolation"],
    "cvm": ["--node-selector", "kubernetes.azure.com/security-type=ConfidentialVM"],
}


def kubectl() -> str:
    """kubectl from PATH, else the one scripts/install-system-deps.sh put in the venv."""
    found = shutil.which("kubectl") or shutil.which(
        "kubectl", path=str(Path(sys.executable).parent)
    )
    assert found, "kubectl is missing: `make test` installs it (scripts/install-system-deps.sh)"
    return found


def seml() -> list[str]:
    return seml_command()


@cache
def kustomize(path: Path) -> str:
    """What `kubectl apply -k PATH` would apply (rendered once per test run)."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def deploy_job(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*seml(), "deploy", "k8s", *args], capture_output=True, text=True, timeout=60, env=env
    )


def job_text(tee: str, *extra: str, env: dict[str, str] | None = None) -> str:
    """The Job `seml deploy k8s` renders for service train of session iris on `tee`."""
    if env is None:
        return _job_text(tee, *extra)
    return _render_job_text(tee, *extra, env=env)


@cache
def _job_text(tee: str, *extra: str) -> str:
    return _render_job_text(tee, *extra, env=None)


def _render_job_text(tee: str, *extra: str, env: dict[str, str] | None) -> str:
    done = deploy_job(
        "--session",
        "iris",
        "--service",
        "train",
        "--image",
        "registry.example.org/seml:0.1.0",
        "--tee",
        tee,
        *TEE_OPTIONS[tee],
        *extra,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod spec(s) a workload object runs."""
    kind = obj["kind"]
    if kind == "Pod":
        yield obj["spec"]
    elif kind == "CronJob":
        yield obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    elif kind in WORKLOADS:
        yield obj["spec"]["template"]["spec"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"], *pod.get("ephemeralContainers", [])]
