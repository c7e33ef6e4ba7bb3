"""Deployment on Kubernetes: a session's cloud services rendered as Jobs (`seml deploy k8s`).

The attestation service, storage and the shared objects Jobs refer to are Kustomize bases and
overlays in deploy/kubernetes/; see docs/deploy-kubernetes.md.
"""

from seml.deploy._job import (
    CAS_CONFIGMAP,
    PLATFORM_SECRET,
    RUN_AS,
    STORAGE_CONFIGMAP,
    STORAGE_SECRET,
    VOLUMES_CLAIM,
    JobSpec,
    Tee,
    job_name,
    render_job,
)
from seml.deploy._yaml import manifest_yaml

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
    "manifest_yaml",
    "render_job",
]
