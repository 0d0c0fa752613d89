"""The Airflow DAG (deploy/airflow): its shape, and one nightly run of its tasks with 2 shards against
PostgreSQL giving the same database as `python -m etl run`. (Two shards map each sharded step as four
would, each shard a task of its own; every shard is a process, so four cost the run a quarter more.)

Airflow lives in its own environment (`make test` makes var/airflow-venv from
deploy/airflow/requirements.txt; AIRFLOW_PYTHON names another). Without it these tests are skipped with
the reason, except under CI (CI=true), where they fail.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.db import init_db, make_engine
from etl.settings import load_settings
from tests.factories import DATA_TABLES, RESULT_TABLES, SIMULATED_END, assert_same_database, snapshot

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_PYTHON = Path(os.environ.get("AIRFLOW_PYTHON", ROOT / "var" / "airflow-venv" / "bin" / "python"))
STEPS = [
    "store_sensor_info",
    "find_nearest_wow_live",
    "extract_all_grow_data",
    "detect_anomalies",
    "analyse_anomalies",
    "notify_owners",
]


if not AIRFLOW_PYTHON.exists():
    reason = f"no Airflow environment at {AIRFLOW_PYTHON} (make test creates it)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def airflow_env(home: Path, **extra) -> dict:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "deploy" / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GROW_WOW_PYTHON": sys.executable,
        "GROW_WOW_HOME": str(ROOT),
        **extra,
    }


def test_the_dag_has_the_six_steps_in_order_and_maps_the_two_sharded_ones(tmp_path):
    result = subprocess.run(
        [str(AIRFLOW_PYTHON), str(ROOT / "tests" / "airflow_dag_info.py"), str(ROOT / "deploy" / "airflow")],
        env=airflow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    dag = json.loads(result.stdout.strip().splitlines()[-1])
    assert dag["import_errors"] == {}
    tasks = {task["id"]: task for task in dag["tasks"]}
    order = [task["id"] for task in dag["tasks"] if task["id"] in STEPS]
    assert order == STEPS
    assert [name for name, task in tasks.items() if task["mapped"]] == [
        "extract_all_grow_data",
        "detect_anomalies",
    ]
    assert tasks["detect_anomalies"]["upstream"] == ["extract_all_grow_data", "shards"]
    assert tasks["analyse_anomalies"]["upstream"] == ["detect_anomalies"]
    assert tasks["notify_owners"]["upstream"] == ["analyse_anomalies"]
    assert all(task["retries"] == 3 and task["exponential_backoff"] for task in dag["tasks"])
    assert dag["catchup"] is False and dag["max_active_runs"] == 1 and dag["shards"] == 4
    assert dag["schedule"] == "30 2 * * *"  # nightly, as the cron host


@pytest.mark.postgres
def test_one_nightly_run_of_the_dag_with_2_shards_equals_the_runner(
    tmp_path, postgres_schemas, simulator, small_network
):
    url = simulator(serving=small_network)
    sources = {
        "GROW_API_URL": f"{url}/grow/api",
        "GROW_API_KEY": "sim-grow-key",
        "WOW_API_URL": f"{url}/wow/api",
        "WOW_API_KEY": "sim-wow-key",
        "ETL_NOW": SIMULATED_END,
        "HTTP_BACKOFF_S": "0.01",
    }
    by_runner, by_airflow = postgres_schemas(), postgres_schemas()
    for database in (by_runner, by_airflow):
        init_db(make_engine(load_settings(database_url=database)))

    runner = subprocess.run(
        [sys.executable, "-m", "etl", "run"],
        env={**os.environ, **sources, "DATABASE_URL": by_runner},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert runner.returncode == 0, runner.stderr[-3000:]

    env = airflow_env(tmp_path / "airflow", **sources, DATABASE_URL=by_airflow)
    airflow = [str(AIRFLOW_PYTHON), "-m", "airflow"]
    for command in (
        ["db", "migrate"],
        ["dags", "reserialize"],
        ["dags", "test", "grow_wow_nightly", "-c", '{"shards": 2}'],
    ):
        done = subprocess.run([*airflow, *command], env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (command, done.stdout[-3000:], done.stderr[-3000:])
    assert "state=success" in done.stdout + done.stderr

    runner_db = make_engine(load_settings(database_url=by_runner))
    airflow_db = make_engine(load_settings(database_url=by_airflow))
    with airflow_db.connect() as connection:
        shards = connection.exec_driver_sql(
            "SELECT step, shard FROM etl_runs WHERE status = 'ok' ORDER BY run_id"
        ).all()
    assert {shard for step, shard in shards if step == "detect_anomalies"} == {"1/2", "2/2"}
    assert {shard for step, shard in shards if step == "extract_all_grow_data"} == {"1/2", "2/2"}
    tables = (*DATA_TABLES, *RESULT_TABLES)
    expected, got = snapshot(runner_db, tables), snapshot(airflow_db, tables)
    assert len(expected["anomalies"]) > 0 and len(expected["readings"]) > 0
    assert_same_database(expected, got)
