"""The one exception family boothkey shows to users.

Every error a user can cause or meet carries a message written for them and
an exit code; the CLI catches `BoothkeyError` in exactly one place. Programming
errors stay `ValueError`/`RuntimeError` and surface as tracebacks.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUILD_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_VERIFICATION_FAILED = 3


class BoothkeyError(Exception):
    """Base class: a user-facing message and the process exit code."""

    exit_code = EXIT_BUILD_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(BoothkeyError):
    """Bad input: a recipe, lock, key, option or file the user gave is wrong."""

    exit_code = EXIT_BAD_INPUT


class ValidationErrors(InputError):
    """Several input problems found at once, each already prefixed with its place."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class FetchError(BoothkeyError):
    """The network or a mirror failed, or served bytes that do not match their digest."""


class BuildError(BoothkeyError):
    """A build step failed."""


class ToolError(BuildError):
    """An external tool (mksquashfs, veritysetup, ...) exited with an error."""


class VerificationFailed(BoothkeyError):
    """A signature, digest or hash tree did not verify."""

    exit_code = EXIT_VERIFICATION_FAILED
