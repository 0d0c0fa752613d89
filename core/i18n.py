"""The languages of the pages and the mails: one set of gettext catalogues (`core/locale/<lang>/LC_MESSAGES/
messages.po`, compiled beside it to `.mo`) that the dashboard (Flask-Babel reads LOCALE_DIR) and the
nightly job's alerts (`translations`, without Flask) share.

English is the source: the message ids are its words and it needs no catalogue. `make translations`
extracts what the code marks (babel.cfg), updates every catalogue and compiles them; a test checks the
committed `.mo` files are compiled from their `.po`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
SOURCE = "en"
# The languages an account may choose, each in its own words (the account page's choices).
LANGUAGES = {
    "en": "English",
    "fr": "Français",
    "es": "Español",
    "it": "Italiano",
    "de": "Deutsch",
    "el": "Ελληνικά",
}


def N_(text: str) -> str:  # gettext's own name for "mark only"
    """Mark `text` for the catalogues where it is defined (a constant that must not import Flask);
    whoever shows it translates it then."""
    return text


def language(code: object) -> str:
    """A language we speak: `code` if it is one, else English (an account that chose none, or one whose
    choice is no longer offered)."""
    return code if isinstance(code, str) and code in LANGUAGES else SOURCE


def translations(code: object) -> NullTranslations:
    """The catalogue of a language, English's words for one we do not speak (`gettext`, `ngettext`)."""
    return _catalogue(language(code))


@cache
def _catalogue(chosen: str) -> NullTranslations:
    if chosen == SOURCE:
        return NullTranslations()  # the message ids are English's words
    return Translations.load(str(LOCALE_DIR), [chosen], DOMAIN)
