"""`seml deploy k8s`: the Job for one service, the TEE it selects, and refusals of bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _k8s import TEES, deploy_job, documents, job_text
from seml.cli import main
from seml.cli._run_fast import parse
from seml.deploy import JobSpec, Tee, job_name, render_job
from seml.errors import UsageError


def _job(tee: str, *extra: str) -> dict[str, Any]:
    (job,) = documents(job_text(tee, *extra))
    return job


def _container(job: dict[str, Any]) -> dict[str, Any]:
    (c,) = job["spec"]["template"]["spec"]["containers"]
    container: dict[str, Any] = c
    return container


@pytest.mark.parametrize("tee", TEES)
def test_job_runs_seml_run_for_the_service(tee: str) -> None:
    job = _job(tee, "--session-hash", "ab" * 32, "--code", "/opt/app/train.py")
    c = _container(job)
    assert c["image"] == "registry.example.org/seml:0.1.0"
    # The arguments are what `seml run` itself parses (no drift between the two).
    options, command = parse(c["args"][1:])
    assert c["args"][0] == "run" and command == []
    assert (options.session, options.service) == ("iris", "train")
    assert options.session_hash == "ab" * 32
    assert [str(p) for p in options.code] == ["/opt/app/train.py"]
    assert str(options.volumes_dir) == "/var/lib/seml/volumes"
    assert options.simulation is (tee == "simulation")
    pod = job["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/var/lib/seml"]]["persistentVolumeClaim"]["claimName"] == "seml-volumes"
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    env = {e["name"]: e["valueFrom"] for e in c["env"]}
    assert env["SEML_CAS"]["configMapKeyRef"]["name"] == "seml-cas"
    assert env["SEML_CAS_FINGERPRINT"]["configMapKeyRef"]["name"] == "seml-cas"
    assert env["AWS_SECRET_ACCESS_KEY"]["secretKeyRef"]["name"] == "seml-storage"
    assert job["metadata"]["labels"]["seml/tee"] == tee
    assert job["spec"]["template"]["metadata"]["labels"] == job["metadata"]["labels"]
    assert job["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"


def test_simulation_is_labelled_and_uses_the_platform_key_secret() -> None:
    done = deploy_job(
        "--session", "iris", "--service", "fetch", "--image", "r/seml:1", "--tee", "simulation"
    )
    assert done.returncode == 0
    assert "SIMULATED attestation" in done.stderr
    assert "# SIMULATED attestation" in done.stdout
    (job,) = documents(done.stdout)
    assert job["metadata"]["labels"]["seml/simulated"] == "true"
    assert (
        "proves nothing" in job["spec"]["template"]["metadata"]["annotations"]["seml/attestation"]
    )
    c = _container(job)
    options, _ = parse(c["args"][1:])
    assert str(options.platform_key) == "/var/run/seml/platform/platform.key"
    pod = job["spec"]["template"]["spec"]
    (key,) = [v for v in pod["volumes"] if "secret" in v]
    assert key["secret"]["secretName"] == "seml-platform"
    assert "runtimeClassName" not in pod and "nodeSelector" not in pod
    assert not [k for k in c["resources"]["limits"] if k.startswith("sgx.")]


def test_sgx_asks_the_device_plugin_for_enclave_memory() -> None:
    job = _job("sgx")
    limits = _container(job)["resources"]["limits"]
    assert limits["sgx.intel.com/epc"] == "128Mi"
    assert limits["sgx.intel.com/enclave"] == 1 and limits["sgx.intel.com/provision"] == 1
    assert job["metadata"]["labels"]["seml/simulated"] == "false"
    assert "--no-simulation" in _container(job)["args"]
    pod = job["spec"]["template"]["spec"]
    assert not [v for v in pod["volumes"] if "secret" in v], "no simulated platform key"


def test_confidential_containers_use_the_runtime_class() -> None:
    pod = _job("coco")["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "kata-cc-isolation"


def test_cvm_node_pools_by_node_selector() -> None:
    pod = _job("cvm", "--node-selector", "seml/pool=tdx")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {
        "kubernetes.azure.com/security-type": "ConfidentialVM",
        "seml/pool": "tdx",
    }


def test_output_file_and_options(tmp_path: Path) -> None:
    out = tmp_path / "job.yaml"
    done = deploy_job(
        "--session", "iris", "--service", "publish", "--image", "r/seml:1", "--tee", "sgx",
        "-n", "seml", "--cpu", "1", "--memory", "2Gi:8Gi", "--workspace-size", "4Gi",
        "--no-storage-secret", "--image-pull-secret", "regcred", "-o", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "wrote" in done.stderr
    (job,) = documents(out.read_text())
    assert job["metadata"]["namespace"] == "seml"
    c = _container(job)
    assert c["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert c["resources"]["limits"]["cpu"] == "1" and c["resources"]["limits"]["memory"] == "8Gi"
    assert not [e for e in c["env"] if e["name"].startswith("AWS_")]
    pod = job["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert [v["emptyDir"]["sizeLimit"] for v in pod["volumes"] if v["name"] == "workspace"] == [
        "4Gi"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tee", "tdx"], "--tee must be simulation, sgx, coco or cvm, not 'tdx'"),
        (["--tee", "cvm"], "--tee cvm needs a --node-selector KEY=VALUE"),
        (["--memory", "lots"], "--memory 'lots' is not a Kubernetes quantity"),
        (["--sgx-epc", "1 GB"], "--sgx-epc '1 GB' is not a Kubernetes quantity"),
        (["--node-selector", "novalue"], "--node-selector wants KEY=VALUE"),
        (["--node-selector", "a=b c"], "--node-selector value 'b c' is not a label value"),
        (["--namespace", "Seml_NS"], "--namespace 'Seml_NS' is not a Kubernetes namespace"),
        (["--session", "9lives"], "--session '9lives' is not a session or service name"),
        (["--image", "r/seml :1"], "--image 'r/seml :1' is not an image reference"),
        (["--deadline", "0"], "--deadline must be at least 1 second"),
    ],
)
def test_bad_input_is_refused_in_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--session", "iris", "--service", "train", "--image", "r/seml:1"]
    out = tmp_path / "job.yaml"
    assert main(["deploy", "k8s", *base, *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seml: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists(), "nothing half-written"


def test_bad_input_through_the_installed_command() -> None:
    done = deploy_job("--session", "iris", "--service", "t", "--image", "r/s:1", "--tee", "tdx")
    assert done.returncode == 2
    assert done.stderr == "seml: error: --tee must be simulation, sgx, coco or cvm, not 'tdx'\n"


def test_image_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "SEML_IMAGE"}
    done = deploy_job("--session", "iris", "--service", "train", env=env)
    assert done.returncode == 2
    assert "pass --image REGISTRY/seml:" in done.stderr
    ok = deploy_job("--session", "iris", "--service", "train", env={**env, "SEML_IMAGE": "r/s:2"})
    assert ok.returncode == 0 and "image: r/s:2" in ok.stdout


@pytest.mark.parametrize(
    ("session", "service", "name"),
    [
        ("iris", "fetch", "seml-iris-fetch"),
        ("Iris", "pull_alice", "seml-iris-pull-alice-"),
        ("s" * 64, "t" * 64, "seml-" + "s" * 49 + "-"),
    ],
)
def test_job_names_are_dns_labels_and_distinct(session: str, service: str, name: str) -> None:
    got = job_name(session, service)
    assert got.startswith(name) and len(got) <= 63
    assert got == got.lower() and not got.endswith("-")
    if got != name:  # changed names carry a digest of the original: no two collide
        assert job_name(session, service + "x") != got
        assert job_name(session.lower(), service) != job_name(session.upper(), service)


def test_labels_keep_exact_names_in_annotations() -> None:
    job = render_job(JobSpec(session="Iris_", service="pull_alice", image="r/s:1", tee=Tee.SGX))
    assert job["metadata"]["annotations"] == {"seml/session": "Iris_", "seml/service": "pull_alice"}
    label = job["metadata"]["labels"]["seml/session"]
    assert label != "Iris_" and label.startswith("iris-")
    with pytest.raises(UsageError, match="is not a Secret name"):
        render_job(JobSpec(session="a", service="b", image="r/s:1", storage_secret="Bad_Name"))
