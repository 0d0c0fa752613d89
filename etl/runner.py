"""The nightly job, `python -m etl run`: the steps in order, under one lock, each recorded in etl_runs.

The first step that fails stops the run, so no step works on stale input; the exit status says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine

from etl import (
    analyse_anomalies,
    detect_anomalies,
    extract_all_grow_data,
    find_nearest_wow_live,
    store_sensor_info,
)
from etl.settings import Settings
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


def run_nightly(settings: Settings, engine: Engine, shard: Shard) -> list[StepReport]:
    """Run every step for one shard; raise the first failure after recording it."""
    context = StepContext(settings, engine, shard, settings.now())
    reports = []
    with etl_lock(engine, shard):
        for name, step in STEPS:
            started = time.perf_counter()
            rows = run_recorded(name, step, context)
            reports.append(StepReport(name, rows, time.perf_counter() - started))
    return reports
