"""On PostgreSQL: a killed extract resumed equals one clean run; three shard processes, started apart,
equal one run."""

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
    DATA_TABLES,
    NOW,
    RESULT_TABLES,
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


HEAD_START_S = 3  # what shard 1/3 gets alone after its first step: time enough to run ahead, if it could


def start_shard(shard, env, folder):
    log = open(folder / f"shard-{shard.replace('/', 'of')}.log", "w")  # noqa: SIM115 - closed by the test
    command = [sys.executable, "-m", "etl", "run", "--shard", shard]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log


def shard_steps(engine, shard, status=None) -> list[str]:
    """The steps a shard has recorded (with that status), in order."""
    query = select(etl_runs.c.step).where(etl_runs.c.shard == shard).order_by(etl_runs.c.run_id)
    if status:
        query = query.where(etl_runs.c.status == status)
    with engine.connect() as connection:
        return list(connection.execute(query).scalars())


def test_three_shard_processes_started_apart_equal_one_unsharded_run(postgres_schemas, simulator, tmp_path):
    url = simulator()
    whole_settings, whole = fresh(postgres_schemas(), url)
    run_nightly(whole_settings, whole, Shard())

    sharded_url = postgres_schemas()
    _, sharded = fresh(sharded_url, url)
    env = etl_env(sharded_url, url, SHARD_WAIT_MINUTES="5")
    # Shard 1/3 starts alone, as on a host whose cron fired first; the others start once its first step
    # is recorded, and a while later, so it had every chance to go on without them.
    shards = [start_shard("1/3", env, tmp_path)]
    try:
        for _ in range(1200):
            if "store_sensor_info" in shard_steps(sharded, "1/3", "ok") or shards[0][0].poll() is not None:
                break
            time.sleep(0.1)
        assert "store_sensor_info" in shard_steps(sharded, "1/3", "ok"), (
            tmp_path / "shard-1of3.log"
        ).read_text()
        time.sleep(HEAD_START_S)
        alone = shard_steps(sharded, "1/3")
        shards += [start_shard(f"{i}/3", env, tmp_path) for i in (2, 3)]
        for process, _ in shards:
            process.wait(timeout=300)
    finally:
        for process, log in shards:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    logs = [path.read_text()[-3000:] for path in sorted(tmp_path.glob("shard-*.log"))]
    assert [process.returncode for process, _ in shards] == [0, 0, 0], logs
    tables = DATA_TABLES + RESULT_TABLES  # detection and analysis too: they saw every shard's readings
    assert_same_database(snapshot(sharded, tables), snapshot(whole, tables))
    assert alone == ["store_sensor_info"], "shard 1/3 went on before the others had stored their sensors"
    with sharded.connect() as connection:
        recorded = (
            connection.execute(select(etl_runs.c.shard).distinct().order_by(etl_runs.c.shard)).scalars().all()
        )
    assert recorded == ["1/3", "2/3", "3/3"]
    assert len(snapshot(whole)["readings"]) > 20_000


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
