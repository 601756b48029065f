"""What the booth says to a voter of a Belgian election, in Dutch, French and German.

The marker words that begin lines (``RACE``, ``CHOICE>``, ``INVALID:`` ...; see
`booth.app`) stay the same in every language: poll workers and tests look for them.
Everything after them is in the voter's language.
"""

from __future__ import annotations

LANGUAGE_NAMES = {"nl": "Nederlands", "fr": "Français", "de": "Deutsch"}

MESSAGES: dict[str, dict[str, str]] = {
    "nl": {
        "choose-language": "Kies uw taal",
        "how": (
            "Typ het nummer van een lijst voor een lijststem, of lijst.kandidaat "
            "(bv. 1.2 1.S1) voor kandidaten van die ene lijst."
        ),
        "blank": "Typ 0 om blanco te stemmen.",
        "blank-vote": "Blanco stem",
        "list-vote": "Lijststem",
        "effective": "Effectieven",
        "substitutes": "Opvolgers",
        "review": "Uw keuze",
        "confirm": "Typ JA om uw stem uit te brengen, of NEE om opnieuw te beginnen: ",
        "yes": "JA",
        "no": "NEE",
        "answer": "typ JA of NEE",
        "cast": "Uw stem is uitgebracht. Dank u.",
        "ballot": "STEMBILJET",
        "printed": "Neem uw stembiljet uit de printer.",
        "touch-list": "Raak een lijst aan",
        "next": "Volgende",
        "back": "Terug",
        "blank-not-allowed": "blanco stemmen is in deze verkiezing niet mogelijk",
        "unknown-choice": "dat nummer staat niet op dit stembiljet",
        "duplicate": "u typte hetzelfde nummer twee keer",
        "mixed-lists": "u mag alleen stemmen voor één lijst of voor kandidaten van één lijst",
        "bad-field": "dat is geen geldig antwoord",
    },
    "fr": {
        "choose-language": "Choisissez votre langue",
        "how": (
            "Tapez le numéro d'une liste pour un vote en case de tête, ou liste.candidat "
            "(p. ex. 1.2 1.S1) pour des candidats de cette seule liste."
        ),
        "blank": "Tapez 0 pour voter blanc.",
        "blank-vote": "Vote blanc",
        "list-vote": "Vote en case de tête",
        "effective": "Effectifs",
        "substitutes": "Suppléants",
        "review": "Votre choix",
        "confirm": "Tapez OUI pour voter, ou NON pour recommencer : ",
        "yes": "OUI",
        "no": "NON",
        "answer": "tapez OUI ou NON",
        "cast": "Votre vote est enregistré. Merci.",
        "ballot": "BULLETIN DE VOTE",
        "printed": "Prenez votre bulletin dans l'imprimante.",
        "touch-list": "Touchez une liste",
        "next": "Suivant",
        "back": "Retour",
        "blank-not-allowed": "le vote blanc n'est pas possible dans cette élection",
        "unknown-choice": "ce numéro ne figure pas sur ce bulletin",
        "duplicate": "vous avez tapé deux fois le même numéro",
        "mixed-lists": "vous ne pouvez voter que pour une liste ou pour des candidats d'une liste",
        "bad-field": "cette réponse n'est pas valable",
    },
    "de": {
        "choose-language": "Wählen Sie Ihre Sprache",
        "how": (
            "Geben Sie die Nummer einer Liste für eine Listenstimme ein, oder Liste.Kandidat "
            "(z. B. 1.2 1.S1) für Kandidaten dieser einen Liste."
        ),
        "blank": "Geben Sie 0 für eine leere Stimme ein.",
        "blank-vote": "Leere Stimme",
        "list-vote": "Listenstimme",
        "effective": "Ordentliche Kandidaten",
        "substitutes": "Ersatzkandidaten",
        "review": "Ihre Wahl",
        "confirm": "Geben Sie JA ein, um zu wählen, oder NEIN, um neu zu beginnen: ",
        "yes": "JA",
        "no": "NEIN",
        "answer": "geben Sie JA oder NEIN ein",
        "cast": "Ihre Stimme wurde abgegeben. Danke.",
        "ballot": "STIMMZETTEL",
        "printed": "Nehmen Sie Ihren Stimmzettel aus dem Drucker.",
        "touch-list": "Berühren Sie eine Liste",
        "next": "Weiter",
        "back": "Zurück",
        "blank-not-allowed": "eine leere Stimme ist bei dieser Wahl nicht möglich",
        "unknown-choice": "diese Nummer steht nicht auf diesem Stimmzettel",
        "duplicate": "Sie haben dieselbe Nummer zweimal eingegeben",
        "mixed-lists": "Sie dürfen nur für eine Liste oder für Kandidaten einer Liste stimmen",
        "bad-field": "diese Antwort ist nicht gültig",
    },
}


def say(language: str, key: str) -> str:
    """The message `key` in `language` (every language has every key: a test checks)."""
    return MESSAGES[language][key]
