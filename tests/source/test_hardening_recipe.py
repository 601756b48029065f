"""Issue 11, items 2, 4 and 7: the kernel command line is checked when the recipe is
loaded (and a repeated boothkey.* parameter is refused by the initrd and the booth),
overlays stay inside the project, and input files are parsed without alias bombs,
non-UTF-8 tracebacks, stack exhaustion or quadratic duplicate checks."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from builder.build.steps.initrd import INIT_SCRIPT
from builder.cli import main
from builder.core.errors import EXIT_BAD_INPUT, InputError, ValidationErrors
from builder.core.jsonfields import FieldReader, read_json_file
from builder.source.recipe import load_recipe

PROJECT = Path(__file__).resolve().parents[2]
BOOTH_LIB = PROJECT / "overlays" / "booth" / "usr" / "lib" / "booth"
MINIMAL = 'name: mini\nversion: "1"\ndistribution: {suite: bookworm}\npackages: [busybox-static]\n'
ROOT = "ab" * 32
OTHER = "cd" * 32


def write_recipe(project: Path, text: str | bytes) -> Path:
    path = project / "recipes" / "mini.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ValidationErrors) as caught:
        load_recipe(path)
    return caught.value.problems


def boot_section(cmdline: list[str]) -> str:
    # JSON strings are YAML double-quoted strings: every character can be written.
    return f"boot:\n  cmdline: {json.dumps(cmdline)}\n"


# Item 2: the kernel command line.


def test_words_smuggled_into_boot_init_are_refused_at_load(tmp_path: Path) -> None:
    injected = f"/usr/sbin/x init=/bin/sh boothkey.roothash={'0' * 64}"
    path = write_recipe(tmp_path, MINIMAL + f"boot:\n  init: {json.dumps(injected)}\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: boot.init: {injected!r} must be one normalised")


@pytest.mark.parametrize(
    "init",
    [
        "/usr/sbin/x\tinit=/bin/sh",
        "/usr/sbin/booth-init\n",
        "/usr/../bin/sh",
        "/usr/sbin/./booth-init",
        "//usr/sbin/booth-init",
        "/usr/sbin/",
        "/",
        '/usr/sbin/"x"',
        "/usr/sbin/x\x1b",
    ],
)
def test_boot_init_is_one_normalised_absolute_path(tmp_path: Path, init: str) -> None:
    path = write_recipe(tmp_path, MINIMAL + f"boot:\n  init: {json.dumps(init)}\n")
    assert [p.split(": ")[1] for p in problems_of(path)] == ["boot.init"]


def test_ordinary_boot_init_paths_are_accepted(tmp_path: Path) -> None:
    for init in ("/usr/sbin/booth-init", "/sbin/init", "/lib/systemd/systemd", "/opt/a_b+c.d"):
        recipe = load_recipe(write_recipe(tmp_path, MINIMAL + f"boot:\n  init: {init}\n"))
        assert recipe.boot.init == init


@pytest.mark.parametrize(
    "word",
    [
        "rdinit=/bin/sh",
        "init=/bin/sh",
        "root=/dev/sda1",
        "rootfstype=ext4",
        "initrd=\\EFI\\evil.img",
        "noinitrd",
        "dm-mod.create=evil,,,ro,0",
        "dm_mod.create=x",
        "boothkey.roothash=" + "0" * 64,
        "sysctl.kernel.core_pattern=|/bin/sh",
        "systemd.run=/bin/sh",
        "single",
        "emergency",
        "3",
        "--",
        "-s",
        "LD_PRELOAD=/tmp/x.so",
        "PATH=/tmp",
    ],
)
def test_words_that_change_what_runs_are_refused(tmp_path: Path, word: str) -> None:
    path = write_recipe(tmp_path, MINIMAL + boot_section(["quiet", word]))
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: boot.cmdline[1]: {word!r}: ")


@pytest.mark.parametrize(
    "word", ["a\nb", "a b", "tab\there", "nul\x00", "esc\x1b[2J", 'x="a b"', "caf\u00e9=1"]
)
def test_a_cmdline_entry_is_one_plain_word(tmp_path: Path, word: str) -> None:
    path = write_recipe(tmp_path, MINIMAL + boot_section(["quiet", word]))
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: boot.cmdline[1]: ")
    assert "one word of printable ASCII" in problem


def test_ordinary_kernel_parameters_are_accepted(tmp_path: Path) -> None:
    words = [
        "console=ttyS0,115200n8",
        "console=tty1",
        "quiet",
        "loglevel=3",
        "panic=0",
        "8250.nr_uarts=4",
        "usbcore.autosuspend=-1",
        "booth.console=tty1",
        "nomodeset",
    ]
    recipe = load_recipe(write_recipe(tmp_path, MINIMAL + boot_section(words)))
    assert recipe.boot.cmdline == tuple(words)


def test_a_newline_is_refused_by_build_before_any_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_recipe(tmp_path, MINIMAL + boot_section(["quiet", "a\nb"]))
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["build", str(path), "--out", str(out), "--cache-dir", str(cache), "--quiet"]
    assert main(argv) == EXIT_BAD_INPUT
    assert f"{path}: boot.cmdline[1]: 'a\\nb': must be one word" in capsys.readouterr().err
    assert not out.exists() and not cache.exists()


def test_the_whole_command_line_must_fit_the_kernel(tmp_path: Path) -> None:
    words = [f"x{index}=" + "y" * 95 for index in range(20)]  # about 2 KiB
    path = write_recipe(tmp_path, MINIMAL + boot_section(words))
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: boot.cmdline: ")
    assert "the kernel keeps 2047" in problem  # x86 COMMAND_LINE_SIZE, less its NUL
    assert load_recipe(write_recipe(tmp_path, MINIMAL + boot_section(words[:10])))


def _initrd_parameter_reader(tmp_path: Path) -> Path:
    """A shell script holding init.sh's own read_boothkey_parameters, with a `stop` that
    prints like the real one and exits instead of halting this machine."""
    script = INIT_SCRIPT.read_text()
    function = re.search(r"^read_boothkey_parameters\(\) \{\n.*?^\}\n", script, re.M | re.S)
    assert function is not None
    # The initrd calls it on /proc/cmdline before using any value.
    call = script.index('read_boothkey_parameters "$(cat /proc/cmdline)"')
    assert call < script.index('echo "$ROOTHASH"')
    reader = tmp_path / "read-parameters.sh"
    reader.write_text(
        'stop() { for line in "$@"; do echo "BOOTHKEY: $line"; done; exit 42; }\n'
        + function.group(0)
        + 'read_boothkey_parameters "$1"\n'
        + 'echo "root=$ROOTHASH init=$NEXT_INIT fstype=$FSTYPE"\n'
    )
    return reader


def _run_reader(reader: Path, cmdline: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(reader), cmdline], capture_output=True, text=True, cwd=cwd, check=False
    )


def test_initrd_stops_on_a_repeated_boothkey_parameter(tmp_path: Path) -> None:
    reader = _initrd_parameter_reader(tmp_path)
    good = f"quiet boothkey.roothash={ROOT} boothkey.fstype=squashfs boothkey.init=/sbin/init\n"
    result = _run_reader(reader, good, tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"root={ROOT} init=/sbin/init fstype=squashfs\n"
    # The case: an injected root hash before the build's own.
    for repeated in (
        f"boothkey.roothash={OTHER} init=/bin/sh {good}",
        f"{good.strip()} boothkey.init=/bin/sh",
        f"boothkey.fstype {good}",  # a key without a value counts too
    ):
        result = _run_reader(reader, repeated, tmp_path)
        assert result.returncode == 42, result.stdout
        assert result.stdout.startswith("BOOTHKEY: the kernel command line sets boothkey.")
        assert "more than once" in result.stdout


def test_initrd_does_not_expand_file_names_in_the_command_line(tmp_path: Path) -> None:
    reader = _initrd_parameter_reader(tmp_path)
    (tmp_path / f"boothkey.roothash={OTHER}").touch()
    result = _run_reader(reader, f"boothkey.roothash={ROOT} boothkey.r*", tmp_path)
    assert result.returncode == 0 and f"root={ROOT} " in result.stdout


def _booth_fingerprint() -> ModuleType:
    if str(BOOTH_LIB) not in sys.path:
        sys.path.insert(0, str(BOOTH_LIB))
    return importlib.import_module("booth.fingerprint")


def test_booth_refuses_a_repeated_boothkey_parameter() -> None:
    fingerprint = _booth_fingerprint()
    good = f"console=ttyS0 quiet boothkey.roothash={ROOT} boothkey.init=/usr/sbin/booth-init\n"
    assert fingerprint.root_hash_from_cmdline(good) == ROOT
    for repeated in (
        f"boothkey.roothash={OTHER} {good}",
        f"{good.strip()} boothkey.roothash={OTHER}",
        f"{good.strip()} boothkey.init=/bin/sh",
        f"{good.strip()}\tboothkey.salt=00 boothkey.salt=00",
    ):
        assert fingerprint.root_hash_from_cmdline(repeated) is None, repeated


def test_booth_splits_words_as_the_initrd_does() -> None:
    # \x1f is whitespace to str.split() but not to the initrd's shell: one word there.
    fingerprint = _booth_fingerprint()
    assert fingerprint.root_hash_from_cmdline(f"x\x1fboothkey.roothash={ROOT}") is None


# Item 4: overlays inside the project.


def _project_with_overlays(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "overlays" / "ok" / "etc").mkdir(parents=True)
    (tmp_path / "outside" / "etc").mkdir(parents=True)
    (tmp_path / "outside" / "etc" / "shadow").write_text("host secrets\n")
    os.symlink(tmp_path / "outside", project / "overlays" / "escape")
    os.symlink("../../outside", project / "overlays" / "relative-escape")
    os.symlink("ok", project / "overlays" / "alias")
    return project


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("/etc", "must be a path relative to the project"),
        ("ABSOLUTE", "must be a path relative to the project"),
        ("../outside", "leads outside the project"),
        ("overlays/../../outside", "leads outside the project"),
        ("overlays/escape", "leads outside the project"),
        ("overlays/relative-escape", "leads outside the project"),
        (".", "is the whole project"),
        ("overlays/..", "is the whole project"),
    ],
)
def test_overlays_outside_the_project_are_refused(tmp_path: Path, entry: str, message: str) -> None:
    project = _project_with_overlays(tmp_path)
    entry = entry.replace("ABSOLUTE", str(tmp_path / "outside"))
    path = write_recipe(project, MINIMAL + f"overlays: [overlays/ok, {entry!r}]\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: overlays[1]: {entry!r} {message}")


def test_overlays_inside_the_project_are_named_by_their_place_in_it(tmp_path: Path) -> None:
    project = _project_with_overlays(tmp_path)
    os.symlink(project, tmp_path / "checkout")  # the project reached through a symlink
    write_recipe(project, MINIMAL + "overlays: [overlays/ok, overlays/alias]\n")
    recipe = load_recipe(tmp_path / "checkout" / "recipes" / "mini.yaml")
    assert recipe.project_dir == tmp_path / "checkout"
    assert recipe.overlays == (tmp_path / "checkout" / "overlays" / "ok",) * 2
    assert all(o.relative_to(recipe.project_dir) for o in recipe.overlays)


# Item 7: parsing.


def test_yaml_aliases_and_anchors_are_refused(tmp_path: Path) -> None:
    cases = {
        "variables:\n  a: &x [1, 2]\n  b: *x\n": "line 6: YAML anchors and aliases",
        "variables:\n  a: &x 1\n": "line 6: YAML anchors and aliases",
        "variables:\n  a: 1\n  <<: {b: 2}\n": "line 7: YAML merge keys (<<) are not allowed",
        "variables:\n  a: 1\n  a: 2\n": "line 7: the key 'a' appears more than once",
        "name: other\n": "the key 'name' appears more than once",
    }
    for extra, message in cases.items():
        path = write_recipe(tmp_path, MINIMAL + extra)
        with pytest.raises(InputError) as caught:
            load_recipe(path)
        assert caught.value.message.startswith(f"{path}: ")
        assert message in caught.value.message


def test_an_alias_bomb_is_refused_at_its_first_anchor(tmp_path: Path) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for index in range(1, 6):  # 9**6 leaves when expanded
        previous = chr(ord("a") + index - 1)
        name = chr(ord("a") + index)
        levels.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
    path = write_recipe(tmp_path, MINIMAL + "variables:\n" + "".join(f"  {x}\n" for x in levels))
    with pytest.raises(InputError, match=r"mini\.yaml: line 6: YAML anchors and aliases"):
        load_recipe(path)


def test_deep_nesting_is_an_input_error(tmp_path: Path) -> None:
    for depth in (100, 100_000):  # beyond boothkey's limit; beyond Python's stack
        nested = "[" * depth + "]" * depth
        path = write_recipe(tmp_path, MINIMAL + f"variables:\n  a: {nested}\n")
        with pytest.raises(InputError, match=r"mini\.yaml: line 6: .*nest"):
            load_recipe(path)
    manifest = tmp_path / "deep.json"
    manifest.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(InputError, match=r"deep\.json: nested more than 64 levels deep"):
        read_json_file(manifest, "manifest")
    manifest.write_bytes(b'{"a":' * 70 + b"1" + b"}" * 70)  # within Python's stack
    with pytest.raises(InputError, match="nested more than 64 levels deep"):
        read_json_file(manifest, "manifest")


def test_repeated_keys_in_json_are_refused(tmp_path: Path) -> None:
    lock = tmp_path / "mini.lock.json"
    lock.write_bytes(b'{"format": 1, "format": 2}')
    with pytest.raises(InputError, match="the key 'format' appears more than once"):
        read_json_file(lock, "lock file")


@pytest.mark.parametrize("command", ["lock", "fetch", "build"])
def test_non_utf8_recipe_is_a_named_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = write_recipe(tmp_path, MINIMAL.encode() + b"variables: {title: caf\xe9}\n")
    options = {
        "lock": ["--mirror", str(tmp_path / "no-mirror")],
        "fetch": ["--mirror", str(tmp_path / "no-mirror"), "--cache-dir", str(tmp_path / "c")],
        "build": ["--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")],
    }[command]
    assert main([command, str(path), *options]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{path}: line 5: not UTF-8 text (byte 0xe9)" in err


def test_non_utf8_lock_manifest_and_election_are_named_input_errors(tmp_path: Path) -> None:
    from builder.station.election import load_election

    for name, reader in (
        ("mini.lock.json", lambda p: read_json_file(p, "lock file")),
        ("out.manifest.json", lambda p: read_json_file(p, "manifest")),
        ("election.yaml", load_election),
    ):
        path = tmp_path / name
        path.write_bytes(b'{"a":\n "\xff"}')
        with pytest.raises(InputError, match=rf"{re.escape(name)}: line 2: not UTF-8 text"):
            reader(path)


class CountingStr(str):
    """A string that counts how often it is compared for equality."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        CountingStr.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_the_duplicate_check_is_linear() -> None:
    entries = [CountingStr(f"package{index}") for index in range(3000)]
    entries.append(CountingStr("package7"))
    reader = FieldReader("recipes/big.yaml")
    CountingStr.comparisons = 0
    assert len(reader.string_list(entries, "packages")) == 3001
    assert reader.problems == ["recipes/big.yaml: packages[3000]: duplicate entry 'package7'"]
    # Comparing each entry with all earlier ones would be 4.5 million comparisons.
    assert CountingStr.comparisons < 2 * len(entries)


def test_a_long_package_list_reports_each_duplicate(tmp_path: Path) -> None:
    names = [f"pkg{index}" for index in range(80_000)]
    body = "".join(f"  - {name}\n" for name in [*names, "pkg5", "pkg79999"])
    path = write_recipe(
        tmp_path, 'name: big\nversion: "1"\ndistribution: {suite: bookworm}\npackages:\n' + body
    )
    assert problems_of(path) == [
        f"{path}: packages[80000]: duplicate entry 'pkg5'",
        f"{path}: packages[80001]: duplicate entry 'pkg79999'",
    ]
