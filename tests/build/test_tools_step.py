"""The tools tree step: the lock's "tools" packages unpacked into a merged-/usr tree that
the sandbox can run programs from (small fake .debs; the real tree is built by the slow
tests in test_hosts.py and every real build)."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from archive_factory import FakeDeb, make_deb
from step_factory import locked_fake, make_context, options_of, run_step

from builder.build.steps.base import BuildContext
from builder.build.steps.tools import ToolsStep
from builder.core.errors import BuildError, ToolError
from builder.core.sandbox import Sandbox
from builder.core.treedigest import tree_listing
from builder.source.lockfile import LockedPackage
from builder.source.recipe import Recipe

PASSWD = b"root:*:0:0:root:/root:/bin/sh\n"
GROUP = b"root:*:0:\n"
# A real program and what it loads, so the tree is shown to run, not only to exist.
DASH_FILES = ("/usr/bin/dash", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2")


def host_bytes(path: str) -> bytes:
    return Path(path).resolve().read_bytes()


@pytest.fixture(scope="module")
def tool_debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FakeDeb]:
    directory = tmp_path_factory.mktemp("tool-debs")
    debs = [
        make_deb(
            directory,
            "base-passwd",
            "3.6.1",
            essential=True,
            files={
                "/usr/share/base-passwd/passwd.master": PASSWD,
                "/usr/share/base-passwd/group.master": GROUP,
            },
        ),
        make_deb(directory, "mawk", "1.3.4", executables={"/usr/bin/mawk": b"#!/bin/sh\n"}),
        # Old-style paths (/bin, /lib, /lib64) land under usr/, as on a merged-/usr system.
        make_deb(
            directory,
            "dash",
            "0.5.12-2",
            executables={"/bin/dash": host_bytes(DASH_FILES[0])},
            files={"/usr/share/doc/dash/copyright": b"dash\n"},
        ),
        make_deb(
            directory,
            "libc6",
            "2.36-9",
            executables={name: host_bytes(name) for name in DASH_FILES[1:]},
        ),
    ]
    return {deb.name: deb for deb in debs}


def tools_context(debs: list[FakeDeb], scratch: Path) -> BuildContext:
    locked = {dataclasses.replace(locked_fake(deb), sets=("tools",)): deb.path for deb in debs}
    recipe = cast(Recipe, SimpleNamespace(name="demo", package_set_digest=lambda: "sha256:0"))
    return make_context(recipe, locked, scratch)


def run_tools(ctx: BuildContext, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True)
    return run_step(ToolsStep(), ctx, {}, out)


def test_tree_is_merged_usr_with_accounts_and_awk(
    tmp_path: Path, tool_debs: dict[str, FakeDeb]
) -> None:
    ctx = tools_context(list(tool_debs.values()), tmp_path / "scratch")
    info = run_tools(ctx, tmp_path / "out")
    tree = tmp_path / "out" / "tree"
    for name in ("bin", "sbin", "lib", "lib64"):
        assert os.readlink(tree / name) == f"usr/{name}"
    assert (tree / "usr/bin/dash").is_file() and not (tree / "usr/bin/dash").is_symlink()
    assert (tree / "usr/lib64/ld-linux-x86-64.so.2").is_file()
    assert (tree / "etc/passwd").read_bytes() == PASSWD
    assert (tree / "etc/group").read_bytes() == GROUP
    assert stat.S_IMODE((tree / "etc/passwd").stat().st_mode) == 0o644
    assert os.readlink(tree / "usr/bin/awk") == "mawk"
    assert [entry["name"] for entry in info["packages"]] == sorted(tool_debs)
    by_name = {entry["name"]: entry for entry in info["packages"]}
    assert by_name["dash"] == {
        "name": "dash",
        "version": "0.5.12-2",
        "architecture": "amd64",
        "sha256": locked_fake(tool_debs["dash"]).sha256,
    }


def test_programs_run_from_the_tree_in_the_sandbox(
    tmp_path: Path, tool_debs: dict[str, FakeDeb]
) -> None:
    ctx = tools_context(list(tool_debs.values()), tmp_path / "scratch")
    run_tools(ctx, tmp_path / "out")
    tools = Sandbox(tmp_path / "out" / "tree", tmp_path / "scratch")
    result = tools.run(["dash", "-c", "echo from the tools tree; echo /usr/bin/*"])
    assert result.stdout.splitlines() == [
        b"from the tools tree",
        b"/usr/bin/awk /usr/bin/dash /usr/bin/mawk",
    ]
    # The host's programs are not there: only what the lock's tools packages hold.
    with pytest.raises(ToolError, match="cp cannot be run from the tools tree"):
        tools.run(["cp", "--version"])


def test_same_debs_give_the_same_tree_in_any_order_and_directory(
    tmp_path: Path, tool_debs: dict[str, FakeDeb]
) -> None:
    debs = list(tool_debs.values())
    first = tools_context(debs, tmp_path / "a" / "scratch")
    second = tools_context(list(reversed(debs)), tmp_path / "b" / "deeper" / "scratch")
    assert options_of(ToolsStep(), first, {}) == options_of(ToolsStep(), second, {})
    one = run_tools(first, tmp_path / "a" / "out")
    two = run_tools(second, tmp_path / "b" / "deeper" / "out")
    assert one == two
    assert tree_listing(tmp_path / "a/out/tree") == tree_listing(tmp_path / "b/deeper/out/tree")


def test_options_name_every_tools_deb_by_digest(
    tmp_path: Path, tool_debs: dict[str, FakeDeb]
) -> None:
    debs = list(tool_debs.values())
    options = options_of(ToolsStep(), tools_context(debs, tmp_path / "s"), {})
    newer = make_deb(tmp_path / "newer", "mawk", "1.3.4-2", executables={"/usr/bin/mawk": b""})
    changed = [newer if deb.name == "mawk" else deb for deb in debs]
    other = options_of(ToolsStep(), tools_context(changed, tmp_path / "s"), {})
    assert options != other
    assert {e["sha256"] for e in options["packages"]} ^ {
        e["sha256"] for e in other["packages"]
    } == {locked_fake(tool_debs["mawk"]).sha256, locked_fake(newer).sha256}


def test_missing_pieces_are_named(tmp_path: Path, tool_debs: dict[str, FakeDeb]) -> None:
    without_passwd = [deb for name, deb in tool_debs.items() if name != "base-passwd"]
    with pytest.raises(
        BuildError, match=r"no /usr/share/base-passwd/passwd.master \(package base-passwd\)"
    ):
        run_tools(tools_context(without_passwd, tmp_path / "s"), tmp_path / "one")
    without_awk = [deb for name, deb in tool_debs.items() if name != "mawk"]
    with pytest.raises(BuildError, match="no /usr/bin/mawk"):
        run_tools(tools_context(without_awk, tmp_path / "s"), tmp_path / "two")


def test_a_lock_without_tools_is_refused(tmp_path: Path, tool_debs: dict[str, FakeDeb]) -> None:
    rootfs_only: dict[LockedPackage, Path] = {
        locked_fake(deb): deb.path for deb in tool_debs.values()
    }
    recipe = cast(Recipe, SimpleNamespace(name="demo", package_set_digest=lambda: "sha256:0"))
    ctx = make_context(recipe, rootfs_only, tmp_path / "s")
    with pytest.raises(BuildError, match="demo: the lock has no packages in the tools set"):
        ToolsStep().options(ctx, {})
