"""Running a byte-producing tool from the tools tree, in a sandbox.

The sandbox (see `sandbox_init.py`) sees only the tools tree's ``usr/`` and ``etc/``, the
paths a caller binds, and a private /proc, /dev, /sys, /tmp and /run. It runs in its own
user namespace with ids 0-65535 mapped to themselves, so a tool sees uid 0 and cannot
make device nodes whether the build runs as root or, after
`builder.core.userns.enter_user_namespace`, as an ordinary user. It has no network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.core.errors import ToolError
from builder.core.tools import stderr_tail, tool_env, tool_failure

INIT_SCRIPT = Path(__file__).with_name("sandbox_init.py")
# sandbox_init.py's exit codes and the prefix of the one line it prints when it fails.
EXIT_SETUP_FAILED = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
OWN_LINE_PREFIX = "boothkey-sandbox: "


@dataclass(frozen=True)
class Sandbox:
    """Where tools come from (`tree`, holding ``usr/`` and ``etc/``) and where each run's
    empty mountpoint for the new root is made and removed again (`scratch`)."""

    tree: Path
    scratch: Path

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        binds: Sequence[Path] = (),
        writable: Sequence[Path] = (),
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdin: bytes | None = None,
        capture: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run `argv` (found in PATH inside the tree) in a fresh sandbox.

        `binds` are visible read-only and `writable` read-write, each at its own absolute
        path (a bind may lie under another); every one must exist. The environment is exactly `tools.BASE_ENV` plus
        `env`, umask 022, cwd `cwd` (default ``/``). A non-zero exit raises `ToolError`
        with the command and the tail of its stderr. The result's ``args`` is `argv`.
        """
        args = [str(arg) for arg in argv]
        mounts = _bind_list(binds, writable)
        self._check_tree()
        inside_cwd = cwd if cwd is not None else Path("/")
        if not inside_cwd.is_absolute():
            raise ValueError(f"sandbox cwd must be absolute: {inside_cwd}")
        self.scratch.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="sandbox-", dir=self.scratch))
        spec = {
            "tree": str(self.tree.absolute()),
            "workdir": str(workdir),
            "binds": mounts,
            "cwd": str(inside_cwd),
            "env": tool_env(env),
            "argv": args,
        }
        try:
            result = subprocess.run(
                [sys.executable, "-I", "-S", str(INIT_SCRIPT), json.dumps(spec)],
                input=stdin,
                env={},
                stdout=subprocess.PIPE if capture else None,
                stderr=subprocess.PIPE if capture else None,
                check=False,
            )
        except OSError as exc:
            raise ToolError(f"{args[0]}: cannot start the sandbox: {exc}") from exc
        finally:
            # Empty again: the new root was mounted only in the sandbox's mount namespace.
            workdir.rmdir()
        completed = subprocess.CompletedProcess(
            args, result.returncode, result.stdout, result.stderr
        )
        if completed.returncode != 0:
            raise self._failure(completed)
        return completed

    def _check_tree(self) -> None:
        missing = [name for name in ("usr", "etc") if not (self.tree / name).is_dir()]
        if missing:
            raise ToolError(f"tools tree {self.tree} has no {' or '.join(missing)} directory")

    def _failure(self, result: subprocess.CompletedProcess[bytes]) -> ToolError:
        args: list[str] = result.args
        tail = stderr_tail(result.stderr)
        own_line = tail[-1] if tail and tail[-1].startswith(OWN_LINE_PREFIX) else None
        if own_line is None:
            return tool_failure(args, result)
        if result.returncode == EXIT_SETUP_FAILED:
            return ToolError(
                f"the sandbox could not start for {args[0]}: {own_line}\n  command: {' '.join(args)}"
            )
        if result.returncode in (EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND):
            return ToolError(
                f"{args[0]} cannot be run from the tools tree {self.tree}: {own_line}\n"
                f"  command: {' '.join(args)}"
            )
        return tool_failure(args, result)


def _bind_list(binds: Sequence[Path], writable: Sequence[Path]) -> list[tuple[str, bool]]:
    """``[(absolute path, read_only)]``, shallowest first so a bind may lie under another.

    A path given more than once is bound once, writable if any of its mentions is.
    """
    mounts: dict[str, bool] = {}
    for paths, read_only in ((binds, True), (writable, False)):
        for path in paths:
            absolute = os.path.normpath(path.absolute())
            if absolute == "/":
                raise ValueError("the host's / cannot be bound into a sandbox")
            if not os.path.exists(absolute):
                raise ValueError(f"sandbox bind {absolute} does not exist")
            mounts[absolute] = mounts.get(absolute, True) and read_only
    return sorted(mounts.items(), key=lambda item: item[0].count("/"))
