"""On PostgreSQL: three shard processes, started apart, equal one run."""

import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from core.schema import etl_runs
from etl.runner import run_nightly
from etl.shard import Shard
from tests.factories import DATA_TABLES, RESULT_TABLES, assert_same_database, etl_env, snapshot
from tests.scenarios.test_resilience import fresh

pytestmark = pytest.mark.postgres  # whole nightly runs and subprocesses


@pytest.fixture
def simulator(simulator, small_network):
    """The simulator serving the small network."""
    return lambda **options: simulator(serving=small_network, **options)


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
