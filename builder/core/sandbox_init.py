"""Start one command in a fresh sandbox built from a tools tree (stdlib only).

Run as ``python3 -I -S sandbox_init.py SPEC_JSON``; it never imports boothkey.
SPEC_JSON is an object with:

- ``tree``: a directory holding ``usr/`` and ``etc/``, bound read-only as the new root's
  ``/usr`` and ``/etc`` (``/bin``, ``/sbin``, ``/lib``, ``/lib64`` are symlinks into usr);
- ``workdir``: an empty directory the new root (a tmpfs) is mounted on;
- ``binds``: ``[[host_path, read_only], ...]``, each bound at the same absolute path
  inside, shallowest first;
- ``cwd``, ``env`` (the tool's whole environment) and ``argv`` (searched in env's PATH
  inside the new root).

The command gets new user (identity map of ids 0-65535), mount, PID, network (only a
``lo`` that is down), IPC and UTS (host name ``localhost``) namespaces, a private
/proc, a minimal /dev with its own devpts and /dev/shm, a read-only sysfs of its own,
empty /tmp and /run, and umask 022. Its standard streams are passed through. A killed
starter takes the whole sandbox down with it. The exit status is the command's, or 128+signal if a signal killed it.
A failure to set the sandbox up prints one line ``boothkey-sandbox: WHAT: ERRNO TEXT``
and exits 125; a command that cannot be executed exits 126 (127: not found), as
env(1) and chroot(1) do.

The caller must be root, or root of a user namespace that maps ids 0-65535.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import signal
import sys

# os.execvpe imports warnings lazily, when the host's standard library is out of view
# (after pivot_root): import it while it is still there.
import warnings  # noqa: F401

# Imports for type checking only: `typing` alone would add a third to the start-up time
# every sandboxed tool pays.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

EXIT_SETUP_FAILED = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
ID_COUNT = 65536  # ids 0-65535 are mapped to themselves
# A new UTS namespace starts with the caller's names: set both so no host name leaks.
HOSTNAME = b"localhost"
DOMAINNAME = b"(none)"

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2
PR_SET_PDEATHSIG = 1
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41}
# statvfs f_flag bits that a bind remount inside a user namespace must keep (they are
# locked); the atime bits are kept by the kernel when none is given.
LOCKED_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
}
ROOT_LINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}

libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.unshare.argtypes = [ctypes.c_int]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]
libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


SPEC_FIELDS = ("tree", "workdir", "binds", "cwd", "env", "argv")


class Spec:
    """The parsed SPEC_JSON argument."""

    __slots__ = SPEC_FIELDS

    def __init__(
        self,
        tree: str,
        workdir: str,
        binds: list[tuple[str, bool]],
        cwd: str,
        env: dict[str, str],
        argv: list[str],
    ) -> None:
        self.tree = tree
        self.workdir = workdir
        self.binds = binds
        self.cwd = cwd
        self.env = env
        self.argv = argv


def parse_spec(text: str) -> Spec:
    """Spec from JSON text; ValueError naming the first field that is wrong."""
    raw = json.loads(text)
    if not isinstance(raw, dict) or sorted(raw) != sorted(SPEC_FIELDS):
        raise ValueError(f"expected an object with exactly the keys {', '.join(SPEC_FIELDS)}")
    strings = {name: raw[name] for name in ("tree", "workdir", "cwd")}
    for name, value in strings.items():
        if not isinstance(value, str) or not value.startswith("/"):
            raise ValueError(f"{name} must be an absolute path")
    binds = raw["binds"]
    if not isinstance(binds, list) or not all(
        isinstance(b, list)
        and len(b) == 2
        and isinstance(b[0], str)
        and b[0].startswith("/")
        and isinstance(b[1], bool)
        for b in binds
    ):
        raise ValueError("binds must be a list of [absolute path, read_only]")
    env, argv = raw["env"], raw["argv"]
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise ValueError("env must map strings to strings")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv must be a non-empty list of strings")
    return Spec(
        tree=strings["tree"],
        workdir=strings["workdir"],
        binds=[(os.path.normpath(path), read_only) for path, read_only in binds],
        cwd=strings["cwd"],
        env=env,
        argv=argv,
    )


class SetupError(Exception):
    """One setup step failed: ``what`` it was and the errno it failed with."""

    def __init__(self, what: str, error: int) -> None:
        super().__init__(f"{what}: {os.strerror(error)}")


def fail(message: str, code: int = EXIT_SETUP_FAILED) -> NoReturn:
    os.write(2, f"boothkey-sandbox: {message}\n".encode(errors="replace"))
    os._exit(code)


def check(result: int, what: str) -> None:
    if result != 0:
        raise SetupError(what, ctypes.get_errno())


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    result = libc.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    check(result, f"mount {source or fstype or ''} on {target}")


def os_step(what: str, action: Callable[..., object], *args: Any) -> None:
    """Run an os function, turning its OSError into a SetupError named `what`."""
    try:
        action(*args)
    except OSError as exc:
        raise SetupError(what, exc.errno or errno.EIO) from exc


def unescape_mountinfo(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def remount_readonly(target: str) -> None:
    """Make `target` and every mount below it (an rbind brings them along) read-only."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as info:
        points = [unescape_mountinfo(line.split()[4]) for line in info]
    prefix = target.rstrip("/") + "/"
    for point in points:
        if point == target or point.startswith(prefix):
            locked = os.statvfs(point).f_flag & LOCKED_FLAGS
            mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | locked)


def bind(source: str, target: str, read_only: bool) -> None:
    """Bind `source` (a directory or any other file) on `target`, creating the mountpoint."""
    if os.path.isdir(source):
        os_step(f"create mountpoint {target}", os.makedirs, target, 0o755, True)
    elif not os.path.lexists(target):
        os_step(f"create mountpoint {target}", os.makedirs, os.path.dirname(target), 0o755, True)
        os_step(f"create mountpoint {target}", create_empty_file, target)
    mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        remount_readonly(target)


def create_empty_file(path: str) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def build_root(spec: Spec) -> str:
    """Mount the new root on spec's workdir and fill it; return its path."""
    root = spec.workdir
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    for name in ("usr", "etc"):
        bind(os.path.join(spec.tree, name), inside(root, name), read_only=True)
    for name, target in ROOT_LINKS.items():
        os_step(f"symlink /{name}", os.symlink, target, inside(root, name))

    proc = inside(root, "proc")
    os_step("create /proc", os.mkdir, proc, 0o555)
    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    build_dev(inside(root, "dev"))
    build_sys(inside(root, "sys"))
    for name, mode in (("tmp", "1777"), ("run", "755")):
        path = inside(root, name)
        os_step(f"create /{name}", os.mkdir, path, 0o755)
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode}")

    for path, read_only in sorted(spec.binds, key=lambda b: b[0].count("/")):
        bind(path, inside(root, path), read_only)
    return root


def build_dev(dev: str) -> None:
    os_step("create /dev", os.mkdir, dev, 0o755)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755")
    for name in DEVICES:
        bind(f"/dev/{name}", os.path.join(dev, name), read_only=False)
    for name, target in DEV_LINKS.items():
        os_step(f"symlink /dev/{name}", os.symlink, target, os.path.join(dev, name))
    for name in ("pts", "shm"):
        os_step(f"create /dev/{name}", os.mkdir, os.path.join(dev, name), 0o755)
    # A private devpts: tools that want a terminal (script, apt's dpkg log) get one
    # without seeing the host's terminals.
    mount(
        "devpts",
        os.path.join(dev, "pts"),
        "devpts",
        MS_NOSUID | MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620",
    )
    mount("tmpfs", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")


def build_sys(sys_dir: str) -> None:
    """A read-only sysfs of the new network namespace (shows only lo); if the kernel
    refuses a new sysfs, a read-only bind of the host's."""
    os_step("create /sys", os.mkdir, sys_dir, 0o555)
    try:
        mount("sysfs", sys_dir, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except SetupError:
        bind("/sys", sys_dir, read_only=True)


def pivot_into(root: str) -> None:
    machine = os.uname().machine
    number = SYS_PIVOT_ROOT.get(machine)
    if number is None:
        raise SetupError(f"pivot_root on {machine}", errno.ENOSYS)
    os_step(f"chdir {root}", os.chdir, root)
    # pivot_root(".", "."): the old root ends up stacked on the new one and is detached
    # right away, so no directory for it is needed in the new root.
    check(libc.syscall(number, b".", b"."), "pivot_root")
    check(libc.umount2(b".", MNT_DETACH), "detach the old root")
    os_step("chdir /", os.chdir, "/")


def identity_map(own_map: str) -> str:
    """Lines mapping ids 0-65535 to themselves, cut where the caller's own map (the text
    of its /proc/self/uid_map or gid_map) changes extent: the kernel wants each line to
    fall inside one extent of the parent's map. Empty if the caller lacks some of them."""
    lines = []
    covered = 0
    for line in sorted(own_map.splitlines(), key=lambda text: int(text.split()[0])):
        first, _lower, count = (int(field) for field in line.split())
        start, end = max(first, covered), min(first + count, ID_COUNT)
        if start != covered:
            break
        if end > start:
            lines.append(f"{start} {start} {end - start}\n")
            covered = end
    return "".join(lines) if covered == ID_COUNT else ""


def write_id_maps(pid: int, go: int) -> NoReturn:
    """In the helper left in the parent namespace: map ids once `pid` has unshared."""
    if os.read(go, 1) != b"1":
        os._exit(0)
    for name in ("uid_map", "gid_map"):
        try:
            with open(f"/proc/self/{name}", encoding="ascii") as own:
                id_map = identity_map(own.read())
            if not id_map:
                fail(
                    f"map ids 0-{ID_COUNT - 1}: this user namespace's {name} does not have "
                    f"them all (run as root, or as root of a user namespace that maps them)"
                )
            with open(f"/proc/{pid}/{name}", "w", encoding="ascii") as map_file:
                map_file.write(id_map)
        except OSError as exc:
            fail(f"write /proc/{pid}/{name}: {exc.strerror}")
    os._exit(0)


def enter_namespaces() -> None:
    """Unshare every namespace; the next fork becomes PID 1 of the new PID namespace."""
    parent = os.getpid()
    go_read, go_write = os.pipe()
    helper = os.fork()
    if helper == 0:
        os.close(go_write)
        write_id_maps(parent, go_read)
    os.close(go_read)
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    unshared = libc.unshare(flags) == 0
    failure = ctypes.get_errno()
    os.write(go_write, b"1" if unshared else b"0")
    os.close(go_write)
    _, status = os.waitpid(helper, 0)
    if not unshared:
        raise SetupError("unshare user, mount, pid, net, ipc and uts namespaces", failure)
    if status != 0:
        os._exit(EXIT_SETUP_FAILED)  # the helper has printed why


def run_command(spec: Spec) -> NoReturn:
    """In the grandchild: become the tool."""
    for signum in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    os.umask(0o022)
    argv = spec.argv
    try:
        os.chdir(spec.cwd)
    except OSError as exc:
        fail(f"chdir {spec.cwd}: {exc.strerror}")
    try:
        os.execvpe(argv[0], argv, spec.env)
    except FileNotFoundError as exc:
        fail(f"cannot run {argv[0]}: {exc.strerror}", EXIT_NOT_FOUND)
    except OSError as exc:
        fail(f"cannot run {argv[0]}: {exc.strerror}", EXIT_CANNOT_EXECUTE)


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def init(spec: Spec, parent_alive: int) -> NoReturn:
    """PID 1 of the new PID namespace: set the root up, run the tool, reap orphans."""
    try:
        check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL), "prctl PR_SET_PDEATHSIG")
        # The parent holds the write end open while it lives; EOF means it already died.
        if select.select([parent_alive], [], [], 0)[0]:
            os._exit(EXIT_SETUP_FAILED)
        check(libc.sethostname(HOSTNAME, len(HOSTNAME)), "sethostname")
        check(libc.setdomainname(DOMAINNAME, len(DOMAINNAME)), "setdomainname")
        pivot_into(build_root(spec))
    except SetupError as exc:
        fail(str(exc))
    except OSError as exc:  # a step not wrapped in os_step: still one line, still 125
        fail(f"set up {exc.filename or 'the sandbox'}: {exc.strerror}")
    tool = os.fork()
    if tool == 0:
        run_command(spec)
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == tool:
            # Leaving PID 1 kills whatever the tool left running.
            os._exit(exit_code(status))


def main() -> NoReturn:
    if len(sys.argv) != 2:
        fail("usage: sandbox_init.py SPEC_JSON")
    try:
        spec = parse_spec(sys.argv[1])
    except ValueError as exc:
        fail(f"bad spec: {exc}")
    # Ctrl-C reaches the tool through the process group; its exit status reports it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        enter_namespaces()
    except SetupError as exc:
        fail(str(exc))
    alive_read, alive_write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(alive_write)
        init(spec, alive_read)
    os.close(alive_read)
    _, status = os.waitpid(child, 0)
    os._exit(exit_code(status))


if __name__ == "__main__":
    main()
