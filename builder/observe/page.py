"""The release page: a static site made from a checked release (`published.read_release`).

`write_site` writes OUT/index.html and OUT/files/ (copies of the manifest, envelope,
signatures, checksums, SBOM, provenance, observers' statements and public keys the
page links to; never the image). The page loads nothing from anywhere: its style,
its scripts (SHA-256 and BLAKE2b-512 of its own, Ed25519 through WebCrypto) and its
QR code (SVG drawn here with segno) are inline, and its Content-Security-Policy
forbids every other load and every connection, so it works from a USB stick
(file://) or any static host and nothing a visitor selects leaves the browser.

Every text from the release reaches the page through Jinja2's autoescaping (in its
sandbox), and the data the scripts read through `tojson` (which escapes `<`, `>`,
`&` and `'`). The same release gives the same bytes: no clock, no random value.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
from markupsafe import Markup

from builder.core.fsutil import write_atomic
from builder.observe.published import PublishedRelease, envelope_json, read_release
from builder.station.fingerprint import code_payload

ASSETS = Path(__file__).resolve().parent / "page_assets"
TEMPLATE = "page.html.j2"
SCRIPTS = ("sha256.js", "blake2b.js", "release.js")
STYLE = "page.css"
FILES_DIR = "files"


def _asset(name: str) -> str:
    text = (ASSETS / name).read_text(encoding="utf-8")
    if "</" in text:
        raise RuntimeError(f"{name}: '</' would end the inline element early")
    return text


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _qr_svg(text: str) -> str:
    import segno  # only publishing draws QR codes: the rest of boothkey runs without segno

    code = segno.make(text, error="M", micro=False)
    svg: str = code.svg_inline(scale=6, dark="#000", light="#fff", border=4)
    return svg


def _environment() -> jinja2.Environment:
    environment = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(ASSETS)),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    environment.globals.pop("lipsum", None)
    environment.filters.pop("random", None)
    return environment


def page_data(release: PublishedRelease) -> dict[str, Any]:
    """What the page's script checks against: image, signed envelope, signers' keys."""
    manifest = release.manifest
    data_partition = release.data_partition
    return {
        "name": manifest.name,
        "version": manifest.version,
        "image": {
            "file": manifest.image.file,
            "size": manifest.image.size,
            "sha256": manifest.image.sha256,
        },
        "dataPartition": None
        if data_partition is None
        else {"offset": data_partition[0], "size": data_partition[1]},
        "softwareFingerprint": release.software_fingerprint,
        "envelope": envelope_json(release.envelope),
        "threshold": release.threshold,
        "signers": [
            {
                "name": signer.key.name,
                "keyid": signer.key.keyid,
                "public": base64.b64encode(signer.key.raw).decode(),
                "minisign": None
                if signer.minisig is None
                else {
                    "file": signer.minisig_file,
                    "keynum": base64.b64encode(signer.minisig.keynum).decode(),
                    "signature": base64.b64encode(signer.minisig.signature).decode(),
                    "trustedComment": signer.minisig.trusted_comment,
                    "globalSignature": base64.b64encode(signer.minisig.global_signature).decode(),
                },
            }
            for signer in release.signers
        ],
    }


def _provenance_summary(release: PublishedRelease) -> dict[str, Any] | None:
    if release.provenance is None:
        return None
    try:
        statement = json.loads(release.provenance.data)
        predicate = statement["predicate"]
        definition = predicate["buildDefinition"]
        details = predicate.get("runDetails", {})
        return {
            "predicate_type": str(statement.get("predicateType", "")),
            "build_type": str(definition.get("buildType", "")),
            "builder": str(details.get("builder", {}).get("id", "")),
            "dependencies": len(definition.get("resolvedDependencies", [])),
            "external": json.dumps(
                definition.get("externalParameters", {}), indent=1, sort_keys=True
            ),
            "text": release.provenance.data.decode("utf-8", errors="replace"),
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return {"text": release.provenance.data.decode("utf-8", errors="replace")}


def render_page(release: PublishedRelease) -> bytes:
    """index.html of the release page."""
    scripts = [_asset(name) for name in SCRIPTS]
    style = _asset(STYLE)
    manifest = release.manifest
    csp = "; ".join(
        [
            "default-src 'none'",
            "script-src " + " ".join(_csp_hash(script) for script in scripts),
            f"style-src {_csp_hash(style)}",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )
    html = (
        _environment()
        .get_template(TEMPLATE)
        .render(
            release=release,
            manifest=manifest,
            files_dir=FILES_DIR,
            fingerprint=release.software_fingerprint,
            example_code=code_payload(release.software_fingerprint, None),
            qr_svg=Markup(_qr_svg(release.software_fingerprint)),
            data=page_data(release),
            provenance=_provenance_summary(release),
            scripts=[Markup(script) for script in scripts],
            style=Markup(style),
            csp=csp,
            partitions=manifest.partitions,
        )
    )
    return html.encode("utf-8")


def write_site(release: PublishedRelease, out_dir: Path) -> list[Path]:
    """Write the release page and the files it links to into `out_dir`."""
    written = []
    for published in release.files:
        target = out_dir / FILES_DIR / published.name
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, published.data)
        written.append(target)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.html"
    write_atomic(index, render_page(release))
    written.append(index)
    return written


def publish(
    manifest_path: Path,
    keys_dir: Path,
    out_dir: Path,
    observer_keys_dir: Path | None = None,
    threshold: int | None = None,
) -> tuple[PublishedRelease, list[Path]]:
    """Check the release beside `manifest_path` and write its page into `out_dir`."""
    release = read_release(manifest_path, keys_dir, observer_keys_dir, threshold)
    return release, write_site(release, out_dir)
