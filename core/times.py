"""Times, always UTC: the units (HOUR, DAY), the one way a text or a naive time becomes a timezone-aware UTC
datetime, GROW's stamps, and times as the integers the vectorised checks and PostgreSQL's binary formats
count in."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from core.vocabulary import GROW_TIME_FORMAT

HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)
HOUR_NS = 3600 * 10**9
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in microseconds since 1970, PostgreSQL's epoch


def epoch_ns(times: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Nanoseconds since 1970 of UTC times (naive ones taken as UTC), whatever resolution pandas holds
    them in."""
    return pd.DatetimeIndex(times).as_unit("ns").asi8


def moment_ns(when: pd.Timestamp | dt.datetime | str) -> int:
    """One moment in nanoseconds since 1970 (UTC)."""
    return pd.Timestamp(when).as_unit("ns").value


def duration_ns(span: pd.Timedelta | dt.timedelta) -> int:
    """A duration in nanoseconds."""
    return pd.Timedelta(span).value


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
