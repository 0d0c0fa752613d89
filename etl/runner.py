"""The nightly job, `python -m etl run`: the steps in order, under one lock, each recorded in etl_runs.

The first step that fails stops the run, so no step works on stale input; the exit status says so.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from core.schema import etl_runs
from etl import (
    analyse_anomalies,
    detect_anomalies,
    extract_all_grow_data,
    find_nearest_wow_live,
    store_sensor_info,
)
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
        RunRecord(r.step, r.shard, r.started_at, r.finished_at, r.status, r.rows, r.error) for r in rows
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
