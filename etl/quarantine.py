"""Records a source sent that cannot be taken as they came, and the checks that find them.

Every loader validates before it writes: ids against the id pattern, text without NUL and cut to its
column, values finite and within what the sensor can possibly send. What fails is not an error that
stops the night: the row is repaired (the name cut, the value stored as missing) or refused, and the
record as it came goes to the `quarantine` table with the source and the reason. The same record sent
again is the same quarantine row (keyed by a fingerprint of the record), only its last_seen_at moves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection

from core.load import bulk_upsert
from core.schema import quarantine

REFUSED, REPAIRED = "refused", "repaired"
COLUMNS = ["source", "fingerprint", "entity_id", "action", "reason", "record", "last_seen_at"]


@dataclass(frozen=True)
class Quarantined:
    """One record not taken as it came: from which source, about which sensor or site, refused or
    repaired, why, and the record itself (any JSON-able value)."""

    source: str
    entity_id: str | None
    action: str
    reason: str
    record: object

    @property
    def text(self) -> str:
        # Non-finite numbers stay visible as Infinity/NaN; NUL is escaped by JSON, so PostgreSQL takes it.
        return json.dumps(self.record, sort_keys=True, default=str, ensure_ascii=True)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.source}\n{self.text}".encode()).hexdigest()


def clean_text(value, length: int) -> tuple[str | None, str | None]:
    """Text as a column can hold it: without NUL (PostgreSQL refuses it) and other control characters,
    cut to `length`. Returns the text and what was done to it (None: nothing)."""
    if value is None:
        return None, None
    text = value if isinstance(value, str) else str(value)
    problems = []
    cleaned = "".join(ch for ch in text if ch.isprintable() or ch == " ")
    if cleaned != text:
        problems.append("control characters removed")
    if len(cleaned) > length:
        cleaned = cleaned[:length]
        problems.append(f"cut from {len(text)} to {length} characters")
    return cleaned, ("; ".join(problems) or None)


def number(value) -> float:
    """A value from an answer as a float; NaN when it is not a number. An integer too large for a float
    is infinite: a number, but no reading (the checks quarantine it)."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
    except (TypeError, ValueError):
        return math.nan


def cleaned_id(value) -> str | None:
    """An id as far as it can be shown in the quarantine table (which refuses NUL and long text)."""
    text, _ = clean_text(value, 64)
    return text


def quarantine_frame(records: list[Quarantined], seen_at: dt.datetime) -> pd.DataFrame:
    """The rows of the quarantine table for these records, one per distinct record."""
    rows = {}
    for r in records:
        rows[(r.source, r.fingerprint)] = (
            r.source,
            r.fingerprint,
            cleaned_id(r.entity_id),
            r.action,
            r.reason,
            r.text,
            seen_at,
        )
    frame = pd.DataFrame(list(rows.values()), columns=COLUMNS)
    frame["last_seen_at"] = pd.to_datetime(frame["last_seen_at"], utc=True)
    return frame


def write_quarantine(connection: Connection, records: list[Quarantined], seen_at: dt.datetime) -> int:
    """Store the records (a record already there only has its last_seen_at moved); return how many."""
    if not records:
        return 0
    frame = quarantine_frame(records, seen_at)
    bulk_upsert(connection, quarantine, frame)
    return len(frame)
