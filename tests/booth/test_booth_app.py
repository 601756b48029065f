"""The booth program driven over a pty, as a voter and a poll worker would use it."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from booth_helpers import (
    HIDDEN_TEXTS,
    ROOT_HASH,
    BoothRun,
    altered_envelope,
    booth_module,
    data_partition,
    example_envelope,
    example_payload,
    printed_codes,
    reenvelope,
    sign_unchecked,
    spawn_booth,
)

from builder.station.fingerprint import election_fingerprint, software_fingerprint


def _payload(envelope: bytes) -> bytes:
    return base64.b64decode(json.loads(envelope)["payload"])


@pytest.fixture
def booth(tmp_path: Path) -> Iterator[BoothRun]:
    data = data_partition(tmp_path / "booth-data.img", example_envelope("0001"))
    run = spawn_booth(tmp_path, data)
    yield run
    run.close()


def _ready(child: pexpect.spawn) -> None:
    child.expect_exact("READY: press Enter to start voting")


def test_shows_both_fingerprints_as_the_builder_computes_them(booth: BoothRun) -> None:
    child = booth.child
    child.expect_exact("BOOTHKEY VOTING BOOTH: Stembureau[2J 12\r\n")  # no escape character
    child.expect(r"SOFTWARE FINGERPRINT: (\S+)")
    assert child.match.group(1) == software_fingerprint(ROOT_HASH)
    child.expect(r"ELECTION FINGERPRINT: (\S+)")
    assert child.match.group(1) == election_fingerprint(_payload(example_envelope("0001")))
    child.expect_exact("signed by test-authority")
    child.expect_exact("STATION: 0001 Stadhuis")
    _ready(child)


def test_cast_a_vote_prints_ballot_and_code_then_returns_to_start(booth: BoothRun) -> None:
    decode_ballot_code = booth_module("ballot").decode_ballot_code
    child = booth.child
    _ready(child)
    child.sendline("")
    child.expect_exact("RACE 1/2: Gemeenteraad")
    child.expect_exact("Choose up to 3 candidates. Type 0 for a blank vote.")
    child.expect_exact("CHOICE> ")
    child.sendline("1 2 3 4")
    child.expect_exact("INVALID: at most 3 may be chosen, you chose 4")
    child.expect_exact("CHOICE> ")
    child.sendline("9")
    child.expect_exact("INVALID: '9' is not a number from 1 to 5")
    child.sendline("5, 1")
    child.expect_exact("RACE 2/2: Burgemeestersreferendum")
    child.expect_exact("CHOICE> ")
    child.sendline("0")
    child.expect_exact("INVALID: a blank vote is not allowed in this race")
    child.sendline("2")
    child.expect_exact("REVIEW: your choices")
    child.expect_exact("Gemeenteraad: Jansen, Anna (Partij A); Smit, Eva (independent)")
    child.expect_exact("Burgemeestersreferendum: Tegen")
    child.expect_exact("CONFIRM> ")
    child.sendline("YES")
    child.expect_exact("----- BALLOT -----")
    child.expect(r"CODE: (\S+)")
    code = child.match.group(1)
    child.expect_exact("----- END BALLOT -----")
    child.expect_exact("PRINTER: ballot printed")
    child.expect_exact("BALLOT CAST")
    prefix, races = decode_ballot_code(code)
    assert races == [(1, 5), (2,)]
    assert prefix == election_fingerprint(_payload(example_envelope("0001"))).replace("-", "")[:8]
    assert printed_codes(booth.printer) == [code]
    printout = booth_module("printout")
    expected = printout.BallotPrint(
        "BALLOT",
        ("Gemeenteraadsverkiezingen 2030 (example)", "0001 Stadhuis"),
        (
            ("Gemeenteraad", ("Jansen, Anna (Partij A)", "Smit, Eva (independent)")),
            ("Burgemeestersreferendum", ("Tegen",)),
        ),
        code,
    )
    font = booth_module("raster").load_font()
    assert booth.printer.read_bytes() == printout.render(expected, font).pbm()
    child.sendline("")
    _ready(child)


def test_blank_vote_and_starting_over(booth: BoothRun) -> None:
    child = booth.child
    _ready(child)
    child.sendline("")
    child.expect_exact("CHOICE> ")
    child.sendline("0")
    child.expect_exact("RACE 2/2")
    child.sendline("1")
    child.expect_exact("Gemeenteraad: BLANK VOTE")
    child.expect_exact("CONFIRM> ")
    child.sendline("maybe")
    child.expect_exact("INVALID: type YES or NO")
    child.sendline("no")
    _ready(child)
    assert booth.printer.read_bytes() == b""


def test_keyboard_interrupts_do_not_stop_the_booth(booth: BoothRun) -> None:
    child = booth.child
    _ready(child)
    child.sendintr()
    child.sendcontrol("\\")
    child.sendline("")
    child.expect_exact("RACE 1/2")
    assert child.isalive()


def test_station_sees_only_its_races(tmp_path: Path) -> None:
    data = data_partition(tmp_path / "data.img", example_envelope("0002"))
    run = spawn_booth(tmp_path, data)
    try:
        _ready(run.child)
        run.child.sendline("")
        run.child.expect_exact("RACE 1/1: Gemeenteraad")
    finally:
        run.close()


def _refused(tmp_path: Path, envelope: bytes | None, reason: str, **options: object) -> str:
    data = data_partition(tmp_path / "data.img", envelope)
    run = spawn_booth(tmp_path, data, **options)  # type: ignore[arg-type]
    try:
        run.child.expect(r"REFUSED: ([^\r\n]*)\r\n")
        message = str(run.child.match.group(1))
        assert message.endswith(f"[{reason}]")
        run.child.expect_exact("Call a poll worker")
        run.child.sendline("")  # still refused, never a prompt or a shell
        run.child.expect_exact("REFUSED:")
        assert "READY" not in str(run.child.before)
        run.child.sendeof()
        run.child.expect(pexpect.EOF)
        run.child.close()
        assert run.child.exitstatus == 3
        return message
    finally:
        run.close()


def test_refuses_when_data_is_missing(tmp_path: Path) -> None:
    assert "no election data" in _refused(tmp_path, None, "missing")


def test_refuses_unsigned_data(tmp_path: Path) -> None:
    envelope = reenvelope(example_envelope(), signatures=[])
    assert "not signed" in _refused(tmp_path, envelope, "unsigned")


def test_refuses_data_signed_by_an_unknown_key(tmp_path: Path) -> None:
    envelope = example_envelope(signers=("test-other",))
    assert "does not trust" in _refused(tmp_path, envelope, "unknown-key")


def test_refuses_altered_data(tmp_path: Path) -> None:
    message = _refused(tmp_path, altered_envelope(example_envelope()), "altered")
    assert "test-authority" in message


def test_refuses_when_one_trusted_signature_of_two_fails(tmp_path: Path) -> None:
    both = example_envelope(signers=("test-authority", "test-other"))
    raw = json.loads(both)
    raw["signatures"][1]["sig"] = raw["signatures"][0]["sig"]  # wrong sig for test-other
    envelope = json.dumps(raw).encode()
    _refused(tmp_path, envelope, "altered", keys=("test-authority", "test-other"))


def test_refuses_damaged_data(tmp_path: Path) -> None:
    envelope = example_envelope()
    _refused(tmp_path, envelope[: len(envelope) // 2], "damaged")


def test_refuses_hidden_text_signed_without_the_builder_and_never_prints_it(
    tmp_path: Path,
) -> None:
    payload = example_payload()
    payload["station"]["name"] = HIDDEN_TEXTS["escape sequences"]
    payload["races"][0]["candidates"][0]["name"] = "Smit\u202e, Eva"
    data = data_partition(tmp_path / "data.img", sign_unchecked(payload))
    run = spawn_booth(tmp_path, data)
    try:
        run.child.expect(r"REFUSED: ([^\r\n]*)\r\n")
        message = str(run.child.match.group(1))
        assert message.endswith("[invalid]")
        assert "station.name contains a control character (U+001B)" in message
        run.child.sendline("")
        run.child.sendeof()
        run.child.expect(pexpect.EOF)
        shown = str(run.child.before)
    finally:
        run.close()
    log = message + shown
    assert "\x1b" not in log and "\u202e" not in log and "pwned" not in log
    assert "READY" not in log and "STATION:" not in log


def test_refuses_when_no_authority_key_is_installed(tmp_path: Path) -> None:
    _refused(tmp_path, example_envelope(), "no-keys", keys=())


def test_refuses_without_a_verified_root(tmp_path: Path) -> None:
    message = _refused(tmp_path, example_envelope(), "unverified", root_hash=None)
    assert "verified boothkey image" in message


def test_software_fingerprint_is_derived_from_the_root_hash() -> None:
    # The short form is the first 10 bytes of the root hash in base32, nothing else.
    expected = base64.b32encode(bytes.fromhex(ROOT_HASH)[:10]).decode()
    assert software_fingerprint(ROOT_HASH).replace("-", "") == expected
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", software_fingerprint(ROOT_HASH))
