"""Shards that equal one run, on SQLite and PostgreSQL: who owns which sensor, the wait between steps
(a sharded run goes on only when every shard finished the step), and one lock over overlapping plans."""

import datetime as dt
import logging
import re
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import insert, select

from core.db import make_engine
from core.schema import etl_runs, sensor_wow, sensors, wow_sites
from etl import runner, waits
from etl.locks import AlreadyRunning, etl_lock, shard_lock_held
from etl.runner import run_nightly
from etl.settings import load_settings
from etl.shard import Shard, sensor_sites
from etl.waits import ShardsDidNotFinish, wait_for_shards
from tests.factories import etl_env

UTC = dt.UTC
NO_TIME = dt.timedelta(seconds=0.3)  # a deadline a test can afford to pass


# --- who owns what --------------------------------------------------------------------------------------


def test_a_sensor_goes_with_its_station_and_without_one_by_its_own_id():
    parts = [Shard(i, 4) for i in (1, 2, 3, 4)]
    sensors_of_site = [f"sensor{i}" for i in range(40)]
    for sensor in sensors_of_site:  # whatever their own ids, a station's sensors share one owner
        assert [p.owns(sensor, "3021") for p in parts] == [p.contains("3021") for p in parts]
    for sensor in sensors_of_site:
        assert [p.owns(sensor) for p in parts] == [p.contains(sensor) for p in parts]
        assert sum(p.owns(sensor) for p in parts) == 1
    assert all(Shard().owns(s, "3021") for s in sensors_of_site)


def test_the_links_read_for_ownership_leave_out_sensors_without_a_station(engine):
    with engine.begin() as connection:
        connection.execute(insert(sensors), [{"sensor_id": s} for s in ("A1", "B2", "C3")])
        connection.execute(insert(wow_sites).values(site_id="900", latitude=51.5, longitude=-0.1))
        connection.execute(
            insert(sensor_wow),
            [
                {"sensor_id": "A1", "site_id": "900", "reason": None},
                {"sensor_id": "B2", "site_id": None, "reason": "no coordinates"},
            ],
        )
    with engine.connect() as connection:
        assert sensor_sites(connection) == {"A1": "900"}


# --- the lock over overlapping plans ----------------------------------------------------------------------


def refusal(engine, held: Shard, wanted: Shard) -> str:
    """Why a run of `wanted` is refused while one of `held` runs."""
    with etl_lock(engine, held), pytest.raises(AlreadyRunning) as refused, etl_lock(engine, wanted):
        pass
    return str(refused.value)


def test_a_whole_run_and_a_shard_run_exclude_each_other_both_ways(engine):
    assert refusal(engine, Shard(), Shard(1, 4)) == (
        "another GROW–WOW run of plan 'all' is running and overlaps shard 1/4; not starting"
    )
    assert refusal(engine, Shard(1, 4), Shard()) == (
        "another GROW–WOW run of plan '4 shards' is running and overlaps shard all; not starting"
    )


def test_shard_runs_of_different_counts_exclude_each_other(engine):
    # crc mod 16 = 0 implies crc mod 4 = 0: shard 1/16 shares its sensors with 1/4
    assert "plan '4 shards' is running and overlaps shard 1/16" in refusal(engine, Shard(1, 4), Shard(1, 16))
    assert "plan '16 shards' is running and overlaps shard 2/4" in refusal(engine, Shard(1, 16), Shard(2, 4))
    assert "plan '4 shards' is running and overlaps shard 2/3" in refusal(engine, Shard(1, 4), Shard(2, 3))


def test_shards_of_one_plan_run_together(engine):
    with etl_lock(engine, Shard(1, 4)), etl_lock(engine, Shard(2, 4)), etl_lock(engine, Shard(4, 4)):
        pass


def test_the_same_shard_twice_excludes(engine):
    assert refusal(engine, Shard(1, 4), Shard(1, 4)) == (
        "another GROW–WOW run holds the lock of shard 1/4 (plan of 4 shards); not starting"
    )
    assert refusal(engine, Shard(), Shard()) == (
        "another GROW–WOW run holds the lock of shard all; not starting"
    )


def test_every_lock_is_released_when_the_run_ends_even_by_an_exception(engine):
    with pytest.raises(RuntimeError), etl_lock(engine, Shard(1, 4)), etl_lock(engine, Shard(2, 4)):
        raise RuntimeError("a step crashed")
    with etl_lock(engine, Shard()):  # no plan of 4 is left behind
        pass
    with pytest.raises(AlreadyRunning), etl_lock(engine, Shard(1, 4)), etl_lock(engine, Shard(1, 4)):
        pass
    with etl_lock(engine, Shard(1, 16)):  # the refused one left nothing behind either
        pass


@pytest.mark.slow  # a subprocess
def test_a_whole_run_started_while_a_shard_runs_exits_75_naming_the_plan(database_url, engine):
    with etl_lock(engine, Shard(3, 4)):
        result = subprocess.run(
            [sys.executable, "-m", "etl", "run"],
            env=etl_env(database_url, "http://127.0.0.1:9"),  # never reached
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 75, result.stderr
    assert result.stderr.strip() == (
        "Error: another GROW–WOW run of plan '4 shards' is running and overlaps shard all; not starting"
    )


# --- the wait between steps ------------------------------------------------------------------------------


def record(engine, step, shard, status, error=None, started=None):
    with engine.begin() as connection:
        connection.execute(
            insert(etl_runs).values(
                step=step,
                shard=shard,
                status=status,
                error=error,
                started_at=started or dt.datetime.now(UTC),
            )
        )


def wait(engine, since=None):
    """Shard 1/3 waits, briefly, for the others to finish the extract."""
    since = since or dt.datetime.now(UTC) - dt.timedelta(hours=1)
    wait_for_shards(engine, Shard(1, 3), "extract_all_grow_data", since, deadline=NO_TIME, poll_s=0.05)


def test_the_wait_ends_when_every_other_shard_finished_the_step(engine):
    record(engine, "extract_all_grow_data", "2/3", "ok")
    record(engine, "extract_all_grow_data", "3/3", "ok")
    wait(engine)


def test_a_failed_shard_step_stops_the_waiting_shards_with_its_error(engine):
    record(engine, "extract_all_grow_data", "2/3", "ok")
    record(engine, "extract_all_grow_data", "3/3", "failed", "SourceError: GROW API: 503 after 5 tries")
    started = time.monotonic()
    with pytest.raises(ShardsDidNotFinish) as stopped:
        since = dt.datetime.now(UTC) - dt.timedelta(hours=1)
        wait_for_shards(engine, Shard(1, 3), "extract_all_grow_data", since, deadline=dt.timedelta(minutes=5))
    assert time.monotonic() - started < 1  # at once, not at the deadline
    assert str(stopped.value) == (
        "shard 3/3 failed extract_all_grow_data (SourceError: GROW API: 503 after 5 tries); "
        "shard 1/3 does not go on"
    )


def test_a_shard_still_missing_at_the_deadline_is_named(engine):
    record(engine, "extract_all_grow_data", "2/3", "running")
    record(engine, "store_sensor_info", "3/3", "ok")
    with etl_lock(engine, Shard(2, 3)), pytest.raises(ShardsDidNotFinish) as stopped:  # 2/3 is alive
        wait(engine)
    assert re.fullmatch(
        r"shards 2/3, 3/3 did not finish extract_all_grow_data within [\d.]+ minutes "
        r"\(SHARD_WAIT_MINUTES\); shard 1/3 does not go on",
        str(stopped.value),
    )


def test_records_of_an_earlier_night_or_another_plan_do_not_count(engine):
    night = dt.datetime.now(UTC) - dt.timedelta(minutes=5)
    record(engine, "extract_all_grow_data", "2/3", "ok", started=night - dt.timedelta(days=1))
    record(engine, "extract_all_grow_data", "3/3", "failed", "old", started=night - dt.timedelta(days=1))
    record(engine, "extract_all_grow_data", "2/4", "ok")
    record(engine, "extract_all_grow_data", None, "ok")
    with pytest.raises(ShardsDidNotFinish, match=r"^shards 2/3, 3/3 did not finish"):
        wait(engine, since=night)


def test_a_failed_shard_run_again_is_waited_for_not_given_up(engine):
    record(engine, "extract_all_grow_data", "2/3", "ok")
    record(engine, "extract_all_grow_data", "3/3", "failed", "killed")
    record(engine, "store_sensor_info", "3/3", "running")  # someone started shard 3/3 again
    with etl_lock(engine, Shard(3, 3)), pytest.raises(ShardsDidNotFinish, match=r"^shard 3/3 did not finish"):
        wait(engine)
    record(engine, "extract_all_grow_data", "3/3", "ok")
    wait(engine)


# --- a shard killed outright: its record says running, but nobody holds its lock -----------------------

DEAD = (
    "shard 2/3 stopped during extract_all_grow_data without a word (killed?): its run is marked running "
    "but nobody holds its lock; shard 1/3 does not go on"
)


def test_whether_a_shard_lock_is_held_is_seen_from_outside(engine):
    assert not shard_lock_held(engine, Shard(2, 3))
    with etl_lock(engine, Shard(2, 3)):
        assert shard_lock_held(engine, Shard(2, 3))
        assert not shard_lock_held(engine, Shard(1, 3))
        assert not shard_lock_held(engine, Shard(2, 4))  # another plan's shard 2 is another lock
        assert not shard_lock_held(engine, Shard())
    assert not shard_lock_held(engine, Shard(2, 3))
    with etl_lock(engine, Shard()):
        assert shard_lock_held(engine, Shard())
    with etl_lock(engine, Shard(2, 3)):  # looking took nothing away
        pass


def test_looking_at_a_lock_of_sqlite_leaves_no_file_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'grow_wow.sqlite'}")
    engine = make_engine(load_settings())
    assert not shard_lock_held(engine, Shard(2, 3))
    assert list(tmp_path.iterdir()) == []


def test_a_shard_running_without_its_lock_stops_the_waiting_shards_at_once(engine):
    record(engine, "extract_all_grow_data", "2/3", "running")  # its process was killed: nobody holds 2/3
    record(engine, "extract_all_grow_data", "3/3", "ok")
    started = time.monotonic()
    with pytest.raises(ShardsDidNotFinish) as stopped:
        since = dt.datetime.now(UTC) - dt.timedelta(hours=1)
        wait_for_shards(engine, Shard(1, 3), "extract_all_grow_data", since, deadline=dt.timedelta(seconds=5))
    assert time.monotonic() - started < 2  # at once, not at the deadline
    assert str(stopped.value) == DEAD


def test_a_shard_killed_during_an_earlier_step_is_named_with_that_step(engine):
    record(engine, "store_sensor_info", "2/3", "running")
    with pytest.raises(ShardsDidNotFinish, match=r"^shard 2/3 stopped during store_sensor_info without"):
        wait(engine)


def test_a_shard_running_with_its_lock_held_is_waited_for(engine):
    record(engine, "extract_all_grow_data", "2/3", "running")
    record(engine, "extract_all_grow_data", "3/3", "ok")
    with etl_lock(engine, Shard(2, 3)), pytest.raises(ShardsDidNotFinish) as stopped:
        wait(engine)
    assert re.fullmatch(r"shard 2/3 did not finish extract_all_grow_data within .*", str(stopped.value))


def test_a_shard_not_started_yet_is_waited_for_though_it_holds_no_lock(engine):
    record(engine, "extract_all_grow_data", "3/3", "ok")
    with pytest.raises(ShardsDidNotFinish, match=r"^shard 2/3 did not finish"):
        wait(engine)


def test_a_shard_that_finishes_while_its_lock_is_looked_at_is_not_called_dead(engine, monkeypatch):
    record(engine, "extract_all_grow_data", "2/3", "running")
    record(engine, "extract_all_grow_data", "3/3", "ok")

    def finishing_meanwhile(engine, shard):  # its last write, then its lock let go, just before we look
        record(engine, "extract_all_grow_data", "2/3", "ok")
        return False

    monkeypatch.setattr(waits, "shard_lock_held", finishing_meanwhile)
    wait(engine)


def test_a_dead_shard_that_finished_the_step_before_dying_does_not_stop_the_wait(engine):
    record(engine, "extract_all_grow_data", "2/3", "ok")
    record(engine, "detect_anomalies", "2/3", "running")  # killed in the next step: the next wait says so
    record(engine, "extract_all_grow_data", "3/3", "ok")
    wait(engine)


@pytest.mark.slow  # a subprocess
def test_a_shard_process_killed_outright_stops_the_waiting_shards_at_once(database_url, engine):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SHARD_2_OF_3],
        env=etl_env(database_url, "http://127.0.0.1:9"),  # never reached
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        record(engine, "extract_all_grow_data", "2/3", "running")
        record(engine, "extract_all_grow_data", "3/3", "ok")
        with pytest.raises(ShardsDidNotFinish, match=r"^shard 2/3 did not finish"):
            wait(engine)  # alive: waited for
    finally:
        holder.kill()  # SIGKILL: no word, no record
        holder.wait(timeout=30)
        holder.stdout.close()
    started = time.monotonic()
    with pytest.raises(ShardsDidNotFinish) as stopped:
        since = dt.datetime.now(UTC) - dt.timedelta(hours=1)
        wait_for_shards(
            engine, Shard(1, 3), "extract_all_grow_data", since, deadline=dt.timedelta(minutes=1), poll_s=0.05
        )
    assert time.monotonic() - started < 20  # the server notices the dead session in moments, not an hour
    assert str(stopped.value) == DEAD


HOLD_SHARD_2_OF_3 = """
import time
from core.db import make_engine
from etl.settings import load_settings
from etl.shard import Shard
from etl.locks import etl_lock

with etl_lock(make_engine(load_settings()), Shard(2, 3)):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_sharded_run_waits_for_the_others_between_steps(engine, settings, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="etl.waits")
    done = []
    monkeypatch.setattr(waits, "SHARD_POLL_S", 0.05)
    monkeypatch.setattr(
        runner, "STEPS", (("first", lambda context: done.append("first") or 1), ("second", lambda c: 2))
    )

    def the_other_shard():
        time.sleep(0.5)
        done.append("first of 2/2")
        record(engine, "first", "2/2", "ok")

    other = threading.Thread(target=the_other_shard)
    other.start()
    reports = run_nightly(settings, engine, Shard(1, 2))
    other.join()
    assert [r.name for r in reports] == ["first", "second"]
    assert done == ["first", "first of 2/2"]  # the second step waited for the other shard's first
    assert reports[0].seconds < 0.4  # a step's time leaves the wait out
    assert "waiting for shard 2/2 to finish first" in caplog.messages


def test_a_sharded_run_stops_before_the_next_step_when_another_shard_failed(engine, settings, monkeypatch):
    monkeypatch.setattr(runner, "STEPS", (("first", lambda context: 1), ("second", lambda context: 2)))
    record(engine, "first", "2/2", "failed", "StepFailed: the GROW API refused every request")
    with pytest.raises(ShardsDidNotFinish, match=r"^shard 2/2 failed first \(StepFailed: the GROW"):
        run_nightly(settings, engine, Shard(1, 2))
    with engine.connect() as connection:
        steps = connection.execute(select(etl_runs.c.step).where(etl_runs.c.shard == "1/2")).scalars().all()
    assert steps == ["first"]
    with etl_lock(engine, Shard()):  # the stopped shard let go of its lock
        pass


def test_a_whole_run_never_waits(engine, settings, monkeypatch):
    monkeypatch.setattr(runner, "STEPS", (("first", lambda context: 1), ("second", lambda context: 2)))
    record(engine, "first", "2/2", "failed", "not this plan")
    assert [r.rows for r in run_nightly(settings, engine, Shard())] == [1, 2]
