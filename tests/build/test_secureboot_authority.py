"""A booth whose firmware trusts only the election authority (slow: real builds, QEMU).

The authority's PK, KEK and db keys live on a SoftHSM2 token; `secureboot enroll`
writes the OVMF variable store; the hello image is built with its UKI signed through
the token. With Secure Boot enforcing under those variables, that image boots, and
the firmware refuses the same UKI signed by another token key, the snakeoil-signed
image, and the authority-signed image with one byte of its UKI changed. An observer
without the token rebuilds the release from its source bundle, attaching the
published signature, and gets the published image bit for bit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from image_factory import tampered_uki_copy
from token_factory import (
    NOT_BEFORE,
    SecureBootAuthority,
    add_token,
    make_secure_boot_authority,
    make_soft_token,
    needs_softhsm,
)

from builder.build.image import BuildResult, build_image
from builder.cli import main
from builder.core.canonical import pretty_json
from builder.core.paths import default_cache_dir
from builder.observe.qemu import QemuBoot
from builder.release.firmware import make_certificate_on_token
from builder.source.recipe import load_recipe

PROJECT = Path(__file__).resolve().parents[2]
SNAKEOIL_KEY = Path("/usr/share/ovmf/PkKek-1-snakeoil.key")
SNAKEOIL_CERT = Path("/usr/share/ovmf/PkKek-1-snakeoil.pem")
BOOTED = "BOOTHKEY-HELLO-ROOT"
DENIED = "Access Denied"
TOKEN_VARIABLES = ("SOFTHSM2_CONF", "BOOTHKEY_PKCS11_MODULE", "BOOTHKEY_PKCS11_PIN")

pytestmark = [pytest.mark.slow, needs_softhsm]


@dataclass(frozen=True)
class Booth:
    authority: SecureBootAuthority
    firmware_vars: Path
    signed: BuildResult  # signed through the authority's db key on the token
    project: Path
    rogue: BuildResult  # the same UKI, signed by a key on another token
    snakeoil: BuildResult  # signed by Debian's snakeoil key


def _project(root: Path, certificate: Path, key: str) -> Path:
    """recipes/hello.yaml as "hellotk", its UKI signed by `key` (a pkcs11: URI or a file)."""
    shutil.copytree(PROJECT / "overlays" / "hello", root / "overlays" / "hello")
    (root / "recipes").mkdir()
    (root / "keys").mkdir()
    shutil.copy(certificate, root / "keys" / "secure-boot.pem")
    text = (
        (PROJECT / "recipes" / "hello.yaml").read_text().replace("name: hello\n", "name: hellotk\n")
    )
    text += f'secure_boot:\n  key: "{key}"\n  certificate: keys/secure-boot.pem\n'
    (root / "recipes" / "hellotk.yaml").write_text(text)
    lock = json.loads((PROJECT / "recipes" / "hello.lock.json").read_bytes())
    lock["recipe"]["name"] = "hellotk"
    (root / "recipes" / "hellotk.lock.json").write_bytes(pretty_json(lock))
    return root


def _build(project: Path) -> BuildResult:
    return build_image(
        load_recipe(project / "recipes" / "hellotk.yaml"),
        project / "out",
        default_cache_dir(),
        report=lambda line: None,
    )


@pytest.fixture(scope="module")
def booth(tmp_path_factory: pytest.TempPathFactory, hello_boot_debs: object) -> Iterator[Booth]:
    root = tmp_path_factory.mktemp("authority")
    with pytest.MonkeyPatch.context() as patch:
        token = make_soft_token(root / "hsm", patch)
        authority = make_secure_boot_authority(root, token)
        certificates = authority.certificates
        firmware = root / "firmware"
        argv = ["secureboot", "enroll", "--pk", str(certificates["pk"])]
        argv += ["--kek", str(certificates["kek"]), "--db", str(certificates["db"])]
        argv += ["--pk-key", authority.uri("pk"), "--kek-key", authority.uri("kek")]
        assert main([*argv, "--out", str(firmware)]) == 0

        signed_project = _project(root / "signed", certificates["db"], authority.uri("db"))
        signed = _build(signed_project)

        rogue_token = add_token(token, "rogue")
        rogue_certificate = root / "rogue.pem"
        rogue_certificate.write_bytes(
            make_certificate_on_token(
                rogue_token.uri("sb-db"), None, "Test Authority db 2030", NOT_BEFORE
            )
        )
        rogue = _build(_project(root / "rogue", rogue_certificate, rogue_token.uri("sb-db")))

        patch.setenv("BOOTHKEY_SECURE_BOOT_PASSPHRASE", "snakeoil")  # Debian's README.Debian
        snakeoil = _build(_project(root / "snakeoil", SNAKEOIL_CERT, str(SNAKEOIL_KEY)))
        yield Booth(authority, firmware / "OVMF_VARS.fd", signed, signed_project, rogue, snakeoil)


def _boot(image: Path, firmware_vars: Path | None) -> int:
    with QemuBoot(
        image, usb=False, secure_boot=True, timeout=240, vars_template=firmware_vars
    ) as boot:
        return boot.expect([BOOTED, DENIED])


def test_the_three_builds_hold_the_same_uki_signed_three_ways(booth: Booth) -> None:
    unsigned = {
        result.manifest_data["secure_boot"]["unsigned_sha256"]
        for result in (booth.signed, booth.rogue, booth.snakeoil)
    }
    assert len(unsigned) == 1
    signatures = {
        result.manifest_data["secure_boot"]["signature_sha256"]
        for result in (booth.signed, booth.rogue, booth.snakeoil)
    }
    assert len(signatures) == 3


def test_the_authority_signed_image_boots(booth: Booth) -> None:
    assert _boot(booth.signed.image, booth.firmware_vars) == 0


def test_a_uki_signed_by_another_token_key_is_refused(booth: Booth) -> None:
    assert _boot(booth.rogue.image, booth.firmware_vars) == 1


def test_the_snakeoil_signed_image_is_refused(booth: Booth) -> None:
    assert _boot(booth.snakeoil.image, booth.firmware_vars) == 1
    # ... while Debian's snakeoil firmware boots it: the refusal is the authority's db.
    assert _boot(booth.snakeoil.image, None) == 0


def test_a_modified_uki_is_refused(booth: Booth, tmp_path: Path) -> None:
    altered = tampered_uki_copy(booth.signed.image, tmp_path / "altered.img", "altered")
    assert _boot(altered, booth.firmware_vars) == 1


def test_observer_rebuilds_the_token_signed_release_without_the_token(
    booth: Booth, tmp_path: Path
) -> None:
    published = booth.project / "out"
    python = sys.executable
    subprocess.run(
        [
            python,
            str(PROJECT / "build.py"),
            "bundle",
            "recipes/hellotk.yaml",
            "--out",
            str(published),
        ],
        cwd=booth.project,
        check=True,
        capture_output=True,
    )
    # The observer has no token, no PIN, no module: only the published files.
    env = {key: value for key, value in os.environ.items() if key not in TOKEN_VARIABLES}
    work = tmp_path / "work"
    done = subprocess.run(
        [
            *(python, str(PROJECT / "build.py"), "rebuild"),
            str(published / "hellotk.manifest.json"),
            *("--bundle", str(published / "hellotk-1-source.tar"), "--work", str(work)),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Result: SAME" in done.stdout
    assert "the published signature is attached" in done.stderr
    rebuilt = (work / "out" / "hellotk.img").read_bytes()
    assert rebuilt == booth.signed.image.read_bytes()
