"""The gettext catalogues as the tests read them (core/locale), and how an English message id left in a
page or a mail is found: tests/web/test_languages.py and tests/etl/test_alert_languages.py use these."""

from __future__ import annotations

import html
import re
from functools import cache

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from core import i18n

TRANSLATED = [code for code in i18n.LANGUAGES if code != i18n.SOURCE]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
# English pieces shorter than this ("Save", "max", "UTC") may well be the other language's word too; and
# some longer ones are (German's "Pause" and "des Sensors").
MIN_PIECE = 5
ALSO_THEIRS = {"de": {"Pause", "Sensors"}}


@cache
def catalogue(language: str) -> Catalog:
    with open(i18n.LOCALE_DIR / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.po", "rb") as po:
        return read_po(po, locale=language)


@cache
def template() -> Catalog:
    with open(i18n.LOCALE_DIR / f"{i18n.DOMAIN}.pot", "rb") as pot:
        return read_po(pot)


def forms(value) -> tuple[str, ...]:
    """A message's id or string as a tuple: one form, or a counted message's forms."""
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def pieces(english: str) -> list[str]:
    """The literal pieces of a message id between its placeholders, long enough to tell."""
    split = PLACEHOLDER.split(english.replace("%%", "%"))[::2]  # split() keeps the names at odd places
    trimmed = (piece.strip(" ,.:;()·–-") for piece in split)
    return [piece for piece in trimmed if len(piece) >= MIN_PIECE]


def plain(text: str) -> str:
    """A page's or a mail's text as read: entities decoded, white space single."""
    return " ".join(html.unescape(text).split())


def said(piece: str, text: str) -> bool:
    """Whether `text` holds `piece` as words of its own ("Pause" is not in "Pausieren")."""
    return re.search(rf"(?<!\w){re.escape(piece)}(?!\w)", text) is not None


def english_left(text: str, language: str, data: tuple[str, ...] = ()) -> list[str]:
    """The English message ids (their pieces) that `text`, which should be in `language`, still holds:
    words someone forgot to translate. `data` (names, addresses, the reasons detection stored in
    English) is taken out first; a piece the translation itself keeps (a name) does not count."""
    text = PLACEHOLDER.sub(" ", re.sub(r"https?://\S+", " ", plain(text)))  # addresses and places, not words
    for item in sorted(data, key=len, reverse=True):
        text = text.replace(plain(item), " ")
    found = set()
    for message in catalogue(language):
        if not message.id:
            continue
        translated = PLACEHOLDER.sub(" ", " ".join(forms(message.string)))
        for english in forms(message.id):
            found |= {piece for piece in pieces(english) if said(piece, text) and not said(piece, translated)}
    return sorted(found - ALSO_THEIRS.get(language, set()))
