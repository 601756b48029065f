"""Observers' rebuild statements: "I rebuilt this image and got the same digests".

An observer rebuilds a published image from its recipe, lock, overlays and
source bundle, then signs an in-toto Statement v1 in a DSSE envelope
(`NAME.rebuild.<keyid[:16]>.dsse.json`, one file per observer):

- subjects: the published image, its partitions and its UKI with their sha256,
  exactly the subjects of the release signature (`dsse.image_statement`);
- predicateType `urn:boothkey:rebuild:v1`; the predicate says which inputs
  were rebuilt (recipe, lock, overlays and bundle digests from the published
  manifest), on what (boothkey and host tool versions from the observer's own
  manifest), each compared digest, and the result, "same" or "different".

`check_observers` is pure: statement bytes, the published manifest and the
trusted observer keys in, a `verify.Check` out. It counts distinct trusted
observers whose valid statement says "same" for exactly this image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from builder.build.manifest import Manifest, read_manifest
from builder.core.canonical import sha256_bytes, sha256_file
from builder.core.errors import InputError, VerificationFailed
from builder.core.fsutil import write_atomic
from builder.observe.report import Check
from builder.trust.dsse import (
    STATEMENT_TYPE,
    Envelope,
    image_statement,
    new_envelope,
    parse_envelope,
)
from builder.trust.keys import PublicKey
from builder.trust.signer import Signer

PREDICATE_TYPE = "urn:boothkey:rebuild:v1"
RESULTS = ("same", "different")
_INPUT_KEYS = ("recipe", "lock_sha256", "overlays_sha256", "source_date_epoch", "bundle")


def statement_file_name(image_name: str, observer: PublicKey) -> str:
    """Where an observer's statement about image `image_name` is written."""
    return f"{image_name}.rebuild.{observer.keyid[:16]}.dsse.json"


def _inputs(raw: Mapping[str, Any]) -> dict[str, Any]:
    """What a rebuild is made from, as the manifest records it (None when absent)."""
    recipe = raw.get("recipe")
    inputs: dict[str, Any] = {key: raw.get(key) for key in _INPUT_KEYS}
    if isinstance(recipe, Mapping):
        inputs["recipe"] = {"file": recipe.get("file"), "sha256": recipe.get("sha256")}
    bundle = raw.get("bundle")
    if isinstance(bundle, Mapping):
        inputs["bundle"] = {"file": bundle.get("file"), "sha256": bundle.get("sha256")}
    return inputs


def compare_rebuild(published: Manifest, rebuilt: Manifest) -> list[dict[str, Any]]:
    """Every digest the statement vouches for, published against rebuilt.

    The image, each partition and the UKI decide the result; the inputs are
    listed too, so a reader sees when a "different" comes from other sources.
    """
    items: list[dict[str, Any]] = []

    def add(item: str, mine: Any, theirs: Any, decides: bool) -> None:
        items.append(
            {
                "item": item,
                "published": mine,
                "rebuilt": theirs,
                "same": mine == theirs,
                "decides_result": decides,
            }
        )

    add("image", published.image.sha256, rebuilt.image.sha256, True)
    theirs = {part.name: part.sha256 for part in rebuilt.partitions}
    for part in published.partitions:
        add(f"partition {part.name}", part.sha256, theirs.pop(part.name, None), True)
    for name in sorted(theirs):
        add(f"partition {name}", None, theirs[name], True)
    add("UKI", published.uki_sha256, rebuilt.uki_sha256, True)
    mine_inputs, their_inputs = _inputs(published.raw), _inputs(rebuilt.raw)
    for key in _INPUT_KEYS:
        if key == "bundle" and their_inputs[key] is None:
            continue  # rebuilding from the bundle does not make another bundle
        add(f"input {key}", mine_inputs[key], their_inputs[key], False)
    return items


def rebuild_statement(
    published: Manifest, rebuilt: Manifest | None, claimed: str | None
) -> dict[str, Any]:
    """The observer's statement about `published`.

    With `rebuilt` (the observer's own manifest) the result is computed from
    the digests; a `claimed` result that contradicts it is refused. Without it,
    `claimed` is the observer's own word and the statement says so.
    """
    if claimed is not None and claimed not in RESULTS:
        raise InputError(f"--result {claimed}: must be one of {', '.join(RESULTS)}")
    comparison: list[dict[str, Any]] | None = None
    rebuild: dict[str, Any] | None = None
    if rebuilt is not None:
        if rebuilt.name != published.name:
            raise InputError(
                f"the rebuilt manifest is for image {rebuilt.name!r}, not {published.name!r}"
            )
        comparison = compare_rebuild(published, rebuilt)
        same = all(item["same"] for item in comparison if item["decides_result"])
        result = "same" if same else "different"
        if claimed is not None and claimed != result:
            differing = [item["item"] for item in comparison if not item["same"]]
            raise InputError(
                f"--result {claimed}, but comparing the manifests gives {result!r}"
                + (f" (differs: {', '.join(differing)})" if differing else "")
            )
        rebuild = {
            "boothkey": rebuilt.raw.get("boothkey"),
            "tools": rebuilt.raw.get("tools"),
            "image": {"size": rebuilt.image.size, "sha256": rebuilt.image.sha256},
            "steps": [
                {"name": step.get("name"), "content_digest": step.get("content_digest")}
                for step in rebuilt.raw.get("steps", [])
                if isinstance(step, Mapping)
            ],
        }
    elif claimed is None:
        raise InputError("give --rebuilt-manifest (your rebuild's manifest) or --result")
    else:
        result = claimed
    predicate = {
        "result": result,
        "image": {
            "name": published.name,
            "version": published.version,
            "file": published.image.file,
            "size": published.image.size,
            "sha256": published.image.sha256,
        },
        "published_manifest_sha256": sha256_bytes(published.canonical_bytes()),
        "inputs": _inputs(published.raw),
        "compared_by": "boothkey" if comparison is not None else "observer",
        "rebuild": rebuild,
        "comparison": comparison,
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": image_statement(published.raw)["subject"],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def sign_rebuild_statement(statement: Mapping[str, Any], key: Signer) -> Envelope:
    return new_envelope(statement).add_signature(key)


def read_rebuild_statements(directory: Path, image_name: str) -> list[tuple[str, bytes]]:
    """Every `IMAGE.rebuild.*.dsse.json` in `directory`, sorted, as (path, bytes)."""
    if not directory.is_dir():
        raise InputError(f"{directory}: no such directory of observer statements")
    found = []
    for path in sorted(directory.glob(f"{image_name}.rebuild.*.dsse.json")):
        try:
            found.append((str(path), path.read_bytes()))
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    return found


def check_observer_threshold(trusted: Mapping[str, PublicKey], required: int) -> None:
    """Refuse observer settings that could never mean anything."""
    if required < 1:
        raise InputError(f"--observers {required}: at least one observer must be required")
    if not trusted:
        raise InputError("no trusted observer keys: the directory holds no *.pub.json file")
    if required > len(trusted):
        raise InputError(
            f"--observers {required} can never be met with {len(trusted)} trusted observer key(s)"
        )


def judge_statement(statement: dict[str, Any], manifest: Manifest) -> tuple[str | None, str]:
    """(result, "") for a rebuild statement about exactly this image, else (None, why not)."""
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != (
        PREDICATE_TYPE
    ):
        return None, "not a boothkey rebuild statement"
    if statement.get("subject") != image_statement(manifest.raw)["subject"]:
        return None, "about another image (its image or partition digests differ)"
    predicate = statement.get("predicate")
    result = predicate.get("result") if isinstance(predicate, dict) else None
    if result not in RESULTS:
        return None, "states no result"
    rebuild = predicate.get("rebuild") if isinstance(predicate, dict) else None
    if result == "same" and isinstance(rebuild, dict):
        rebuilt_image = rebuild.get("image")
        if not isinstance(rebuilt_image, dict) or rebuilt_image.get("sha256") != (
            manifest.image.sha256
        ):
            return None, "says 'same' but records another rebuilt image digest"
    return str(result), ""


def check_observers(
    statements: Sequence[tuple[str, bytes]],
    manifest: Manifest,
    trusted: Mapping[str, PublicKey],
    required: int,
) -> Check:
    """At least `required` distinct trusted observers signed "same" for this image.

    A trusted observer who also signed "different" for this image is not
    counted; every other observer saying "different" is reported in the details.
    """
    name = "observers"
    check_observer_threshold(trusted, required)
    details: list[str] = []
    same: dict[str, PublicKey] = {}
    different: dict[str, PublicKey] = {}
    for shown, data in statements:
        try:
            envelope = parse_envelope(data, shown)
            statement = envelope.statement()
        except InputError as exc:
            details.append(f"ignored: {exc.message}")
            continue
        result, why_not = judge_statement(statement, manifest)
        signers = envelope.trusted_signers(trusted)
        if not signers:
            details.append(f"ignored: {shown}: no valid signature by a trusted observer key")
            continue
        who = ", ".join(key.name for key in signers)
        if result is None:
            details.append(f"ignored: {shown} by {who}: {why_not}")
            continue
        for key in signers:
            (same if result == "same" else different)[key.keyid] = key
        details.append(
            f"{who}: rebuilt and got {'the same' if result == 'same' else 'a DIFFERENT'} image"
        )
    counted = [key for keyid, key in same.items() if keyid not in different]
    summary = (
        f"{len(counted)} distinct trusted observer(s) rebuilt the same image, {required} required"
    )
    if different:
        names = ", ".join(sorted(key.name for key in different.values()))
        summary += f"; {len(different)} reported a DIFFERENT image ({names})"
    if not statements:
        details.append("no observer statements found")
    return Check(name, len(counted) >= required, summary, tuple(details))


def attest(
    manifest_path: Path,
    key: Signer,
    rebuilt_manifest: Path | None = None,
    result: str | None = None,
    out_dir: Path | None = None,
) -> tuple[Path, str]:
    """Write the observer's signed statement; return (its path, the result it states)."""
    published = read_manifest(manifest_path)
    rebuilt = None
    if rebuilt_manifest is not None:
        rebuilt = read_manifest(rebuilt_manifest)
        _check_rebuilt_image(rebuilt_manifest, rebuilt.image.file, rebuilt.image.sha256)
    statement = rebuild_statement(published, rebuilt, result)
    envelope = sign_rebuild_statement(statement, key)
    path = (out_dir or manifest_path.parent) / statement_file_name(published.name, key.public)
    write_atomic(path, envelope.to_bytes())
    return path, str(statement["predicate"]["result"])


def _check_rebuilt_image(manifest_path: Path, image_file: str, sha256: str) -> None:
    """When the rebuilt image is beside its manifest, never vouch for a manifest it contradicts."""
    image = manifest_path.parent / image_file
    if image.is_file() and sha256_file(image) != sha256:
        raise VerificationFailed(
            f"{image}: sha256 differs from {manifest_path}; the rebuilt manifest does not "
            "describe the rebuilt image"
        )
