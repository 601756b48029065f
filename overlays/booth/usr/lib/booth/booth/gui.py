"""The graphical booth for a Belgian election (format 2), on the framebuffer, by touch
or keyboard: large black-on-white text, one choice per button.

Pages, in order: the poll worker's page (both fingerprints in large type, before every
voter), the language (Nederlands, Français, Deutsch), then for each race its lists
(and a blank vote), a list's page (its list vote, effective candidates and
substitutes, each a button that marks or unmarks it), the review, and the thank-you
page while the ballot prints. The rules are `booth.belgian`'s: marks on two lists are
refused in the voter's language, on the list page where the voter pressed Next.

Keyboard: the digit shown on a button presses it, Enter is the page's main button
(Start, Next, Yes), Backspace or Escape goes back (Back, No).

Every page is a pure function of the booth's state (`Page.render`), so tests draw the
page they expect and compare it with the screen, pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .belgian import BelgianRace, PartyList, Vote, VoteRefused, vote_from_marks
from .belgian_console import vote_labels
from .i18n import LANGUAGE_NAMES, say
from .raster import Bitmap, Font, wrap

MARGIN = 24
GAP = 12
BORDER = 4


@dataclass(frozen=True)
class Button:
    action: str  # what pressing it does, e.g. "lang:fr", "list:2", "mark:candidate:2-1"
    label: str
    key: str = ""  # "1".."9", "0", "enter", "back"
    selected: bool = False


@dataclass(frozen=True)
class Page:
    heading: tuple[str, ...]  # large lines at the top
    lines: tuple[str, ...] = ()  # smaller lines under it
    buttons: tuple[Button, ...] = ()
    message: str = ""  # a refusal, shown at the bottom

    def layout(
        self, width: int, height: int, font: Font
    ) -> list[tuple[Button, int, int, int, int]]:
        """Each button with its rectangle (x, y, w, h): one column, or two when the
        buttons do not fit in one."""
        scale = _scale(width)
        top = MARGIN + _text_height(self, width, font)
        message_lines = len(wrap(self.message, _columns(width, font, scale))) if self.message else 0
        bottom = height - MARGIN - message_lines * font.height * scale - GAP
        button_height = font.height * scale + 2 * (BORDER + 6)
        rows = max((bottom - top) // (button_height + GAP), 1)
        columns = 1 if len(self.buttons) <= rows else 2
        column_width = (width - 2 * MARGIN - (columns - 1) * GAP) // columns
        placed = []
        for index, button in enumerate(self.buttons):
            column, row = divmod(index, rows) if columns == 2 else (0, index)
            x = MARGIN + column * (column_width + GAP)
            y = top + row * (button_height + GAP)
            placed.append((button, x, y, column_width, button_height))
        return placed

    def render(self, width: int, height: int, font: Font) -> Bitmap:
        picture = Bitmap(width, height)
        scale = _scale(width)
        y = MARGIN
        for line in self.heading:
            for part in wrap(line, _columns(width, font, scale + 1)):
                picture.text(MARGIN, y, part, font, scale + 1)
                y += font.height * (scale + 1)
        for line in self.lines:
            for part in wrap(line, _columns(width, font, scale)):
                picture.text(MARGIN, y, part, font, scale)
                y += font.height * scale
        for button, x, top, w, h in self.layout(width, height, font):
            _button(picture, button, x, top, w, h, font, scale)
        if self.message:
            lines = wrap(self.message, _columns(width, font, scale))
            y = height - MARGIN - len(lines) * font.height * scale
            for line in lines:
                picture.text(MARGIN, y, line, font, scale)
                y += font.height * scale
        return picture

    def press_at(self, x: int, y: int, width: int, height: int, font: Font) -> Button | None:
        for button, left, top, w, h in self.layout(width, height, font):
            if left <= x < left + w and top <= y < top + h:
                return button
        return None

    def press_key(self, key: str) -> Button | None:
        return next((button for button in self.buttons if button.key == key), None)


def _scale(width: int) -> int:
    return 3 if width >= 1024 else 2


def _columns(width: int, font: Font, scale: int) -> int:
    return max((width - 2 * MARGIN) // (font.width * scale), 1)


def _text_height(page: Page, width: int, font: Font) -> int:
    scale = _scale(width)
    height = sum(
        len(wrap(line, _columns(width, font, scale + 1))) * font.height * (scale + 1)
        for line in page.heading
    )
    height += sum(
        len(wrap(line, _columns(width, font, scale))) * font.height * scale for line in page.lines
    )
    return height + GAP


def _button(
    picture: Bitmap, button: Button, x: int, y: int, w: int, h: int, font: Font, scale: int
) -> None:
    picture.fill(x, y, w, h)
    if not button.selected:
        picture.fill(x + BORDER, y + BORDER, w - 2 * BORDER, h - 2 * BORDER, ink=False)
    key = button.key if len(button.key) == 1 else ""
    label = f"{key}  {button.label}" if key else button.label
    columns = max((w - 2 * (BORDER + 8)) // (font.width * scale), 1)
    text_picture = Bitmap(w, font.height * scale)
    text_picture.text(0, 0, label[:columns], font, scale)
    for row_index, row in enumerate(text_picture.rows):
        target = picture.rows[y + BORDER + 6 + row_index]
        for column, ink in enumerate(row):
            if ink:
                target[x + BORDER + 8 + column] = 0 if button.selected else 1


@dataclass
class Voter:
    """One voter's way through the pages: the state the pages are drawn from."""

    races: tuple[BelgianRace, ...]
    languages: tuple[str, ...]
    language: str = ""
    race_index: int = 0
    party: PartyList | None = None  # the list whose page is open
    marks: list[tuple[str, str]] = field(default_factory=list)
    votes: list[Vote] = field(default_factory=list)
    message: str = ""
    reviewing: bool = False

    @property
    def race(self) -> BelgianRace:
        return self.races[self.race_index]

    def page(self) -> Page:
        if not self.language:
            return Page(
                tuple(say(language, "choose-language") for language in self.languages),
                buttons=tuple(
                    Button(f"lang:{language}", LANGUAGE_NAMES[language], str(number))
                    for number, language in enumerate(self.languages, start=1)
                ),
            )
        if self.reviewing:
            return self._review_page()
        if self.party is not None:
            return self._list_page(self.party)
        return self._race_page()

    def _race_page(self) -> Page:
        race, language = self.race, self.language
        buttons = [
            Button(f"list:{party.id}", party.names[language], str(number) if number < 10 else "",
                   any(self._owner(mark) is party for mark in self.marks))
            for number, party in enumerate(race.lists, start=1)
        ]  # fmt: skip
        if race.blank:
            buttons.append(Button("blank", say(language, "blank-vote"), "0"))
        counter = f"{self.race_index + 1}/{len(self.races)}"
        return Page(
            (f"{race.names[language]} ({counter})",),
            (say(language, "touch-list"),),
            tuple(buttons),
            self.message,
        )

    def _list_page(self, party: PartyList) -> Page:
        language = self.language
        buttons = [
            Button(
                f"mark:list:{party.id}",
                say(language, "list-vote"),
                "0",
                ("list", party.id) in self.marks,
            )
        ]
        people = [(str(n), p) for n, p in enumerate(party.effective, start=1)]
        people += [(f"S{n}", p) for n, p in enumerate(party.substitutes, start=1)]
        for index, (number, person) in enumerate(people, start=1):
            buttons.append(
                Button(
                    f"mark:candidate:{person.id}",
                    f"{number}. {person.name}",
                    str(index) if index < 10 else "",
                    ("candidate", person.id) in self.marks,
                )
            )
        buttons.append(Button("back", say(language, "back"), "back"))
        buttons.append(Button("next", say(language, "next"), "enter"))
        columns = [f"{say(language, 'effective')}: 1-{len(party.effective)}"]
        if party.substitutes:
            columns.append(f"{say(language, 'substitutes')}: S1-S{len(party.substitutes)}")
        return Page((party.names[language],), (", ".join(columns),), tuple(buttons), self.message)

    def _review_page(self) -> Page:
        language = self.language
        lines = []
        for vote in self.votes:
            lines.append(f"{vote.race.names[language]}:")
            lines += [f"  {label}" for label in vote_labels(vote, language)]
        return Page(
            (say(language, "review"),),
            tuple(lines),
            (
                Button("yes", say(language, "yes"), "enter"),
                Button("no", say(language, "no"), "back"),
            ),
        )

    def _owner(self, mark: tuple[str, str]) -> PartyList | None:
        for party in self.race.lists:
            if mark == ("list", party.id) or any(
                mark == ("candidate", person.id) for person in party.people
            ):
                return party
        return None

    def press(self, button: Button) -> str:
        """Do what the button says; returns "cast", "restart" or "" (stay)."""
        action = button.action
        self.message = ""
        if action.startswith("lang:"):
            self.language = action.removeprefix("lang:")
        elif action.startswith("list:"):
            self.party = next(p for p in self.race.lists if p.id == action.removeprefix("list:"))
        elif action == "blank":
            self.marks = []
            self._finish_race()
        elif action.startswith("mark:"):
            kind, _, item_id = action.removeprefix("mark:").partition(":")
            mark = (kind, item_id)
            if mark in self.marks:
                self.marks.remove(mark)
            else:
                self.marks.append(mark)
        elif action == "back":
            self.party = None
        elif action == "next":
            if not self.marks:
                self.party = None
            else:
                self._finish_race()
        elif action == "yes":
            return "cast"
        elif action == "no":
            return "restart"
        return ""

    def _finish_race(self) -> None:
        try:
            vote = vote_from_marks(self.race, self.marks)
        except VoteRefused as refused:
            self.message = say(self.language, refused.reason)
            return
        self.votes.append(vote)
        self.marks, self.party = [], None
        if self.race_index + 1 < len(self.races):
            self.race_index += 1
        else:
            self.reviewing = True


def poll_worker_page(
    title: str, software: str, election: str, station: str, release: str | None = None
) -> Page:
    """Before every voter: both fingerprints in large type for the poll worker, and the
    release log's word on this software (`release`, when the recipe sets a log)."""
    return Page(
        (title or "BOOTHKEY", "SOFTWARE FINGERPRINT", software, "ELECTION FINGERPRINT", election),
        (station,) if release is None else (station, release),
        (Button("start", "START", "enter"),),
    )


def thanks_page(language: str) -> Page:
    return Page((say(language, "cast"),), (say(language, "printed"),))


def vote_once(
    voter: Voter,
    next_press: Callable[[], tuple[str, int, int] | None],
    show: Callable[[Page], None],
    size: tuple[int, int],
    font: Font,
) -> list[Vote] | None:
    """Drive one voter through the pages: the confirmed votes, [] if the voter started
    over, None when the input ends."""
    while True:
        page = voter.page()
        show(page)
        press = next_press()
        if press is None:
            return None
        key, x, y = press
        button = page.press_at(x, y, *size, font) if key == "tap" else page.press_key(key)
        if button is None:
            continue
        outcome = voter.press(button)
        if outcome == "cast":
            return voter.votes
        if outcome == "restart":
            return []
