"""`build.py lock` end to end against a signed test archive served on 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from archive_factory import FIXED_EPOCH, GpgKey, ServedArchive

from builder.cli import main
from builder.errors import InputError
from builder.lockfile import load_lock_for, read_lock
from builder.mirrors import default_mirrors
from builder.recipe import load_recipe

RecipeFactory = Callable[..., Path]
PROJECT = Path(__file__).resolve().parent.parent


def lock(recipe: Path, *mirrors: str) -> int:
    args = ["lock", str(recipe)]
    for mirror in mirrors:
        args += ["--mirror", mirror]
    return main(args)


def sets(lock_path: Path) -> dict[str, list[str]]:
    raw: dict[str, Any] = json.loads(lock_path.read_text())
    return {p["name"]: p["sets"] for p in raw["packages"]}


def test_lock_pins_both_sets(
    served_archive: ServedArchive,
    gpg_key: GpgKey,
    recipe_factory: RecipeFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = recipe_factory(packages=["booth"])
    assert lock(recipe, served_archive.mirror) == 0
    lock_path = recipe.with_name("testbooth.lock.json")
    members = sets(lock_path)
    essential_closure = ["bash", "base-files", "coreutils", "dpkg", "tar"]
    booth_closure = ["booth", "booth-ui-gtk", "python3", "python3-minimal", "media-types"]
    for name in essential_closure + booth_closure + ["libtinfo6", "libpython3.11-stdlib"]:
        assert members[name] == ["rootfs"], name
    for name in [
        "linux-image-amd64",
        "linux-image-6.1.0-99-amd64",
        "busybox-static",
        "dmsetup",
        "libdevmapper1.02.1",
        "systemd-boot-efi",
        "kmod",
        "linux-base",
        "initramfs-tools",
    ]:
        assert members[name] == ["boot"], name
    # Needed by both: one entry, one version.
    for name in ("libc6", "libgcc-s1", "gcc-12-base", "perl-base"):
        assert members[name] == ["boot", "rootfs"], name
    # dracut conflicts with initramfs-tools and is only an alternative: never chosen.
    assert "dracut" not in members

    locked = read_lock(lock_path)
    assert locked.archive.signing_key == gpg_key.fingerprint
    assert locked.archive.suite == "bookworm"
    assert locked.source_date_epoch == FIXED_EPOCH
    booth = locked.package("booth")
    deb = next(d for d in served_archive.archive.debs if d.name == "booth")
    assert (booth.sha256, booth.size, booth.filename) == (deb.sha256, deb.size, deb.pool_path())
    assert [p.name for p in locked.packages] == sorted(p.name for p in locked.packages)
    captured = capsys.readouterr()
    out = captured.out
    assert re.search(
        r"testbooth\.lock\.json: written\n  \d+ packages \(\d+ rootfs, \d+ boot\)", out
    )
    assert f"lock: {served_archive.mirror}: InRelease of bookworm (" in captured.err
    assert gpg_key.fingerprint in out


def test_relock_is_byte_identical_whichever_mirror(
    served_archive: ServedArchive, recipe_factory: RecipeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = recipe_factory()
    lock_path = recipe.with_name("testbooth.lock.json")
    assert lock(recipe, served_archive.mirror) == 0
    first = lock_path.read_bytes()
    assert lock(recipe, str(served_archive.archive.root)) == 0
    assert lock_path.read_bytes() == first
    assert "testbooth.lock.json: unchanged" in capsys.readouterr().out


def test_extract_variant_locks_only_the_packages_closure(
    served_archive: ServedArchive, recipe_factory: RecipeFactory
) -> None:
    recipe = recipe_factory(packages=["busybox-static"], variant="extract")
    assert lock(recipe, served_archive.mirror) == 0
    members = sets(recipe.with_name("testbooth.lock.json"))
    assert [n for n, s in members.items() if "rootfs" in s] == ["busybox-static"]
    assert members["busybox-static"] == ["boot", "rootfs"]


def test_recipe_epoch_wins_over_release_date(
    served_archive: ServedArchive, recipe_factory: RecipeFactory
) -> None:
    recipe = recipe_factory(extra="source_date_epoch: 1234\n")
    assert lock(recipe, served_archive.mirror) == 0
    assert read_lock(recipe.with_name("testbooth.lock.json")).source_date_epoch == 1234


def test_stale_lock_is_refused(
    served_archive: ServedArchive, recipe_factory: RecipeFactory
) -> None:
    recipe = recipe_factory(packages=["booth"])
    assert lock(recipe, served_archive.mirror) == 0
    load_lock_for(load_recipe(recipe))  # matches
    recipe_factory(packages=["booth", "busybox-static"])
    with pytest.raises(InputError, match=r"does not match testbooth\.yaml any more"):
        load_lock_for(load_recipe(recipe))


def test_unknown_package_exit_2_with_recipe_path(
    served_archive: ServedArchive,
    recipe_factory: RecipeFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipe = recipe_factory(packages=["booth", "pyhton3", "zzz-nothing"])
    monkeypatch.chdir(recipe.parent.parent)
    assert lock(Path("recipes/testbooth.yaml"), served_archive.mirror) == 2
    err = capsys.readouterr().err
    # Every problem at once, each with the recipe path and field.
    assert (
        "recipes/testbooth.yaml: packages[1]: unknown package 'pyhton3' (did you mean python3?)"
        in err
    )
    assert "recipes/testbooth.yaml: packages[2]: unknown package 'zzz-nothing'\n" in err
    assert not recipe.with_name("testbooth.lock.json").exists()


def test_unsatisfiable_dependency_shows_chain(
    served_archive: ServedArchive,
    recipe_factory: RecipeFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = recipe_factory(packages=["booth"], extra="boot:\n  packages: [no-such-tool]\n")
    assert lock(recipe, served_archive.mirror) == 2
    assert "boot.packages[0]: unknown package 'no-such-tool'" in capsys.readouterr().err


def test_tampered_archive_exit_3(
    archive_copy: ServedArchive, recipe_factory: RecipeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    inrelease = archive_copy.archive.inrelease
    inrelease.write_bytes(inrelease.read_bytes().replace(b"Origin: boothkey", b"Origin: evilkey"))
    recipe = recipe_factory()
    assert lock(recipe, archive_copy.mirror) == 3
    assert "BAD signature" in capsys.readouterr().err
    assert not recipe.with_name("testbooth.lock.json").exists()


def test_unreachable_mirror_exit_1(
    recipe_factory: RecipeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    recipe = recipe_factory()
    assert (
        main(["lock", str(recipe), "--mirror", f"http://127.0.0.1:{port}/d", "--timeout", "3"]) == 1
    )
    assert f"http://127.0.0.1:{port}/d/dists/bookworm/InRelease" in capsys.readouterr().err


def _real_recipe(tmp_path: Path, variant: str) -> Path:
    """recipes/booth.yaml with its overlays (variant essential), or a small extract recipe."""
    source = PROJECT / "recipes" / "booth.yaml"
    (tmp_path / "recipes").mkdir()
    recipe = tmp_path / "recipes" / "booth.yaml"
    if variant == "essential" and source.exists():
        shutil.copyfile(source, recipe)
        for overlay in load_recipe(source).overlays:
            shutil.copytree(overlay, tmp_path / overlay.relative_to(PROJECT))
    else:
        recipe.write_text(
            'name: booth\nversion: "1"\ndistribution: {suite: bookworm}\n'
            f"packages: [python3, busybox-static]\nrootfs: {{variant: {variant}}}\n"
        )
    return recipe


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["essential", "extract"])
def test_real_archive_lock_matches_what_apt_would_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    """Lock a recipe against the real archive (default mirrors) and compare the rootfs
    set, name and version, with mmdebstrap's own simulated install of the same list."""
    monkeypatch.delenv("BOOTHKEY_MIRROR", raising=False)
    recipe = _real_recipe(tmp_path, variant)
    assert main(["lock", str(recipe)]) == 0
    parsed = load_recipe(recipe)
    assert parsed.rootfs.variant == variant
    locked = load_lock_for(parsed)
    assert locked.archive.codename == "bookworm"
    assert {"linux-image-amd64", "systemd-boot-efi", "busybox-static", "dmsetup"} <= {
        p.name for p in locked.in_set("boot")
    }
    first = parsed.lock_path.read_bytes()
    assert main(["lock", str(recipe)]) == 0
    assert parsed.lock_path.read_bytes() == first

    # mmdebstrap prints apt's "Inst NAME (VERSION ...)" plan on stderr with --verbose.
    simulated = subprocess.run(
        [
            "mmdebstrap",
            "--verbose",
            "--variant",
            parsed.rootfs.variant,
            "--include",
            ",".join(parsed.packages),
            "--simulate",
            parsed.distribution.suite,
            "/dev/null",
            # Only the locked suite: by default mmdebstrap adds -updates and -security.
            f"deb {default_mirrors(parsed.distribution.suite)[0]} {parsed.distribution.suite} main",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=True,
    ).stdout
    installed = dict(re.findall(r"^Inst (\S+) \((\S+) ", simulated, re.MULTILINE))
    if not installed:
        pytest.fail("mmdebstrap --simulate listed no packages")
    ours = {p.name: p.version for p in locked.in_set("rootfs")}
    assert ours == installed
