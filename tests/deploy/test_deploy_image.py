"""The seml image, built here the way `make image` builds it, and run with buildah.

No registry is reachable, so scripts/build-image.sh makes a Debian base with debootstrap and
builds deploy/image/Containerfile on it (`BASE=localhost/seml-base:bookworm`). The build context
is a copy of the work tree with secrets planted where an operator's might lie (a `.env`, the
attestation service's key folder, key files inside src/): none may reach any layer. Then `seml
--version` and the whole `seml demo` run inside the image as its non-root user.

Run by `make image` (SEML_IMAGE_TEST=1; see conftest.py), not by `make test`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from _k8s import REPO
from seml import __version__

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(3600)]

ENV = {**os.environ, "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}
# A whole PEM private key: header, base64 body, footer (TLS libraries carry the bare header as
# a parser constant, which is no key).
PEM_PRIVATE = re.compile(
    rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]{40,}-----END \1PRIVATE KEY-----"
)


@dataclass(frozen=True)
class Built:
    image: str
    container: str
    canary: bytes
    seconds: int
    size: str


def _buildah(*args: str, timeout: float = 600, check: bool = True) -> str:
    done = subprocess.run(
        ["buildah", *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )
    if check:
        assert done.returncode == 0, f"buildah {' '.join(args)}: {done.stderr[-3000:]}"
    return done.stdout


def _context(root: Path, canary: str) -> Path:
    """The work tree's files (as git sees them) plus planted secrets."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    context = root / "context"
    for name in filter(None, listed.split("\0")):
        src = REPO / name
        if src.is_file():
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, context / name)
    planted = {
        ".env": f"AWS_SECRET_ACCESS_KEY={canary}\n",
        "cas-secrets/master.key": canary,
        "cas-secrets/tls.key": f"-----BEGIN PRIVATE KEY-----\n{canary}\n-----END PRIVATE KEY-----",
        "src/seml/leftover.key": canary,
        "src/seml/cas/credentials.env": f"SECRET={canary}\n",
        "src/seml/deploy/notes.txt": f"a password someone pasted: {canary}\n",
        "deploy/kubernetes/overlays/dev/storage.env": f"AWS_SECRET_ACCESS_KEY={canary}\n",
    }
    for name, text in planted.items():
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        (context / name).write_text(text)
    return context


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    canary = "seml-canary-" + os.urandom(16).hex()
    context = _context(tmp_path_factory.mktemp("image"), canary)
    start = time.monotonic()
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-image.sh"), str(context)],
        capture_output=True,
        text=True,
        timeout=3000,
        env=ENV,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    seconds = round(time.monotonic() - start)
    image = done.stdout.strip().splitlines()[-1]
    assert image == f"localhost/seml:{__version__}"
    size = _buildah("images", "--format", "{{.Size}}", image).strip()
    print(f"\nimage {image}: built in {seconds} s (with base if new), size {size}")
    for line in done.stderr.splitlines():
        if line.startswith("build-image:"):
            print(line)
    container = _buildah("from", "--pull-never", "--quiet", image).strip()
    try:
        yield Built(image, container, canary.encode(), seconds, size)
    finally:
        _buildah("rm", container, check=False)


def _run(built: Built, *command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["buildah", "run", "--isolation", "chroot", built.container, "--", *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


def test_seml_version_runs_as_the_non_root_user(built: Built) -> None:
    done = _run(built, "seml", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"seml {__version__}"
    ident = _run(built, "id", "-u")
    assert ident.stdout.strip() == "10001"


def test_image_config(built: Built) -> None:
    info = json.loads(_buildah("inspect", "--type", "image", built.image))
    config = info["OCIv1"]["config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/opt/seml/bin/seml"]
    assert config["WorkingDir"] == "/work"
    assert config["Labels"]["org.opencontainers.image.version"] == __version__
    assert built.canary.decode() not in json.dumps(info)


def test_no_compiler_pip_or_cache_in_the_image(built: Built) -> None:
    probe = (
        "for t in gcc cc c++ g++ clang ld as make pip pip3 apt-get; do "
        'command -v "$t" >/dev/null && echo "found $t: $(command -v $t)"; done; '
        "ls /opt/seml/bin; "
        "for d in /root/.cache /home/seml/.cache /tmp/pip-* /src /var/cache/apt/archives/*.deb; do "
        '[ -e "$d" ] && echo "left: $d"; done; true'
    )
    done = _run(built, "sh", "-c", probe)
    assert done.returncode == 0, done.stderr
    found = [ln for ln in done.stdout.splitlines() if ln.startswith(("found", "left"))]
    # apt-get is part of the Debian base itself, not of the build; everything else must be gone.
    assert [f for f in found if not f.startswith("found apt-get")] == []
    scripts = set(done.stdout.split())
    assert "seml" in scripts and not {"pip", "pip3", "wheel"} & scripts


def _layers(oci: Path) -> Iterator[tuple[str, tarfile.TarFile]]:
    """(diff id, tar) of each layer of the one image in an OCI layout folder."""
    index = json.loads((oci / "index.json").read_text())
    (manifest_ref,) = index["manifests"]
    blob = oci / "blobs" / "sha256"
    manifest = json.loads((blob / manifest_ref["digest"].split(":")[1]).read_bytes())
    for layer in manifest["layers"]:
        data = (blob / layer["digest"].split(":")[1]).read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            yield "sha256:" + hashlib.sha256(data).hexdigest(), tar


def test_no_secret_in_any_layer(built: Built, tmp_path: Path) -> None:
    oci = tmp_path / "oci"
    _buildah("push", "--quiet", built.image, f"oci:{oci}", timeout=1200)
    # The base's own layers are Debian's packages (libgnutls, for one, embeds the private keys
    # of its self-tests): no private key may be in what the Containerfile adds; the planted
    # secrets may be nowhere.
    base = json.loads(_buildah("inspect", "--type", "image", "localhost/seml-base:bookworm"))
    base_layers = set(base["OCIv1"]["rootfs"]["diff_ids"])
    hits: list[str] = []
    files = 0
    ours = 0
    for digest, layer in _layers(oci):
        ours += digest not in base_layers
        for member in layer:
            name = member.name
            if built.canary.decode() in name:
                hits.append(f"{digest[:19]} {name}: canary in a file name")
            if not member.isfile():
                continue
            f = layer.extractfile(member)
            assert f is not None
            data = f.read()
            files += 1
            if built.canary in data:
                hits.append(f"{digest[:19]} {name}: planted secret")
            if digest not in base_layers and PEM_PRIVATE.search(data):
                hits.append(f"{digest[:19]} {name}: PEM private key")
            if re.search(r"(^|/)(\.env|[^/]+\.key|leftover\.key|credentials\.env)$", name):
                hits.append(f"{digest[:19]} {name}: key or env file")
    assert files > 1000 and ours >= 1, (
        "the layers were read, those the Containerfile adds among them"
    )
    assert hits == []
    config = json.loads(_buildah("inspect", "--type", "image", built.image))
    history = json.dumps(config.get("History", config.get("Docker", {}).get("history", [])))
    assert built.canary.decode() not in history


def test_seml_demo_runs_whole_inside_the_image(built: Built) -> None:
    start = time.monotonic()
    done = _run(built, "seml", "demo", "--workdir", "/tmp/seml-demo", timeout=1800)
    seconds = time.monotonic() - start
    print(f"\nseml demo inside the image: {seconds:.0f} s, exit {done.returncode}")
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:])
    assert "SIMULATED" in done.stdout + done.stderr
    checks: dict[str, Any] = {}
    owner = _run(built, "stat", "-c", "%u", "/tmp/seml-demo/cas")
    checks["workdir owner"] = owner.stdout.strip()
    assert checks == {"workdir owner": "10001"}
    report = _run(built, "sh", "-c", "ls /tmp/seml-demo /tmp/seml-demo/parties/alice")
    assert "cloud" in report.stdout and "predictions" in report.stdout
