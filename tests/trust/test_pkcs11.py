"""PKCS#11 keys by RFC 7512 URI, on a real SoftHSM2 token: URIs, keygen on the token,
signing through it, and the errors a release engineer can meet."""

from __future__ import annotations

from pathlib import Path

import pytest
from token_factory import PIN, SoftToken, add_token, make_soft_token, needs_softhsm

from builder.cli import main
from builder.core.errors import InputError
from builder.trust.keys import read_public_key
from builder.trust.minisign import parse_public_key_file
from builder.trust.pkcs11 import generate_token_key, open_token_signer
from builder.trust.pkcs11_uri import parse_token_uri


def test_uri_attributes_are_parsed_and_percent_decoded() -> None:
    uri = parse_token_uri(
        "pkcs11:token=Election%20Authority;object=release-2030;id=%01%ff;serial=42;"
        "x-vendor=1?module-path=/usr/lib/softhsm/libsofthsm2.so"
    )
    assert uri.token == "Election Authority"
    assert uri.object == "release-2030"
    assert uri.id == b"\x01\xff"
    assert uri.serial == "42"
    assert uri.type == "private"
    assert uri.module_path == "/usr/lib/softhsm/libsofthsm2.so"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("token=a", "starts with 'pkcs11:'"),
        ("pkcs11:token=a;object", "is not NAME=VALUE"),
        ("pkcs11:token=a;slot=1", "slot: not a supported path attribute"),
        ("pkcs11:token=a?pin-value=1234", "never read from a URI"),
        ("pkcs11:token=a?pin-source=file:/x", "never read from a URI"),
        ("pkcs11:token=a;token=b", "token: given twice"),
        ("pkcs11:token=a%2", "two-digit hex escape"),
        ("pkcs11:token=%ff", "not UTF-8"),
        ("pkcs11:token=a;type=cert", "type=cert"),
    ],
)
def test_bad_uris_are_named(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_token_uri(text)


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftToken:
    return make_soft_token(tmp_path / "hsm", monkeypatch)


@needs_softhsm
def test_keygen_on_the_token_writes_only_public_keys(
    tmp_path: Path, token: SoftToken, capsys: pytest.CaptureFixture[str]
) -> None:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    uri = token.uri("release-2030")
    public_dir = tmp_path / "keys"
    assert main(["keygen", uri, "--public-dir", str(public_dir)]) == 0
    assert "on the token" in capsys.readouterr().out
    assert sorted(p.name for p in public_dir.iterdir()) == [
        "release-2030.minisign.pub",
        "release-2030.pub.json",
    ]
    public = read_public_key(public_dir / "release-2030.pub.json")
    minisign = (public_dir / "release-2030.minisign.pub").read_bytes()
    assert parse_public_key_file(minisign, "minisign.pub").raw == public.raw

    # The private key on the token is sensitive and can never be read out.
    library = pkcs11.lib(str(token.module))
    try:
        with library.get_token(token_label=token.label).open(user_pin=PIN) as session:
            private = session.get_key(ObjectClass.PRIVATE_KEY, label="release-2030")
            assert private[Attribute.SENSITIVE] is True
            assert private[Attribute.EXTRACTABLE] is False
            assert private[Attribute.NEVER_EXTRACTABLE] is True
            with pytest.raises(pkcs11.PKCS11Error):
                private[Attribute.VALUE]
    finally:
        library.finalize()

    # Signing through the token: the signature verifies with the public key file.
    with open_token_signer(uri) as signer:
        assert signer.name == "release-2030"
        assert signer.public == public
        assert public.verify(signer.sign(b"message"), b"message")

    # Never a second key under the same label.
    assert main(["keygen", uri, "--public-dir", str(tmp_path / "other")]) == 2
    assert "already holds an object labelled 'release-2030'" in capsys.readouterr().err
    assert main(["keygen", uri, "--public-dir", str(public_dir)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


@needs_softhsm
def test_token_problems_are_named(
    tmp_path: Path, token: SoftToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = token.uri("release-2030")
    generate_token_key(uri)
    with pytest.raises(InputError, match="holds no Ed25519 private key"):
        open_token_signer(token.uri("no-such-key")).__enter__()
    with pytest.raises(InputError, match="no token with these attributes"):
        open_token_signer("pkcs11:token=other;object=release-2030").__enter__()
    with pytest.raises(InputError, match="names no key"):
        open_token_signer(f"pkcs11:token={token.label}").__enter__()
    with pytest.raises(InputError, match="label is its boothkey name"):
        generate_token_key(token.uri("Not%20A%20Name"))

    add_token(token, "observer")
    with pytest.raises(InputError, match="2 tokens match"):
        open_token_signer("pkcs11:object=release-2030").__enter__()

    monkeypatch.setenv("BOOTHKEY_PKCS11_PIN", "000000")
    with pytest.raises(InputError, match="wrong PIN for token 'authority'"):
        open_token_signer(uri).__enter__()

    monkeypatch.delenv("BOOTHKEY_PKCS11_MODULE")
    with pytest.raises(InputError, match="which PKCS#11 module"):
        open_token_signer(uri).__enter__()
    with pytest.raises(InputError, match=r"no-such\.so: no such file"):
        open_token_signer(uri, module=str(tmp_path / "no-such.so")).__enter__()
    # The module from the URI's module-path.
    monkeypatch.setenv("BOOTHKEY_PKCS11_PIN", PIN)
    with open_token_signer(f"{uri}?module-path={token.module}") as signer:
        assert signer.name == "release-2030"


def test_observers_need_no_token_libraries() -> None:
    """The CLI (verify, rebuild, ...) loads python-pkcs11, asn1crypto and virt-firmware only
    when a token or Secure Boot key is used: observers run with Debian's libraries alone."""
    import subprocess
    import sys

    code = (
        "import sys, builder.cli, builder.build.image, builder.observe.rebuild\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'pkcs11', 'asn1crypto', 'virt', 'securesystemslib'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"
