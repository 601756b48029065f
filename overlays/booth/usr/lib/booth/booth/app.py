"""The booth's text interface: line-based prompts on one console, driven by the keyboard.

Stable marker words begin the lines a poll worker (or a test) looks for:
``SOFTWARE FINGERPRINT:``, ``ELECTION FINGERPRINT:``, ``READY:``,
``RACE n/m:``, ``CHOICE>``, ``INVALID:``, ``REVIEW:``, ``CONFIRM>``,
``----- BALLOT -----``, ``CODE:``, ``BALLOT CAST``, ``PRINTER:``, ``REFUSED:``,
``RELEASE LOG:`` (booth/release_log.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .ballot import InvalidChoice, RaceVote, ballot_code, ballot_text, parse_answer
from .datapart import (
    DataRefused,
    check_envelope,
    find_data_partition,
    load_trusted_keys,
    read_partition,
)
from .election import Election, parse_payload
from .fingerprint import (
    election_digest,
    election_fingerprint,
    root_hash_from_cmdline,
    software_fingerprint,
)
from .fingerprint_code import fingerprint_code
from .release_log import check_release_log

# Home, clear the screen, and clear the scrollback where a terminal keeps one.
CLEAR_SCREEN = "\033[H\033[2J\033[3J"
EXIT_REFUSED = 3


@dataclass(frozen=True)
class BoothConfig:
    cmdline: Path
    data: Path | None  # None: find the "booth-data" GPT partition
    keys: Path
    key_list: Path | None
    printer: Path | None
    title_file: Path | None = None  # rendered from the recipe variable booth_title

    def title(self) -> str:
        """The recipe's title for this booth (printable characters only), or ""."""
        try:
            text = self.title_file.read_text(encoding="utf-8") if self.title_file else ""
        except (OSError, UnicodeDecodeError):
            return ""
        return "".join(ch for ch in text.strip() if ch.isprintable())[:80]


class Console:
    def __init__(self, stdin: TextIO, stdout: TextIO) -> None:
        self.stdin = stdin
        self.stdout = stdout

    def say(self, text: str = "") -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def ask(self, prompt: str) -> str | None:
        """One typed line, or None at end of input."""
        self.stdout.write(prompt)
        self.stdout.flush()
        line = self.stdin.readline()
        return None if line == "" else line.strip()

    def clear(self) -> None:
        # Hide the previous voter's screen; harmless on a serial line.
        self.stdout.write(CLEAR_SCREEN)
        self.stdout.flush()


@dataclass(frozen=True)
class OpenElection:
    election: Election
    fingerprint: str
    digest: str
    signers: tuple[str, ...]


def load_election(config: BoothConfig) -> OpenElection:
    """Read, verify and parse the election data, or raise `DataRefused`."""
    trusted = load_trusted_keys(config.keys, config.key_list)
    data = config.data if config.data is not None else find_data_partition()
    checked = check_envelope(read_partition(data), trusted)
    election = parse_payload(checked.payload)
    return OpenElection(
        election,
        election_fingerprint(checked.payload),
        election_digest(checked.payload),
        checked.signers,
    )


def read_software_fingerprint(cmdline: Path) -> tuple[str, str] | None:
    """(short fingerprint, root hash) from the kernel command line, or None."""
    try:
        root = root_hash_from_cmdline(cmdline.read_text())
    except OSError:
        return None
    return None if root is None else (software_fingerprint(root), root)


def run_booth(config: BoothConfig, console: Console) -> int:
    """Run until end of input. Returns 0, or `EXIT_REFUSED` when the vote never opened."""
    software = read_software_fingerprint(config.cmdline)
    title = config.title()
    if software is None:
        console.say("BOOTHKEY VOTING BOOTH")
        console.say("SOFTWARE FINGERPRINT: UNAVAILABLE")
        return refuse(console, "this computer was not started from a verified boothkey image")
    release = check_release_log(config.data, software[1])
    try:
        opened = load_election(config)
    except DataRefused as refused:
        show_fingerprints(console, software, None, title, release.line)
        return refuse(console, refused.message, refused.reason)
    while True:
        console.clear()
        show_fingerprints(console, software, opened, title, release.line)
        if release.refusal is not None:
            return refuse(console, release.refusal.message, release.refusal.reason)
        answer = console.ask("READY: press Enter to start voting\n")
        if answer is None:
            return 0
        votes = collect_votes(opened.election, console)
        if votes is None:
            return 0
        if not votes:
            continue
        code = ballot_code(opened.fingerprint, votes)
        cast(console, ballot_text(opened.election, votes, code), config.printer)
        if console.ask("Press Enter for the next voter.\n") is None:
            return 0


def show_fingerprints(
    console: Console,
    software: tuple[str, str],
    opened: OpenElection | None,
    title: str = "",
    release_line: str | None = None,
) -> None:
    console.say(f"BOOTHKEY VOTING BOOTH: {title}" if title else "BOOTHKEY VOTING BOOTH")
    console.say(f"SOFTWARE FINGERPRINT: {software[0]}")
    console.say(f"  verity root hash {software[1]}")
    console.say(fingerprint_code(software[0], opened.fingerprint if opened else None))
    if release_line is not None:
        console.say(release_line)
    if opened is None:
        console.say("ELECTION FINGERPRINT: NONE")
        return
    election = opened.election
    console.say(f"ELECTION FINGERPRINT: {opened.fingerprint}")
    console.say(f"  sha256 {opened.digest}, signed by {', '.join(opened.signers)}")
    console.say(f"ELECTION: {election.election_name} ({election.election_id})")
    console.say(f"STATION: {election.station_id} {election.station_name}")


def refuse(console: Console, message: str, reason: str = "unverified") -> int:
    """Show why the vote cannot open; keep showing it until the input ends."""
    text = f"REFUSED: {message} [{reason}]\nThe vote cannot be opened. Call a poll worker."
    console.say(text)
    while console.ask("") is not None:
        console.say(text)
    return EXIT_REFUSED


def collect_votes(election: Election, console: Console) -> list[RaceVote] | None:
    """The voter's confirmed choices; [] if the voter started over; None at end of input."""
    votes: list[RaceVote] = []
    total = len(election.races)
    for index, race in enumerate(election.races, start=1):
        console.clear()
        console.say(f"RACE {index}/{total}: {race.name}")
        hint = " Separate the numbers with spaces." if race.maximum > 1 else ""
        console.say(f"  {race.rule_text()}{hint}")
        for choice in race.choices:
            console.say(f"  {choice.number:>3}) {choice.label}")
        if race.blank:
            console.say("    0) Blank vote")
        while True:
            answer = console.ask("CHOICE> ")
            if answer is None:
                return None
            try:
                votes.append(parse_answer(race, answer))
                break
            except InvalidChoice as problem:
                console.say(f"INVALID: {problem}")
    console.clear()
    console.say("REVIEW: your choices")
    for vote in votes:
        console.say(f"  {vote.race.name}: {'; '.join(vote.labels())}")
    while True:
        answer = console.ask("CONFIRM> type YES to cast this ballot, or NO to start again: ")
        if answer is None:
            return None
        if answer.upper() == "YES":
            return votes
        if answer.upper() == "NO":
            return []
        console.say("INVALID: type YES or NO")


def cast(console: Console, text: str, printer: Path | None) -> None:
    console.say(text)
    if printer is not None and printer.exists():
        try:
            _write_printer(printer, text)
            console.say("PRINTER: ballot printed")
        except OSError as exc:
            console.say(f"PRINTER: ERROR {exc.strerror}: call a poll worker")
    console.say("BALLOT CAST. Thank you.")


def _write_printer(printer: Path, text: str) -> None:
    with open(printer, "wb") as device:
        device.write(text.encode("utf-8") + b"\f")
