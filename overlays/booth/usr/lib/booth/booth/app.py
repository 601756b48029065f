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

from . import belgian
from .ballot import InvalidChoice, RaceVote, ballot_code, ballot_text, parse_answer
from .belgian_console import collect_belgian_votes, vote_labels
from .datapart import (
    DataRefused,
    check_envelope,
    find_data_partition,
    load_trusted_keys,
    read_partition,
)
from .election import Election, Race, parse_payload
from .fingerprint import (
    election_digest,
    election_fingerprint,
    root_hash_from_cmdline,
    software_fingerprint,
)
from .fingerprint_code import fingerprint_code
from .i18n import say
from .printout import BallotPrint, render, send_to_printer
from .raster import FONT, FontError, load_font
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
    font: Path = FONT  # the printed ballot's font
    graphical: bool = False  # the framebuffer booth for format 2 (booth.gui_app)

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
    if release.refusal is not None:
        show_fingerprints(console, software, opened, title, release.line)
        return refuse(console, release.refusal.message, release.refusal.reason)
    if config.graphical and opened.election.format == 2:
        try:
            from .gui_app import run_graphical

            return run_graphical(config, opened, software, title, release.line)
        except (OSError, FontError) as exc:
            console.say(f"BOOTH: no graphical screen ({exc}); the text booth runs instead")
    while True:
        console.clear()
        show_fingerprints(console, software, opened, title, release.line)
        if release.refusal is not None:
            return refuse(console, release.refusal.message, release.refusal.reason)
        answer = console.ask("READY: press Enter to start voting\n")
        if answer is None:
            return 0
        served = serve_voter(opened, config, console)
        if served is None:
            return 0
        if served and console.ask("Press Enter for the next voter.\n") is None:
            return 0


def serve_voter(opened: OpenElection, config: BoothConfig, console: Console) -> bool | None:
    """One voter: True once a ballot is cast, False if the voter started over, None at
    the end of input."""
    if opened.election.format == 2:
        return serve_belgian_voter(opened, config, console)
    votes = collect_votes(opened.election, console)
    if votes is None:
        return None
    if not votes:
        return False
    code = ballot_code(opened.fingerprint, votes)
    election = opened.election
    printed = BallotPrint(
        "BALLOT",
        (election.election_name, f"{election.station_id} {election.station_name}"),
        tuple((vote.race.name, tuple(vote.labels())) for vote in votes),
        code,
    )
    cast(console, ballot_text(election, votes, code), config, printed)
    return True


def serve_belgian_voter(opened: OpenElection, config: BoothConfig, console: Console) -> bool | None:
    collected = collect_belgian_votes(opened.election, console)
    if collected is None:
        return None
    language, votes = collected
    if not votes:
        return False
    code = belgian.ballot_code(opened.fingerprint, votes)
    election = opened.election
    printed = BallotPrint(
        say(language, "ballot"),
        (election.name_in(language), f"{election.station_id} {election.station_name}"),
        tuple((vote.race.names[language], tuple(vote_labels(vote, language))) for vote in votes),
        code,
    )
    cast(console, belgian_ballot_text(election, language, votes, code), config, printed)
    return True


def belgian_ballot_text(
    election: Election, language: str, votes: list[belgian.Vote], code: str
) -> str:
    """The ballot in words, in the voter's language, ending with its code."""
    lines = [
        "----- BALLOT -----",
        election.name_in(language),
        f"{election.station_id} {election.station_name}",
    ]
    for vote in votes:
        lines.append(f"{vote.race.names[language]}:")
        lines.extend(f"  - {label}" for label in vote_labels(vote, language))
    lines += [f"CODE: {code}", "----- END BALLOT -----"]
    return "\n".join(lines) + "\n"


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
    races = [race for race in election.races if isinstance(race, Race)]
    total = len(races)
    for index, race in enumerate(races, start=1):
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


def cast(console: Console, text: str, config: BoothConfig, printed: BallotPrint) -> None:
    """Show the ballot, print it (a PBM picture, `booth.printout`) if there is a printer."""
    console.say(text)
    printer = config.printer
    if printer is not None and printer.exists():
        try:
            send_to_printer(printer, render(printed, load_font(config.font)).pbm())
            console.say("PRINTER: ballot printed")
        except FontError as exc:
            console.say(f"PRINTER: ERROR {exc}: call a poll worker")
        except OSError as exc:
            console.say(f"PRINTER: ERROR {exc.strerror}: call a poll worker")
    console.say("BALLOT CAST. Thank you.")
