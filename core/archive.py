"""The open-data archive as both sides see it: where each day's file lies (the nightly job writes them,
`etl.archive`), and a sensor's readings read back from them with DuckDB (the back end's ranges that reach
past what the database keeps)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from core.vocabulary import SENSOR_VARIABLES

VARIABLES = list(SENSOR_VARIABLES)


def day_path(day: dt.date, source: str) -> str:
    """A day and source's file, relative to the archive's folder (Hive-style partitions)."""
    return f"readings/day={day.isoformat()}/source={source}/readings.parquet"


def read_sensor(
    root: Path, sensor_id: str, source: str, start: dt.datetime, end: dt.datetime
) -> pd.DataFrame:
    """A sensor's archived readings from `start` to `end` (both included), in time order: ts and the
    variables. Only the files of the days asked are opened, and in them only the row groups that can
    hold the sensor (each file is sorted by sensor, with statistics)."""
    import duckdb

    columns = ["ts", *VARIABLES]
    files = [
        str(root / day_path(start.date() + dt.timedelta(days=i), source))
        for i in range((end.date() - start.date()).days + 1)
    ]
    files = [path for path in files if Path(path).exists()]
    if not files:
        return pd.DataFrame(columns=columns)
    with duckdb.connect() as connection:
        rows = connection.execute(
            f"SELECT {', '.join(columns)} FROM read_parquet(?) "
            "WHERE sensor_id = ? AND ts BETWEEN ? AND ? ORDER BY ts",
            [files, sensor_id, start, end],
        ).fetchall()
    frame = pd.DataFrame(rows, columns=columns)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    for name in VARIABLES:  # stored as float32: 23.45, not 23.450000762939453 (its shortest decimal)
        frame[name] = pd.to_numeric(frame[name].astype("float32").astype(str), errors="coerce")
    return frame
