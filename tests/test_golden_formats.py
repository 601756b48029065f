"""The formats boothkey publishes, held against committed golden files.

tests/golden/generate.py writes the lock, manifest, file list, SBOM, provenance, release
envelope and election data from fixed inputs; this test regenerates them and requires
the same bytes, so a format change is a reviewed diff of tests/golden/formats/.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from sbom_factory import validate_cyclonedx, validate_spdx, validate_spdx3

from builder.build.manifest import parse_manifest
from builder.source.lockfile import parse_lock
from builder.station.election import parse_election_envelope, verify_election_envelope
from builder.trust.dsse import image_statement, parse_envelope

GOLDEN = Path(__file__).resolve().parent / "golden"
FORMATS = GOLDEN / "formats"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("golden_generate", GOLDEN / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = load_generator()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("golden")
    GENERATOR.generate(out)
    return out


@pytest.mark.parametrize("name", GENERATOR.FILES)
def test_format_is_unchanged(generated: Path, name: str) -> None:
    committed = (FORMATS / name).read_bytes()
    fresh = (generated / name).read_bytes()
    if fresh != committed:
        diff = difflib.unified_diff(
            committed.decode().splitlines(),
            fresh.decode().splitlines(),
            f"committed/{name}",
            f"generated/{name}",
            lineterm="",
        )
        pytest.fail(
            f"{name} changed: if on purpose, run `python3 tests/golden/generate.py` and commit "
            "the diff with a message saying why\n" + "\n".join(list(diff)[:60])
        )


def test_golden_files_are_what_boothkey_reads_and_checks() -> None:
    manifest = json.loads((FORMATS / "demo.manifest.json").read_bytes())
    parse_manifest(manifest, "demo.manifest.json")
    parse_lock(json.loads((FORMATS / "demo.lock.json").read_bytes()), "demo.lock.json")
    keys = {
        key.public.keyid: key.public
        for key in (GENERATOR.fixed_key("authority", 1), GENERATOR.fixed_key("co-signer", 2))
    }
    envelope = parse_envelope((FORMATS / "demo.dsse.json").read_bytes(), "demo.dsse.json")
    assert envelope.statement() == image_statement(manifest)
    assert len(envelope.trusted_signers(keys)) == 2
    election = parse_election_envelope(
        (FORMATS / "election.dsse.json").read_bytes(), "election.dsse.json"
    )
    assert verify_election_envelope(election, keys, "election.dsse.json") == ["authority"]
    belgian = parse_election_envelope(
        (FORMATS / "election-be.dsse.json").read_bytes(), "election-be.dsse.json"
    )
    assert verify_election_envelope(belgian, keys, "election-be.dsse.json") == ["authority"]
    assert json.loads(belgian.payload)["format"] == 2


def test_golden_sbom_is_valid_spdx() -> None:
    result = validate_spdx(FORMATS / "demo.spdx.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_golden_spdx3_is_valid_spdx3() -> None:
    assert validate_spdx3(FORMATS / "demo.spdx3.json") == []


def test_golden_cyclonedx_is_valid_cyclonedx() -> None:
    assert validate_cyclonedx(FORMATS / "demo.cdx.json") is None
