"""The booth's own check of the release log proof (overlays/booth/.../release_log.py),
against bundles the builder's real log makes (tests/log_factory.py), written into data
partitions by the builder's real slot writer."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from log_factory import ORIGIN, cosigned_bundle, fixed_key, make_log, witness_vkey

from builder.station.stations import write_data_partition
from builder.transparency.note import note_key_of
from builder.transparency.proof import ProofBundle

sys.path.insert(0, str(Path(__file__).parent))
from booth_helpers import BOOTH_LIB, MIB, REPO, booth_module, example_envelope, spawn_booth

release_log = booth_module("release_log")
datapart = booth_module("datapart")

WITNESSES = ["witness-alice", "witness-bob", "witness-carol"]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log of three releases of booth (2030.0, 2030.1, 2030.2) with a checkpoint."""
    return make_log(tmp_path_factory.mktemp("log") / "publog", 3)


def settings(
    tmp: Path,
    *,
    key: str | None = None,
    witnesses: list[str] | None = None,
    threshold: Any = 2,
    mode: str = "refuse",
    version: str = "2030.1",
    extra: dict[str, Any] | None = None,
) -> Path:
    """A release-log.json as the booth overlay's template renders it."""
    log_key = key if key is not None else note_key_of(fixed_key("authority"), ORIGIN).vkey()
    release = {
        "key": log_key,
        "witnesses": [witness_vkey(n) for n in (WITNESSES if witnesses is None else witnesses)],
        "threshold": threshold,
        "missing_proof": mode,
        **(extra or {}),
    }
    path = tmp / "release-log.json"
    path.write_text(json.dumps({"name": "booth", "version": version, "release_log": release}))
    return path


def root_of(bundle: ProofBundle) -> str:
    root: str = json.loads(bundle.entry)["root_hash"]
    return root


def partition(tmp: Path, bundle: ProofBundle | bytes | None) -> Path:
    """A booth-data partition with election data and `bundle` in its proof slot."""
    proof = bundle.to_bytes() if isinstance(bundle, ProofBundle) else bundle
    write_data_partition(tmp / "data", example_envelope(), MIB, proof)
    return tmp / "data"


def check(tmp: Path, bundle: ProofBundle | bytes | None, root: str, **kwargs: Any) -> Any:
    return release_log.check_release_log(partition(tmp, bundle), root, settings(tmp, **kwargs))


def test_a_cosigned_proof_of_this_release_is_shown(tmp_path: Path, log: Path) -> None:
    bundle = cosigned_bundle(log, 1, WITNESSES[:2])
    status = check(tmp_path, bundle, root_of(bundle))
    assert status.refusal is None
    assert status.line == (
        "RELEASE LOG: published in the release log at index 1, cosigned by 2 of 3 witnesses"
    )


def test_the_election_data_is_still_read_beside_the_proof(tmp_path: Path, log: Path) -> None:
    data = partition(tmp_path, cosigned_bundle(log, 1, WITNESSES))
    assert datapart.read_partition(data) == example_envelope()


def test_the_booth_and_the_builder_agree(tmp_path: Path, log: Path) -> None:
    """The builder's verify_bundle accepts what the booth accepts, with the same words."""
    from builder.transparency.note import SIG_COSIGNATURE, NoteKey
    from builder.transparency.proof import verify_bundle

    bundle = cosigned_bundle(log, 2, WITNESSES)
    witnesses = {}
    for name in WITNESSES:
        key = NoteKey(name, SIG_COSIGNATURE, fixed_key(name).public.raw)
        witnesses[(key.name, key.key_id)] = key
    log_key = note_key_of(fixed_key("authority"), ORIGIN)
    builder_says = verify_bundle(bundle, log_key, witnesses, 2, "bundle").summary()
    status = check(tmp_path, bundle, root_of(bundle), version="2030.2")
    assert status.line == f"RELEASE LOG: {builder_says}"


def test_no_release_log_settings_checks_nothing(tmp_path: Path) -> None:
    status = release_log.check_release_log(partition(tmp_path, None), "00" * 32, tmp_path / "no")
    assert status == release_log.ReleaseStatus(None)
    (tmp_path / "null.json").write_text('{"name": "booth", "version": "1", "release_log": null}')
    status = release_log.check_release_log(tmp_path / "data", "00", tmp_path / "null.json")
    assert status == release_log.ReleaseStatus(None)


def test_a_missing_proof_refuses_or_warns(tmp_path: Path) -> None:
    refused = check(tmp_path, None, "00" * 32)
    assert refused.refusal.reason == "no-proof"
    assert refused.line == "RELEASE LOG: NOT VERIFIED: this key carries no release log proof"
    warned = check(tmp_path, None, "00" * 32, mode="warn")
    assert warned.refusal is None
    assert "NOT VERIFIED: this key carries no release log proof (warning only" in warned.line


def test_a_partition_smaller_than_the_slot_has_no_proof(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.write_bytes(bytes(1024))
    status = release_log.check_release_log(small, "00" * 32, settings(tmp_path))
    assert status.refusal.reason == "no-proof"


def test_a_wrong_log_key_is_refused(tmp_path: Path, log: Path) -> None:
    bundle = cosigned_bundle(log, 1, WITNESSES)
    other = note_key_of(fixed_key("impostor"), ORIGIN).vkey()
    status = check(tmp_path, bundle, root_of(bundle), key=other)
    assert status.refusal.reason == "log-unverified"
    assert f"not signed by the release log {ORIGIN}" in status.refusal.message


def test_a_log_signature_that_does_not_verify_is_refused(tmp_path: Path, log: Path) -> None:
    bundle = cosigned_bundle(log, 1, WITNESSES)
    note = bundle.checkpoint
    forged = replace(note.signatures[0], signature=bytes(64))
    bad = replace(bundle, checkpoint=replace(note, signatures=(forged, *note.signatures[1:])))
    status = check(tmp_path, bad, root_of(bundle))
    assert "does not verify" in status.refusal.message


def test_a_threshold_not_met_is_refused(tmp_path: Path, log: Path) -> None:
    bundle = cosigned_bundle(log, 1, ["witness-alice", "witness-mallory"])
    status = check(tmp_path, bundle, root_of(bundle))
    assert status.refusal.reason == "log-unverified"
    assert status.refusal.message == (
        "the checkpoint is cosigned by 1 of 3 trusted witnesses, 2 required"
    )


def test_a_forged_cosignature_does_not_count(tmp_path: Path, log: Path) -> None:
    bundle = cosigned_bundle(log, 1, WITNESSES[:2])
    note = bundle.checkpoint
    bob = note.signatures[2]
    forged = replace(bob, signature=bob.signature[:8] + bytes(64))
    bad = replace(bundle, checkpoint=replace(note, signatures=(*note.signatures[:2], forged)))
    status = check(tmp_path, bad, root_of(bundle))
    assert "cosigned by 1 of 3" in status.refusal.message


def test_a_cosignature_of_another_checkpoint_does_not_count(tmp_path: Path, log: Path) -> None:
    bundle = cosigned_bundle(log, 1, WITNESSES[:2], timestamp=5)
    note = bundle.checkpoint
    # The same signature bytes with another claimed time: signed over other text.
    alice = note.signatures[1]
    moved = replace(alice, signature=(6).to_bytes(8, "big") + alice.signature[8:])
    bad = replace(bundle, checkpoint=replace(note, signatures=(note.signatures[0], moved)))
    status = check(tmp_path, bad, root_of(bundle))
    assert "cosigned by 0 of 3" in status.refusal.message


def test_a_proof_for_another_release_is_refused(tmp_path: Path, log: Path) -> None:
    mine = cosigned_bundle(log, 1, WITNESSES)
    other = cosigned_bundle(log, 0, WITNESSES)
    status = check(tmp_path, other, root_of(mine))
    assert status.refusal.reason == "log-unverified"
    assert "log entry 0 is about other software (booth 2030.0" in status.refusal.message


def test_an_entry_moved_to_another_index_is_refused(tmp_path: Path, log: Path) -> None:
    bundle = cosigned_bundle(log, 1, WITNESSES)
    other = cosigned_bundle(log, 0, WITNESSES)
    moved = replace(other, entry=bundle.entry)  # entry 1 with entry 0's index and path
    status = check(tmp_path, moved, root_of(bundle))
    assert "the entry is not at index 0 of the log's tree of 3 entries" in status.refusal.message


def test_a_release_of_another_version_is_refused(tmp_path: Path, log: Path) -> None:
    bundle = cosigned_bundle(log, 1, WITNESSES)
    status = check(tmp_path, bundle, root_of(bundle), version="2031.0")
    assert "names booth 2030.1, not booth 2031.0" in status.refusal.message


@pytest.mark.parametrize(
    "slot",
    [b"not a proof", b'{"format": "boothkey-log-proof/v1"}', b'{"format": "other"}'],
)
def test_a_damaged_proof_is_refused(tmp_path: Path, slot: bytes) -> None:
    status = check(tmp_path, slot, "00" * 32)
    assert status.refusal.reason == "log-unverified"


def test_something_else_in_the_slot_is_refused(tmp_path: Path) -> None:
    data = partition(tmp_path, None)
    with open(data, "r+b") as stream:
        stream.seek(MIB - 100)
        stream.write(b"garbage")
    status = release_log.check_release_log(data, "00" * 32, settings(tmp_path))
    assert status.refusal.message == "the proof slot does not hold a proof bundle"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"threshold": 4}, "can never be met with 3 witnesses"),
        ({"threshold": 0}, "at least one witness must be required"),
        ({"threshold": "2"}, "not a number of witnesses"),
        ({"mode": "maybe"}, "'maybe' is not refuse or warn"),
        ({"key": "nonsense"}, "release_log.key: not a verifier key"),
        ({"witnesses": ["witness-alice"], "threshold": 1, "extra": {"treshold": 1}}, "unknown"),
    ],
)
def test_settings_that_make_no_sense_refuse_even_in_warn_mode(
    tmp_path: Path, changes: dict[str, Any], words: str
) -> None:
    kwargs: dict[str, Any] = {"mode": "warn", **changes}
    status = check(tmp_path, None, "00" * 32, **kwargs)
    assert status.refusal.reason == "log-settings"
    assert words in status.refusal.message


def test_a_witness_key_given_as_log_key_is_refused(tmp_path: Path) -> None:
    status = check(tmp_path, None, "00" * 32, key=witness_vkey("witness-alice"))
    assert "not an Ed25519 key of type 0x01" in status.refusal.message


@pytest.mark.parametrize("with_proof", [True, False])
def test_no_log_key_refuses_even_in_warn_mode(tmp_path: Path, log: Path, with_proof: bool) -> None:
    """The booth recipe's default settings (no key until the authority adds it) refuse,
    with or without a proof on the key, whatever missing_proof says."""
    bundle = cosigned_bundle(log, 1, WITNESSES)
    proof = bundle if with_proof else None
    status = check(tmp_path, proof, root_of(bundle), key="", witnesses=[], threshold=0, mode="warn")
    assert status.refusal.reason == "log-settings"
    assert status.refusal.message == (
        "this software holds no release log key (release_log.key in its recipe)"
    )


def test_the_booth_shows_the_line_and_refuses_to_start_voting(tmp_path: Path) -> None:
    """app.py's hook, over a pty: fingerprints, the release log line, then REFUSED."""
    booth = spawn_booth(tmp_path, partition(tmp_path, None), release_log=settings(tmp_path))
    try:
        booth.child.expect("SOFTWARE FINGERPRINT: ")
        booth.child.expect("RELEASE LOG: NOT VERIFIED: this key carries no release log proof")
        booth.child.expect("ELECTION FINGERPRINT: ")
        booth.child.expect(r"REFUSED: this key carries no release log proof \[no-proof\]")
        assert "READY" not in (booth.child.before or "")
    finally:
        booth.close()


def test_the_booth_opens_the_vote_with_a_good_proof(tmp_path: Path, log: Path) -> None:
    bundle = cosigned_bundle(log, 1, WITNESSES[1:])
    data = partition(tmp_path, bundle)
    booth = spawn_booth(tmp_path, data, root_hash=root_of(bundle), release_log=settings(tmp_path))
    try:
        booth.child.expect(
            "RELEASE LOG: published in the release log at index 1, cosigned by 2 of 3"
        )
        booth.child.expect("READY: press Enter")
    finally:
        booth.close()


@pytest.mark.parametrize("recipe_settings", [True, False])
def test_the_overlay_renders_the_recipe_settings_for_the_booth(
    tmp_path: Path, recipe_settings: bool
) -> None:
    """recipes/booth.yaml's release_log reaches the booth as it is (refuse, no key yet);
    a recipe without it gets no check."""
    from types import MappingProxyType

    import yaml

    from builder.build.steps.overlay_files import apply_overlay

    recipe = yaml.safe_load((REPO / "recipes" / "booth.yaml").read_text())
    variables: dict[str, Any] = {"recipe": {"name": "booth", "version": recipe["version"]}}
    if recipe_settings:
        release = recipe["variables"]["release_log"]
        assert release["missing_proof"] == "refuse"
        variables["release_log"] = MappingProxyType(
            {k: tuple(v) if isinstance(v, list) else v for k, v in release.items()}
        )
    tree = tmp_path / "tree"
    tree.mkdir()
    apply_overlay(BOOTH_LIB.parents[2], tree, variables)
    path = tree / "usr/share/booth/release-log.json"
    if not recipe_settings:
        assert release_log.load_settings(path) is None
        return
    with pytest.raises(datapart.DataRefused, match="holds no release log key"):
        release_log.load_settings(path)
    raw = json.loads(path.read_text())
    assert raw["release_log"]["missing_proof"] == "refuse"
    raw["release_log"].update(
        key=note_key_of(fixed_key("authority"), ORIGIN).vkey(),
        witnesses=[witness_vkey(name) for name in WITNESSES],
        threshold=2,
    )
    path.write_text(json.dumps(raw))
    rendered = release_log.load_settings(path)
    assert rendered.refuse and rendered.log_key.name == ORIGIN and rendered.threshold == 2
    assert (rendered.name, rendered.version) == ("booth", recipe["version"])
