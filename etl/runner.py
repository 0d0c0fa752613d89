"""The nightly job, `python -m etl run`: the steps in order, under one lock, each recorded in etl_runs.

The first step that fails stops the run, so no step works on stale input; the exit status says so.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from sqlalchemy import Engine, func, or_, select

from core.schema import etl_runs, fetch_gaps, fetch_state, quarantine, sensor_wow
from etl import (
    analyse_anomalies,
    detect_anomalies,
    extract_all_grow_data,
    find_nearest_wow_live,
    store_sensor_info,
)
from etl.fetch_state import WOW
from etl.settings import EtlSettings
from etl.shard import Shard
from etl.step import StepContext, etl_lock, run_recorded

STEPS = (
    (store_sensor_info.NAME, store_sensor_info.run),
    (find_nearest_wow_live.NAME, find_nearest_wow_live.run),
    (extract_all_grow_data.NAME, extract_all_grow_data.run),
    (detect_anomalies.NAME, detect_anomalies.run),
    (analyse_anomalies.NAME, analyse_anomalies.run),
)


@dataclass(frozen=True)
class StepReport:
    name: str
    rows: int
    seconds: float


def run_nightly(settings: EtlSettings, engine: Engine, shard: Shard) -> list[StepReport]:
    """Run every step for one shard; raise the first failure after recording it."""
    context = StepContext(settings, engine, shard, settings.now())
    reports = []
    with etl_lock(engine, shard):
        for name, step in STEPS:
            started = time.perf_counter()
            rows = run_recorded(name, step, context)
            reports.append(StepReport(name, rows, time.perf_counter() - started))
    return reports


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
    order = {name: i for i, (name, _) in enumerate(STEPS)}
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


def nightly_verdict(records: list[RunRecord], now: dt.datetime, max_age: dt.timedelta) -> tuple[bool, str]:
    """Is the nightly job healthy? Not when the latest run of any step on any shard failed, when one has
    been running for longer than `max_age`, or when the last step last finished longer ago than that."""
    for record in records:
        where = record.step + (f" (shard {record.shard})" if record.shard else "")
        if record.status == "failed":
            return False, f"FAILED: {where} at {record.started_at:%Y-%m-%d %H:%M} UTC: {record.error}"
        if record.status == "running" and now - record.started_at > max_age:
            return False, f"STUCK: {where} running since {record.started_at:%Y-%m-%d %H:%M} UTC"
    finishes = [
        r.finished_at for r in records if r.step == STEPS[-1][0] and r.status == "ok" and r.finished_at
    ]
    if not finishes:
        return False, f"NEVER RUN: {STEPS[-1][0]} has no finished run"
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
