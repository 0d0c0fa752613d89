"""`python -m etl run` runs each step in a child process of its own: what a step frees goes back to the
system before the next starts, and a step killed outright is recorded as failed at once."""

import datetime as dt
import multiprocessing
import os
import signal
import time

import pytest
from sqlalchemy import select

from core.errors import GrowWowError
from core.schema import etl_runs
from etl import runner
from etl import runs as runs_module
from etl.forked import ChildDied, Forked
from etl.locks import etl_lock
from etl.runner import StepDied, run_nightly
from etl.runs import latest_runs, nightly_verdict
from etl.shard import Shard


class UpstreamRefused(GrowWowError):
    """A step's own error, as the sources raise them."""


def runs(engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as connection:
        query = select(etl_runs.c.step, etl_runs.c.status, etl_runs.c.error).order_by(etl_runs.c.run_id)
        return [tuple(row) for row in connection.execute(query)]


def test_each_step_runs_in_a_process_of_its_own_and_its_rows_come_back(engine, settings, monkeypatch):
    monkeypatch.setattr(
        runner,
        "STEPS",
        (("first", lambda context: os.getpid()), ("second", lambda context: os.getpid())),
    )
    reports = run_nightly(settings, engine, Shard(), processes=True)
    pids = [report.rows for report in reports]
    assert os.getpid() not in pids and pids[0] != pids[1]
    assert runs(engine) == [("first", "ok", None), ("second", "ok", None)]


def test_a_step_error_comes_back_as_itself_and_stops_the_night(engine, settings, monkeypatch):
    def refused(context):
        raise UpstreamRefused("the GROW API refused every request")

    monkeypatch.setattr(runner, "STEPS", (("first", refused), ("second", lambda context: 2)))
    with pytest.raises(UpstreamRefused, match="refused every request"):
        run_nightly(settings, engine, Shard(), processes=True)
    assert runs(engine) == [("first", "failed", "the GROW API refused every request")]


def test_a_step_killed_outright_is_recorded_failed_at_once(engine, settings, monkeypatch):
    """The kernel's out-of-memory killer gives no warning; the night still says what happened, and
    `etl status` alarms now, not only when the next night finds the run still marked running."""

    def killed(context):
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(runner, "STEPS", (("first", lambda context: 1), ("second", killed)))
    monkeypatch.setattr(runs_module, "NIGHTLY", ("first", "second"))  # what the verdict reads as the night
    with pytest.raises(StepDied, match=r"^second \(shard all\) was killed by SIGKILL \(out of memory\?\)$"):
        run_nightly(settings, engine, Shard(), processes=True)
    assert runs(engine) == [
        ("first", "ok", None),
        ("second", "failed", "was killed by SIGKILL (out of memory?)"),
    ]
    healthy, verdict = nightly_verdict(latest_runs(engine), dt.datetime.now(dt.UTC), dt.timedelta(hours=26))
    assert not healthy and verdict.startswith("FAILED: second")
    with etl_lock(engine, Shard()):  # the run let go of its lock
        pass


def test_a_step_prepares_while_the_steps_before_it_run(engine, settings, monkeypatch, tmp_path):
    """Detection loads TensorFlow and its models (seconds) while the extract runs."""
    prepared = tmp_path / "prepared"

    def first(context):  # finishes only once the second step's process has prepared
        for _ in range(200):
            if prepared.exists():
                return 1
            time.sleep(0.05)
        return 0

    monkeypatch.setattr(runner, "STEPS", (("first", first), ("second", lambda context: 2)))
    monkeypatch.setattr(runner, "PREPARE", {"second": lambda settings: prepared.touch()})
    assert [r.rows for r in run_nightly(settings, engine, Shard(), processes=True)] == [1, 2]


def test_a_prepared_step_never_runs_when_a_step_before_it_failed(engine, settings, monkeypatch):
    def refused(context):
        raise UpstreamRefused("the GROW API refused every request")

    monkeypatch.setattr(runner, "STEPS", (("first", refused), ("second", lambda context: 2)))
    monkeypatch.setattr(runner, "PREPARE", {"second": lambda settings: time.sleep(0.2)})
    with pytest.raises(UpstreamRefused):
        run_nightly(settings, engine, Shard(), processes=True)
    assert runs(engine) == [("first", "failed", "the GROW API refused every request")]
    assert multiprocessing.active_children() == []  # no step left waiting


def test_a_step_killed_while_preparing_is_recorded_failed(engine, settings, monkeypatch):
    monkeypatch.setattr(runner, "STEPS", (("first", lambda context: 1), ("second", lambda context: 2)))
    monkeypatch.setattr(runner, "PREPARE", {"second": lambda settings: os.kill(os.getpid(), signal.SIGKILL)})
    with pytest.raises(StepDied, match=r"^second \(shard all\) was killed by SIGKILL"):
        run_nightly(settings, engine, Shard(), processes=True)
    assert runs(engine) == [
        ("first", "ok", None),
        ("second", "failed", "was killed by SIGKILL (out of memory?)"),
    ]


def test_a_process_a_step_forked_and_lost_is_told_as_it_died(engine, settings, monkeypatch):
    """The extract forks processes of its own: one killed says how, not that its parent ended quietly."""

    def forks(context):
        return Forked(_kill_self).result()

    monkeypatch.setattr(runner, "STEPS", (("first", forks),))
    with pytest.raises(ChildDied, match=r"^was killed by SIGKILL \(out of memory\?\)$"):
        run_nightly(settings, engine, Shard(), processes=True)
    assert runs(engine) == [("first", "failed", "was killed by SIGKILL (out of memory?)")]


def _kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_process_killed_with_its_word_to_go_unread_is_told_as_it_died(tmp_path):
    """Told to go while still preparing, then killed: its end of the pipe goes with our word unread in it,
    which resets the pipe rather than closing it; that too is a death (as under load, when the runner
    reaches a step before the step's process is done preparing)."""
    told = tmp_path / "told"

    def prepare():
        for _ in range(1000):
            if told.exists():
                break
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)

    forked = Forked(os.getpid, prepare=prepare)
    forked.go()
    told.touch()
    with pytest.raises(ChildDied, match=r"^was killed by SIGKILL \(out of memory\?\)$"):
        forked.result()


def test_a_failures_reason_is_stored_printable_and_bounded_and_the_run_recorded_failed(engine, settings):
    """Issue 32: a 10 MB one-line file was echoed whole into etl_runs.error, and a NUL in a reason made
    PostgreSQL refuse the record, leaving the run `running` and its reason lost."""
    from etl.runs import run_recorded
    from etl.step import StepContext

    def failing(context):
        raise UpstreamRefused("huge.csv: no column T (columns: " + "a\x00," * 5_000_000 + ")")

    with etl_lock(engine, Shard()), pytest.raises(UpstreamRefused):
        run_recorded(
            "store_sensor_info", failing, StepContext(settings, engine, Shard(), dt.datetime.now(dt.UTC))
        )
    [(_, status, error)] = runs(engine)
    assert status == "failed" and error.startswith("huge.csv: no column T (columns: a")
    assert len(error) <= 500 and error.isprintable()
