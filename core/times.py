"""Times, always UTC: the one way a text or a naive time becomes a timezone-aware UTC datetime."""

from __future__ import annotations

import datetime as dt

from core.vocabulary import GROW_TIME_FORMAT


def as_utc(when: dt.datetime) -> dt.datetime:
    """A datetime in UTC; a naive one is taken to be UTC already (all our sources speak UTC)."""
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def parse_utc(text: str) -> dt.datetime:
    """An ISO 8601 time ('2019-05-01', '2019-05-01T12:00', '…Z', '…+02:00') as UTC; without a zone it
    is UTC. Raises ValueError for anything else."""
    return as_utc(dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00")))


def grow_stamp(when: dt.datetime) -> str:
    """A time in GROW's `yyyymmddHHMMSS` (UTC); naive times are refused."""
    if when.tzinfo is None:
        raise ValueError("GROW times must be timezone-aware")
    return when.astimezone(dt.UTC).strftime(GROW_TIME_FORMAT)


def parse_grow_stamp(text: str) -> dt.datetime:
    """GROW's `yyyymmddHHMMSS` as a UTC datetime. Raises ValueError for anything else."""
    return dt.datetime.strptime(text, GROW_TIME_FORMAT).replace(tzinfo=dt.UTC)


def spans(
    start: dt.datetime, end: dt.datetime, longest: dt.timedelta
) -> list[tuple[dt.datetime, dt.datetime]]:
    """[start, end] cut into spans of at most `longest`, without overlap: the sources' times are whole
    seconds, so each span starts one second after the last one ended."""
    result, t, second = [], start, dt.timedelta(seconds=1)
    while t <= end:
        last = min(t + longest - second, end)
        result.append((t, last))
        t = last + second
    return result
