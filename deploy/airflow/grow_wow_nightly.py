"""GROW–WOW's nightly job as an Airflow DAG (Airflow 3, TaskFlow API), for networks larger than one
machine: the six steps in order, `extract_all_grow_data` and `detect_anomalies` mapped over sensor
shards (`--shard i/n`) so Airflow's executors run the shards in parallel, on any number of workers.

Each task runs a step's own command in the GROW–WOW environment (GROW_WOW_PYTHON, GROW_WOW_HOME), so
Airflow's Python needs none of the project's packages. The steps read their settings from the worker's
environment as on the cron host (USE_AWS_SECRETS=true takes them from Secrets Manager); they share nothing
but the database. A shard's step holds its own lock; a step that fails is retried with growing waits.
"""

from __future__ import annotations

import os
import shlex
from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task

PYTHON = os.environ.get("GROW_WOW_PYTHON", "/opt/grow-wow/.venv/bin/python")
HOME = os.environ.get("GROW_WOW_HOME", "/opt/grow-wow")


def step(module: str, *args: str) -> str:
    """The shell command of one step, run from the project folder."""
    return f"cd {shlex.quote(HOME)} && exec {shlex.quote(PYTHON)} -m etl.{module} " + " ".join(
        shlex.quote(arg) for arg in args
    )


@dag(
    dag_id="grow_wow_nightly",
    description="GROW sensors checked against the nearest WOW stations, every night",
    schedule="30 2 * * *",  # 02:30 UTC, as the cron host
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,  # a missed night is caught up by the next one: every step is incremental
    max_active_runs=1,
    default_args={
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
    },
    params={"shards": Param(4, type="integer", minimum=1, maximum=256, description="sensor shards")},
    tags=["grow-wow"],
)
def grow_wow_nightly():
    @task.bash
    def store_sensor_info() -> str:
        return step("store_sensor_info")

    @task.bash
    def find_nearest_wow_live() -> str:
        return step("find_nearest_wow_live")

    @task
    def shards(params=None) -> list[str]:
        """'1/n' … 'n/n' for the mapped steps."""
        count = int(params["shards"])
        return [f"{index}/{count}" for index in range(1, count + 1)]

    @task.bash
    def extract_all_grow_data(shard: str) -> str:
        return step("extract_all_grow_data", "--shard", shard)

    @task.bash
    def detect_anomalies(shard: str) -> str:
        return step("detect_anomalies", "--shard", shard)

    @task.bash
    def analyse_anomalies() -> str:
        return step("analyse_anomalies")

    @task.bash
    def notify_owners() -> str:
        return step("notify_owners")

    parts = shards()
    store_sensor_info() >> find_nearest_wow_live() >> parts
    extracted = extract_all_grow_data.expand(shard=parts)
    detected = detect_anomalies.expand(shard=parts)
    extracted >> detected >> analyse_anomalies() >> notify_owners()


grow_wow_nightly()
