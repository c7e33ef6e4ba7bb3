"""`seml deploy k8s`: render a session's cloud service as a Kubernetes Job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seml.errors import UsageError

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    deploy = typer.Typer(
        help="Deploy on a cluster: render a session's services as Kubernetes Jobs "
        "(the attestation service itself: deploy/kubernetes/, docs/deploy-kubernetes.md).",
        no_args_is_help=True,
    )
    deploy.command("k8s")(k8s)
    app.add_typer(deploy, name="deploy")


def _pair(value: str, option: str) -> tuple[str, str]:
    request, _, limit = value.partition(":")
    if not request:
        raise UsageError(f"{option} wants REQUEST[:LIMIT], e.g. 500m:2 or 1Gi:4Gi")
    return request, limit or request


def _selector(values: list[str]) -> dict[str, str]:
    selector: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--node-selector wants KEY=VALUE, got {item!r}")
        selector[key] = value
    return selector


def k8s(
    session: Annotated[str, typer.Option("--session", help="Session name.")],
    service: Annotated[str, typer.Option("--service", help="Service name in the session.")],
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            envvar="SEML_IMAGE",
            help="The seml image in your registry, e.g. registry.example.org/seml:0.1.0; "
            "env SEML_IMAGE.",
        ),
    ] = None,
    tee: Annotated[
        str,
        typer.Option(
            "--tee",
            help="simulation (no TEE, labelled; platform key from Secret seml-platform), "
            "sgx (SGX device plugin), coco (confidential containers: --runtime-class), "
            "cvm (confidential VM node pool: --node-selector).",
        ),
    ] = "simulation",
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace of the Job.")
    ] = None,
    session_hash: Annotated[
        str | None,
        typer.Option("--session-hash", help="Refuse unless the session is at this exact hash."),
    ] = None,
    code: Annotated[
        list[str] | None,
        typer.Option("--code", help="A code path in the image, passed to seml run (repeatable)."),
    ] = None,
    sgx_epc: Annotated[
        str, typer.Option("--sgx-epc", help="SGX enclave page cache to request (--tee sgx).")
    ] = "64Mi",
    runtime_class: Annotated[
        str,
        typer.Option(
            "--runtime-class",
            help="RuntimeClass of confidential containers (--tee coco), e.g. kata-cc, "
            "kata-cc-isolation (AKS).",
        ),
    ] = "kata-cc",
    node_selector: Annotated[
        list[str] | None,
        typer.Option(
            "--node-selector",
            help="KEY=VALUE a node must carry (repeatable); --tee cvm needs one, e.g. "
            "kubernetes.azure.com/security-type=ConfidentialVM.",
        ),
    ] = None,
    workspace_size: Annotated[
        str,
        typer.Option(
            "--workspace-size", help="Memory for the decrypted workspace (counts as memory)."
        ),
    ] = "1Gi",
    cpu: Annotated[str, typer.Option("--cpu", help="CPU REQUEST[:LIMIT].")] = "500m:2",
    memory: Annotated[str, typer.Option("--memory", help="Memory REQUEST[:LIMIT].")] = "1Gi:4Gi",
    storage_secret: Annotated[
        str,
        typer.Option(
            "--storage-secret",
            help="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for S3 storage.",
        ),
    ] = "seml-storage",  # noqa: S107 - the name of a Secret, not its value
    no_storage_secret: Annotated[
        bool,
        typer.Option("--no-storage-secret", help="No storage credentials (file:// storage)."),
    ] = False,
    image_pull_secret: Annotated[
        str | None, typer.Option("--image-pull-secret", help="Secret to pull the image with.")
    ] = None,
    deadline: Annotated[
        int, typer.Option("--deadline", help="Seconds before the Job is stopped.")
    ] = 6 * 3600,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Render the Job that runs `seml run --session NAME --service NAME` in the seml image.

    Volumes go on the PVC seml-volumes, the attestation service's URL and pin come from the
    ConfigMap seml-cas, storage credentials from a Secret: the Job names them and holds no
    secret value. Apply it with `kubectl apply -f`; see docs/deploy-kubernetes.md.
    """
    from seml import __version__
    from seml._fs import write_atomic
    from seml.deploy import JobSpec, Tee, manifest_yaml, render_job

    if not image:
        raise UsageError(
            f"pass --image REGISTRY/seml:{__version__} (the seml image you pushed), "
            "or set SEML_IMAGE"
        )
    try:
        chosen = Tee(tee)
    except ValueError:
        raise UsageError(f"--tee must be simulation, sgx, coco or cvm, not {tee!r}") from None
    spec = JobSpec(
        session=session,
        service=service,
        image=image,
        tee=chosen,
        namespace=namespace,
        session_hash=session_hash,
        code=tuple(code or ()),
        sgx_epc=sgx_epc,
        runtime_class=runtime_class,
        node_selector=_selector(node_selector or []),
        workspace_size=workspace_size,
        cpu=_pair(cpu, "--cpu"),
        memory=_pair(memory, "--memory"),
        storage_secret=None if no_storage_secret else storage_secret,
        image_pull_secret=image_pull_secret,
        deadline_seconds=deadline,
    )
    job = render_job(spec)
    header = [
        f"seml {__version__}: service {service} of session {session} as a Job (TEE: {tee}).",
        "Holds no secret value: it refers to ConfigMap seml-cas, PVC seml-volumes and Secrets.",
    ]
    if chosen is Tee.SIMULATION:
        header.append("SIMULATED attestation: no TEE; the session must tolerate simulation.")
    text = manifest_yaml([job], header)
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(output, text)
        typer.echo(f"wrote {output}: Job {job['metadata']['name']}", err=True)
    if chosen is Tee.SIMULATION:
        typer.echo(
            "seml deploy: SIMULATED attestation (--tee simulation): the Job proves nothing "
            "about where it runs",
            err=True,
        )
