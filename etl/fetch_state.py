"""How far each source has answered for each sensor and station: the extraction watermark.

The newest stored reading is not a watermark: an answer that leaves a sensor out for one window while a
later window succeeds would move it past the hole for good. So each run follows, per sensor (or
station), its windows in time order and moves `fetched_through` only across windows the source answered
fully for it. A sensor stopped by an incomplete window is *held*: the next runs ask again from where it
stopped. One held longer than GAP_GIVE_UP_DAYS is given up: the span goes to `fetch_gaps`, reported,
and the watermark moves past it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, select

from core.load import bulk_upsert
from core.schema import fetch_gaps, fetch_state

log = logging.getLogger(__name__)

GROW, WOW = "grow", "wow"
STATE_COLUMNS = ["source", "entity_id", "fetched_through", "held_since", "held_reason", "held_runs"]
GAP_COLUMNS = ["source", "entity_id", "start_at", "end_at", "held_since", "reason", "given_up_at"]


@dataclass(frozen=True)
class Stored:
    """One entity's row of fetch_state."""

    fetched_through: pd.Timestamp
    held_since: pd.Timestamp | None
    held_runs: int


@dataclass(frozen=True)
class Hole:
    """The first window a run could not fully fetch for an entity, and why."""

    start: pd.Timestamp
    end: pd.Timestamp
    reason: str


def read_state(connection: Connection, source: str) -> dict[str, Stored]:
    rows = connection.execute(
        select(
            fetch_state.c.entity_id,
            fetch_state.c.fetched_through,
            fetch_state.c.held_since,
            fetch_state.c.held_runs,
        ).where(fetch_state.c.source == source)
    ).all()
    return {
        entity: Stored(pd.Timestamp(through), None if since is None else pd.Timestamp(since), runs)
        for entity, through, since, runs in rows
    }


class Progress:
    """What one run's answers covered, per entity: the end of the windows answered fully, one after the
    other, and the first hole. Feed it each entity's windows in time order."""

    def __init__(self):
        self.through: dict[str, pd.Timestamp] = {}
        self.holes: dict[str, Hole] = {}

    def answered(self, entity: str, start, end, problem: str | None = None) -> None:
        if entity in self.holes:
            return  # past a hole nothing counts: the next run asks again from the hole
        if problem:
            self.holes[entity] = Hole(pd.Timestamp(start), pd.Timestamp(end), problem)
        else:
            self.through[entity] = max(pd.Timestamp(end), self.through.get(entity, pd.Timestamp(end)))

    def merge(self, other: Progress) -> None:
        """Take in what another run covered (a forked part's) for entities this one did not see."""
        self.through.update(other.through)
        self.holes.update(other.holes)

    @property
    def entities(self) -> set[str]:
        return set(self.through) | set(self.holes)


def next_state(
    source: str,
    progress: Progress,
    stored: dict[str, Stored],
    now: dt.datetime,
    give_up: dt.timedelta,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fetch_state rows after a run, and the fetch_gaps rows of the holes given up on."""
    now = pd.Timestamp(now)
    states, gaps = [], []
    for entity in sorted(progress.entities):
        old = stored.get(entity)
        through = progress.through.get(entity, old.fetched_through if old else None)
        hole = progress.holes.get(entity)
        if hole is None:
            states.append((source, entity, through, None, None, 0))
            continue
        # A hole's age counts from when it was found: once the watermark moved, any hole is a new one.
        moved = entity in progress.through and (old is None or progress.through[entity] > old.fetched_through)
        since = old.held_since if old is not None and old.held_since is not None and not moved else now
        start = through if through is not None else hole.start
        if now - since >= pd.Timedelta(give_up):
            log.warning(
                "%s %s: given up on %s..%s after asking since %s: %s",
                source,
                entity,
                f"{start:%Y-%m-%d %H:%M}",
                f"{hole.end:%Y-%m-%d %H:%M}",
                f"{since:%Y-%m-%d}",
                hole.reason,
            )
            gaps.append((source, entity, start, hole.end, since, hole.reason, now))
            states.append((source, entity, max(start, hole.end), None, None, 0))
        else:
            runs = (old.held_runs if old is not None else 0) + 1
            states.append((source, entity, start, since, hole.reason, runs))
    state_frame = pd.DataFrame(states, columns=STATE_COLUMNS)
    gap_frame = pd.DataFrame(gaps, columns=GAP_COLUMNS)
    times = {"fetched_through", "held_since", "start_at", "end_at", "given_up_at"}
    for frame in (state_frame, gap_frame):
        for column in times & set(frame.columns):
            frame[column] = pd.to_datetime(frame[column], utc=True)
    state_frame["held_runs"] = state_frame["held_runs"].astype("Int64")
    return state_frame, gap_frame


def save_state(connection: Connection, states: pd.DataFrame, gaps: pd.DataFrame) -> None:
    if len(states):
        bulk_upsert(connection, fetch_state, states)
    if len(gaps):
        bulk_upsert(connection, fetch_gaps, gaps)
