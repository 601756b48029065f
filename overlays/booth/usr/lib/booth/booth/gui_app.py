"""Running the graphical booth (`booth.gui`) on the framebuffer with touch and keyboard.

`app.run_booth` hands over here once the election data is verified and of format 2,
when the booth runs on a virtual console with a framebuffer; the text booth stays for
serial consoles, format 1 and every refusal (shown on the text console).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import belgian
from .belgian_console import vote_labels
from .gui import Page, Voter, poll_worker_page, thanks_page, vote_once
from .i18n import say
from .inputs import Inputs
from .printout import BallotPrint, render, send_to_printer
from .raster import Font, FontError, load_font
from .screen import Framebuffer, console_graphics

if TYPE_CHECKING:
    from .app import BoothConfig, OpenElection

THANKS_SECONDS = 8.0


def run_graphical(
    config: BoothConfig,
    opened: OpenElection,
    software: tuple[str, str],
    title: str,
    release_line: str | None = None,
) -> int:
    """Serve voters until the input ends (never, on a booth); `ScreenError` or
    `FontError` if there is no usable screen or font (the caller falls back to text)."""
    font = load_font(config.font)
    screen = Framebuffer()
    inputs = Inputs(screen.width, screen.height)
    console_graphics(0, True)
    try:
        return _serve(config, opened, software, title, screen, font, inputs, release_line)
    finally:
        # A crash leaves the screen to the text console again (booth-init restarts us).
        console_graphics(0, False)
        screen.close()


def _serve(
    config: BoothConfig,
    opened: OpenElection,
    software: tuple[str, str],
    title: str,
    screen: Framebuffer,
    font: Font,
    inputs: Inputs,
    release_line: str | None = None,
) -> int:
    size = (screen.width, screen.height)
    election = opened.election

    def show(page: Page) -> None:
        screen.show(page.render(*size, font))

    def next_press() -> tuple[str, int, int] | None:
        press = inputs.next_press()
        return None if press is None else (press.key, press.x, press.y)

    races = tuple(race for race in election.races if isinstance(race, belgian.BelgianRace))
    station = f"{election.station_id} {election.station_name}"
    start = poll_worker_page(title, software[0], opened.fingerprint, station, release_line)
    while True:
        show(start)
        press = next_press()
        if press is None:
            return 0
        key, x, y = press
        if (start.press_at(x, y, *size, font) if key == "tap" else start.press_key(key)) is None:
            continue
        voter = Voter(races, election.languages)
        votes = vote_once(voter, next_press, show, size, font)
        if votes is None:
            return 0
        if not votes:
            continue
        language = voter.language
        code = belgian.ballot_code(opened.fingerprint, votes)
        printed = BallotPrint(
            say(language, "ballot"),
            (election.name_in(language), station),
            tuple((v.race.names[language], tuple(vote_labels(v, language))) for v in votes),
            code,
        )
        thanks = thanks_page(language)
        try:
            if config.printer is None or not config.printer.exists():
                raise FileNotFoundError(2, "no printer")
            send_to_printer(config.printer, render(printed, font).pbm())
        except (OSError, FontError) as exc:
            thanks = Page(thanks.heading, (f"PRINTER: ERROR {exc}",))
        show(thanks)
        inputs.next_press(timeout=THANKS_SECONDS)
