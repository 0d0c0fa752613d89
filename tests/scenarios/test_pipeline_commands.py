"""The nightly steps' commands and the runner's, each in a process of its own as cron runs them, against the
simulator over HTTP: `etl status`, the lock a second run meets, each step on its own, the Google key.
(Apart from tests/scenarios/test_pipeline.py, so that pytest -n runs the two files side by side.)"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from core.db import init_db, make_engine
from core.schema import etl_runs, sensors
from etl.locks import AlreadyRunning, etl_lock
from etl.runner import run_nightly
from etl.runs import run_recorded
from etl.settings import load_settings
from etl.shard import Shard
from etl.step import StepContext
from tests.factories import NOW, etl_env, pipeline_settings


@pytest.fixture
def simulator(simulator, small_network):
    """The simulator serving the small network."""
    return lambda **options: simulator(serving=small_network, **options)


def test_status_exits_0_after_a_good_night_and_1_when_it_is_too_old(tmp_path, simulator):
    database = f"sqlite:///{tmp_path}/status.sqlite"
    settings = pipeline_settings(database, simulator())
    engine = make_engine(settings)
    init_db(engine)
    run_nightly(settings, engine, Shard())
    env = {**os.environ, "DATABASE_URL": database}
    fresh = subprocess.run([sys.executable, "-m", "etl", "status"], env=env, capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "detect_anomalies" in fresh.stdout and "OK: the last nightly run finished" in fresh.stdout
    env["STATUS_MAX_AGE_HOURS"] = "0.0001"  # 0.36 s: the run above finished longer ago than that
    stale = subprocess.run([sys.executable, "-m", "etl", "status"], env=env, capture_output=True, text=True)
    assert stale.returncode == 1 and "STALE" in stale.stdout


def test_a_run_killed_earlier_is_marked_as_interrupted(tmp_path, simulator):
    database = f"sqlite:///{tmp_path}/killed.sqlite"
    settings = pipeline_settings(database, simulator())
    engine = make_engine(settings)
    init_db(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(etl_runs).values(step="store_sensor_info", started_at=NOW, status="running")
        )
    with etl_lock(engine, Shard()):
        run_recorded("store_sensor_info", lambda context: 0, StepContext(settings, engine, Shard(), NOW))
    with engine.connect() as connection:
        runs = connection.execute(
            select(etl_runs.c.status, etl_runs.c.error).order_by(etl_runs.c.run_id)
        ).all()
    assert runs == [("failed", "interrupted (killed or crashed)"), ("ok", None)]


def test_a_second_run_started_meanwhile_exits_at_once(database_url, simulator):
    engine = make_engine(load_settings(database_url=database_url))
    init_db(engine)
    with etl_lock(engine, Shard()):
        result = subprocess.run(
            [sys.executable, "-m", "etl", "run"],
            env=etl_env(database_url, simulator()),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 75
    assert result.stderr.strip() == "Error: another GROW–WOW run holds the lock of shard all; not starting"
    with pytest.raises(AlreadyRunning), etl_lock(engine, Shard()), etl_lock(engine, Shard()):
        pass


def test_an_in_memory_database_is_locked_too_by_a_file_in_the_temporary_folder():
    engine = make_engine(load_settings(database_url="sqlite://"))
    lock = Path(tempfile.gettempdir()) / "grow-wow-memory.etl-2of3.lock"
    with etl_lock(engine, Shard(2, 3)):
        assert lock.exists()
        with pytest.raises(AlreadyRunning), etl_lock(engine, Shard(2, 3)):
            pass
        with etl_lock(engine, Shard(1, 3)):  # another shard runs beside it
            pass


def test_each_step_runs_on_its_own_in_order(tmp_path, simulator):
    """Each step's own command, one after the other on one database: each reads what the one before
    wrote (one test, so that its steps never run apart, in processes of their own under pytest -n)."""
    database = f"sqlite:///{tmp_path}/steps.sqlite"
    init_db(make_engine(load_settings(database_url=database)))
    env = etl_env(database, simulator())
    for module, args, expect in [
        ("etl.store_sensor_info", [], "store_sensor_info (shard all): 40 rows written"),
        ("etl.find_nearest_wow_live", [], "find_nearest_wow_live (shard all): "),
        ("etl.extract_all_grow_data", ["--shard", "1/1"], "extract_all_grow_data (shard all): "),
        ("etl.detect_anomalies", [], "detect_anomalies (shard all): "),
        ("etl.analyse_anomalies", [], "analyse_anomalies (shard all): 20 rows written"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", module, *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, (module, result.stderr)
        assert expect in result.stdout, (module, result.stdout)


def test_store_sensor_info_takes_the_google_key_as_its_argument(tmp_path, simulator):
    database = f"sqlite:///{tmp_path}/google.sqlite"
    init_db(make_engine(load_settings(database_url=database)))
    url = simulator()
    env = etl_env(database, url, GOOGLE_API_URL=url)

    def store_sensor_info(key: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "etl.store_sensor_info", key]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    result = store_sensor_info("AIzaSim-google-key")
    assert result.returncode == 0, result.stderr
    with make_engine(load_settings(database_url=database)).connect() as connection:
        addresses = connection.scalars(select(sensors.c.address)).all()
    assert addresses and all(re.search(r" \d+, ", a) for a in addresses)  # Google's, to the street
    wrong = store_sensor_info("not-a-google-key")
    assert wrong.returncode == 1
    assert (
        wrong.stderr.strip().splitlines()[-1]
        == "Error: GOOGLE_API_KEY is not a Google API key (they start with AIza)"
    )


def test_the_nightly_run_takes_the_google_key_as_an_option(tmp_path, simulator):
    database = f"sqlite:///{tmp_path}/run.sqlite"
    init_db(make_engine(load_settings(database_url=database)))
    url = simulator()
    env = etl_env(database, url, GOOGLE_API_URL=url, LOG_LEVEL="WARNING")
    result = subprocess.run(
        [sys.executable, "-m", "etl", "run", "--google-api-key", "AIzaSim-google-key"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "AIzaSim-google-key" not in result.stderr
    with make_engine(load_settings(database_url=database)).connect() as connection:
        addresses = connection.scalars(select(sensors.c.address)).all()
    assert addresses and all(re.search(r" \d+, ", a) for a in addresses)
