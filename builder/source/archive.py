"""The signed Debian archive index: InRelease, verified with gpgv, and the Packages it pins.

Trust flows one way: the recipe's keyring verifies `InRelease`; only the text
gpgv says it verified is parsed; that text pins the size and sha256 of every
`Packages.xz`; those pin every `.deb`. Nothing unverified is ever parsed for
content.
"""

from __future__ import annotations

import base64
import email.utils
import lzma
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from debian import deb822

from builder.core.canonical import sha256_bytes
from builder.core.errors import FetchError, InputError, VerificationFailed
from builder.core.tools import require_tool, run_tool
from builder.source.http import Fetcher, describe_url, mirror_url

MAX_INRELEASE_SIZE = 16 * 1024 * 1024
# The fields the resolver and the lock need; python-debian skips the rest faster.
_PACKAGE_FIELDS = (
    "Package",
    "Version",
    "Architecture",
    "Essential",
    "Priority",
    "Pre-Depends",
    "Depends",
    "Provides",
    "Conflicts",
    "Breaks",
    "Multi-Arch",
    "Filename",
    "Size",
    "SHA256",
)


@dataclass(frozen=True)
class IndexFile:
    """One file the signed Release lists: its size and sha256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Release:
    """The verified Release text of one suite, and who signed it."""

    suite: str
    codename: str
    date: str  # as written in the Release file
    date_epoch: int
    inrelease_sha256: str  # of the InRelease bytes as downloaded
    signing_key: str  # fingerprint from gpgv's VALIDSIG (primary key)
    files: Mapping[str, IndexFile]
    by_hash: bool = False  # "Acquire-By-Hash: yes": index files also live under by-hash/SHA256/
    # "NotAutomatic: yes" (experimental, backports): apt never picks its packages by itself.
    not_automatic: bool = False


@dataclass(frozen=True)
class PackageRecord:
    """One stanza of a Packages file; relation fields keep Debian's syntax."""

    name: str
    version: str
    architecture: str
    size: int
    sha256: str
    filename: str
    essential: bool = False
    priority: str = ""
    pre_depends: str = ""
    depends: str = ""
    provides: str = ""
    conflicts: str = ""
    breaks: str = ""
    multi_arch: str = ""
    suite: str = ""  # the `dists/` directory whose signed index listed it


@dataclass(frozen=True)
class ArchiveIndex:
    """A verified archive snapshot: its Release and every package of the wanted components."""

    mirror: str
    release: Release
    architecture: str
    components: tuple[str, ...]
    packages: tuple[PackageRecord, ...]


def verify_inrelease(data: bytes, keyring: Path, source: str) -> tuple[bytes, str]:
    """Check the clear-signed `data` with gpgv against `keyring` only.

    Returns (the signed text exactly as gpgv extracted it, signer's primary key
    fingerprint). Raises `VerificationFailed` naming `source` and the keyring if
    there is no good signature by a key in the keyring; `InputError` if the keyring
    cannot be read.
    """
    if not keyring.is_file():
        raise InputError(f"{keyring}: keyring not found (distribution.keyring in the recipe)")
    gpgv = require_tool("gpgv")
    with tempfile.TemporaryDirectory(prefix="boothkey-gpgv-") as tmp:
        work = Path(tmp)
        signed = work / "InRelease"
        signed.write_bytes(data)
        output = work / "Release"
        trusted = _binary_keyring(keyring, work)
        result = run_tool(
            [
                gpgv,
                "--homedir",
                str(work),
                "--keyring",
                str(trusted),
                "--status-fd",
                "1",
                "--output",
                str(output),
                str(signed),
            ],
            check=False,  # the status lines say why, whatever the exit code
        )
        status = _status_lines(result.stdout)
        text = output.read_bytes() if output.exists() else b""
    problem = _signature_problem(status)
    if problem:
        raise VerificationFailed(f"{source}: {problem} (keyring {keyring})")
    # VALIDSIG's last argument is the primary key's fingerprint; the first good
    # signature in the file is the one recorded, so the choice is stable.
    return text, status["VALIDSIG"][0][-1]


def _binary_keyring(keyring: Path, work: Path) -> Path:
    """`keyring` as gpgv can read it: ASCII-armored key files (`.asc`) are de-armored
    into `work`, since gpgv would otherwise report every key as missing."""
    data = keyring.read_bytes()
    if not data.lstrip().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"):
        return keyring.absolute()
    packets = bytearray()
    text = data.decode("ascii", errors="replace").replace("\r\n", "\n")
    for block in text.split("-----BEGIN PGP PUBLIC KEY BLOCK-----")[1:]:
        body = block.split("-----END PGP PUBLIC KEY BLOCK-----")[0]
        # Armor headers ("Comment: ...") end at the first blank line; "=" starts the CRC.
        _headers, _, payload = body.partition("\n\n") if "\n\n" in body else ("", "", body)
        lines = [ln.strip() for ln in payload.splitlines() if ln.strip() and not ln.startswith("=")]
        try:
            packets += base64.b64decode("".join(lines), validate=True)
        except ValueError as exc:
            raise InputError(f"{keyring}: damaged ASCII-armored key block") from exc
    binary = work / "keyring.gpg"
    binary.write_bytes(bytes(packets))
    return binary


def _status_lines(stdout: bytes) -> dict[str, list[list[str]]]:
    """gpgv's status keywords, each with the arguments of every line that carried it."""
    status: dict[str, list[list[str]]] = {}
    for line in stdout.decode(errors="replace").splitlines():
        if line.startswith("[GNUPG:] "):
            keyword, *args = line[len("[GNUPG:] ") :].split()
            status.setdefault(keyword, []).append(args)
    return status


def _signature_problem(status: Mapping[str, list[list[str]]]) -> str:
    """Why the status shows no good, valid signature by a trusted key; "" if it does.

    Like apt, one good signature suffices when others are by keys outside the
    keyring (Debian signs each InRelease with several keys); any BAD signature fails.
    """
    if "BADSIG" in status:
        return "BAD signature: the file was changed after it was signed"
    if "GOODSIG" in status and "VALIDSIG" in status:
        return ""
    if "NODATA" in status or "NEWSIG" not in status:
        return "not signed (no OpenPGP signature found)"
    for keyword in ("EXPKEYSIG", "REVKEYSIG", "EXPSIG"):
        if keyword in status:
            return f"signature by an expired or revoked key ({keyword})"
    missing = [args[0] for args in status.get("NO_PUBKEY", []) if args]
    if missing:
        return f"signed only by key(s) {', '.join(missing)}, none of them in the trusted keyring"
    return "no valid signature"


def parse_release(
    text: bytes, source: str, inrelease_sha256: str, signing_key: str, suite: str
) -> Release:
    """Parse verified Release text; the suite must match its Suite or Codename."""
    try:
        release = deb822.Release(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FetchError(f"{source}: unreadable Release text: {exc}") from exc
    missing = [key for key in ("Date", "SHA256") if key not in release]
    if missing:
        raise FetchError(f"{source}: Release lacks {', '.join(missing)}")
    found_suite = str(release.get("Suite", ""))
    codename = str(release.get("Codename", ""))
    if suite not in (found_suite, codename):
        raise VerificationFailed(
            f"{source}: is for suite {found_suite!r} (codename {codename!r}), not {suite!r}"
        )
    date = str(release["Date"])
    try:
        date_epoch = int(email.utils.parsedate_to_datetime(date).timestamp())
    except (TypeError, ValueError) as exc:
        raise FetchError(f"{source}: unreadable Release Date {date!r}") from exc
    files: dict[str, IndexFile] = {}
    for entry in release["SHA256"]:
        try:
            files[entry["name"]] = IndexFile(entry["name"], int(entry["size"]), entry["sha256"])
        except (KeyError, ValueError) as exc:
            raise FetchError(f"{source}: malformed SHA256 entry {entry!r}") from exc
    return Release(
        suite=found_suite or suite,
        codename=codename,
        date=date,
        date_epoch=date_epoch,
        inrelease_sha256=inrelease_sha256,
        signing_key=signing_key,
        files=files,
        by_hash=str(release.get("Acquire-By-Hash", "")).strip().lower() == "yes",
        not_automatic=str(release.get("NotAutomatic", "")).strip().lower() == "yes",
    )


def check_index_file(data: bytes, expected: IndexFile, source: str) -> None:
    """`FetchError` printing expected and got unless `data` matches the signed size and sha256."""
    got_sha = sha256_bytes(data)
    if len(data) != expected.size or got_sha != expected.sha256:
        raise FetchError(
            f"{source}: does not match the signed Release\n"
            f"  expected: size {expected.size} sha256 {expected.sha256}\n"
            f"  got:      size {len(data)} sha256 {got_sha}"
        )


def parse_packages(text: bytes, source: str, suite: str = "") -> list[PackageRecord]:
    """Every stanza of a Packages file, in file order, each marked as from `suite`."""
    records: list[PackageRecord] = []
    for index, stanza in enumerate(
        deb822.Packages.iter_paragraphs(text, use_apt_pkg=False, fields=list(_PACKAGE_FIELDS))
    ):
        try:
            records.append(
                PackageRecord(
                    name=stanza["Package"],
                    version=stanza["Version"],
                    architecture=stanza["Architecture"],
                    size=int(stanza["Size"]),
                    sha256=stanza["SHA256"],
                    filename=stanza["Filename"],
                    essential=stanza.get("Essential", "") == "yes",
                    priority=stanza.get("Priority", ""),
                    pre_depends=stanza.get("Pre-Depends", ""),
                    depends=stanza.get("Depends", ""),
                    provides=stanza.get("Provides", ""),
                    conflicts=stanza.get("Conflicts", ""),
                    breaks=stanza.get("Breaks", ""),
                    multi_arch=stanza.get("Multi-Arch", ""),
                    suite=suite,
                )
            )
        except (KeyError, ValueError) as exc:
            name = stanza.get("Package", f"stanza {index + 1}")
            raise FetchError(f"{source}: package {name}: missing or bad field {exc}") from exc
    return records


def fetch_release(fetcher: Fetcher, mirror: str, suite: str, keyring: Path) -> Release:
    """Download and verify `dists/<suite>/InRelease` from one mirror."""
    url = mirror_url(mirror, f"dists/{suite}/InRelease")
    data = fetcher.fetch_bytes(url, MAX_INRELEASE_SIZE)
    shown = describe_url(url)
    text, fingerprint = verify_inrelease(data, keyring, shown)
    return parse_release(text, shown, sha256_bytes(data), fingerprint, suite)


def fetch_packages(
    fetcher: Fetcher,
    mirror: str,
    suite: str,
    release: Release,
    component: str,
    architecture: str,
) -> list[PackageRecord]:
    """Download one component's Packages.xz, check it against the Release, parse it."""
    relative = f"{component}/binary-{architecture}/Packages.xz"
    expected = release.files.get(relative)
    if expected is None:
        raise FetchError(
            f"{mirror}: the signed Release of {release.suite} lists no {relative} "
            f"(is component {component!r} or architecture {architecture!r} right?)"
        )
    directory = relative.rsplit("/", 1)[0]
    paths = [f"dists/{suite}/{relative}"]
    if release.by_hash:
        # A mirror in mid-sync may already serve the next Packages.xz under its plain name;
        # the by-hash copy is the one this Release signed (apt does the same).
        paths.insert(0, f"dists/{suite}/{directory}/by-hash/SHA256/{expected.sha256}")
    data = b""
    shown = ""
    for attempt, path in enumerate(paths):
        url = mirror_url(mirror, path)
        shown = describe_url(url)
        try:
            data = fetcher.fetch_bytes(url, expected.size)
            check_index_file(data, expected, shown)
            break
        except FetchError:
            if attempt == len(paths) - 1:
                raise
    try:
        text = lzma.decompress(data)
    except lzma.LZMAError as exc:
        raise FetchError(f"{shown}: not valid xz data: {exc}") from exc
    return parse_packages(text, shown, suite)


def load_index(
    fetcher: Fetcher,
    mirrors: Sequence[str],
    suite: str,
    architecture: str,
    components: Sequence[str],
    keyring: Path,
    report: Callable[[str], None] | None = None,
) -> ArchiveIndex:
    """The verified index of `suite` from the first mirror that serves it completely.

    Every package record is marked with `suite`.

    A mirror that is unreachable or serves bytes not matching the signed Release
    (`FetchError`) is skipped for the next one; a bad signature
    (`VerificationFailed`) stops at once. If every mirror fails, the `FetchError`
    lists each mirror's problem. `report` gets one line per step, for the user.
    """
    say = report or (lambda _line: None)
    if not mirrors:
        raise InputError(
            f"no mirror for suite {suite}: pass --mirror URL or --mirror {suite}=URL, set "
            f"BOOTHKEY_MIRROR, or add a deb source for {suite} to the apt configuration"
        )
    problems: list[str] = []
    for position, mirror in enumerate(mirrors, start=1):
        shown = describe_url(mirror)
        try:
            release = fetch_release(fetcher, mirror, suite, keyring)
            say(f"{shown}: InRelease of {suite} ({release.date}) verified")
            packages: list[PackageRecord] = []
            for component in components:
                found = fetch_packages(fetcher, mirror, suite, release, component, architecture)
                say(f"{shown}: {component}/binary-{architecture}: {len(found)} packages")
                packages.extend(found)
        except FetchError as exc:
            if position < len(mirrors):
                say(f"{shown}: skipped, trying the next mirror: {exc.message.splitlines()[0]}")
            problems.append(exc.message)
            continue
        return ArchiveIndex(mirror, release, architecture, tuple(components), tuple(packages))
    if len(problems) == 1:
        raise FetchError(problems[0])
    raise FetchError("no mirror served the archive index:\n" + "\n".join(problems))
