"""Secure Boot: sbsign's signature as a separable blob, the sbsign step, and real boots."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from image_factory import make_pe, tampered_uki_copy, write_pe
from step_factory import host_tools, host_tools_output, options_of, run_step

from builder.build.image import BuildResult, build_image
from builder.build.steps.base import BuildContext, StepOutput
from builder.build.steps.sbsign import SbsignStep, published_signature, write_plain_key
from builder.build.steps.secureboot import (
    attach_signature,
    certificate_table,
    parse_certificate_table,
    sbsign,
    sbverify,
)
from builder.core.canonical import pretty_json
from builder.core.errors import BuildError, InputError
from builder.core.paths import default_cache_dir
from builder.observe.qemu import QemuBoot
from builder.source.recipe import SecureBootOptions, load_recipe

SNAKEOIL_KEY = Path("/usr/share/ovmf/PkKek-1-snakeoil.key")
SNAKEOIL_CERT = Path("/usr/share/ovmf/PkKek-1-snakeoil.pem")
SNAKEOIL_PASSPHRASE = "snakeoil"  # published by Debian in ovmf's README.Debian
EPOCH = 1700000000

pytestmark = pytest.mark.skipif(not SNAKEOIL_KEY.is_file(), reason="ovmf not installed")


@pytest.fixture(scope="module")
def plain_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("sbkey") / "snakeoil.pem"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BOOTHKEY_SECURE_BOOT_PASSPHRASE", SNAKEOIL_PASSPHRASE)
        write_plain_key(SNAKEOIL_KEY, target)
    return target


def _uki(path: Path, cmdline: bytes = b"console=ttyS0 boothkey.roothash=00") -> Path:
    return write_pe(path, [(".text", b"\xc3" * 64), (".cmdline", cmdline), (".linux", b"k" * 999)])


@pytest.mark.parametrize("trailing", [b"", b"abc"])
def test_reattached_signature_gives_the_signed_file_bit_for_bit(
    tmp_path: Path, plain_key: Path, trailing: bytes
) -> None:
    unsigned = _uki(tmp_path / "unsigned.efi")
    unsigned.write_bytes(unsigned.read_bytes() + trailing)  # also an unaligned file end
    signed = tmp_path / "signed.efi"
    sbsign(host_tools(tmp_path / "tools"), unsigned, plain_key, SNAKEOIL_CERT, signed, EPOCH)
    table = certificate_table(signed.read_bytes())
    assert parse_certificate_table(table)[:1] == b"\x30"  # DER SEQUENCE: the PKCS#7
    rebuilt = attach_signature(unsigned.read_bytes(), table)
    assert rebuilt == signed.read_bytes()
    reattached = tmp_path / "reattached.efi"
    reattached.write_bytes(rebuilt)
    assert sbverify(host_tools(tmp_path / "tools"), reattached, SNAKEOIL_CERT)


def test_signing_is_deterministic_for_a_fixed_signing_time(tmp_path: Path, plain_key: Path) -> None:
    unsigned = _uki(tmp_path / "unsigned.efi")
    sbsign(
        host_tools(tmp_path / "tools"),
        unsigned,
        plain_key,
        SNAKEOIL_CERT,
        tmp_path / "a.efi",
        EPOCH,
    )
    sbsign(
        host_tools(tmp_path / "tools"),
        unsigned,
        plain_key,
        SNAKEOIL_CERT,
        tmp_path / "b.efi",
        EPOCH,
    )
    sbsign(
        host_tools(tmp_path / "tools"),
        unsigned,
        plain_key,
        SNAKEOIL_CERT,
        tmp_path / "c.efi",
        EPOCH + 1,
    )
    assert (tmp_path / "a.efi").read_bytes() == (tmp_path / "b.efi").read_bytes()
    assert (tmp_path / "a.efi").read_bytes() != (tmp_path / "c.efi").read_bytes()
    # The PKCS#7 signingTime is exactly the epoch (a frozen clock, not one started there).
    pkcs7 = parse_certificate_table(certificate_table((tmp_path / "a.efi").read_bytes()))
    printed = subprocess.run(
        ["openssl", "pkcs7", "-inform", "DER", "-print"],
        input=pkcs7,
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert "UTCTIME:Nov 14 22:13:20 2023 GMT" in printed


def test_blob_on_an_altered_uki_does_not_verify(tmp_path: Path, plain_key: Path) -> None:
    unsigned = _uki(tmp_path / "unsigned.efi")
    signed = tmp_path / "signed.efi"
    sbsign(host_tools(tmp_path / "tools"), unsigned, plain_key, SNAKEOIL_CERT, signed, EPOCH)
    table = certificate_table(signed.read_bytes())
    altered = _uki(tmp_path / "altered.efi", b"console=ttyS0 boothkey.roothash=01")
    forged = tmp_path / "forged.efi"
    forged.write_bytes(attach_signature(altered.read_bytes(), table))
    assert not sbverify(host_tools(tmp_path / "tools"), forged, SNAKEOIL_CERT)
    assert not sbverify(host_tools(tmp_path / "tools"), unsigned, SNAKEOIL_CERT)


def test_misuse_is_refused(tmp_path: Path, plain_key: Path) -> None:
    unsigned = make_pe([(".text", b"\xc3")])
    with pytest.raises(BuildError, match="not signed"):
        certificate_table(unsigned)
    with pytest.raises(InputError, match="too short"):
        attach_signature(unsigned, b"")
    with pytest.raises(InputError, match="not a PKCS#7"):
        attach_signature(unsigned, bytes(16))
    signed_path = tmp_path / "signed.efi"
    sbsign(
        host_tools(tmp_path / "tools"),
        _uki(tmp_path / "u.efi"),
        plain_key,
        SNAKEOIL_CERT,
        signed_path,
        EPOCH,
    )
    signed = signed_path.read_bytes()
    with pytest.raises(InputError, match="already carries"):
        attach_signature(signed, certificate_table(signed))


def _context(tmp_path: Path, published: bytes | None = None) -> BuildContext:
    recipe = SimpleNamespace(secure_boot=SecureBootOptions(SNAKEOIL_KEY, SNAKEOIL_CERT))
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return cast(
        BuildContext,
        SimpleNamespace(
            recipe=recipe,
            source_date_epoch=EPOCH,
            scratch=scratch,
            report=lambda line: None,
            deb_path=lambda package: tmp_path / "no-debs",
            secure_boot_signature=published,
        ),
    )


def _uki_output(tmp_path: Path) -> StepOutput:
    directory = tmp_path / "uki"
    directory.mkdir()
    _uki(directory / "BOOTX64.EFI")
    (directory / "cmdline.txt").write_text("console=ttyS0 boothkey.roothash=00")
    return StepOutput("uki", "0" * 64, directory, {}, "0" * 64)


def _run_step(ctx: BuildContext, uki: StepOutput, out: Path) -> dict[str, Any]:
    out.mkdir()
    tools = host_tools_output(out.with_name(out.name + "-tools"))
    return run_step(SbsignStep(), ctx, {"uki": uki, "tools": tools}, out)


def test_step_signs_and_publishes_the_blob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOTHKEY_SECURE_BOOT_PASSPHRASE", SNAKEOIL_PASSPHRASE)
    ctx, uki = _context(tmp_path), _uki_output(tmp_path)
    info = _run_step(ctx, uki, tmp_path / "one")
    signed = tmp_path / "one" / "BOOTX64.EFI"
    subprocess.run(["sbverify", "--cert", str(SNAKEOIL_CERT), str(signed)], check=True)
    blob = base64.b64decode(info["signature"])
    assert blob == (tmp_path / "one" / "signature.bin").read_bytes()
    assert attach_signature((uki.path / "BOOTX64.EFI").read_bytes(), blob) == signed.read_bytes()
    assert (tmp_path / "one" / "cmdline.txt").read_text() == "console=ttyS0 boothkey.roothash=00"
    assert list(ctx.scratch.iterdir()) == []  # the decrypted key is gone
    again = _run_step(ctx, uki, tmp_path / "two")
    assert again == info
    assert options_of(SbsignStep(), ctx, {"uki": uki})["signing_time"] == EPOCH


def test_step_needs_the_passphrase_of_an_encrypted_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, uki = _context(tmp_path), _uki_output(tmp_path)
    monkeypatch.delenv("BOOTHKEY_SECURE_BOOT_PASSPHRASE", raising=False)
    with pytest.raises(InputError, match="BOOTHKEY_SECURE_BOOT_PASSPHRASE"):
        _run_step(ctx, uki, tmp_path / "out")
    monkeypatch.setenv("BOOTHKEY_SECURE_BOOT_PASSPHRASE", "wrong")
    with pytest.raises(InputError, match="wrong"):
        _run_step(ctx, uki, tmp_path / "out2")
    assert not (tmp_path / "out2" / "BOOTX64.EFI").exists()


def test_observer_without_the_key_attaches_the_published_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOTHKEY_SECURE_BOOT_PASSPHRASE", SNAKEOIL_PASSPHRASE)
    ctx, uki = _context(tmp_path), _uki_output(tmp_path)
    published = _run_step(ctx, uki, tmp_path / "release")
    manifest = tmp_path / "hello.manifest.json"
    manifest.write_text(json.dumps({"secure_boot": published}))

    monkeypatch.delenv("BOOTHKEY_SECURE_BOOT_PASSPHRASE")

    def observer(signature: bytes) -> BuildContext:
        return cast(
            BuildContext,
            SimpleNamespace(
                **{**vars(ctx), "secure_boot_signature": signature, "recipe": SimpleNamespace(
                    secure_boot=SecureBootOptions(tmp_path / "no-such.key", SNAKEOIL_CERT))}
            ),
        )  # fmt: skip

    # From the published manifest, as `rebuild` and `build --secure-boot-signature` read it.
    from_manifest = observer(published_signature(manifest))
    rebuilt = _run_step(from_manifest, uki, tmp_path / "observer")
    assert rebuilt == published
    assert (tmp_path / "observer" / "BOOTX64.EFI").read_bytes() == (
        tmp_path / "release" / "BOOTX64.EFI"
    ).read_bytes()
    # The attached signature is among the step's options, so it is part of the step id.
    assert options_of(SbsignStep(), from_manifest, {"uki": uki}) != options_of(
        SbsignStep(), ctx, {"uki": uki}
    )

    # Or from the published signature.bin.
    from_blob = observer(published_signature(tmp_path / "release" / "signature.bin"))
    assert _run_step(from_blob, uki, tmp_path / "observer2") == published

    different = tmp_path / "different"
    different.mkdir()
    _uki(different / "BOOTX64.EFI", b"console=ttyS0 boothkey.roothash=01")
    (different / "cmdline.txt").write_text("console=ttyS0 boothkey.roothash=01")
    with pytest.raises(BuildError, match="rebuilt UKI differs"):
        _run_step(from_blob, StepOutput("uki", "1" * 64, different, {}, "1" * 64), tmp_path / "x")

    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match=r"secure_boot\.signature"):
        published_signature(tmp_path / "bad.json")


# Real builds and boots (network for the locked .debs, QEMU with TCG): slow.

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def secure_build(tmp_path_factory: pytest.TempPathFactory, hello_boot_debs: object) -> BuildResult:
    """recipes/hello.yaml as "hellosb" with Secure Boot signing by Debian's snakeoil key."""
    project = tmp_path_factory.mktemp("sbproject")
    shutil.copytree(PROJECT / "overlays" / "hello", project / "overlays" / "hello")
    (project / "recipes").mkdir()
    text = (
        (PROJECT / "recipes" / "hello.yaml").read_text().replace("name: hello\n", "name: hellosb\n")
    )
    text += f"secure_boot:\n  key: {SNAKEOIL_KEY}\n  certificate: {SNAKEOIL_CERT}\n"
    (project / "recipes" / "hellosb.yaml").write_text(text)
    lock = json.loads((PROJECT / "recipes" / "hello.lock.json").read_bytes())
    lock["recipe"]["name"] = "hellosb"
    (project / "recipes" / "hellosb.lock.json").write_bytes(pretty_json(lock))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BOOTHKEY_SECURE_BOOT_PASSPHRASE", SNAKEOIL_PASSPHRASE)
        return build_image(
            load_recipe(project / "recipes" / "hellosb.yaml"),
            project / "out",
            default_cache_dir(),
            report=lambda line: None,
        )


def _boot(image: Path, secure_boot: bool) -> int:
    with QemuBoot(image, usb=False, secure_boot=secure_boot, timeout=180) as boot:
        return boot.expect([BOOTED, DENIED])


BOOTED = "BOOTHKEY-HELLO-ROOT"
DENIED = "Access Denied"


@pytest.mark.slow
def test_observer_reattaches_the_published_signature(secure_build: BuildResult) -> None:
    manifest = secure_build.manifest_data
    unsigned = secure_build.steps["uki"].output.path / "BOOTX64.EFI"
    blob = base64.b64decode(manifest["secure_boot"]["signature"])
    signed = attach_signature(unsigned.read_bytes(), blob)
    assert hashlib.sha256(signed).hexdigest() == manifest["uki"]["sha256"]
    assert (
        hashlib.sha256(unsigned.read_bytes()).hexdigest()
        == manifest["secure_boot"]["unsigned_sha256"]
    )


@pytest.mark.slow
def test_signed_image_boots_with_secure_boot_enforced(secure_build: BuildResult) -> None:
    assert _boot(secure_build.image, secure_boot=True) == 0


@pytest.mark.slow
def test_altered_uki_is_refused_by_secure_boot_but_boots_without(
    secure_build: BuildResult, tmp_path: Path
) -> None:
    altered = tampered_uki_copy(secure_build.image, tmp_path / "altered.img", "altered")
    assert _boot(altered, secure_boot=True) == 1
    # The same bytes boot without Secure Boot: the refusal above is the signature check.
    assert _boot(altered, secure_boot=False) == 0


@pytest.mark.slow
def test_unsigned_uki_is_refused_by_secure_boot(secure_build: BuildResult, tmp_path: Path) -> None:
    unsigned = tampered_uki_copy(secure_build.image, tmp_path / "unsigned.img", "unsigned")
    assert _boot(unsigned, secure_boot=True) == 1
