"""A session's cloud service as a Kubernetes Job: `seml run` in the seml image.

Pure: a `JobSpec` in, the Job manifest (a dict) out. The Job refers to what the Kustomize base
in deploy/kubernetes/ creates (the PVC for protected volumes, the ConfigMap with the attestation
service's URL and pin) and to Secrets the operator creates with `kubectl create secret`; it never
carries a secret value itself.

The TEE a cluster offers is chosen here:

* ``sgx``: Intel SGX through the SGX device plugin (`sgx.intel.com/epc` and friends); seml must
  run inside Gramine in the image for quotes (``/dev/attestation``).
* ``coco``: confidential containers, a pod in its own confidential VM (`runtimeClassName`, e.g.
  ``kata-cc`` or AKS's ``kata-cc-isolation``); quotes through configfs-tsm in the guest.
* ``cvm``: confidential VM node pools, chosen by node selector (AKS:
  ``kubernetes.azure.com/security-type=ConfidentialVM``).
* ``simulation``: no TEE; software evidence signed by a simulated platform key from a Secret.
  Labelled and annotated as simulated; the session must tolerate ``simulation``.

Real TEE Jobs run `seml run --no-simulation`: without the hardware interface they fail rather
than fall back to software evidence.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from seml.errors import UsageError

__all__ = [
    "CAS_CONFIGMAP",
    "PLATFORM_SECRET",
    "RUN_AS",
    "STORAGE_CONFIGMAP",
    "STORAGE_SECRET",
    "VOLUMES_CLAIM",
    "JobSpec",
    "Tee",
    "job_name",
    "render_job",
]

# Names shared with deploy/kubernetes/ (a test checks both sides agree).
CAS_CONFIGMAP = "seml-cas"  # SEML_CAS, SEML_CAS_FINGERPRINT
STORAGE_CONFIGMAP = "seml-storage"  # SEML_S3_ENDPOINT (absent: AWS, or file:// storage)
# Names of Secrets (never their values): AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; platform.key.
STORAGE_SECRET = "seml-storage"  # noqa: S105
PLATFORM_SECRET = "seml-platform"  # noqa: S105 - simulation only
VOLUMES_CLAIM = "seml-volumes"
_STORAGE_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")  # keys of the storage Secret
RUN_AS = 10001  # the image's seml user

_DATA = "/var/lib/seml"
_PLATFORM_DIR = "/var/run/seml/platform"
_PREFIX = "seml"  # label and annotation prefix
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SELECTOR_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*)?$")
SIMULATED_NOTE = (
    "SIMULATED attestation: no TEE; the evidence is made in software and proves nothing "
    "about where this code runs"
)


class Tee(enum.StrEnum):
    SIMULATION = "simulation"
    SGX = "sgx"
    COCO = "coco"
    CVM = "cvm"


@dataclass(frozen=True)
class JobSpec:
    session: str
    service: str
    image: str
    tee: Tee = Tee.SIMULATION
    namespace: str | None = None
    session_hash: str | None = None
    code: Sequence[str] = ()
    sgx_epc: str = "64Mi"
    runtime_class: str = "kata-cc"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    workspace_size: str = "1Gi"
    cpu: tuple[str, str] = ("500m", "2")  # request, limit
    memory: tuple[str, str] = ("1Gi", "4Gi")
    storage_secret: str | None = STORAGE_SECRET  # None: no credentials (file:// storage)
    image_pull_secret: str | None = None
    deadline_seconds: int = 6 * 3600


def _dns_name(*parts: str) -> str:
    """A DNS-1123 label made of `parts`; suffixed with a digest when it had to be changed."""
    wanted = "-".join(parts)
    name = re.sub(r"[^a-z0-9-]+", "-", wanted.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if name == wanted and len(name) <= 63:
        return name
    digest = hashlib.sha256(wanted.encode()).hexdigest()[:8]
    return f"{name[: 63 - 9].rstrip('-')}-{digest}"


def job_name(session: str, service: str) -> str:
    return _dns_name("seml", session, service)


def _label(value: str) -> str:
    if len(value) <= 63 and _LABEL_VALUE.match(value):
        return value
    return _dns_name(value)


def _check(spec: JobSpec) -> None:
    from seml.policy._model import NAME_PATTERN

    for what, value in (("session", spec.session), ("service", spec.service)):
        if not re.match(NAME_PATTERN, value):
            raise UsageError(f"--{what} {value!r} is not a session or service name")
    if not spec.image or any(c.isspace() for c in spec.image):
        raise UsageError(f"--image {spec.image!r} is not an image reference")
    if spec.namespace is not None and not _DNS_LABEL.match(spec.namespace):
        raise UsageError(f"--namespace {spec.namespace!r} is not a Kubernetes namespace name")
    quantities = [
        ("--sgx-epc", spec.sgx_epc),
        ("--workspace-size", spec.workspace_size),
        ("--cpu", spec.cpu[0]),
        ("--cpu", spec.cpu[1]),
        ("--memory", spec.memory[0]),
        ("--memory", spec.memory[1]),
    ]
    for option, value in quantities:
        if not _QUANTITY.match(value):
            raise UsageError(f"{option} {value!r} is not a Kubernetes quantity (e.g. 512Mi, 2)")
    if spec.tee is Tee.COCO and not _DNS_LABEL.match(spec.runtime_class):
        raise UsageError(f"--runtime-class {spec.runtime_class!r} is not a RuntimeClass name")
    if spec.tee is Tee.CVM and not spec.node_selector:
        raise UsageError("--tee cvm needs a --node-selector KEY=VALUE naming the CVM node pool")
    for key, value in spec.node_selector.items():
        if not _SELECTOR_KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
            raise UsageError(f"--node-selector key {key!r} is not a label key")
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            raise UsageError(f"--node-selector value {value!r} is not a label value")
    for secret in (spec.storage_secret, spec.image_pull_secret):
        if secret is not None and not _DNS_LABEL.match(secret):
            raise UsageError(f"{secret!r} is not a Secret name")
    if spec.deadline_seconds < 1:
        raise UsageError("--deadline must be at least 1 second")


def _command(spec: JobSpec) -> list[str]:
    args = ["run", "--session", spec.session, "--service", spec.service]
    args += ["--volumes-dir", f"{_DATA}/volumes"]
    if spec.session_hash:
        args += ["--session-hash", spec.session_hash]
    for path in spec.code:
        args += ["--code", path]
    if spec.tee is Tee.SIMULATION:
        args += ["--simulation", "--platform-key", f"{_PLATFORM_DIR}/platform.key"]
    else:
        args.append("--no-simulation")
    if spec.storage_secret:  # the workload gets only what `seml run` passes on by name
        args += [a for name in _STORAGE_KEYS for a in ("--pass-env", name)]
    return args


def _env(spec: JobSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": name, "valueFrom": {"configMapKeyRef": {"name": CAS_CONFIGMAP, "key": name}}}
        for name in ("SEML_CAS", "SEML_CAS_FINGERPRINT")
    ]
    env.append(
        {
            "name": "SEML_S3_ENDPOINT",
            "valueFrom": {
                "configMapKeyRef": {
                    "name": STORAGE_CONFIGMAP,
                    "key": "SEML_S3_ENDPOINT",
                    "optional": True,
                }
            },
        }
    )
    if spec.storage_secret:
        env += [
            {
                "name": name,
                "valueFrom": {"secretKeyRef": {"name": spec.storage_secret, "key": name}},
            }
            for name in _STORAGE_KEYS
        ]
    return env


def _tee_parts(
    spec: JobSpec,
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(pod spec fields, resource limits, volumes, volume mounts) that select the TEE."""
    pod: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if spec.tee is Tee.SGX:
        # Enclave page cache, plus the enclave and provisioning devices DCAP quoting needs
        # (Intel's admission webhook adds the latter two when it is installed; asking is safe).
        limits.update(
            {
                "sgx.intel.com/epc": spec.sgx_epc,
                "sgx.intel.com/enclave": 1,
                "sgx.intel.com/provision": 1,
            }
        )
    elif spec.tee is Tee.COCO:
        pod["runtimeClassName"] = spec.runtime_class
    elif spec.tee is Tee.SIMULATION:
        volumes.append(
            {
                "name": "platform-key",
                "secret": {
                    "secretName": PLATFORM_SECRET,
                    "defaultMode": 0o400,
                    "items": [{"key": "platform.key", "path": "platform.key"}],
                },
            }
        )
        mounts.append({"name": "platform-key", "mountPath": _PLATFORM_DIR, "readOnly": True})
    if spec.node_selector:
        pod["nodeSelector"] = dict(sorted(spec.node_selector.items()))
    return pod, limits, volumes, mounts


def render_job(spec: JobSpec) -> dict[str, Any]:
    """The Job manifest for one service of a session. Raises UsageError on bad input."""
    _check(spec)
    name = job_name(spec.session, spec.service)
    labels = {
        "app.kubernetes.io/name": "seml",
        "app.kubernetes.io/component": "service-job",
        "app.kubernetes.io/part-of": "seml",
        f"{_PREFIX}/session": _label(spec.session),
        f"{_PREFIX}/service": _label(spec.service),
        f"{_PREFIX}/tee": spec.tee.value,
        f"{_PREFIX}/simulated": "true" if spec.tee is Tee.SIMULATION else "false",
    }
    annotations = {f"{_PREFIX}/session": spec.session, f"{_PREFIX}/service": spec.service}
    if spec.tee is Tee.SIMULATION:
        annotations[f"{_PREFIX}/attestation"] = SIMULATED_NOTE
    pod_fields, tee_limits, tee_volumes, tee_mounts = _tee_parts(spec)
    container: dict[str, Any] = {
        "name": "service",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "args": _command(spec),
        "workingDir": _DATA,
        "env": _env(spec),
        "resources": {
            "requests": {"cpu": spec.cpu[0], "memory": spec.memory[0]},
            "limits": {"cpu": spec.cpu[1], "memory": spec.memory[1], **tee_limits},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": _DATA},
            {"name": "workspace", "mountPath": "/dev/shm"},  # noqa: S108 - the pod's own tmpfs
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
            *tee_mounts,
        ],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        **pod_fields,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": VOLUMES_CLAIM}},
            # Decrypted volumes live here while the command runs: memory, never a disk.
            {
                "name": "workspace",
                "emptyDir": {"medium": "Memory", "sizeLimit": spec.workspace_size},
            },
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
            *tee_volumes,
        ],
    }
    if spec.image_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": spec.image_pull_secret}]
    metadata: dict[str, Any] = {"name": name, "labels": labels, "annotations": annotations}
    if spec.namespace:
        metadata["namespace"] = spec.namespace
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            # A refused attestation or a failed command is not retried blindly: volumes are
            # sealed only on success, so running the Job again is safe once the cause is fixed.
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.deadline_seconds,
            "ttlSecondsAfterFinished": 7 * 24 * 3600,
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }
