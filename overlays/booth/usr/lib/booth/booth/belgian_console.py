"""The text booth for a Belgian election (format 2): the voter picks a language, then in
each race types a list number (a list vote), list.candidate numbers of one list
(``2.1 2.S1``: preference votes), or 0 (blank). The rules are `booth.belgian`'s;
mixing lists is refused with the reason in the voter's language.
"""

from __future__ import annotations

import re
from typing import Protocol

from .belgian import BelgianRace, Vote, VoteRefused, vote_from_marks
from .election import Election
from .i18n import LANGUAGE_NAMES, say

_MARK_RE = re.compile(r"([1-9][0-9]{0,3})(?:\.(S?)([1-9][0-9]{0,3}))?")


class Console(Protocol):
    def say(self, text: str = "") -> None: ...
    def ask(self, prompt: str) -> str | None: ...
    def clear(self) -> None: ...


def choose_language(election: Election, console: Console) -> str | None:
    """The voter's language (asked only when the election has several), or None at the
    end of input."""
    if len(election.languages) == 1:
        return election.languages[0]
    console.clear()
    console.say(" / ".join(say(language, "choose-language") for language in election.languages))
    for number, language in enumerate(election.languages, start=1):
        console.say(f"  {number}) {LANGUAGE_NAMES[language]}")
    while True:
        answer = console.ask("LANGUAGE> ")
        if answer is None:
            return None
        if answer.isdigit() and 1 <= int(answer) <= len(election.languages):
            return election.languages[int(answer) - 1]
        if answer.lower() in election.languages:
            return answer.lower()
        console.say(f"INVALID: 1-{len(election.languages)}")


def marks_from_answer(race: BelgianRace, answer: str) -> list[tuple[str, str]]:
    """Typed words into marks: ``0`` nothing (blank), ``L`` the head of list L, ``L.n`` its
    n-th effective candidate, ``L.Sn`` its n-th substitute; `VoteRefused` for anything
    else (reason ``bad-field`` or ``unknown-choice``)."""
    words = answer.replace(",", " ").split()
    if words == ["0"]:
        return []
    if not words:
        raise VoteRefused("bad-field", "nothing typed")
    marks = []
    for word in words:
        match = _MARK_RE.fullmatch(word.upper())
        if match is None:
            raise VoteRefused("bad-field", f"{word!r} is not a list or candidate number")
        position = int(match.group(1))
        if position > len(race.lists):
            raise VoteRefused("unknown-choice", f"there is no list {position}")
        party = race.lists[position - 1]
        if match.group(3) is None:
            marks.append(("list", party.id))
            continue
        people = party.substitutes if match.group(2) else party.effective
        if int(match.group(3)) > len(people):
            raise VoteRefused("unknown-choice", f"{word} is not on list {position}")
        marks.append(("candidate", people[int(match.group(3)) - 1].id))
    return marks


def show_race(race: BelgianRace, language: str, index: int, total: int, console: Console) -> None:
    console.clear()
    console.say(f"RACE {index}/{total}: {race.names[language]}")
    console.say(f"  {say(language, 'how')}")
    if race.blank:
        console.say(f"  {say(language, 'blank')}")
    for position, party in enumerate(race.lists, start=1):
        console.say(f"  {position:>3}) {party.names[language]}")
        for number, person in enumerate(party.effective, start=1):
            console.say(f"        {position}.{number}  {person.name}")
        for number, person in enumerate(party.substitutes, start=1):
            console.say(f"        {position}.S{number}  {person.name}")


def vote_labels(vote: Vote, language: str) -> list[str]:
    """The vote in words, in the voter's language (names as written)."""
    if vote.party is None:
        return [say(language, "blank-vote")]
    head = vote.party.names[language]
    if not vote.candidates:
        return [f"{head}: {say(language, 'list-vote')}"]
    return [f"{head}: {person.name}" for person in vote.candidates]


def collect_belgian_votes(election: Election, console: Console) -> tuple[str, list[Vote]] | None:
    """(language, confirmed votes); votes [] if the voter started over; None at the end
    of input."""
    language = choose_language(election, console)
    if language is None:
        return None
    votes: list[Vote] = []
    races = [race for race in election.races if isinstance(race, BelgianRace)]
    for index, race in enumerate(races, start=1):
        show_race(race, language, index, len(races), console)
        while True:
            answer = console.ask("CHOICE> ")
            if answer is None:
                return None
            try:
                votes.append(vote_from_marks(race, marks_from_answer(race, answer)))
                break
            except VoteRefused as refused:
                console.say(f"INVALID: {say(language, refused.reason)}")
    console.clear()
    console.say(f"REVIEW: {say(language, 'review')}")
    for vote in votes:
        console.say(f"  {vote.race.names[language]}:")
        for label in vote_labels(vote, language):
            console.say(f"    - {label}")
    yes, no = say(language, "yes"), say(language, "no")
    while True:
        answer = console.ask(f"CONFIRM> {say(language, 'confirm')}")
        if answer is None:
            return None
        if answer.upper() in (yes, "YES"):
            return language, votes
        if answer.upper() in (no, "NO"):
            return language, []
        console.say(f"INVALID: {say(language, 'answer')}")
