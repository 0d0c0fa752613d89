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

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from core import reading_store
from core.db import describe_error
from core.errors import GrowWowError
from etl import (
    analyse_anomalies,
    detect_anomalies,
    extract_all_grow_data,
    find_nearest_wow_live,
    notify_owners,
    store_sensor_info,
)
from etl.forked import ChildDied, Forked
from etl.locks import etl_lock
from etl.runs import NIGHTLY, record_death, run_recorded
from etl.settings import EtlSettings
from etl.shard import Shard
from etl.step import Step, StepContext
from etl.waits import wait_for_shards

log = logging.getLogger(__name__)


PREPARE = {detect_anomalies.NAME: detect_anomalies.prepare}  # what a step's process may do early

STEPS = (
    (store_sensor_info.NAME, store_sensor_info.run),
    (find_nearest_wow_live.NAME, find_nearest_wow_live.run),
    (extract_all_grow_data.NAME, extract_all_grow_data.run),
    (detect_anomalies.NAME, detect_anomalies.run),
    (analyse_anomalies.NAME, analyse_anomalies.run),
    (notify_owners.NAME, notify_owners.run),  # last: no step waits on the mail
)
assert tuple(name for name, _ in STEPS) == NIGHTLY, "etl.runs.NIGHTLY names the steps in this order"


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
        if shard.index == 1:
            compact_readings(engine, context.now)
    return reports


def compact_readings(engine: Engine, now: dt.datetime) -> None:
    """After the night, PostgreSQL's finished months get their indexes rebuilt compact (once a month, and
    never a reason to fail the night: the readings are all there either way)."""
    try:
        for line in reading_store.compact_finished_months(engine, now):
            log.info(line)
    except DBAPIError as exc:
        log.warning("readings' indexes not rebuilt tonight: %s", describe_error(exc))


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
