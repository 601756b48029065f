"""builder/observe/rebuild.py, builder/observe/compare.py and `build.py rebuild`."""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from manifest_factory import digest, manifest, partition, verity
from project_factory import make_project, project_manifest

from builder import cli
from builder.build.filelist import file_list_bytes, read_file_list, write_file_list
from builder.build.manifest import parse_manifest, read_manifest, write_manifest
from builder.commands import rebuild as rebuild_command
from builder.core.canonical import sha256_file
from builder.core.errors import InputError, VerificationFailed
from builder.observe import rebuild as rebuild_module
from builder.observe.compare import (
    Comparison,
    compare_file_lists,
    compare_manifests,
    step_causes,
)
from builder.observe.rebuild import RebuildResult, _open_bundle, _prepare, compare_builds
from builder.release.bundle import make_bundle

PROJECT = Path(__file__).resolve().parents[2]
STEPS = ("rootfs", "overlay", "rootimage", "verity", "initrd", "uki", "esp", "disk")


TOOLS_DIGEST = "sha256:" + "7" * 64


def step_digest(index: int) -> str:
    return "sha256:" + "abcdef"[index % 6] * 64


def compare(published: dict[str, Any], rebuilt: dict[str, Any]) -> Comparison:
    """Two raw manifests compared, as `rebuild` does once it has read them."""
    return compare_manifests(
        parse_manifest(published, "published"), parse_manifest(rebuilt, "rebuilt")
    )


def manifest_dict() -> dict[str, Any]:
    return manifest(
        version="1",
        epoch=1_700_000_000,
        code_sha256=digest("c"),
        recipe_sha256=digest("1"),
        overlays_sha256=digest("2"),
        lock_sha256=digest("3"),
        steps=[
            {
                "name": name,
                "id": digest(str(i)),
                "content_digest": step_digest(i),
                "inputs": {"tools": TOOLS_DIGEST}
                | ({STEPS[i - 1]: step_digest(i - 1)} if i else {}),
                "options": {"level": 19} if name == "rootimage" else {},
            }
            for i, name in enumerate(STEPS)
        ],
        image_size=8192,
        image_sha256=digest("4"),
        partitions=[
            partition(n, 4096 * i, 4096, digest(str(5 + i)), type="T", uuid=f"u-{n}")
            for i, n in enumerate(("esp", "root", "root-verity"))
        ],
        uki_sha256=digest("8"),
        cmdline="quiet boothkey.roothash=aa",
        verity_info=verity(digest("9"), "00", 1),
        packages=[
            {
                "name": "busybox",
                "version": "1",
                "architecture": "amd64",
                "sha256": digest("a"),
                "sets": ["rootfs"],
            }
        ],
        tools=[
            {"name": n, "version": v, "architecture": "amd64", "sha256": digest(d)}
            for n, v, d in (("libzstd1", "1.5.4", "d"), ("squashfs-tools", "1:4.5.1-1", "e"))
        ],
    )


def test_identical_manifests_are_the_same() -> None:
    result = compare(manifest_dict(), manifest_dict())
    assert result.ok
    assert result.first_diverging_step is None
    text = result.to_text()
    assert "DIFFERENT" not in text
    assert "Result: SAME" in text


def test_first_diverging_step_and_differing_partitions_are_named() -> None:
    published, rebuilt = manifest_dict(), manifest_dict()
    for step in rebuilt["steps"][1:]:
        step["content_digest"] = "sha256:" + "f" * 64
    rebuilt["image"]["sha256"] = "e" * 64
    rebuilt["partitions"][1]["sha256"] = "e" * 64
    rebuilt["verity"]["root_hash"] = "e" * 64
    result = compare(published, rebuilt)
    assert not result.ok
    assert result.first_diverging_step is not None
    assert result.first_diverging_step.name == "overlay"
    failed = {check.name for check in result.checks if not check.ok}
    assert {"image", "partition root", "verity root hash", "step overlay", "step disk"} <= failed
    assert "partition esp" not in failed and "step rootfs" not in failed
    text = result.to_text()
    assert "First diverging step: overlay" in text
    assert "DIFFERENT  partition root: published 6666" in text
    assert "Result: DIFFERENT" in text
    assert result.to_json()["first_diverging_step"]["name"] == "overlay"


def test_step_ids_and_tool_versions_are_notes_not_differences() -> None:
    published, rebuilt = manifest_dict(), manifest_dict()
    for step in rebuilt["steps"]:
        step["id"] = "0" * 64
    rebuilt["code_sha256"] = "1" * 64
    rebuilt["tools"][1]["version"] = "1:4.6-1"
    rebuilt["boothkey"] = "0.2.0"
    rebuilt["bundle"] = {"file": "x.tar", "sha256": "1" * 64, "size": 1}
    result = compare(published, rebuilt)
    assert result.ok
    notes = " ".join(result.notes)
    assert "step ids differ for overlay, rootimage" in notes
    assert "another boothkey source" in notes
    assert "squashfs-tools: 1:4.5.1-1 -> 1:4.6-1" in notes
    assert "boothkey version differs: published 0.1.0, rebuilt 0.2.0" in notes


def diverge_from(rebuilt: dict[str, Any], first: int) -> None:
    """Give `rebuilt` other outputs from step `first` on, chaining into the next inputs."""
    steps = rebuilt["steps"]
    for i in range(first, len(steps)):
        steps[i]["content_digest"] = "sha256:" + f"{i}" * 64
        if i + 1 < len(steps):
            steps[i + 1]["inputs"][STEPS[i]] = steps[i]["content_digest"]


def test_divergence_names_the_tools_packages_that_differ() -> None:
    published, rebuilt = manifest_dict(), manifest_dict()
    rebuilt["tools"][0] = dict(rebuilt["tools"][0], version="1.5.7", sha256="f" * 64)
    for step in rebuilt["steps"]:
        step["inputs"]["tools"] = "sha256:" + "8" * 64
    diverge_from(rebuilt, STEPS.index("rootimage"))
    result = compare(published, rebuilt)
    assert not result.ok
    step = result.first_diverging_step
    assert step is not None and step.name == "rootimage"
    assert step.causes == (
        f"input tools: content digest published {TOOLS_DIGEST}, rebuilt sha256:{'8' * 64}",
        "  tools libzstd1: 1.5.4 -> 1.5.7",
    )
    assert "  tools libzstd1: 1.5.4 -> 1.5.7" in result.to_text()
    assert result.to_json()["first_diverging_step"]["causes"] == list(step.causes)


def test_divergence_names_inputs_and_options_that_differ() -> None:
    published, rebuilt = manifest_dict(), manifest_dict()
    diverge_from(rebuilt, STEPS.index("overlay"))
    rootimage = rebuilt["steps"][STEPS.index("rootimage")]
    rootimage["options"] = {"level": 22}
    rebuilt["steps"][STEPS.index("overlay")]["options"] = {"files": ["etc/motd"]}
    step = compare(published, rebuilt).first_diverging_step
    assert step is not None and step.name == "overlay"
    assert step.causes == ('option files: published (none), rebuilt ["etc/motd"]',)
    # rootimage: its input overlay and its level both differ.
    a, b = parse_manifest(published, "published"), parse_manifest(rebuilt, "rebuilt")
    causes = step_causes(a.steps[STEPS.index("rootimage")], b.steps[STEPS.index("rootimage")], a, b)
    assert causes == [
        f"input overlay: content digest published {step_digest(1)}, rebuilt sha256:{'1' * 64}",
        "option level: published 19, rebuilt 22",
    ]


def test_same_inputs_and_options_blame_the_source_or_the_step_itself() -> None:
    published, rebuilt = manifest_dict(), manifest_dict()
    diverge_from(rebuilt, STEPS.index("verity"))
    step = compare(published, rebuilt).first_diverging_step
    assert step is not None and step.name == "verity"
    assert step.causes == (
        "its inputs, options, tools and boothkey source are all the same: the step itself "
        "is not deterministic on one of the two machines (please report this)",
    )
    rebuilt["code_sha256"] = "1" * 64
    step = compare(published, rebuilt).first_diverging_step
    assert step is not None and len(step.causes) == 1
    assert step.causes[0].startswith("its inputs, options and tools are the same, but another")
    assert f"rebuilt {'1' * 64}" in step.causes[0]


def test_source_and_layout_differences_are_reported() -> None:
    published, rebuilt = manifest_dict(), manifest_dict()
    rebuilt["lock_sha256"] = "0" * 64
    rebuilt["packages"][0]["version"] = "2"
    rebuilt["partitions"][0]["uuid"] = "other"
    rebuilt["partitions"].append(dict(rebuilt["partitions"][0], name="booth-data"))
    rebuilt["steps"] = rebuilt["steps"][:-1]
    result = compare(published, rebuilt)
    lines = {check.name: check.line() for check in result.checks if not check.ok}
    assert "lock file" in lines and "packages" in lines
    assert "busybox 1 amd64" in lines["packages"] and "busybox 2 amd64" in lines["packages"]
    assert "uuid u-esp -> other" in lines["partition esp"]
    assert "only in the rebuilt image" in lines["partition booth-data"]
    assert "step did not run" in lines["step disk"]
    assert result.first_diverging_step is not None and result.first_diverging_step.name == "disk"


def test_file_list_differences_in_plain_words() -> None:
    base = [
        {"path": ".", "type": "dir", "mode": 0o755, "uid": 0, "gid": 0, "mtime": 5},
        {
            "path": "etc/motd",
            "type": "file",
            "mode": 0o644,
            "uid": 0,
            "gid": 0,
            "size": 3,
            "sha256": "a" * 64,
            "mtime": 5,
        },
        {
            "path": "gone",
            "type": "file",
            "mode": 0o644,
            "uid": 0,
            "gid": 0,
            "size": 0,
            "sha256": "b" * 64,
            "mtime": 5,
        },
        {
            "path": "link",
            "type": "symlink",
            "mode": 0o777,
            "uid": 0,
            "gid": 0,
            "target": "a",
            "mtime": 5,
        },
    ]
    other = copy.deepcopy(base)
    other[1].update(size=4, sha256="c" * 64, mode=0o600)
    other[3]["target"] = "b"
    del other[2]
    other.append({"path": "new", "type": "dir", "mode": 0o755, "uid": 0, "gid": 0, "mtime": 9})
    differences = compare_file_lists(base, other)
    assert [(d.path, d.kind) for d in differences] == [
        ("etc/motd", "changed"),
        ("gone", "only-published"),
        ("link", "changed"),
        ("new", "only-rebuilt"),
    ]
    described = [d.describe() for d in differences]
    assert described[0] == (
        f"/etc/motd: mode 0o644 -> 0o600, size 3 -> 4, sha256 {'a' * 64} -> {'c' * 64}"
    )
    assert described[1] == "/gone: only in the published image"
    assert described[2] == "/link: target a -> b"
    assert described[3] == "/new: only in the rebuilt image"
    result = Comparison("demo", "1", file_differences=differences)
    assert not result.ok
    assert "Files that differ in the root filesystem (4):" in result.to_text()


def test_file_list_is_deterministic_and_checked(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "motd").write_text("hi\n")
    os.symlink("motd", tree / "etc" / "issue")
    os.utime(tree / "etc" / "motd", (100, 100))
    digest = write_file_list(tree, tmp_path / "files.json")
    data = (tmp_path / "files.json").read_bytes()
    assert data == file_list_bytes(tree)
    assert data.count(b"\n") == 2 + 4  # head line, 4 entries, closing line
    entries = read_file_list(tmp_path / "files.json", digest)
    assert [e["path"] for e in entries] == [".", "etc", "etc/issue", "etc/motd"]
    assert entries[3]["mtime"] == 100 and entries[3]["size"] == 3
    with pytest.raises(VerificationFailed, match="sha256 differs"):
        read_file_list(tmp_path / "files.json", "0" * 64)
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(InputError, match="not a boothkey file list"):
        read_file_list(tmp_path / "bad.json")


def test_work_directory_must_be_new_or_empty(tmp_path: Path) -> None:
    _prepare(tmp_path / "new")
    assert (tmp_path / "new").is_dir()
    _prepare(tmp_path / "new")  # empty is fine
    (tmp_path / "new" / "x").write_text("")
    with pytest.raises(InputError, match="new or empty"):
        _prepare(tmp_path / "new")


def test_bundle_tar_must_be_the_one_the_manifest_names(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", tmp_path / "debs")
    bundle = make_bundle(project.recipe, project.lock, project.deb_path, tmp_path / "out")
    raw = project_manifest(project)
    root, check = _open_bundle(bundle.tarball, raw, tmp_path / "w1")
    assert check.ok and "names no bundle" in check.note
    assert (root / "index.json").is_file()
    raw["bundle"] = {"file": bundle.tarball.name, "sha256": bundle.sha256, "size": bundle.size}
    assert _open_bundle(bundle.tarball, raw, tmp_path / "w2")[1].ok
    raw["bundle"]["sha256"] = "0" * 64
    _root, check = _open_bundle(bundle.tarball, raw, tmp_path / "w3")
    assert not check.ok
    assert "DIFFERENT  source bundle" in check.line()


def test_rebuild_from_a_bundle_fetches_from_it_and_attaches_the_published_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(tmp_path / "project", tmp_path / "debs")
    bundle = make_bundle(project.recipe, project.lock, project.deb_path, tmp_path / "pub")
    raw = project_manifest(project)
    raw["secure_boot"] = {"signature": base64.b64encode(b"published table").decode()}
    manifest = tmp_path / "pub" / "demo.manifest.json"
    write_manifest(manifest, raw)
    seen: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def fake_build(
        recipe: Any,
        out: Path,
        cache: Path,
        report: Any,
        lock: Any,
        *,
        secure_boot_signature: bytes | None = None,
    ) -> None:
        seen["signature"] = secure_boot_signature
        seen["recipe"] = recipe.path
        seen["debs"] = sorted(sha256_file(p) for p in (cache / "debs").rglob("*.deb"))
        raise Stop

    monkeypatch.setattr(rebuild_module, "build_image", fake_build)
    work = tmp_path / "work"
    with pytest.raises(Stop):
        rebuild_module.rebuild_and_compare(
            manifest, work, bundle=bundle.tarball, report=lambda line: None
        )
    # The published signature is an explicit input of the build, not an environment variable.
    assert seen["signature"] == b"published table"
    assert seen["recipe"] == work / "source" / "demo-2.0-source" / "recipes" / "demo.yaml"
    assert seen["debs"] == sorted(p.sha256 for p in project.lock.packages)
    # A damaged bundle directory is refused before anything is built.
    (bundle.directory / "recipes" / "demo.yaml").write_text("tampered")
    with pytest.raises(VerificationFailed, match=r"recipes/demo\.yaml: content differs"):
        rebuild_module.rebuild_and_compare(
            manifest, tmp_path / "work2", bundle=bundle.directory, report=lambda line: None
        )


@pytest.mark.parametrize(("same", "code"), [(True, 0), (False, 3)])
def test_rebuild_command_exit_codes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    same: bool,
    code: int,
) -> None:
    manifest = tmp_path / "demo.manifest.json"
    write_manifest(manifest, manifest_dict())
    seen: dict[str, Any] = {}

    def fake(manifest_path: Path, work: Path, **kwargs: Any) -> RebuildResult:
        seen.update(kwargs, work=work)
        rebuilt = manifest_dict()
        if not same:
            rebuilt["image"]["sha256"] = "0" * 64
        return RebuildResult(compare(manifest_dict(), rebuilt), work, work, work)

    monkeypatch.setattr(rebuild_command, "rebuild_and_compare", fake)
    argv = ["rebuild", str(manifest), "--mirror", "http://127.0.0.1:9/debian", "--quiet"]
    assert cli.main([*argv, "--work", str(tmp_path / "w")]) == code
    out = capsys.readouterr().out
    assert ("Result: SAME" in out) == same
    assert seen["mirrors"] == ["http://127.0.0.1:9/debian"] and seen["bundle"] is None
    assert seen["work"] == tmp_path / "w"
    assert cli.main([*argv, "--json", "--work", str(tmp_path / "w2")]) == code
    assert json.loads(capsys.readouterr().out)["same"] is same


# --- real rebuilds of recipes/hello.yaml -------------------------------------------------


@pytest.fixture(scope="module")
def rebuilt_from_bundle(
    built_hello_image: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """(published dir, rebuild work dir, the rebuild's process): the session's hello build
    published with its bundle, then rebuilt from the bundle tar with no network at all."""
    _image, manifest = built_hello_image
    published = tmp_path_factory.mktemp("published") / "release"
    shutil.copytree(manifest.parent, published)
    python = sys.executable
    subprocess.run(
        [python, "build.py", "bundle", "recipes/hello.yaml", "--out", str(published)],
        cwd=PROJECT,
        check=True,
        capture_output=True,
    )
    work = tmp_path_factory.mktemp("rebuild") / "work"
    # A network namespace of its own has no interfaces: any download would fail.
    done = subprocess.run(
        [
            "unshare",
            "--net",
            python,
            str(PROJECT / "build.py"),
            "rebuild",
            str(published / "hello.manifest.json"),
            "--bundle",
            str(published / "hello-1-source.tar"),
            "--work",
            str(work),
        ],
        cwd=tmp_path_factory.mktemp("elsewhere"),
        capture_output=True,
        text=True,
        check=False,
    )
    return published, work, done


@pytest.mark.slow
def test_rebuild_from_bundle_offline_is_the_same(
    rebuilt_from_bundle: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    published, work, done = rebuilt_from_bundle
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Result: SAME" in done.stdout
    assert "same       source bundle" in done.stdout
    assert "same       root filesystem files" in done.stdout
    report = json.loads((work / "report.json").read_text())
    assert report["same"] is True and report["file_differences"] == []
    manifest = read_manifest(published / "hello.manifest.json")
    assert manifest.raw["bundle"]["sha256"] == sha256_file(published / "hello-1-source.tar")
    assert sha256_file(work / "out" / "hello.img") == manifest.image.sha256
    assert (work / "source" / "hello-1-source" / "pool").is_dir()


@pytest.mark.slow
def test_a_differing_published_build_is_explained(
    rebuilt_from_bundle: tuple[Path, Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    published, work, _done = rebuilt_from_bundle
    # Pretend the published build differed from the start of the overlay step: one file of
    # the root filesystem has other content, so the root partition has other bytes.
    tampered = tmp_path / "tampered"
    shutil.copytree(published, tampered)
    raw = json.loads((tampered / "hello.manifest.json").read_bytes())
    files = tampered / raw["files"]["file"]
    entries = read_file_list(files)
    victim = next(e for e in entries if e["type"] == "file" and e["path"].startswith("usr/sbin/"))
    text = files.read_text().replace(victim["sha256"], "0" * 64)
    files.write_text(text)
    raw["files"]["sha256"] = sha256_file(files)
    root = next(p for p in raw["partitions"] if p["name"] == "root")
    image = tampered / raw["image"]["file"]
    with open(image, "r+b") as stream:
        stream.seek(root["offset"] + 4096)
        byte = stream.read(1)
        stream.seek(root["offset"] + 4096)
        stream.write(bytes([byte[0] ^ 0xFF]))
    raw["image"]["sha256"] = sha256_file(image)
    root["sha256"] = "1" * 64
    names = [step["name"] for step in raw["steps"]]
    assert names[:2] == ["tools", "rootfs"]
    for step in raw["steps"][names.index("overlay") :]:
        if step["name"] != "initrd":
            step["content_digest"] = "sha256:" + "2" * 64
    write_manifest(tampered / "hello.manifest.json", raw)

    result = compare_builds(
        tampered / "hello.manifest.json",
        work / "out" / "hello.manifest.json",
        diffoscope_dir=tmp_path / "diffoscope",
        report=lambda line: None,
    )
    assert not result.ok
    assert result.first_diverging_step is not None
    assert result.first_diverging_step.name == "overlay"
    assert result.file_differences is not None
    assert [d.path for d in result.file_differences] == [victim["path"]]
    text = result.to_text()
    assert "First diverging step: overlay" in text
    # Its inputs, options, tools and boothkey source are the same in both manifests.
    assert "the step itself is not deterministic" in text
    assert f"/{victim['path']}: sha256 {'0' * 64} -> {victim['sha256']}" in text
    assert "DIFFERENT  partition root" in text
    assert "same       partition esp" in text
    if shutil.which("diffoscope"):
        names = sorted(path.name for path in result.reports)
        assert names == ["root.diffoscope.html", "root.diffoscope.txt"]
        assert (tmp_path / "diffoscope" / "root.diffoscope.txt").stat().st_size > 0
    else:
        assert any("install diffoscope" in note for note in result.notes)
