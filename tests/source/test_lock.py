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
import yaml
from archive_factory import (
    FIXED_EPOCH,
    SECURITY_DATE,
    SECURITY_EPOCH,
    SECURITY_POOL,
    UPDATES_EPOCH,
    GpgKey,
    HttpServer,
    MultiSuiteArchive,
    ServedArchive,
)

from builder.cli import main
from builder.core.errors import InputError, ValidationErrors
from builder.source.archive import ArchiveIndex, PackageRecord, Release
from builder.source.lockfile import load_lock_for, read_lock
from builder.source.make_lock import merge_indexes
from builder.source.mirrors import default_mirrors
from builder.source.recipe import load_recipe
from builder.source.toolset import TOOL_PACKAGES

RecipeFactory = Callable[..., Path]
PROJECT = Path(__file__).resolve().parents[2]


def lock(recipe: Path, *mirrors: str) -> int:
    args = ["lock", str(recipe)]
    for mirror in mirrors:
        args += ["--mirror", mirror]
    return main(args)


def sets(lock_path: Path) -> dict[str, list[str]]:
    raw: dict[str, Any] = json.loads(lock_path.read_text())
    return {p["name"]: p["sets"] for p in raw["packages"]}


def test_lock_pins_the_three_sets(
    served_archive: ServedArchive,
    gpg_key: GpgKey,
    recipe_factory: RecipeFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = recipe_factory(packages=["booth"])
    assert lock(recipe, served_archive.mirror) == 0
    lock_path = recipe.with_name("testbooth.lock.json")
    members = sets(lock_path)
    # The Essential closure is in the image and in the tools tree.
    for name in ["bash", "base-files", "coreutils", "dpkg", "tar", "libtinfo6"]:
        assert members[name] == ["rootfs", "tools"], name
    booth_closure = ["booth", "booth-ui-gtk", "python3", "python3-minimal", "media-types"]
    for name in [*booth_closure, "libpython3.11-stdlib"]:
        assert members[name] == ["rootfs"], name
    for name in TOOL_PACKAGES:
        assert members[name] == ["tools"], name
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
        assert members[name] == ["boot", "rootfs", "tools"], name
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
        # The booth recipe lists usr-is-merged to take that alternative instead of
        # usrmerge (and perl). apt, run by mmdebstrap against the whole archive, settles
        # the Essential set before the --include list and so would still pick usrmerge;
        # against boothkey's local repository of exactly the locked .debs it installs the
        # lock (the rootfs step checks that on every build). Compare apt's own choices.
        raw = yaml.safe_load(source.read_text())
        raw["packages"] = [p for p in raw["packages"] if p != "usr-is-merged"]
        recipe.write_text(yaml.safe_dump(raw, sort_keys=False))
        for overlay in load_recipe(source).overlays:
            shutil.copytree(overlay, tmp_path / overlay.relative_to(PROJECT))
    else:
        recipe.write_text(
            'name: booth\nversion: "1"\n'
            "distribution: {suite: bookworm, updates: [bookworm-updates, bookworm-security]}\n"
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
    suites = parsed.distribution.suites
    assert sorted(a.suite for a in locked.archives) == sorted(suites)
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
            # Exactly the locked suites (mmdebstrap's default would add its own choice).
            *(f"deb {default_mirrors(suite)[0]} {suite} main" for suite in suites),
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


# ---- several suites: distribution.updates ----------------------------------------

UPDATES = ["bookworm-updates", "bookworm-security"]


def suite_mirrors(multi: MultiSuiteArchive) -> list[str]:
    return [
        f"bookworm={multi.main.mirror}",
        f"bookworm-updates={multi.main.mirror}",
        f"bookworm-security={multi.security.mirror}",
    ]


def test_update_suites_newest_version_wins(
    multi_suite: MultiSuiteArchive,
    gpg_key: GpgKey,
    recipe_factory: RecipeFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = recipe_factory(packages=["booth"], updates=UPDATES)
    assert lock(recipe, *suite_mirrors(multi_suite)) == 0
    locked = read_lock(recipe.with_name("testbooth.lock.json"))
    by_name = {p.name: p for p in locked.packages}
    security_libc = next(d for d in multi_suite.security.archive.debs if d.name == "libc6")
    # A security update wins over the base suite's version and is fetched from its pool.
    libc6 = by_name["libc6"]
    assert (libc6.version, libc6.suite, libc6.sha256) == (
        "2.36-9+deb12u4",
        "bookworm-security",
        security_libc.sha256,
    )
    assert libc6.filename == security_libc.pool_path(SECURITY_POOL)
    assert libc6.filename.startswith("pool/updates/main/")
    assert libc6.sets == ("boot", "rootfs", "tools")
    # booth 1.1 (-updates) needs that libc6: a versioned dependency across suites.
    assert (by_name["booth"].version, by_name["booth"].suite) == ("1.1", "bookworm-updates")
    assert (by_name["media-types"].version, by_name["media-types"].suite) == (
        "11.0",
        "bookworm-updates",
    )
    # Only in the base suite; and the same version in two suites stays the base suite's.
    assert (by_name["bash"].version, by_name["bash"].suite) == ("5.2.15-2", "bookworm")
    assert (by_name["linux-base"].suite, by_name["linux-base"].filename) == (
        "bookworm",
        "pool/main/l/linux-base/linux-base_4.9_all.deb",
    )
    # The NotAutomatic backports suite was not asked for: its booth 9.0 is not chosen.
    assert locked.archive.suite == "bookworm"
    assert [a.suite for a in locked.archives] == sorted(["bookworm", *UPDATES])
    assert all(a.signing_key == gpg_key.fingerprint for a in locked.archives)
    assert locked.source_date_epoch == SECURITY_EPOCH  # the newest Release Date
    raw = json.loads(recipe.with_name("testbooth.lock.json").read_text())
    assert raw["format"] == 2
    assert raw["base_suite"] == "bookworm"
    assert [a["suite"] for a in raw["archives"]] == sorted(["bookworm", *UPDATES])
    assert "archive" not in raw
    out, err = capsys.readouterr()
    assert f"lock: {multi_suite.security.mirror}: InRelease of bookworm-security (" in err
    assert "archive bookworm-security (bookworm-security) of " + SECURITY_DATE in out


def test_relock_over_several_suites_is_byte_identical(
    multi_suite: MultiSuiteArchive,
    recipe_factory: RecipeFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = recipe_factory(packages=["booth"], updates=UPDATES)
    lock_path = recipe.with_name("testbooth.lock.json")
    assert lock(recipe, *suite_mirrors(multi_suite)) == 0
    first = lock_path.read_bytes()
    # Other mirror spellings for the same snapshots: a plain URL tried for every suite
    # (the main root has no bookworm-security, so its security index comes from the
    # suite's own entry), local directories instead of HTTP.
    assert (
        lock(
            recipe,
            str(multi_suite.main.archive.root),
            f"bookworm-security={multi_suite.security.archive.root}",
        )
        == 0
    )
    assert lock_path.read_bytes() == first
    assert "testbooth.lock.json: unchanged" in capsys.readouterr().out


def test_recipe_epoch_wins_over_newest_release_date(
    multi_suite: MultiSuiteArchive, recipe_factory: RecipeFactory
) -> None:
    recipe = recipe_factory(updates=UPDATES, extra="source_date_epoch: 1234\n")
    assert lock(recipe, *suite_mirrors(multi_suite)) == 0
    assert read_lock(recipe.with_name("testbooth.lock.json")).source_date_epoch == 1234


def test_adding_update_suites_makes_the_lock_stale(
    multi_suite: MultiSuiteArchive, recipe_factory: RecipeFactory
) -> None:
    recipe = recipe_factory(packages=["booth"])
    assert lock(recipe, multi_suite.main.mirror) == 0
    locked = load_lock_for(load_recipe(recipe))
    assert [a.suite for a in locked.archives] == ["bookworm"]
    assert {p.suite for p in locked.packages} == {"bookworm"}
    assert locked.package("libc6").version == "2.36-9"
    recipe_factory(packages=["booth"], updates=UPDATES)
    with pytest.raises(InputError, match=r"does not match testbooth\.yaml any more"):
        load_lock_for(load_recipe(recipe))


def test_tampered_second_inrelease_exit_3(
    multi_suite: MultiSuiteArchive,
    http_server: HttpServer,
    recipe_factory: RecipeFactory,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    copy = http_server.root / f"multi-tampered-{tmp_path.name}"
    shutil.copytree(multi_suite.security.archive.root, copy)
    inrelease = copy / "dists" / "bookworm-security" / "InRelease"
    inrelease.write_bytes(inrelease.read_bytes().replace(b"Origin: boothkey", b"Origin: evilkey"))
    recipe = recipe_factory(updates=UPDATES)
    mirrors = [
        f"bookworm={multi_suite.main.mirror}",
        f"bookworm-updates={multi_suite.main.mirror}",
        f"bookworm-security={http_server.url_for(copy)}",
    ]
    assert lock(recipe, *mirrors) == 3
    err = capsys.readouterr().err
    assert "dists/bookworm-security/InRelease: BAD signature" in err
    assert not recipe.with_name("testbooth.lock.json").exists()


def test_not_automatic_update_suite_is_refused(
    multi_suite: MultiSuiteArchive,
    recipe_factory: RecipeFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = recipe_factory(updates=["bookworm-backports"])
    assert lock(recipe, multi_suite.main.mirror) == 2
    err = capsys.readouterr().err
    assert "distribution.updates[0]: bookworm-backports is marked NotAutomatic" in err
    assert not recipe.with_name("testbooth.lock.json").exists()


def test_mirror_for_a_suite_the_recipe_lacks_is_refused(
    multi_suite: MultiSuiteArchive,
    recipe_factory: RecipeFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = recipe_factory(updates=UPDATES)
    assert lock(recipe, f"bookworm-securty={multi_suite.security.mirror}") == 2
    assert "the recipe has no suite 'bookworm-securty'" in capsys.readouterr().err


def test_update_suite_missing_on_every_mirror_names_it(
    multi_suite: MultiSuiteArchive,
    recipe_factory: RecipeFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = recipe_factory(updates=UPDATES)
    assert lock(recipe, multi_suite.main.mirror) == 1
    err = capsys.readouterr().err
    assert "/debian/dists/bookworm-security/InRelease" in err
    assert "pass --mirror bookworm-security=URL" in err


def test_format_1_lock_asks_for_a_relock(
    served_archive: ServedArchive, recipe_factory: RecipeFactory
) -> None:
    recipe = recipe_factory()
    assert lock(recipe, served_archive.mirror) == 0
    lock_path = recipe.with_name("testbooth.lock.json")
    raw = json.loads(lock_path.read_text())
    raw["format"] = 1
    lock_path.write_text(json.dumps(raw))
    with pytest.raises(InputError, match=r"lock format 1 is not 2; .*run `build.py lock`"):
        read_lock(lock_path)


def test_lock_file_suites_are_checked(
    served_archive: ServedArchive, recipe_factory: RecipeFactory
) -> None:
    recipe = recipe_factory()
    assert lock(recipe, served_archive.mirror) == 0
    lock_path = recipe.with_name("testbooth.lock.json")
    raw = json.loads(lock_path.read_text())
    raw["base_suite"] = "sid"
    raw["packages"][0]["suite"] = "bookworm-security"
    raw["archives"].append(dict(raw["archives"][0]))
    lock_path.write_text(json.dumps(raw))
    with pytest.raises(ValidationErrors) as info:
        read_lock(lock_path)
    problems = "\n".join(info.value.problems)
    assert "archives[1].suite: 'bookworm' is listed twice" in problems
    assert "base_suite: 'sid' is not one of the archives" in problems
    assert "packages[0].suite: 'bookworm-security' is not one of the archives" in problems


def test_merge_indexes_keeps_every_version_once() -> None:
    def record(name: str, version: str, suite: str) -> PackageRecord:
        return PackageRecord(
            name, version, "amd64", 1, "0" * 64, f"pool/{suite}/{name}", suite=suite
        )

    def index(*records: PackageRecord) -> ArchiveIndex:
        release = Release("s", "s", "d", 0, "0" * 64, "k", {})
        return ArchiveIndex("m", release, "amd64", ("main",), records)

    base = index(record("a", "1", "bookworm"), record("b", "1", "bookworm"))
    security = index(record("a", "2", "bookworm-security"), record("b", "1", "bookworm-security"))
    merged = merge_indexes([base, security])
    assert [(r.name, r.version, r.suite) for r in merged] == [
        ("a", "1", "bookworm"),
        ("b", "1", "bookworm"),
        ("a", "2", "bookworm-security"),
    ]


def test_epoch_ignores_update_suites_that_supplied_nothing(
    multi_suite: MultiSuiteArchive, recipe_factory: RecipeFactory
) -> None:
    # -updates is re-signed daily with nothing new: its later date must not move the
    # epoch (and so the image) while no locked package comes from it.
    recipe = recipe_factory(
        packages=["bash"],
        updates=["bookworm-updates"],
        variant="extract",
        extra="boot:\n  packages: []\n",
    )
    assert lock(recipe, multi_suite.main.mirror) == 0
    locked = read_lock(recipe.with_name("testbooth.lock.json"))
    assert {p.suite for p in locked.packages} == {"bookworm"}
    assert [a.suite for a in locked.archives] == ["bookworm", "bookworm-updates"]
    assert locked.source_date_epoch == FIXED_EPOCH < UPDATES_EPOCH
