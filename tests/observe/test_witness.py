"""Witnesses cosign the release log only along one consistent history: a fork, a
rollback or a rewritten history is refused with both checkpoints as evidence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from archive_factory import HttpServer
from log_factory import ORIGIN, fake_manifest, fixed_key, make_log

from builder.cli import main
from builder.core.errors import InputError
from builder.observe.witness import WitnessRefused, witness
from builder.release.log import add_cosignatures, append, make_checkpoint
from builder.transparency.note import SIG_COSIGNATURE, note_key_of, parse_note
from builder.transparency.witnesses import count_cosignatures
from builder.trust.keys import encrypt_private_key

T0 = 1767225600
ALICE = "example.org/witness/alice"


def _vkey(log: Path) -> str:
    return (log / "log.vkey").read_text()


def _grow(log: Path, tmp_path: Path, versions: list[str]) -> None:
    for version in versions:
        append(log, fake_manifest(tmp_path, "booth", version))
    make_checkpoint(log, fixed_key("authority"))


def test_a_witness_cosigns_a_growing_log(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 2)
    state = tmp_path / "alice.state.json"
    alice = fixed_key("alice")
    first, checkpoint, witness_key = witness(str(log), alice, ALICE, state, T0, _vkey(log))
    assert checkpoint.size == 2
    assert witness_key == note_key_of(alice, ALICE, SIG_COSIGNATURE)
    log_key = note_key_of(fixed_key("authority"), ORIGIN)
    count = count_cosignatures(first, {(ALICE, witness_key.key_id): witness_key}, log_key)
    assert [c.timestamp for c in count.cosigned] == [T0]
    _grow(log, tmp_path, ["2030.7", "2030.8", "2030.9"])
    second, checkpoint, _ = witness(str(log), alice, ALICE, state, T0 + 60)
    assert checkpoint.size == 5
    # the cosigned checkpoint goes back to the log and is published
    out = tmp_path / "alice.cosigned"
    out.write_bytes(second.to_bytes())
    add_cosignatures(log, [out])
    published = parse_note((log / "checkpoint").read_bytes(), "cp")
    assert [s.name for s in published.signatures] == [ORIGIN, ALICE]


def test_a_fork_of_the_same_size_is_refused_with_both_checkpoints(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 3)
    state = tmp_path / "state.json"
    alice = fixed_key("alice")
    seen, _, _ = witness(str(log), alice, ALICE, state, T0, _vkey(log))
    # the same authority key shows another history of the same size
    fork = tmp_path / "fork"
    make_log(fork, 0)
    _grow(fork, tmp_path / "fork-manifests", [])
    (tmp_path / "fork-manifests").mkdir(exist_ok=True)
    _grow(fork, tmp_path / "fork-manifests", ["2030.0", "2030.1", "2030.666"])
    with pytest.raises(WitnessRefused, match="FORK") as caught:
        witness(str(fork), alice, ALICE, state, T0 + 1)
    message = caught.value.message
    assert (log / "checkpoints" / "3").read_text() in message
    assert (fork / "checkpoint").read_text() in message
    # the state still holds the honest checkpoint
    assert json.loads(state.read_text())["last_cosigned"] == seen.to_text()


def test_a_rewritten_history_is_refused(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 3)
    state = tmp_path / "state.json"
    alice = fixed_key("alice")
    witness(str(log), alice, ALICE, state, T0, _vkey(log))
    # a longer log whose entry 1 was removed: it publishes its own (honest) proofs
    rewritten = tmp_path / "rewritten"
    make_log(rewritten, 0)
    (tmp_path / "m").mkdir()
    _grow(rewritten, tmp_path / "m", ["2030.0", "2030.2"])
    _grow(rewritten, tmp_path / "m", ["2030.3", "2030.4"])
    shutil.copy(rewritten / "consistency" / "2-4", rewritten / "consistency" / "3-4")
    with pytest.raises(WitnessRefused, match="not consistent") as caught:
        witness(str(rewritten), alice, ALICE, state, T0 + 1)
    assert "checkpoint this witness cosigned before" in caught.value.message


def test_a_rollback_and_a_missing_proof_are_refused(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 3)
    state = tmp_path / "state.json"
    alice = fixed_key("alice")
    witness(str(log), alice, ALICE, state, T0, _vkey(log))
    smaller = make_log(tmp_path / "smaller", 2)
    with pytest.raises(WitnessRefused, match="went back from 3 to 2"):
        witness(str(smaller), alice, ALICE, state, T0 + 1)
    _grow(log, tmp_path, ["2030.5"])
    (log / "consistency" / "3-4").unlink()
    with pytest.raises(WitnessRefused, match="no consistency proof from size 3 to 4"):
        witness(str(log), alice, ALICE, state, T0 + 1)


def test_another_log_key_and_a_clock_going_back_are_refused(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 1)
    other = make_log(tmp_path / "other", 1, log_key=fixed_key("mallory"))
    state = tmp_path / "state.json"
    alice = fixed_key("alice")
    with pytest.raises(InputError, match="no witness state yet"):
        witness(str(log), alice, ALICE, state, T0)
    witness(str(log), alice, ALICE, state, T0, _vkey(log))
    with pytest.raises(InputError, match="--log-key differs"):
        witness(str(log), alice, ALICE, state, T0, _vkey(other))
    with pytest.raises(Exception, match="not signed by"):
        witness(str(other), alice, ALICE, state, T0)
    with pytest.raises(InputError, match="before this witness's last cosignature"):
        witness(str(log), alice, ALICE, state, T0 - 1)


def test_the_witness_command_reads_a_log_over_http(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_log(tmp_path / "site" / "log", 2)
    key_file = tmp_path / "alice.key"
    key_file.write_bytes(encrypt_private_key(fixed_key("alice"), b"pass"))
    monkeypatch.setenv("BOOTHKEY_PASSPHRASE", "pass")
    server = HttpServer(tmp_path / "site")
    try:
        argv = [
            "witness",
            f"{server.url}/log",
            "--key",
            str(key_file),
            "--state",
            str(tmp_path / "state.json"),
            "--out",
            str(tmp_path / "cosigned"),
            "--log-key",
            str(log / "log.vkey"),
            "--time",
            str(T0),
        ]
        assert main(argv) == 0
        _grow(log, tmp_path, ["2030.3"])
        argv[argv.index(str(T0))] = str(T0 + 5)
        assert main(argv) == 0
    finally:
        server.close()
    out = capsys.readouterr().out
    assert f"cosigned: {ORIGIN} size 3" in out
    assert "witness key: alice+" in out
    assert parse_note((tmp_path / "cosigned").read_bytes(), "c").signatures[1].name == "alice"
