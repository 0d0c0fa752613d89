"""How the dashboard shows a sensor's health: a label and a colour for each status of the vocabulary
(`core.vocabulary.Health`) and for a sensor not checked yet, and which status a cluster of markers wears.

The templates, the CSS colours (written into each page) and the page scripts (which read `config()` from
the page) all take them from here, so a new status needs its look and its place in WORST_FIRST here,
and nothing in the templates or the scripts (tests/core/test_vocabulary.py checks every status has both).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from flask_babel import gettext, lazy_gettext

from core.vocabulary import Health

UNCHECKED = "unchecked"  # no health row yet: the back end says `status: null`


@dataclass(frozen=True)
class Look:
    value: str
    label: str  # lazy: in the language of the page that shows it
    colour: str  # markers, clusters, badges and the legend
    # A status is never told by colour alone: each marker and legend swatch wears its symbol too.
    symbol: str
    ink: str = "#ffffff"  # text on the colour, at a contrast of 4.5:1 or more (WCAG AA)
    dated: bool = False  # its badge says since when: the sensor's last reading


# In the order the legend lists them: the vocabulary's, then not checked yet.
LOOKS = (
    Look(Health.HEALTHY.value, lazy_gettext("Healthy"), "#2e7d32", "✓"),
    Look(Health.FAULTY.value, lazy_gettext("Faulty"), "#c62828", "!"),
    Look(Health.RECOVERED.value, lazy_gettext("Recovered"), "#ef8f00", "↺", ink="#1b1b1b"),
    # Grey like "not checked yet" (nothing is known now either), but slate so the two tell apart.
    Look(Health.SILENT.value, lazy_gettext("Silent"), "#546e7a", "–", dated=True),
    # Its owner paused it for maintenance: known and in hand, so calm blue, not an alarm.
    Look(Health.PAUSED.value, lazy_gettext("Paused"), "#1565c0", "⏸"),
    Look(UNCHECKED, lazy_gettext("Not checked yet"), "#757575", "?"),
)
BY_VALUE = {look.value: look for look in LOOKS}

# A cluster wears its worst status, so a faulty sensor shows from afar, then one gone silent (someone
# should look at it: a flat battery, a lost signal), before the ones that are fine now or not yet known.
WORST_FIRST = (
    Health.FAULTY.value,
    Health.SILENT.value,
    Health.RECOVERED.value,
    UNCHECKED,
    Health.PAUSED.value,
    Health.HEALTHY.value,
)


def config() -> dict:
    """What the page scripts need, as JSON on the page (`<body data-statuses>`), the labels in the page's
    language."""
    return {
        "looks": [{**_fields(look), "label": str(look.label)} for look in LOOKS],
        "worstFirst": list(WORST_FIRST),
        "unchecked": UNCHECKED,
    }


def _fields(look: Look) -> dict:
    return {field.name: getattr(look, field.name) for field in fields(look)}


def badge_text(health: dict, last_sample_at: str | None = None) -> str:
    """A badge's words: the status; for a dated one (silent) since when, at the minute (UTC)."""
    status = health.get("status")
    look = BY_VALUE.get(status or UNCHECKED)
    said = str(look.label).lower() if look else status  # a status newer than this code: as it came
    since = health.get("latest_reading_at") or last_sample_at
    if look and look.dated and since:
        return gettext("%(status)s since %(time)s UTC", status=said, time=since[:16].replace("T", " "))
    return said
