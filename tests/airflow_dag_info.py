"""Run with Airflow's Python: load deploy/airflow, print the DAG's shape as JSON (for test_airflow.py)."""

import json
import sys

from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
dag = bag.dags["grow_wow_nightly"]
print(
    json.dumps(
        {
            "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
            "catchup": dag.catchup,
            "schedule": dag.timetable.expression,
            "max_active_runs": dag.max_active_runs,
            "shards": dag.params.get_param("shards").value,
            "tasks": [
                {
                    "id": task.task_id,
                    "mapped": type(task).__name__.endswith("MappedOperator"),
                    "upstream": sorted(task.upstream_task_ids),
                    "retries": task.retries,
                    "exponential_backoff": bool(task.retry_exponential_backoff),
                }
                for task in dag.topological_sort()
            ],
        }
    )
)
