"""On PostgreSQL: a killed extract resumed equals one clean run; the extract in two processes equals it in
one. (Three shard processes started apart: test_resilience_shards.py, run beside these under pytest -n.)"""

import datetime as dt
import random
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from core.db import init_db, make_engine
from core.schema import etl_runs, readings
from etl.runner import run_nightly
from etl.shard import Shard
from tests.factories import (
    NOW,
    assert_same_database,
    etl_env,
    pipeline_settings,
    snapshot,
)

pytestmark = pytest.mark.postgres  # whole nightly runs and subprocesses

UTC = dt.UTC


@pytest.fixture
def simulator(simulator, small_network):
    """The simulator serving the small network."""
    return lambda **options: simulator(serving=small_network, **options)


def fresh(url, simulator_url):
    settings = pipeline_settings(url, simulator_url)
    engine = make_engine(settings)
    init_db(engine)
    return settings, engine


def test_killing_the_extract_and_running_it_again_equals_one_clean_run(postgres_schemas, simulator):
    url = simulator(latency_ms=300)
    clean_settings, clean = fresh(postgres_schemas(), url)
    run_nightly(clean_settings, clean, Shard())

    victim_url = postgres_schemas()
    settings, victim = fresh(victim_url, url)
    from etl import find_nearest_wow_live, store_sensor_info
    from etl.step import StepContext

    context = StepContext(settings, victim, Shard(), NOW)
    store_sensor_info.run(context)
    find_nearest_wow_live.run(context)

    env = etl_env(victim_url, url, LOAD_BATCH_ROWS="1000", FETCH_WORKERS="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "etl.extract_all_grow_data"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    loaded = 0
    for _ in range(600):  # wait until it has written something, then kill it at a random moment
        with victim.connect() as connection:
            loaded = connection.scalar(select(func.count()).select_from(readings))
        if loaded:
            break
        time.sleep(0.05)
    delay = random.Random(13).uniform(0, 1.0)  # seeded: a failure is repeated by the next run
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the extract finished before it could be killed"
    partial = snapshot(victim)["readings"]
    assert 0 < len(partial) < len(snapshot(clean)["readings"]), f"killed {delay:.2f} s after the first rows"

    again = subprocess.run(
        [sys.executable, "-m", "etl.extract_all_grow_data"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert_same_database(snapshot(victim), snapshot(clean))
    with victim.connect() as connection:
        statuses = connection.execute(
            select(etl_runs.c.status, etl_runs.c.error)
            .where(etl_runs.c.step == "extract_all_grow_data")
            .order_by(etl_runs.c.run_id)
        ).all()
    assert statuses == [("failed", "interrupted (killed or crashed)"), ("ok", None)]


@pytest.mark.parametrize("misbehaviour", [{}, {"infinity_rate": 1.0}], ids=["clean", "every-value-infinite"])
def test_the_extract_in_two_processes_equals_it_in_one(postgres_schemas, simulator, misbehaviour):
    """On PostgreSQL the GROW answers are checked in GROW_PROCESSES processes side by side: the night is
    the same, what was quarantined and counted included."""
    url = simulator(**misbehaviour)
    nights = []
    for processes in (1, 2):
        database = postgres_schemas()
        settings = pipeline_settings(database, url, grow_processes=processes)
        engine = make_engine(settings)
        init_db(engine)
        run_nightly(settings, engine, Shard())
        with engine.connect() as connection:
            counts = connection.scalar(
                select(etl_runs.c.counts).where(etl_runs.c.step == "extract_all_grow_data")
            )
        nights.append((snapshot(engine), counts))
    (one, one_counts), (two, two_counts) = nights
    assert_same_database(two, one)
    assert two_counts == one_counts
    if misbehaviour:
        assert one_counts and sum(one_counts.values()) > 0  # the counts came back from the processes
