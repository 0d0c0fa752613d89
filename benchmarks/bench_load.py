"""How fast readings go into the database through the bulk upsert, against what the storage can do.

Measured in one run, on PostgreSQL (DATABASE_URL, default the local server) in a scratch schema that is
dropped afterwards, each from rows held in a DataFrame to rows committed:

- bulk upsert into the empty readings store (new rows: the direct-COPY path of core.load into the monthly
  partitions of core.reading_store)
- bulk upsert of the same rows again (nothing may change: rows written and row count printed)
- bulk upsert into the text-keyed table readings were up to revision 0010 (`readings_by_id`, same columns,
  primary key (sensor_id, ts)); the strategies below are measured on that table too
- the staging merge alone (COPY to a temporary table, UPDATE changed, INSERT new)
- staging + INSERT … ON CONFLICT, the textbook upsert
- plain binary COPY into an empty table with the same primary key, rows handed over in key order: the
  ceiling
- row-by-row INSERT … ON CONFLICT on a subset
- bulk upsert into SQLite

    python benchmarks/bench_load.py --rows 1000000 --repeat 3
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import MetaData, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness
from benchmarks.scratch import Scratch
from core import load
from core.db import init_db, make_engine
from core.load import bulk_upsert, copy_payload
from core.schema import readings
from etl.settings import load_settings

VALUES = ["soil_moisture", "air_temperature", "light", "battery_level"]
# Readings as revisions 0001-0010 kept them on PostgreSQL: one table keyed on (sensor_id, ts).
by_id = readings.to_metadata(MetaData(), name="readings_by_id")


def synthetic_readings(rows: int, sensors: int, seed: int = 2019) -> pd.DataFrame:
    """15-minute readings of `sensors` sensors, about 1 % of values missing."""
    per_sensor = -(-rows // sensors)
    rng = np.random.default_rng(seed)
    ids = np.array([f"{rng.integers(16**8):08x}" for _ in range(sensors)], dtype=object)
    ts = pd.date_range("2019-03-01", periods=per_sensor, freq="15min", tz="UTC")
    frame = pd.DataFrame(
        {
            "sensor_id": np.repeat(ids, per_sensor)[:rows],
            "ts": np.tile(ts, sensors)[:rows],
            "soil_moisture": rng.uniform(5, 45, rows),
            "air_temperature": rng.normal(14, 6, rows),
            "light": rng.gamma(2, 3, rows),
            "battery_level": rng.uniform(10, 100, rows),
        }
    )
    for name in VALUES:
        frame.loc[rng.random(rows) < 0.01, name] = np.nan
    return frame


def checkpoint(engine) -> None:
    """Flush dirty pages so one measurement does not pay for the previous one's writes."""
    with engine.connect() as connection:
        try:
            connection.exec_driver_sql("CHECKPOINT")
        except Exception:
            connection.rollback()


def pg_measurements(engine, frame: pd.DataFrame) -> dict[str, float | int]:
    """One round of every PostgreSQL measurement; seconds per method."""
    out: dict[str, float | int] = {}

    def empty(table_name: str = "reading_rows, reading_series") -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"TRUNCATE {table_name}")
        checkpoint(engine)

    def upsert() -> int:
        with engine.begin() as connection:
            return bulk_upsert(connection, readings, frame)

    empty()
    out["upsert_new"], written = harness.timed(upsert)
    assert written == len(frame), written
    checkpoint(engine)
    out["upsert_again"], out["written_again"] = harness.timed(upsert)
    with engine.connect() as connection:
        out["rows_after_reload"] = connection.scalar(select(func.count()).select_from(readings))

    def upsert_by_id() -> int:
        with engine.begin() as connection:
            return bulk_upsert(connection, by_id, frame)

    empty("readings_by_id")
    out["upsert_by_id"], written = harness.timed(upsert_by_id)
    assert written == len(frame), written

    def staging_merge() -> int:
        with engine.begin() as connection:
            columns = load._prepare_frame(by_id, frame)
            return load._merge(connection, by_id, columns, ["sensor_id", "ts"])

    empty("readings_by_id")
    out["staging_merge"], _ = harness.timed(staging_merge)

    def staging_on_conflict() -> int:
        with engine.begin() as connection:
            payload = copy_payload(by_id, frame)
            cols = ", ".join(frame.columns)
            connection.exec_driver_sql(
                f"CREATE TEMP TABLE stage ON COMMIT DROP AS SELECT {cols} FROM readings_by_id WITH NO DATA"
            )
            cursor = connection.connection.cursor()
            cursor.copy_expert(f"COPY stage ({cols}) FROM STDIN WITH (FORMAT binary)", io.BytesIO(payload))
            updates = ", ".join(f"{v} = excluded.{v}" for v in VALUES)
            return connection.exec_driver_sql(
                f"INSERT INTO readings_by_id ({cols}) SELECT {cols} FROM stage "
                f"ON CONFLICT (sensor_id, ts) DO UPDATE SET {updates}"
            ).rowcount

    empty("readings_by_id")
    out["staging_on_conflict"], _ = harness.timed(staging_on_conflict)

    in_key_order = frame.sort_values(["sensor_id", "ts"])  # the ceiling gets the best order, untimed

    def plain_copy() -> None:
        with engine.begin() as connection:
            payload = copy_payload(by_id, in_key_order)
            cursor = connection.connection.cursor()
            cols = ", ".join(frame.columns)
            cursor.copy_expert(
                f"COPY copy_ceiling ({cols}) FROM STDIN WITH (FORMAT binary)", io.BytesIO(payload)
            )

    empty("copy_ceiling")
    out["plain_copy"], _ = harness.timed(plain_copy)
    return out


def row_by_row(engine, frame: pd.DataFrame) -> float:
    """Seconds for one INSERT … ON CONFLICT statement per row, the way the 2019 scripts wrote."""
    rows = [
        (r.sensor_id, r.ts.to_pydatetime(), *(None if pd.isna(v) else float(v) for v in r[2:]))
        for r in frame.itertuples(index=False)
    ]
    updates = ", ".join(f"{v} = excluded.{v}" for v in VALUES)
    sql = (
        f"INSERT INTO readings_by_id (sensor_id, ts, {', '.join(VALUES)}) VALUES (%s, %s, %s, %s, %s, %s) "
        f"ON CONFLICT (sensor_id, ts) DO UPDATE SET {updates}"
    )
    with engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE readings_by_id")
    checkpoint(engine)

    def insert_each() -> None:
        with engine.begin() as connection:
            cursor = connection.connection.cursor()
            for row in rows:
                cursor.execute(sql, row)

    seconds, _ = harness.timed(insert_each)
    return seconds


def sqlite_seconds(frame: pd.DataFrame) -> float:
    with harness.scratch_folder("load") as folder:
        engine = make_engine(load_settings(database_url=f"sqlite:///{folder}/bench.sqlite"))
        init_db(engine)

        def upsert() -> int:
            with engine.begin() as connection:
                return bulk_upsert(connection, readings, frame)

        seconds, written = harness.timed(upsert)
        assert written == len(frame), written
        engine.dispose()
        return seconds


def main() -> None:
    parser = harness.options(
        __doc__,
        rows=(1_000_000, "readings to load (default 1,000,000)"),
        sensors=(1_000, "sensors they belong to"),
        repeat=(3, "rounds; medians are reported"),
        row_by_row=(20_000, "rows for the row-by-row baseline"),
    )
    parser.add_argument("--sqlite-rows", type=int, default=None, help="rows for SQLite (default: --rows)")
    args = parser.parse_args()

    base = args.database_url
    with Scratch(base, "load") as scratch:
        engine = scratch.engine
        by_id.create(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE copy_ceiling (LIKE readings_by_id INCLUDING ALL)")
        frame = synthetic_readings(args.rows, args.sensors)
        rounds = [pg_measurements(engine, frame) for _ in range(args.repeat)]
        by_row = row_by_row(engine, frame.iloc[: args.row_by_row])
    sqlite_frame = frame.iloc[: args.sqlite_rows] if args.sqlite_rows else frame
    sqlite = harness.median(sqlite_seconds(sqlite_frame) for _ in range(args.repeat))

    median = harness.medians(rounds)
    rate = {
        key: len(frame) / median[key]
        for key in (
            "upsert_new",
            "upsert_again",
            "upsert_by_id",
            "staging_merge",
            "staging_on_conflict",
            "plain_copy",
        )
    }
    by_row_rate = args.row_by_row / by_row if args.row_by_row else float("nan")
    sqlite_rate = len(sqlite_frame) / sqlite

    print(
        f"{len(frame):,} readings of {args.sensors:,} sensors into {base.render_as_string()}, "
        f"median of {args.repeat} rounds"
    )
    lines = [
        ("bulk upsert, new rows (direct COPY path)", len(frame), median["upsert_new"], rate["upsert_new"]),
        ("bulk upsert, same rows again", len(frame), median["upsert_again"], rate["upsert_again"]),
        (
            "bulk upsert, the text-keyed table of 0010",
            len(frame),
            median["upsert_by_id"],
            rate["upsert_by_id"],
        ),
        (
            "staging merge alone (UPDATE + anti-join)",
            len(frame),
            median["staging_merge"],
            rate["staging_merge"],
        ),
        (
            "staging + INSERT … ON CONFLICT",
            len(frame),
            median["staging_on_conflict"],
            rate["staging_on_conflict"],
        ),
        ("plain COPY into an empty table (ceiling)", len(frame), median["plain_copy"], rate["plain_copy"]),
        ("row-by-row INSERT … ON CONFLICT", args.row_by_row, by_row, by_row_rate),
        ("bulk upsert into SQLite", len(sqlite_frame), sqlite, sqlite_rate),
    ]
    harness.table(
        [(*line, line[-1] / rate["plain_copy"]) for line in lines],
        {"method": "<44", "rows": ">10,", "seconds": ">8.2f", "rows/s": ">10,.0f", "vs COPY": ">8.2f"},
    )
    print(
        f"rows written by the reload: {median['written_again']:,.0f}; "
        f"rows in the table after it: {median['rows_after_reload']:,.0f}"
    )
    harness.finish(
        {
            "rows_per_s": round(rate["upsert_new"]),
            "ratio_vs_copy": round(rate["upsert_new"] / rate["plain_copy"], 3),
            "ratio_vs_row_by_row": round(rate["upsert_new"] / by_row_rate, 1),
            "sqlite_rows_per_s": round(sqlite_rate),
            "rows_after_reload": int(median["rows_after_reload"]),
        }
    )


if __name__ == "__main__":
    main()
