"""How fast, and in how much memory, `python -m etl import-2019` brings a 2019 deployment over.

A 2019-shaped database is built in one scratch schema of DATABASE_URL (default: the local PostgreSQL):
`all_sensor_info` and one `grow_data_<id>` table per sensor, as 2019's scripts made them, filled by COPY
(untimed). The import then runs as an operator runs it, in its own process, into a second scratch
schema; it is timed, and its peak memory (the process's maximum resident set) is read when it ends.
A second import of the same database is timed too: it must write nothing.

    python benchmarks/bench_import_2019.py --sensors 200 --days 90
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness
from benchmarks.harness import ROOT
from benchmarks.scratch import Scratch

SENSOR_DDL = """CREATE TABLE all_sensor_info(sensor_id varchar(8), days_active integer, start_date timestamp,
    end_date timestamp, latitude numeric, longitude numeric, address varchar(140), owner_id varchar(36))"""
TABLE_DDL = """CREATE TABLE {}(sensor_id varchar(8), datetime timestamp, soil_moisture numeric, light numeric,
    air_temperature numeric, battery_level numeric)"""
END = pd.Timestamp("2019-07-01")
# The import as the command runs it, then its own peak resident set (kB on Linux) on stderr.
CHILD = """
import resource, sys
from etl.cli import cli
try:
    cli(["import-2019"], standalone_mode=False)
finally:
    print("peak_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def build_2019(scratch: Scratch, sensors: int, days: int, seed: int = 2019) -> int:
    """The 2019 tables, filled; returns the readings written."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(END - pd.Timedelta(days=days), END, freq="15min", inclusive="left")
    ids = [f"{i:08x}"[-8:] for i in rng.choice(2**31, sensors, replace=False)]
    raw = scratch.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(SENSOR_DDL)
        for code in ids:
            cursor.execute(
                "INSERT INTO all_sensor_info VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    code,
                    days,
                    times[0],
                    times[-1],
                    float(rng.uniform(36, 60)),
                    float(rng.uniform(-9, 25)),
                    f"{code} Garden Lane Somewhere",
                    f"owner-{code[:3]}",
                ),
            )
            cursor.execute(TABLE_DDL.format(f"grow_data_{code}"))
            hours = (times.hour + times.minute / 60).to_numpy()
            table = pd.DataFrame(
                {
                    "sensor_id": code,
                    "datetime": times.strftime("%Y-%m-%d %H:%M:%S"),
                    "soil_moisture": (30 + rng.normal(0, 1, len(times))).round(2),
                    "light": np.clip(20 * np.sin((hours - 6) / 24 * 2 * np.pi), 0, None).round(2),
                    "air_temperature": (15 + 6 * np.sin((hours - 9) / 24 * 2 * np.pi)).round(2),
                    "battery_level": 80,
                }
            )
            buffer = io.StringIO()
            table.to_csv(buffer, index=False, header=False)
            buffer.seek(0)
            cursor.copy_expert(f"COPY grow_data_{code} FROM STDIN WITH CSV", buffer)
        raw.commit()
    finally:
        raw.close()
    return sensors * len(times)


def import_once(source_url: str, target_url: str) -> tuple[float, float, str]:
    """One import in its own process: (seconds, peak resident MB of that process, its last line)."""
    env = {**os.environ, "DATABASE_URL": target_url, "IMPORT_2019_URL": source_url, "LOG_LEVEL": "WARNING"}
    seconds, done = harness.timed(
        lambda: subprocess.run(
            [sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
    )
    peak_kb = int(next(line for line in done.stderr.splitlines() if line.startswith("peak_kb")).split()[1])
    return seconds, peak_kb / 1024, done.stdout.strip().splitlines()[-1]


def main() -> None:
    args = harness.options(
        __doc__,
        sensors=(200, "sensors (grow_data tables) of the 2019 database"),
        days=(90, "days of 15-minute readings each"),
    ).parse_args()
    base = args.database_url
    with Scratch(base, "old2019") as old, Scratch(base, "new") as new:
        readings = build_2019(old, args.sensors, args.days)
        seconds, peak_mb, said = import_once(old.url, new.url)
        again_seconds, again_mb, again_said = import_once(old.url, new.url)
        with new.engine.connect() as connection:
            stored = connection.scalar(text("SELECT count(*) FROM readings"))
    assert stored == readings, (stored, readings)
    print(f"import-2019 of {args.sensors} sensors × {args.days} days on {base.render_as_string()}")
    harness.table(
        [
            ("first import", readings, seconds, readings / seconds, peak_mb),
            ("again (writes nothing)", readings, again_seconds, None, again_mb),
        ],
        {"run": "<28", "readings": ">10,", "seconds": ">8.1f", "readings/s": ">11,.0f", "peak MB": ">8.0f"},
    )
    print(f"  {said}\n  {again_said}")
    harness.finish(
        {
            "readings": readings,
            "readings_per_s": round(readings / seconds),
            "peak_rss_mb": round(peak_mb),
            "again_seconds": round(again_seconds, 1),
        }
    )


if __name__ == "__main__":
    main()
