"""The attestation service's container, as the StatefulSet declares it, run here for real.

The rendered args run unchanged but for where each mount lives (a folder per volume, laid out
as kubelet mounts the Secrets: group-readable by the pod's fsGroup) and the port (a free one):
the service must come up from mounted Secrets alone, keep its state on the state volume only,
and answer the probes' path over HTTPS.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from _k8s import KUSTOMIZE, documents, kustomize, seml
from seml.cas import init_state_dir

pytestmark = pytest.mark.integration


def _cas_statefulset() -> dict[str, Any]:
    objs = documents(kustomize(KUSTOMIZE / "overlays" / "dev"))
    (sts,) = [o for o in objs if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "seml-cas"]
    return sts


def test_rendered_cas_container_serves_healthz_from_mounted_secrets(tmp_path: Path) -> None:
    sts = _cas_statefulset()
    pod = sts["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    made = tmp_path / "cas-secrets"
    init_state_dir(made, hosts=["seml-cas"], now=dt.datetime.now(dt.UTC))

    where: dict[str, Path] = {}  # mountPath -> local folder
    for m in c["volumeMounts"]:
        local = tmp_path / "mounts" / m["name"]
        local.mkdir(parents=True)
        secret = volumes.get(m["name"], {}).get("secret")
        for item in (secret or {}).get("items", []):
            shutil.copy(made / item["key"], local / item["path"])
            (local / item["path"]).chmod(secret["defaultMode"] | 0o040)  # kubelet adds g+r
        where[m["mountPath"]] = local
    args = [str(where.get(a, a)) for a in c["args"]]
    listen = args.index("--listen") + 1
    assert args[listen] == f"0.0.0.0:{c['ports'][0]['containerPort']}"
    args[listen] = "127.0.0.1:0"
    assert c["readinessProbe"]["httpGet"]["port"] == c["ports"][0]["name"]

    proc = subprocess.Popen(
        [*seml(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(where["/tmp"])},
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert "serving https://" in line, proc.stderr.read()
        url = line.split()[3]
        ctx = ssl.create_default_context(cafile=str(made / "tls.crt"))
        ctx.check_hostname = False
        probe = c["livenessProbe"]["httpGet"]
        with urllib.request.urlopen(f"{url}{probe['path']}", context=ctx, timeout=10) as r:  # noqa: S310
            assert (r.status, json.loads(r.read())) == (200, {"status": "ok"})
        state = where["/var/lib/seml-cas"]
        assert {p.name for p in state.iterdir()} <= {
            "cas.sqlite",
            "cas.sqlite-wal",
            "cas.sqlite-shm",
            "serve.lock",  # one service per state folder (no key material)
        }
        assert (state / "cas.sqlite").exists()
        for mount in ("/etc/seml-cas/keys", "/etc/seml-cas/tls"):
            names = sorted(p.name for p in where[mount].iterdir())
            assert names in (["identity.key", "master.key"], ["tls.crt", "tls.key"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
