"""Shared command-line options: every command that takes them parses them the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.cli import make_parser
from builder.commands.options import cache_dir


@pytest.mark.parametrize(
    "argv",
    [["build", "r.yaml"], ["bundle", "r.yaml"], ["cache", "prune"]],
)
def test_cache_dir_given_or_default(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOTHKEY_CACHE", str(tmp_path / "env-cache"))
    parser = make_parser()
    assert cache_dir(parser.parse_args(argv)) == tmp_path / "env-cache"
    given = parser.parse_args([*argv, "--cache-dir", str(tmp_path / "mine")])
    assert cache_dir(given) == tmp_path / "mine"


@pytest.mark.parametrize("command", ["build", "bundle"])
def test_out_dir(command: str) -> None:
    parser = make_parser()
    assert parser.parse_args([command, "r.yaml"]).out == Path("out")
    assert parser.parse_args([command, "r.yaml", "--out", "elsewhere"]).out == Path("elsewhere")


@pytest.mark.parametrize("command", ["sign", "attest"])
def test_signing_key(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = make_parser()
    args = parser.parse_args([command, "m.json", "--key", "release", "--private-dir", "keys"])
    assert (args.key, args.private_dir) == ("release", Path("keys"))
    assert parser.parse_args([command, "m.json", "--key", "k"]).private_dir is None
    with pytest.raises(SystemExit):
        parser.parse_args([command, "m.json"])  # --key is required
    assert "--key" in capsys.readouterr().err
