"""A verification report: named checks, each passed or failed in plain words, and the
verdict (VERIFIED only if there is at least one check and every one passed). Shared by
`verify` (image, signatures, partitions, boot) and `attest` (observers' statements).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    """One verification step: passed or not, in plain words, with supporting lines."""

    name: str
    ok: bool
    summary: str
    details: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "summary": self.summary,
            "details": list(self.details),
        }


@dataclass(frozen=True)
class VerifyReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [check.to_json() for check in self.checks]}

    def to_text(self) -> str:
        lines = []
        for check in self.checks:
            lines.append(f"{'PASS' if check.ok else 'FAIL'}  {check.name}: {check.summary}")
            lines.extend(f"      {detail}" for detail in check.details)
        passed = sum(check.ok for check in self.checks)
        verdict = "VERIFIED" if self.ok else "NOT VERIFIED"
        lines.append(f"{verdict}: {passed} of {len(self.checks)} checks passed")
        return "\n".join(lines)
