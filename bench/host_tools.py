"""For benchmarks only: run the host's own tools directly, as boothkey did before the
tools tree, so a build with the tools tree can be timed against one without it.

`use_host_tools()` replaces `Sandbox.run` in this process with a plain subprocess on
the host (same arguments, environment and failure reporting; no namespaces, no tree).
Never used by a real build: its output would depend on the host again.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from builder.core.sandbox import Sandbox
from builder.core.tools import tool_env, tool_failure


def _run_on_host(
    self: Sandbox,
    argv: Sequence[str | Path],
    *,
    binds: Sequence[Path] = (),
    writable: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    capture: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    args = [str(arg) for arg in argv]
    result = subprocess.run(
        args,
        input=stdin,
        env=tool_env(env),
        cwd=cwd if cwd is not None else "/",
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        check=False,
    )
    if result.returncode != 0:
        raise tool_failure(args, result)
    return result


def use_host_tools() -> None:
    Sandbox.run = _run_on_host  # type: ignore[method-assign]
