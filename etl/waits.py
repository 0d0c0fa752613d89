"""Waiting between steps for the other shards of a plan: a shard starts a step only when every shard of
its plan has finished the one before (their etl_runs rows say so), and gives up at once when one failed
or died, so that shards equal one whole run.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, select

from core.errors import GrowWowError
from core.schema import etl_runs
from etl.locks import shard_lock_held
from etl.shard import Shard

log = logging.getLogger(__name__)


SHARD_POLL_S = 2.0  # between looks at etl_runs while waiting for the other shards


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
