"""The nightly job, `python -m etl run`: the steps in order, under one lock, each recorded in etl_runs.

The first step that fails stops the run, so no step works on stale input; the exit status says so.
A shard (`--shard i/n`) starts a step only when every shard of its plan has finished the one before
(their etl_runs rows say so), wherever and whenever each was started: shards then equal one whole run.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, func, or_, select

from core.errors import GrowWowError
from core.schema import etl_runs, fetch_gaps, fetch_state, quarantine, sensor_wow
from etl import (
    analyse_anomalies,
    detect_anomalies,
    extract_all_grow_data,
    find_nearest_wow_live,
    store_sensor_info,
)
from etl.fetch_state import WOW
from etl.forked import ChildDied, Forked
from etl.settings import EtlSettings
from etl.shard import Shard
from etl.step import (
    Step,
    StepContext,
    etl_lock,
    record_death,
    run_recorded,
    shard_lock_held,
)

log = logging.getLogger(__name__)

SHARD_POLL_S = 2.0  # between looks at etl_runs while waiting for the other shards

PREPARE = {detect_anomalies.NAME: detect_anomalies.prepare}  # what a step's process may do early

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


def run_nightly(
    settings: EtlSettings, engine: Engine, shard: Shard, processes: bool = False
) -> list[StepReport]:
    """Run every step for one shard; raise the first failure after recording it. A shard of a plan goes
    on to the next step only when every other shard of it has finished this one. With `processes`, each
    step runs in a child process of its own (see StepProcess), as `python -m etl run` does."""
    context = StepContext(settings, engine, shard, settings.now())
    wait = dt.timedelta(minutes=settings.shard_wait_minutes)
    tonight = dt.datetime.now(dt.UTC) - wait  # another shard's rows from before this are an earlier night's
    reports = []
    with etl_lock(engine, shard):
        # The steps with something to prepare start now and prepare while the steps before them run.
        early = {
            name: StepProcess(name, step, context, PREPARE[name])
            for name, step in STEPS
            if processes and name in PREPARE
        }
        try:
            for number, (name, step) in enumerate(STEPS, start=1):
                started = time.perf_counter()
                if processes:
                    rows = (early.pop(name, None) or StepProcess(name, step, context)).run()
                else:
                    rows = run_recorded(name, step, context)
                reports.append(StepReport(name, rows, time.perf_counter() - started))
                if not shard.whole and number < len(STEPS):
                    wait_for_shards(engine, shard, name, tonight, deadline=wait)
        finally:
            for process in early.values():  # a step before them failed: they never run
                process.cancel()
    return reports


class StepDied(GrowWowError):
    """A step's process ended without a word: killed (by the kernel when memory ran out, or by hand)."""


class StepProcess:
    """A step run by `run_recorded` in a forked child process (etl.forked), which the runner, holding the
    lock, starts, then tells to run and waits for.

    Memory a step freed goes back to the system with its process, so each step starts from the small
    runner rather than from the heap the one before left behind (a year's first run: the extract's
    freed arrays stayed under the detection's), and the night's peak is the largest step's. A step
    killed outright (out of memory) is recorded as failed at once, not left marked running. A step
    with a `prepare(settings)` does it as soon as its process starts: started early, detection loads
    TensorFlow and its models (seconds of CPU the extract leaves idle) while the extract runs, and
    holds them (0.5 GB over the runner, measured) beside it."""

    def __init__(
        self,
        name: str,
        step: Step,
        context: StepContext,
        prepare: Callable[[EtlSettings], None] | None = None,
    ):
        self.name, self.context = name, context
        ahead = (lambda name, step, context: prepare(context.settings)) if prepare else None
        self.forked = Forked(
            run_recorded, name, step, context, prepare=ahead, engine=context.engine, name=name
        )

    def run(self) -> int:
        """Run the step now; its rows written, or its error raised here."""
        try:
            return self.forked.result()
        except ChildDied as died:
            if self.forked.child.exitcode == 0:
                raise  # a process the step forked died, and the step, alive, recorded it
            shard = self.context.shard
            with self.context.engine.begin() as connection:
                record_death(connection, self.name, None if shard.whole else str(shard), str(died))
            raise StepDied(f"{self.name} (shard {shard}) {died}") from None

    def cancel(self) -> None:
        """The step is not to run after all."""
        self.forked.cancel()


class ShardsDidNotFinish(GrowWowError):
    """Another shard of the plan failed a step, died in one, or did not finish it in time: this one cannot
    go on."""


@dataclass(frozen=True)
class ShardRun:
    """One etl_runs row of a shard, as the wait between steps reads it."""

    run_id: int
    shard: str
    step: str
    status: str
    error: str | None


def finished(runs: list[ShardRun], shard: str, step: str) -> bool:
    """Did the shard's latest run of the step finish?"""
    of_step = [r for r in runs if r.shard == shard and r.step == step]
    return bool(of_step) and max(of_step, key=lambda r: r.run_id).status == "ok"


def failed(runs: list[ShardRun], shard: str, step: str) -> ShardRun | None:
    """The shard's failed run of the step, when it is the latest the shard recorded: a shard started again
    since is waited for, not given up on."""
    own = [r for r in runs if r.shard == shard]
    latest = max(own, key=lambda r: r.run_id, default=None)
    return latest if latest and latest.step == step and latest.status == "failed" else None


def latest_running(runs: list[ShardRun], shard: str) -> ShardRun | None:
    """The shard's latest run, when it is still marked running."""
    latest = max((r for r in runs if r.shard == shard), key=lambda r: r.run_id, default=None)
    return latest if latest and latest.status == "running" else None


def wait_for_shards(
    engine: Engine,
    shard: Shard,
    step: str,
    since: dt.datetime,
    deadline: dt.timedelta,
    poll_s: float | None = None,
) -> None:
    """Return when every other shard of the plan has finished `step` in a run started at or after
    `since`; raise ShardsDidNotFinish at once when one failed it, when one died (its run is marked running
    but nobody holds its lock), or when `deadline` passes."""
    others = [str(Shard(i, shard.count)) for i in range(1, shard.count + 1) if i != shard.index]
    query = select(
        etl_runs.c.run_id, etl_runs.c.shard, etl_runs.c.step, etl_runs.c.status, etl_runs.c.error
    ).where(etl_runs.c.shard.in_(others), etl_runs.c.started_at >= since)

    def read() -> list[ShardRun]:
        with engine.connect() as connection:
            return [ShardRun(*row) for row in connection.execute(query)]

    give_up = time.monotonic() + deadline.total_seconds()
    said = None
    while True:
        runs = read()
        for run in filter(None, (failed(runs, other, step) for other in others)):
            error = (run.error or "no error recorded").splitlines()[0]
            raise ShardsDidNotFinish(
                f"shard {run.shard} failed {step} ({error}); shard {shard} does not go on"
            )
        behind = [other for other in others if not finished(runs, other, step)]
        if not behind:
            return
        _stop_if_dead(read, runs, behind, engine, shard)
        if time.monotonic() >= give_up:
            raise ShardsDidNotFinish(
                f"{_shards(behind)} did not finish {step} within {deadline.total_seconds() / 60:g} minutes "
                f"(SHARD_WAIT_MINUTES); shard {shard} does not go on"
            )
        if behind != said:
            log.info("waiting for %s to finish %s", _shards(behind), step)
            said = behind
        time.sleep(SHARD_POLL_S if poll_s is None else poll_s)


def _stop_if_dead(
    read: Callable[[], list[ShardRun]], runs: list[ShardRun], behind: list[str], engine: Engine, shard: Shard
) -> None:
    """Raise ShardsDidNotFinish when a shard we wait for was killed outright (SIGKILL, out of memory, its
    host down): its latest run is marked running, yet nobody holds its lock. A live shard holds its lock
    from before it records a run until after it records the run's end, so the lock found free and the
    same run still running when read again means a dead shard. A shard that has not started tonight holds
    no lock either, but has no run marked running: it is waited for."""
    running = [run for run in (latest_running(runs, other) for other in behind) if run]
    free = [run for run in running if not shard_lock_held(engine, Shard.parse(run.shard))]
    if not free:
        return
    now = read()  # it may have finished, and let go of its lock, between our reading and our look
    for run in free:
        if latest_running(now, run.shard) == run:
            raise ShardsDidNotFinish(
                f"shard {run.shard} stopped during {run.step} without a word (killed?): its run is marked "
                f"running but nobody holds its lock; shard {shard} does not go on"
            )


def _shards(names: list[str]) -> str:
    return ("shard " if len(names) == 1 else "shards ") + ", ".join(names)


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
    nightly = {name for name, _ in STEPS}  # an import run by hand is not the nightly job's
    records = current_plan([r for r in records if r.step in nightly])
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
