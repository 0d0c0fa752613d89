"""What a database holds after the pipeline, as frames to compare: two runs that should agree must give
equal snapshots. Bookkeeping (row ids, when a row was written) is left out."""

import pandas as pd
from sqlalchemy import select

from core.schema import (
    anomalies,
    detection_state,
    readings,
    sensor_health,
    sensor_wow,
    sensors,
    wow_observations,
    wow_sites,
)

DATA_TABLES = (sensors, wow_sites, sensor_wow, readings, wow_observations)
RESULT_TABLES = (anomalies, sensor_health, detection_state)
BOOKKEEPING = {"updated_at", "detected_at", "anomaly_id"}


def snapshot(engine, tables=DATA_TABLES) -> dict[str, pd.DataFrame]:
    """Each table's rows without bookkeeping columns, sorted by every column left."""
    out = {}
    with engine.connect() as connection:
        for table in tables:
            columns = [c for c in table.columns if c.name not in BOOKKEEPING]
            frame = pd.DataFrame(
                connection.execute(select(*columns)).all(), columns=[c.name for c in columns]
            )
            order = [c.name for c in columns if c.name != "counts"]  # a JSON column does not sort
            out[table.name] = frame.sort_values(order, ignore_index=True)
    return out


def assert_same_database(left, right):
    for name in left:
        pd.testing.assert_frame_equal(left[name], right[name], check_dtype=False, obj=name)
