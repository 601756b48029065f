"""builder/core/sandbox.py, builder/core/sandbox_init.py and builder/core/userns.py.

The host's own / serves as the tools tree (it has usr/ and etc/), so no Debian
archive is needed. The rootless test runs only if BOOTHKEY_TEST_USER names a user
with subordinate ids (Debian's `useradd` gives a new user some).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from builder.core.errors import InputError, ToolError
from builder.core.sandbox import INIT_SCRIPT, Sandbox
from builder.core.sandbox_init import identity_map
from builder.core.tools import BASE_ENV
from builder.core.userns import SubordinateRange, enter_user_namespace, subordinate_range

PROJECT = Path(__file__).resolve().parents[2]
HOST_TREE = Path("/")
# What the new root holds: the tree's usr and etc, their links, and the sandbox's own.
ROOT_ENTRIES = ["bin", "dev", "etc", "lib", "lib64", "proc", "run", "sbin", "sys", "tmp", "usr"]
TEST_USER_ENV = "BOOTHKEY_TEST_USER"


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tree=HOST_TREE, scratch=tmp_path / "scratch")


def stdout(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode()


def test_tool_runs_as_root_without_network(sandbox: Sandbox) -> None:
    assert stdout(sandbox.run(["id", "-u"])) == "0\n"
    net_dev = stdout(sandbox.run(["cat", "/proc/net/dev"])).splitlines()[2:]
    assert [line.split(":")[0].strip() for line in net_dev] == ["lo"]
    assert stdout(sandbox.run(["ls", "/sys/class/net"])) == "lo\n"


def test_environment_is_exactly_the_base_one_plus_the_callers(sandbox: Sandbox) -> None:
    printed = stdout(sandbox.run(["env"], env={"SOURCE_DATE_EPOCH": "1700000000"}))
    assert dict(line.split("=", 1) for line in printed.splitlines()) == {
        **BASE_ENV,
        "SOURCE_DATE_EPOCH": "1700000000",
    }


def test_cwd_umask_and_stdin(sandbox: Sandbox, tmp_path: Path) -> None:
    result = sandbox.run(["sh", "-c", "umask; pwd"], binds=[tmp_path], cwd=tmp_path)
    assert stdout(result) == f"0022\n{tmp_path}\n"
    assert stdout(sandbox.run(["sh", "-c", "pwd"])) == "/\n"
    assert stdout(sandbox.run(["cat"], stdin=b"ballot\n")) == "ballot\n"
    assert sandbox.run(["true"]).args == ["true"]


def test_writable_bind_writes_through_to_the_host(sandbox: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    sandbox.run(["sh", "-c", f"printf 'image bytes' > {out}/root.img"], writable=[out])
    assert (out / "root.img").read_bytes() == b"image bytes"


def test_read_only_bind_refuses_writes(sandbox: Sandbox, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "input").write_text("recipe\n")
    assert stdout(sandbox.run(["cat", source / "input"], binds=[source])) == "recipe\n"
    with pytest.raises(ToolError, match="Read-only file system"):
        sandbox.run(["sh", "-c", f"echo x > {source}/input"], binds=[source])
    assert (source / "input").read_text() == "recipe\n"


def test_binds_nest_and_files_bind_alone(sandbox: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "keys").mkdir(parents=True)
    key = tmp_path / "key.pem"
    key.write_text("secret\n")
    script = f"cat {key}; echo ok > {out}/made; echo no > {out}/keys/made"
    # Given deepest first on purpose: the sandbox mounts the shallowest first.
    with pytest.raises(ToolError, match="Read-only file system"):
        sandbox.run(["sh", "-c", script], binds=[out / "keys", key], writable=[out])
    assert (out / "made").read_text() == "ok\n"
    assert not (out / "keys" / "made").exists()


def test_paths_not_bound_are_invisible(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "private").write_text("not for tools")
    visible = tmp_path / "visible"
    visible.mkdir()
    assert stdout(sandbox.run(["ls", "/"])).split() == ROOT_ENTRIES
    with pytest.raises(ToolError, match="exit 1"):
        sandbox.run(["test", "-e", tmp_path / "private"], binds=[visible])
    with pytest.raises(ToolError, match="exit 1"):
        sandbox.run(["test", "-e", PROJECT / "pyproject.toml"])


def test_exit_code_command_and_stderr_are_reported(sandbox: Sandbox) -> None:
    with pytest.raises(ToolError) as failure:
        sandbox.run(["sh", "-c", "echo 'mksquashfs: out of space' >&2; exit 3"])
    message = failure.value.message
    assert message.startswith("sh failed (exit 3): sh -c ")
    assert "mksquashfs: out of space" in message
    with pytest.raises(ToolError, match=r"exit 137"):
        sandbox.run(["sh", "-c", "kill -KILL $$"])


def test_missing_tool_is_named(sandbox: Sandbox) -> None:
    with pytest.raises(ToolError, match="no-such-tool cannot be run from the tools tree /") as e:
        sandbox.run(["no-such-tool", "--version"])
    assert "boothkey-sandbox: cannot run no-such-tool: No such file or directory" in e.value.message


def test_setup_failure_is_one_line_and_exit_125(tmp_path: Path) -> None:
    workdir = tmp_path / "w"
    workdir.mkdir()
    spec = {
        "tree": str(tmp_path / "no-tree"),
        "workdir": str(workdir),
        "binds": [],
        "cwd": "/",
        "env": {},
        "argv": ["true"],
    }
    result = subprocess.run(
        [sys.executable, "-I", "-S", INIT_SCRIPT, json.dumps(spec)], capture_output=True
    )
    assert result.returncode == 125
    assert result.stderr.decode().splitlines() == [
        f"boothkey-sandbox: mount {tmp_path}/no-tree/usr on {workdir}/usr: No such file or directory"
    ]
    bad = subprocess.run([sys.executable, "-I", "-S", INIT_SCRIPT, "{}"], capture_output=True)
    assert bad.returncode == 125
    assert bad.stderr.decode().startswith("boothkey-sandbox: bad spec: expected an object")


def test_sandbox_that_cannot_start_says_so(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "usr").mkdir(parents=True)
    (tree / "etc").mkdir()
    # /etc/passwd exists on the host but not in this tree, whose etc is read-only.
    with pytest.raises(ToolError) as failure:
        Sandbox(tree, tmp_path / "scratch").run(["true"], binds=[Path("/etc/passwd")])
    assert failure.value.message.startswith(
        "the sandbox could not start for true: boothkey-sandbox: create mountpoint "
    )
    assert "Read-only file system" in failure.value.message
    assert list((tmp_path / "scratch").iterdir()) == []


def test_bad_binds_and_trees_are_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        sandbox.run(["true"], binds=[tmp_path / "missing"])
    with pytest.raises(ValueError, match="cannot be bound"):
        sandbox.run(["true"], binds=[Path("/")])
    with pytest.raises(ToolError, match="has no usr or etc directory"):
        Sandbox(tmp_path, tmp_path / "scratch").run(["true"])


def test_devices_proc_and_no_mknod(sandbox: Sandbox) -> None:
    assert stdout(sandbox.run(["sh", "-c", "echo $$"])) == "2\n"  # PID 1 is the init
    assert "status" in stdout(sandbox.run(["ls", "/proc/self"])).split()
    assert sandbox.run(["head", "-c", "4", "/dev/zero"]).stdout == b"\0" * 4
    sandbox.run(["sh", "-c", "echo discarded > /dev/null"])
    with pytest.raises(ToolError, match="mknod"):
        sandbox.run(["mknod", "/tmp/null", "c", "1", "3"])


def test_scratch_is_left_empty(sandbox: Sandbox) -> None:
    sandbox.run(["touch", "/tmp/left-behind"])
    assert list(sandbox.scratch.iterdir()) == []


def test_sandbox_inside_a_sandbox(sandbox: Sandbox) -> None:
    inner = {
        "tree": "/",
        "workdir": "/tmp/inner",
        "binds": [],
        "cwd": "/",
        "env": {"PATH": BASE_ENV["PATH"]},
        "argv": ["sh", "-c", "id -u; ls /sys/class/net; echo $$"],
    }
    result = sandbox.run(
        ["sh", "-c", 'mkdir /tmp/inner && exec "$@"', "sh", *python_init(inner)],
        binds=[INIT_SCRIPT],
    )
    assert stdout(result) == "0\nlo\n2\n"


def python_init(spec: Mapping[str, object]) -> list[str]:
    """The command line that starts a sandbox with the python3 found in PATH."""
    return ["python3", "-I", "-S", str(INIT_SCRIPT), json.dumps(spec)]


def running_with_marker(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_text():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_killing_the_starter_kills_the_sandbox(tmp_path: Path) -> None:
    workdir = tmp_path / "w"
    workdir.mkdir()
    marker = f"boothkey-test-{os.getpid()}-{time.monotonic_ns()}"
    spec = {
        "tree": "/",
        "workdir": str(workdir),
        "binds": [],
        "cwd": "/",
        "env": {"PATH": BASE_ENV["PATH"]},
        "argv": ["sh", "-c", "sleep 300; : " + marker],
    }
    starter = subprocess.Popen([sys.executable, "-I", "-S", INIT_SCRIPT, json.dumps(spec)])
    try:
        deadline = time.monotonic() + 10
        while len(running_with_marker(marker)) < 3:  # starter, init, tool
            assert time.monotonic() < deadline, "the sandboxed tool did not start"
            time.sleep(0.02)
    finally:
        starter.send_signal(signal.SIGKILL)
        starter.wait()
    deadline = time.monotonic() + 10
    while running_with_marker(marker):
        assert time.monotonic() < deadline, "the sandbox outlived its starter"
        time.sleep(0.02)


def test_identity_map_follows_the_callers_extents() -> None:
    assert identity_map("0 0 4294967295\n") == "0 0 65536\n"
    # Root of a rootless build's namespace: itself, then its subordinate ids.
    assert identity_map("0 1000 1\n1 100000 65536\n") == "0 0 1\n1 1 65535\n"
    assert identity_map("0 1000 1\n") == ""
    assert identity_map("0 0 100\n200 200 70000\n") == ""


def test_subordinate_range_by_name_or_uid(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text("alice:100000:1000\nbob:200000:65536\n1005:300000:70000\n")
    assert subordinate_range(subuid, "alice", 1004) is None  # too few ids
    assert subordinate_range(subuid, "bob", 1001) == SubordinateRange(200000, 65536)
    assert subordinate_range(subuid, "carol", 1005) == SubordinateRange(300000, 70000)
    assert subordinate_range(tmp_path / "missing", "bob", 1001) is None


def test_user_without_subordinate_ids_is_told_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nobody = pwd.getpwnam("nobody")
    monkeypatch.setattr(os, "geteuid", lambda: nobody.pw_uid)
    monkeypatch.setattr(os, "getuid", lambda: nobody.pw_uid)
    subuid = tmp_path / "subuid"
    subgid = tmp_path / "subgid"
    subuid.write_text("obs:100000:65536\n")
    subgid.write_text("obs:100000:65536\nnobody:300000:65536\n")
    with pytest.raises(InputError) as failure:
        enter_user_namespace(subuid_file=subuid, subgid_file=subgid)
    message = failure.value.message
    assert f"{subuid} gives nobody no range" in message
    assert str(subgid) not in message
    # A suggestion that overlaps nobody else's range.
    assert "sudo usermod --add-subuids 365536-431071 --add-subgids 365536-431071 nobody" in message
    assert "./setup" in message


def test_root_does_not_enter_a_namespace() -> None:
    if os.geteuid() != 0:
        pytest.skip("runs as root only")
    before = Path("/proc/self/ns/user").readlink()
    enter_user_namespace(subuid_file=Path("/nonexistent"), subgid_file=Path("/nonexistent"))
    assert Path("/proc/self/ns/user").readlink() == before


@pytest.fixture
def test_user() -> Iterator[pwd.struct_passwd]:
    name = os.environ.get(TEST_USER_ENV)
    if not name:
        pytest.skip(f"{TEST_USER_ENV} names no user with subordinate ids")
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        pytest.skip(f"{TEST_USER_ENV}={name}: no such user")
    if subordinate_range(Path("/etc/subuid"), name, user.pw_uid) is None:
        pytest.skip(f"{TEST_USER_ENV}={name} has no subordinate uid range of 65536 ids")
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("becoming the test user needs root and setpriv")
    yield user


ROOTLESS_SCRIPT = """
import json, os, sys
from pathlib import Path
from builder.core.sandbox import INIT_SCRIPT, Sandbox
from builder.core.userns import enter_user_namespace, in_user_namespace

work = Path(sys.argv[1])
enter_user_namespace()
assert (os.getuid(), os.getgid(), in_user_namespace()) == (0, 0, True)
sandbox = Sandbox(Path("/"), work / "scratch")
out = work / "out"
result = sandbox.run(
    ["sh", "-c", f"id -u; echo rootless > {out}/made; touch {out}/daemon; chown 1:1 {out}/daemon"],
    writable=[out],
)
inner = {"tree": "/", "workdir": "/tmp/inner", "binds": [], "cwd": "/",
         "env": {"PATH": "/usr/bin:/bin"}, "argv": ["id", "-u"]}
nested = sandbox.run(
    ["sh", "-c", 'mkdir /tmp/inner && exec "$@"', "sh",
     "python3", "-I", "-S", str(INIT_SCRIPT), json.dumps(inner)],
    binds=[INIT_SCRIPT],
)
print(result.stdout.decode() + nested.stdout.decode(), end="")
"""


def test_rootless_build_user_is_root_in_the_sandbox(test_user: pwd.struct_passwd) -> None:
    work = Path(tempfile.mkdtemp(prefix="boothkey-rootless-"))
    try:
        work.chmod(0o755)
        (work / "out").mkdir()
        os.chown(work, test_user.pw_uid, test_user.pw_gid)
        os.chown(work / "out", test_user.pw_uid, test_user.pw_gid)
        result = subprocess.run(
            [
                *("setpriv", "--reuid", str(test_user.pw_uid), "--regid", str(test_user.pw_gid)),
                *("--init-groups", sys.executable, "-c", ROOTLESS_SCRIPT, str(work)),
            ],
            env={**BASE_ENV, "PYTHONPATH": str(PROJECT), "HOME": test_user.pw_dir},
            cwd=work,
            capture_output=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.decode() == "0\n0\n"
        made = work / "out" / "made"
        assert made.read_text() == "rootless\n"
        # uid 0 inside is the user; uid 1 the first of the user's subordinate ids.
        assert made.stat().st_uid == test_user.pw_uid
        first = subordinate_range(Path("/etc/subuid"), test_user.pw_name, test_user.pw_uid)
        assert first is not None
        assert (work / "out" / "daemon").stat().st_uid == first.start
    finally:
        shutil.rmtree(work, ignore_errors=True)
