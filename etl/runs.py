"""Each run of a step recorded in etl_runs (started, finished, rows, status, the error in one line, the
counts of what went wrong upstream), and what the records say: the latest runs, and the verdicts of
`python -m etl status` on the nightly job and on upstream.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, replace

from sqlalchemy import Connection, Engine, func, insert, or_, select, update

from core.errors import GrowWowError
from core.schema import etl_runs, fetch_gaps, fetch_state, quarantine, sensor_wow
from etl.fetch_state import WOW
from etl.quarantine import clean_text
from etl.shard import Shard
from etl.step import Imported, Step, StepContext, Tally

log = logging.getLogger(__name__)

# The nightly job's steps by name, in the order etl.runner runs them.
NIGHTLY = (
    "store_sensor_info",
    "find_nearest_wow_live",
    "extract_all_grow_data",
    "detect_anomalies",
    "analyse_anomalies",
    "notify_owners",
)


def run_recorded(name: str, step: Step, context: StepContext) -> int | Imported:
    """Run a step (the caller holds the lock), recording it in etl_runs; what it returned, or its failure
    raised again."""
    engine = context.engine
    shard = None if context.shard.whole else str(context.shard)
    with engine.begin() as connection:
        # A run still marked running can only be one that was killed: we hold the lock.
        mark_interrupted(connection, name, shard, "interrupted (killed or crashed)")
        run_id = connection.execute(
            insert(etl_runs)
            .values(step=name, shard=shard, started_at=dt.datetime.now(dt.UTC), status="running")
            .returning(etl_runs.c.run_id)
        ).scalar_one()
    started = time.perf_counter()
    log.info("%s (shard %s) started", name, context.shard)
    context = replace(context, tally=Tally())  # each step counts its own
    status, rows, error = "failed", None, None
    try:
        outcome = step(context)
        rows = outcome if isinstance(outcome, int) else outcome.rows
        status = "ok"
        return outcome
    except GrowWowError as exc:
        error = str(exc)
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise
    finally:
        counts = context.tally.as_dict()
        error = stored_error(error)
        with engine.begin() as connection:
            connection.execute(
                update(etl_runs)
                .where(etl_runs.c.run_id == run_id)
                .values(
                    status=status,
                    rows=rows,
                    error=error,
                    counts=counts or None,
                    finished_at=dt.datetime.now(dt.UTC),
                )
            )
        seconds = time.perf_counter() - started
        if counts:
            log.warning("%s (shard %s): upstream problems: %s", name, context.shard, describe_counts(counts))
        if status == "ok":
            log.info("%s (shard %s) ok: %s rows in %.1f s", name, context.shard, rows, seconds)
        else:
            log.error("%s (shard %s) failed after %.1f s: %s", name, context.shard, seconds, error)


ERROR_CHARS = 500  # what a run's record keeps of its reason: its first line says what and where


def stored_error(error: str | None) -> str | None:
    """A failure's reason as a run's record keeps it: printable (PostgreSQL refuses NUL; control bytes
    garble a terminal) and at most ERROR_CHARS, however much a file or an upstream put in it."""
    return clean_text(error[: ERROR_CHARS * 4], ERROR_CHARS)[0] if error is not None else None


def describe_counts(counts: dict[str, int]) -> str:
    """A run's counts of what went wrong upstream, for people: '3 gaps, 2 quarantined'."""
    return ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in counts.items())


def mark_interrupted(connection: Connection, name: str, shard: str | None, error: str) -> int:
    """Mark the step's runs on the shard that are still marked running as failed with `error` (the caller
    holds the lock, so none of them is alive); how many there were."""
    return connection.execute(
        update(etl_runs)
        .where(
            etl_runs.c.step == name,
            etl_runs.c.status == "running",
            etl_runs.c.shard.is_not_distinct_from(shard),
        )
        .values(status="failed", error=stored_error(error), finished_at=dt.datetime.now(dt.UTC))
    ).rowcount


def record_death(connection: Connection, name: str, shard: str | None, error: str) -> None:
    """A step's process died with `error`: its run marked running becomes failed, or, when it died before
    its run was recorded (while preparing), a failed run is recorded, so that the night says so."""
    if not mark_interrupted(connection, name, shard, error):
        now = dt.datetime.now(dt.UTC)
        connection.execute(
            insert(etl_runs).values(
                step=name,
                shard=shard,
                started_at=now,
                finished_at=now,
                status="failed",
                error=stored_error(error),
            )
        )


@dataclass(frozen=True)
class RunRecord:
    """One row of etl_runs: the latest run of a step on one shard."""

    step: str
    shard: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status: str
    rows: int | None
    error: str | None
    counts: dict | None = None


def latest_runs(engine: Engine) -> list[RunRecord]:
    """The latest recorded run of each step on each shard, in step order."""
    order = {name: i for i, name in enumerate(NIGHTLY)}
    newest = (
        select(etl_runs.c.step, etl_runs.c.shard, func.max(etl_runs.c.run_id).label("run_id"))
        .group_by(etl_runs.c.step, etl_runs.c.shard)
        .subquery()
    )
    with engine.connect() as connection:
        rows = connection.execute(select(etl_runs).join(newest, etl_runs.c.run_id == newest.c.run_id)).all()
    records = [
        RunRecord(r.step, r.shard, r.started_at, r.finished_at, r.status, r.rows, r.error, r.counts)
        for r in rows
    ]
    return sorted(records, key=lambda r: (order.get(r.step, len(order)), r.shard or ""))


def current_plan(records: list[RunRecord]) -> list[RunRecord]:
    """The records of the shard plan the latest run used. After the plan changes (four shards, then the
    whole network), an old shard's last failed or running row would otherwise be its latest forever."""
    if not records:
        return records
    newest = max(record.started_at for record in records)
    plans = {Shard.parse(record.shard).count for record in records if record.started_at == newest}
    return [record for record in records if Shard.parse(record.shard).count in plans]


def nightly_verdict(records: list[RunRecord], now: dt.datetime, max_age: dt.timedelta) -> tuple[bool, str]:
    """Is the nightly job healthy? Not when the latest run of any step on any shard of the current plan
    failed, when one has been running for longer than `max_age`, or when the last step last finished
    longer ago than that."""
    records = current_plan([r for r in records if r.step in NIGHTLY])  # an import by hand is no night's
    for record in records:
        where = record.step + (f" (shard {record.shard})" if record.shard else "")
        if record.status == "failed":
            return False, f"FAILED: {where} at {record.started_at:%Y-%m-%d %H:%M} UTC: {record.error}"
        if record.status == "running" and now - record.started_at > max_age:
            return False, f"STUCK: {where} running since {record.started_at:%Y-%m-%d %H:%M} UTC"
    finishes = [
        r.finished_at for r in records if r.step == NIGHTLY[-1] and r.status == "ok" and r.finished_at
    ]
    if not finishes:
        return False, f"NEVER RUN: {NIGHTLY[-1]} has no finished run"
    age = now - min(finishes)  # with shards, the shard that finished longest ago
    if age > max_age:
        return False, f"STALE: the last nightly run finished {_hours(age)} ago (allowed: {_hours(max_age)})"
    return True, f"OK: the last nightly run finished {_hours(age)} ago"


def _hours(span: dt.timedelta) -> str:
    return f"{span.total_seconds() / 3600:.1f} h"


@dataclass(frozen=True)
class Upstream:
    """What upstream left undone, for `etl status`: the sensors and stations held back by incomplete
    answers (fetch_state), the spans given up (fetch_gaps), and the records quarantined since a time."""

    held: list  # (source, entity_id, fetched_through, held_since, held_runs, held_reason), oldest first
    given_up: list  # (source, entity_id, start_at, end_at, reason, given_up_at), newest first
    quarantined: list  # (source, action, reason, rows, an entity_id), most rows first
    quarantined_rows: int


def upstream_report(engine: Engine, since: dt.datetime | None) -> Upstream:
    """Held-back entities and given-up gaps now, and the quarantine rows seen at or after `since`
    (the start of the last nightly run)."""
    linked_sites = select(sensor_wow.c.site_id).where(sensor_wow.c.site_id.is_not(None))
    with engine.connect() as connection:
        held = connection.execute(
            select(
                fetch_state.c.source,
                fetch_state.c.entity_id,
                fetch_state.c.fetched_through,
                fetch_state.c.held_since,
                fetch_state.c.held_runs,
                fetch_state.c.held_reason,
            )
            .where(
                fetch_state.c.held_since.is_not(None),
                # A station no sensor links to any more is not asked for: its hole waits, harmlessly,
                # until a link brings it back (and then it is read from the hole).
                or_(fetch_state.c.source != WOW, fetch_state.c.entity_id.in_(linked_sites)),
            )
            .order_by(fetch_state.c.held_since, fetch_state.c.source, fetch_state.c.entity_id)
        ).all()
        given_up = connection.execute(
            select(
                fetch_gaps.c.source,
                fetch_gaps.c.entity_id,
                fetch_gaps.c.start_at,
                fetch_gaps.c.end_at,
                fetch_gaps.c.reason,
                fetch_gaps.c.given_up_at,
            ).order_by(fetch_gaps.c.given_up_at.desc(), fetch_gaps.c.entity_id)
        ).all()
        recent = select(quarantine)
        if since is not None:
            recent = recent.where(quarantine.c.last_seen_at >= since)
        recent = recent.subquery()
        quarantined = connection.execute(
            select(
                recent.c.source,
                recent.c.action,
                recent.c.reason,
                func.count().label("rows"),
                func.min(recent.c.entity_id),
            )
            .group_by(recent.c.source, recent.c.action, recent.c.reason)
            .order_by(func.count().desc(), recent.c.reason)
        ).all()
    total = sum(row.rows for row in quarantined)
    return Upstream(
        [tuple(r) for r in held], [tuple(r) for r in given_up], [tuple(r) for r in quarantined], total
    )


def upstream_verdict(report: Upstream, max_held: int, max_quarantined: int) -> tuple[bool, str]:
    """Too many sensors or stations held back, or too many records quarantined by the last run?"""
    if len(report.held) > max_held:
        return False, f"GAPS: {len(report.held)} sensors and stations held back (allowed: {max_held})"
    if report.quarantined_rows > max_quarantined:
        return False, (
            f"QUARANTINE: the last run quarantined {report.quarantined_rows} records "
            f"(allowed: {max_quarantined})"
        )
    return (
        True,
        f"upstream: {len(report.held)} held back, {report.quarantined_rows} quarantined by the last run",
    )
