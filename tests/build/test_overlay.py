"""Overlays (copy, templates, escapes), file rules, and the overlay step."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from step_factory import host_tools_output, make_context, options_of, run_step

from builder.build.steps.base import StepOutput
from builder.build.steps.overlay import OverlayStep, template_variables
from builder.build.steps.overlay_files import (
    Escape,
    apply_file_rules,
    apply_overlay,
    overlay_digest,
    resolve_in_tree,
)
from builder.core.errors import InputError
from builder.core.treedigest import tree_listing
from builder.source.recipe import FileRule, Recipe, load_recipe

EPOCH = 1700000000


def write(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    return path


def make_tree(root: Path) -> Path:
    """A tiny merged-/usr root filesystem."""
    for directory in ("usr/bin", "usr/lib", "usr/sbin", "etc", "var/log", "run"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    for name in ("bin", "sbin", "lib"):
        os.symlink(f"usr/{name}", root / name)
    write(root / "etc/os-release", "ID=debian\n")
    return root


def entry(tree: Path, path: str) -> dict[str, object]:
    return next(e for e in tree_listing(tree) if e["path"] == path)


def test_files_get_mode_by_exec_bit_and_root_owner(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    overlay = tmp_path / "overlay"
    write(overlay / "usr/local/bin/vote", "#!/bin/sh\n", 0o775)
    write(overlay / "etc/booth.conf", "a=1\n", 0o664)
    os.chown(overlay / "etc/booth.conf", 1000, 1000)

    written = apply_overlay(overlay, tree, {})

    assert written == ["etc/booth.conf", "usr/local/bin/vote"]
    assert entry(tree, "usr/local/bin/vote") | {"sha256": ""} == {
        "path": "usr/local/bin/vote",
        "type": "file",
        "mode": 0o755,
        "uid": 0,
        "gid": 0,
        "size": 10,
        "sha256": "",
    }
    conf = entry(tree, "etc/booth.conf")
    assert (conf["mode"], conf["uid"], conf["gid"]) == (0o644, 0, 0)
    assert entry(tree, "usr/local")["mode"] == 0o755


def test_templates_render_with_variables_and_recipe(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    overlay = tmp_path / "overlay"
    write(
        overlay / "etc/booth/election.conf.j2",
        "name={{ election_name }}\nrecipe={{ recipe.name }} {{ recipe.version }}\n"
        "{% for c in parties %}{{ c }};{% endfor %}\n",
    )
    write(overlay / "usr/bin/start.sh.j2", "#!/bin/sh\necho {{ election_name }}\n", 0o755)
    variables = {
        "election_name": "Gemeenteraad 2030",
        "parties": ("A", "B"),
        "recipe": {"name": "booth", "version": "2026.1"},
    }

    written = apply_overlay(overlay, tree, variables)

    assert written == ["etc/booth/election.conf", "usr/bin/start.sh"]
    assert (tree / "etc/booth/election.conf").read_text() == (
        "name=Gemeenteraad 2030\nrecipe=booth 2026.1\nA;B;\n"
    )
    assert not (tree / "etc/booth/election.conf.j2").exists()
    # written through the /usr/bin path; the template's exec bit gives 0755
    assert stat.S_IMODE(os.stat(tree / "usr/bin/start.sh").st_mode) == 0o755


def test_undefined_variable_names_file_and_variable(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    overlay = tmp_path / "overlay"
    write(overlay / "etc/motd.j2", "Welcome to {{ electon_name }}\n")

    with pytest.raises(InputError) as caught:
        apply_overlay(overlay, tree, {"election_name": "x"}, "overlays/common")

    message = caught.value.message
    assert "overlays/common/etc/motd.j2" in message
    assert "'electon_name' is undefined" in message
    assert not (tree / "etc/motd").exists()


def test_template_syntax_error_names_line(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    overlay = tmp_path / "overlay"
    write(overlay / "etc/x.j2", "ok\n{% if %}\n")

    with pytest.raises(InputError, match=r"etc/x\.j2: line 2: template syntax error"):
        apply_overlay(overlay, tree, {})


def test_file_and_template_for_the_same_path_is_refused(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    write(overlay / "etc/motd", "a\n")
    write(overlay / "etc/motd.j2", "b\n")

    with pytest.raises(InputError, match="would write /etc/motd"):
        apply_overlay(overlay, make_tree(tmp_path / "tree"), {})


def test_absolute_symlinks_in_the_tree_resolve_inside_it(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    (tree / "usr/share/booth").mkdir(parents=True)
    os.symlink("/usr/share/booth", tree / "etc/booth")
    overlay = tmp_path / "overlay"
    write(overlay / "etc/booth/ballot.json", "{}\n")
    write(overlay / "bin/helper", "#!/bin/sh\n", 0o755)

    written = apply_overlay(overlay, tree, {})

    assert written == ["usr/bin/helper", "usr/share/booth/ballot.json"]
    assert (tree / "usr/share/booth/ballot.json").read_text() == "{}\n"
    assert os.readlink(tree / "etc/booth") == "/usr/share/booth"


def test_tree_symlink_climbing_out_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink("../../outside", tree / "etc/evil")
    overlay = tmp_path / "overlay"
    write(overlay / "etc/evil/passwd", "root::0:0::/:/bin/sh\n")

    with pytest.raises(Escape) as caught:
        apply_overlay(overlay, tree, {}, "overlays/bad")

    assert "overlays/bad/etc/evil: refused" in caught.value.message
    assert "/etc/evil -> ../../outside leads outside the tree" in caught.value.message
    assert list(outside.iterdir()) == []


def test_any_climb_above_the_root_is_refused(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    os.symlink("/usr/../..", tree / "etc/up")  # a chroot would clamp it; we refuse it
    os.symlink("../../..", tree / "usr/bin/up")
    os.symlink("../share", tree / "usr/bin/share")
    assert resolve_in_tree(tree, "usr/bin/share/doc") == "usr/share/doc"
    assert resolve_in_tree(tree, "bin/share", follow_last=False) == "usr/bin/share"
    for path in ("etc/up/etc", "usr/bin/up/etc", "usr/../../etc"):
        with pytest.raises(Escape):
            resolve_in_tree(tree, path)


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    os.symlink("b", tree / "etc/a")
    os.symlink("a", tree / "etc/b")
    with pytest.raises(Escape, match="too many levels"):
        resolve_in_tree(tree, "etc/a/x")


def test_overlay_symlink_climbing_out_is_refused(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    overlay = tmp_path / "overlay"
    (overlay / "etc").mkdir(parents=True)
    os.symlink("../../../../etc/shadow", overlay / "etc/shadow-link")

    with pytest.raises(Escape, match=r"etc/shadow-link: refused: symlink target"):
        apply_overlay(overlay, tree, {})
    assert not (tree / "etc/shadow-link").is_symlink()


def test_overlay_symlinks_are_copied_as_links(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    overlay = tmp_path / "overlay"
    (overlay / "usr/bin").mkdir(parents=True)
    os.symlink("/usr/bin/python3", overlay / "usr/bin/python")
    os.symlink("../lib", overlay / "usr/bin/lib-link")
    os.symlink("/../etc", overlay / "abs-up")

    with pytest.raises(Escape, match="abs-up: refused"):
        apply_overlay(overlay, tree, {})
    os.unlink(overlay / "abs-up")
    apply_overlay(overlay, tree, {})

    assert os.readlink(tree / "usr/bin/python") == "/usr/bin/python3"
    assert os.readlink(tree / "usr/bin/lib-link") == "../lib"
    assert os.lstat(tree / "usr/bin/python").st_uid == 0


def test_overlay_file_replaces_a_symlink_instead_of_following_it(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    os.symlink("/run/resolvconf/resolv.conf", tree / "etc/resolv.conf")
    overlay = tmp_path / "overlay"
    write(overlay / "etc/resolv.conf", "nameserver 127.0.0.1\n")

    apply_overlay(overlay, tree, {})

    assert not (tree / "etc/resolv.conf").is_symlink()
    assert (tree / "etc/resolv.conf").read_text() == "nameserver 127.0.0.1\n"
    assert not (tree / "run/resolvconf").exists()


def test_file_over_directory_and_special_files_are_refused(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    overlay = tmp_path / "overlay"
    write(overlay / "var/log", "not a dir\n")
    with pytest.raises(InputError, match="has a directory at /var/log"):
        apply_overlay(overlay, tree, {})

    fifo_overlay = tmp_path / "fifo"
    fifo_overlay.mkdir()
    os.mkfifo(fifo_overlay / "pipe")
    with pytest.raises(InputError, match="files, directories and symlinks only"):
        apply_overlay(fifo_overlay, tree, {})


def test_later_overlay_wins(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    write(tmp_path / "one/etc/motd", "one\n")
    write(tmp_path / "two/etc/motd", "two\n")
    apply_overlay(tmp_path / "one", tree, {})
    apply_overlay(tmp_path / "two", tree, {})
    assert (tree / "etc/motd").read_text() == "two\n"


def test_file_rules_exact_and_glob(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    write(tree / "usr/bin/booth", "#!/bin/sh\n", 0o755)
    write(tree / "etc/booth/a.key", "a")
    write(tree / "etc/booth/b.key", "b")
    write(tree / "etc/booth/sub/c.key", "c")
    rules = (
        FileRule("/usr/bin/booth", 0o4750, 0, 42),
        FileRule("/etc/booth/*.key", 0o600, 7, 7),
        FileRule("/bin/booth", None, 0, 0),  # through the /bin -> usr/bin link
    )

    touched = apply_file_rules(tree, rules, "booth.yaml")

    assert touched == ["etc/booth/a.key", "etc/booth/b.key", "usr/bin/booth"]
    booth = os.stat(tree / "usr/bin/booth")
    # the third rule set the owner back to 0:0 and kept the setuid mode
    assert (stat.S_IMODE(booth.st_mode), booth.st_uid, booth.st_gid) == (0o4750, 0, 0)
    key = os.stat(tree / "etc/booth/a.key")
    assert (stat.S_IMODE(key.st_mode), key.st_uid) == (0o600, 7)
    assert os.stat(tree / "etc/booth/sub/c.key").st_uid == 0  # "*" does not cross "/"


def test_file_rule_matching_nothing_is_an_error(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    with pytest.raises(InputError, match=r"booth\.yaml: files\[1\]\.path: '/etc/\*\.nope'"):
        apply_file_rules(
            tree,
            (FileRule("/etc/os-release", None, 0, 0), FileRule("/etc/*.nope", 0o600, 0, 0)),
            "booth.yaml",
        )


def test_file_rule_mode_on_symlink_is_an_error(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    with pytest.raises(InputError, match="is a symlink"):
        apply_file_rules(tree, (FileRule("/bin", 0o755, 0, 0),), "booth.yaml")


def test_overlay_digest_follows_content_and_exec_bit_only(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    conf = write(overlay / "etc/a.conf", "a\n", 0o644)
    before = overlay_digest(overlay)

    conf.chmod(0o664)
    os.chown(conf, 1234, 1234)
    assert overlay_digest(overlay) == before

    conf.chmod(0o755)
    executable = overlay_digest(overlay)
    assert executable != before

    conf.write_text("b\n")
    assert overlay_digest(overlay) not in (before, executable)


def write_step_recipe(project: Path, extra: str = "") -> Recipe:
    recipes = project / "recipes"
    recipes.mkdir(parents=True, exist_ok=True)
    path = recipes / "ovl.yaml"
    path.write_text(
        "name: ovl\n"
        'version: "2.0"\n'
        "distribution:\n  suite: bookworm\n"
        "packages: [booth]\n"
        "overlays: [overlays/common]\n"
        "variables:\n  greeting: hello\n"
        "files:\n  - path: /etc/booth.conf\n    mode: '0600'\n" + extra
    )
    return load_recipe(path)


def fake_rootfs_output(directory: Path) -> StepOutput:
    tree = make_tree(directory / "tree")
    write(tree / "var/log/dpkg.log", "installed things\n")
    write(tree / "etc/hostname", "buildhost\n")
    return StepOutput("rootfs", "0" * 64, directory, {}, "sha256:" + "0" * 64)


def test_overlay_step_end_to_end(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write(project / "overlays/common/etc/booth.conf.j2", "{{ greeting }} {{ recipe.name }}\n")
    write(project / "overlays/common/etc/hosts", "127.0.0.1 localhost booth-7\n")
    recipe = write_step_recipe(project)
    ctx = make_context(recipe, {}, tmp_path / "scratch", epoch=EPOCH)
    inputs = {
        "rootfs": fake_rootfs_output(tmp_path / "rootfs"),
        "tools": host_tools_output(tmp_path / "tools"),
    }
    out = tmp_path / "out"
    out.mkdir()

    info = run_step(OverlayStep(), ctx, inputs, out)

    tree = out / "tree"
    assert info["overlay_files"] == ["etc/booth.conf", "etc/hosts"]
    assert info["file_rules"] == ["etc/booth.conf"]
    assert "var/log/dpkg.log" in info["normalized"]
    assert (tree / "etc/booth.conf").read_text() == "hello ovl\n"
    assert stat.S_IMODE(os.stat(tree / "etc/booth.conf").st_mode) == 0o600
    assert (tree / "etc/hosts").read_text() == "127.0.0.1 localhost booth-7\n"  # kept
    assert (tree / "etc/hostname").read_text() == "booth\n"  # normalised
    assert not (tree / "var/log/dpkg.log").exists()
    assert all(e["mtime"] <= EPOCH for e in tree_listing(tree, mtimes=True))
    # The rootfs step's tree is untouched (it may be a cache entry).
    assert (tmp_path / "rootfs/tree/var/log/dpkg.log").exists()


def test_overlay_step_options_track_overlay_content_not_checkout_path(tmp_path: Path) -> None:
    def options_for(project: Path, text: str) -> dict[str, object]:
        write(project / "overlays/common/etc/motd", text)
        ctx = make_context(write_step_recipe(project), {}, tmp_path / "s", epoch=EPOCH)
        return options_of(OverlayStep(), ctx, {})

    here = options_for(tmp_path / "a", "one\n")
    elsewhere = options_for(tmp_path / "b" / "deeper", "one\n")
    changed = options_for(tmp_path / "c", "two\n")

    assert here == elsewhere
    assert here != changed
    assert str(tmp_path) not in repr(here)
    assert here["variables"] == {"greeting": "hello", "recipe": {"name": "ovl", "version": "2.0"}}


def test_recipe_variable_named_recipe_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "overlays/common").mkdir(parents=True)
    recipe = write_step_recipe(project)
    clash = Recipe(**{**recipe.__dict__, "variables": {"recipe": "x"}})
    with pytest.raises(InputError, match="reserved"):
        template_variables(clash)


def test_bytecode_and_cache_directories_are_skipped(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    write(overlay / "usr/lib/booth/app.py", "print('x')\n")
    clean = overlay_digest(overlay)
    write(overlay / "usr/lib/booth/__pycache__/app.cpython-311.pyc", "bytecode")
    write(overlay / "usr/lib/booth/old.pyc", "bytecode")
    write(
        overlay / "usr/lib/booth/.mypy_cache/CACHEDIR.TAG",
        "Signature: 8a477f597d28d172789f06886806bc55\n# mypy\n",
    )
    write(overlay / "usr/lib/booth/.mypy_cache/3.11/cache.db", "cache")
    write(overlay / "usr/lib/booth/.notcache/CACHEDIR.TAG", "no signature\n")
    tree = make_tree(tmp_path / "tree")

    written = apply_overlay(overlay, tree, {})

    assert written == ["usr/lib/booth/.notcache/CACHEDIR.TAG", "usr/lib/booth/app.py"]
    assert overlay_digest(overlay) != clean  # .notcache is real content
    (overlay / "usr/lib/booth/.notcache/CACHEDIR.TAG").unlink()
    (overlay / "usr/lib/booth/.notcache").rmdir()
    assert overlay_digest(overlay) == clean
