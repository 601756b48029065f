"""minisign-format keys and signatures, checked with the real `minisign -V`."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.core.errors import VerificationFailed
from builder.trust.keys import SigningKey, generate_key
from builder.trust.minisign import (
    keynum_text,
    parse_public_key_file,
    parse_signature,
    public_key_file,
    sign_digest,
    verify_digest,
)

pytestmark = pytest.mark.skipif(shutil.which("minisign") is None, reason="minisign not installed")


def _minisign_verify(path: Path, signature: Path, public: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["minisign", "-V", "-m", str(path), "-x", str(signature), "-p", str(public)],
        capture_output=True,
        text=True,
        check=False,
    )


def _blake2b(path: Path) -> bytes:
    return hashlib.blake2b(path.read_bytes(), digest_size=64).digest()


def _signed(tmp_path: Path, key: SigningKey, content: bytes) -> tuple[Path, Path, Path]:
    data = tmp_path / "image.img"
    data.write_bytes(content)
    signature = tmp_path / "image.img.minisig"
    signature.write_bytes(
        sign_digest(key, _blake2b(data), "boothkey test image", "signature from boothkey")
    )
    public = tmp_path / f"{key.name}.minisign.pub"
    public.write_bytes(public_key_file(key.public))
    return data, signature, public


def test_real_minisign_accepts_our_signature(tmp_path: Path) -> None:
    key = generate_key("alice")
    data, signature, public = _signed(tmp_path, key, b"booth image" * 1000)
    result = _minisign_verify(data, signature, public)
    assert result.returncode == 0, result.stderr
    assert "Trusted comment: boothkey test image" in result.stdout


def test_real_minisign_rejects_a_changed_byte(tmp_path: Path) -> None:
    data, signature, public = _signed(tmp_path, generate_key("alice"), b"booth image" * 1000)
    content = bytearray(data.read_bytes())
    content[5000] ^= 1
    data.write_bytes(bytes(content))
    assert _minisign_verify(data, signature, public).returncode != 0


def test_real_minisign_rejects_an_altered_trusted_comment(tmp_path: Path) -> None:
    data, signature, public = _signed(tmp_path, generate_key("alice"), b"x" * 100)
    signature.write_text(
        signature.read_text().replace("boothkey test image", "boothkey evil image")
    )
    assert _minisign_verify(data, signature, public).returncode != 0


def test_real_minisign_rejects_another_key(tmp_path: Path) -> None:
    data, signature, _public = _signed(tmp_path, generate_key("alice"), b"x" * 100)
    other = tmp_path / "mallory.minisign.pub"
    other.write_bytes(public_key_file(generate_key("mallory").public))
    assert _minisign_verify(data, signature, other).returncode != 0


def test_our_checker_agrees(tmp_path: Path) -> None:
    key = generate_key("alice")
    data, signature, public = _signed(tmp_path, key, b"x" * 100)
    parsed = parse_signature(signature.read_bytes(), str(signature))
    digest = _blake2b(data)
    assert verify_digest(parsed, digest, key.public) == "boothkey test image"
    assert parse_public_key_file(public.read_bytes(), str(public)).raw == key.public.raw
    with pytest.raises(VerificationFailed, match="does not match"):
        verify_digest(parsed, hashlib.blake2b(b"y", digest_size=64).digest(), key.public)
    with pytest.raises(VerificationFailed, match="not mallory"):
        verify_digest(parsed, digest, generate_key("mallory").public)


def test_keynum_is_shown_as_minisign_shows_it(tmp_path: Path) -> None:
    key = generate_key("alice")
    _data, _signature, public = _signed(tmp_path, key, b"x")
    first_line = public.read_text().splitlines()[0]
    assert first_line.endswith(keynum_text(key.public.minisign_keynum))
    assert keynum_text(bytes(range(8))) == "0706050403020100"


def test_comments_must_be_single_lines() -> None:
    with pytest.raises(ValueError, match="single lines"):
        sign_digest(generate_key("a"), bytes(64), "two\nlines", "ok")
