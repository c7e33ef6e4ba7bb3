"""Where session paths appear for the child: pure planning, no mounts."""

from __future__ import annotations

from pathlib import Path

from seml.runtime._layout import plan_mounts, wrap_command


def _ws(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "data").mkdir(parents=True)
    (ws / "app").mkdir()
    (ws / "app" / "main.py").write_text("")
    (ws / "main.py").write_text("")
    (ws / "usr").mkdir()
    return ws


def test_auto_binds_only_onto_folders_that_exist_on_the_host(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    host = tmp_path / "host"
    (host / "data").mkdir(parents=True)
    plan = plan_mounts(ws, ["/data", "/app/main.py", "/main.py", "/usr"], root=host)
    assert plan.binds == ((ws / "data", "/data"),)
    assert set(plan.skipped) == {"/app", "/main.py", "/usr"}


def test_namespace_mode_may_create_mount_points_but_never_shadows_system_folders(
    tmp_path: Path,
) -> None:
    ws = _ws(tmp_path)
    plan = plan_mounts(ws, ["/data", "/app/main.py", "/usr"], create=True, root=tmp_path / "h")
    assert plan.binds == ((ws / "app", "/app"), (ws / "data", "/data"))
    assert plan.skipped == ("/usr",)


def test_wrapped_command_passes_arguments_without_a_shell_string(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    plan = plan_mounts(ws, ["/data"], create=True, root=tmp_path)
    argv = wrap_command(["python3", "-c", "print('$HOME; rm -rf /')"], plan)
    assert argv[:4] == ["unshare", "--mount", "--propagation", "private"]
    assert argv[-3:] == ["python3", "-c", "print('$HOME; rm -rf /')"]
    assert wrap_command(["true"], plan_mounts(ws, [], root=tmp_path)) == ["true"]
