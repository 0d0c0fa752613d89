"""A network of 100,000 sensors: what a reading costs stored and archived, how the map and a sensor's
readings answer on it, and what a night costs a reading beside GROW's 6,500 (issue 34).

1. Storage: a scratch schema of DATABASE_URL (default: the local PostgreSQL) filled with `--sensors`
   sensors × `--days` days of 15-minute readings (as bench_api fills it, untimed); PostgreSQL's own sizes
   of the readings table's heap and indexes over its rows.
2. Archive: `etl.archive` writes those days as Parquet; its bytes over the readings, and its seconds.
3. The map: the back end's `/api/v1/map` for a new visitor (gzip-compressed, as the dashboard sends it)
   and its p95 over `--requests` requests.
4. Readings: the year before the fill archived as `--sensors` sensors' months are (by sensor, in hash
   buckets; the one bucket read is written full size), the first half of the fill's days dropped from the
   database (as READINGS_KEEP_MONTHS would, the archive verified first), and the readings route asked for
   a year of random sensors of that bucket, most from the archive (pyarrow) and the rest from the
   database: its p95.
5. Nightly (unless --skip-nightly): `bench_nightly`'s night at `--baseline-sensors` and at
   `--nightly-sensors`, each over a history of `--history-days`: seconds and µs per new reading.

    python benchmarks/bench_scale.py --sensors 100000 --days 2 --nightly-sensors 100000
"""

from __future__ import annotations

import datetime as dt
import gzip
import random
import sys
import time
from pathlib import Path

from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness
from benchmarks.bench_api import END, fill
from benchmarks.scratch import Scratch
from core.schema import readings, sensors
from core.vocabulary import SENSOR_VARIABLES
from tests.factories import TOKEN

PARTS = ("storage", "archive", "map", "readings")
VARIABLE_NAMES = list(SENSOR_VARIABLES)


def storage(engine) -> dict:
    with engine.connect() as connection:
        count = connection.scalar(select(func.count()).select_from(readings))
        heap = connection.scalar(text("SELECT pg_relation_size('readings')"))
        index = connection.scalar(text("SELECT pg_indexes_size('readings')"))
    return {"readings": count, "heap": heap / count, "index": index / count, "total": (heap + index) / count}


def archive(engine, folder: Path, days: int) -> dict:
    from core.archive import read_manifest
    from etl.archive import archive as write_archive

    now = END.to_pydatetime() + dt.timedelta(days=3)  # every day of the fill finished
    seconds, done = harness.timed(lambda: write_archive(engine, folder, now, 3, "CC BY 4.0"))
    files = read_manifest(folder)["files"].values()
    rows, size = sum(f["rows"] for f in files), sum(f["bytes"] for f in files)
    return {
        "seconds": seconds,
        "rows": rows,
        "bytes": size,
        "per_reading": size / rows,
        "files": done["written"],
    }


def back_end(url: str, archive_dir: Path):
    from flask_back_end import create_app
    from flask_back_end.settings import load_settings

    return create_app(load_settings(database_url=url, backend_token=TOKEN, archive_dir=str(archive_dir)))


def map_answer(app, requests: int) -> dict:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with app.test_client() as client:
        first, answer = harness.timed(lambda: client.get("/api/v1/map", headers=headers))
        body = answer.get_data()
        times, _ = harness.rounds(requests, lambda: client.get("/api/v1/map", headers=headers).get_data())
    return {
        "first_seconds": first,
        "kb": len(body) / 1024,
        "gzip_kb": len(gzip.compress(body, 6)) / 1024,
        "p95_ms": percentile(times, 95) * 1000,
    }


def archived_year(folder: Path, ids: list[str], days: int) -> list[str]:
    """The year before the fill, archived as a network of len(ids) sensors keeps it: each finished month
    written by sensor (`etl.archive_months`) in as many buckets as that many sensors' month needs. Only
    one bucket is written (its sensors' files are those a reader of them opens, full size), and the
    sensors it holds are returned: the readings route is timed on them."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.archive import (
        bucket_of,
        month_key,
        month_path,
        open_store,
        parquet_options,
        read_manifest,
        write_manifest,
    )
    from etl.archive import SCHEMA
    from etl.archive_months import SENSOR_FILE_ROWS

    store = open_store(folder)
    manifest = read_manifest(store)
    buckets = max(1, -(-len(ids) * 96 * 30 // SENSOR_FILE_ROWS))
    held = sorted(sensor for sensor in ids if bucket_of(sensor, buckets) == 0)
    rng = np.random.default_rng(34)
    first = END - pd.Timedelta(days=days)
    this_month = pd.Timestamp(first.year, first.month, 1, tz="UTC")
    for month in pd.date_range(this_month - pd.DateOffset(months=12), periods=12, freq="MS"):
        times = pd.date_range(month, month + pd.DateOffset(months=1), freq="15min", inclusive="left")
        count = len(held) * len(times)
        frame = pd.DataFrame(
            {
                "sensor_id": np.repeat(held, len(times)),
                "ts": np.tile(times, len(held)),
                **{name: rng.uniform(0, 40, count).round(1) for name in VARIABLE_NAMES},
                "anomalies": None,
                "health": "healthy",
            }
        )
        path = month_path(month.date(), "grow", 0, buckets)
        buffer = pa.BufferOutputStream()
        pq.write_table(
            pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False), buffer, **parquet_options()
        )
        data = buffer.getvalue().to_pybytes()
        store.write_bytes(path, data)
        manifest["months"][month_key(month.date(), "grow")] = {
            "buckets": buckets,
            "days": "bench",
            "rows": count,
            "files": {path: {"rows": count, "bytes": len(data), "sha256": "-"}},
        }
    write_manifest(store, manifest)
    return held


def readings_answer(
    app, engine, days: int, requests: int, seed: int = 7, held: list[str] | None = None
) -> dict:
    """A year of random sensors: the months before the fill from the archive (`archived_year`), the fill's
    days half from the archive, half from the database."""
    from core.schema import readings as table

    half = END.to_pydatetime() - dt.timedelta(days=days - days // 2)
    with engine.begin() as connection:
        dropped = connection.execute(table.delete().where(table.c.ts < half)).rowcount
        ids = held or connection.execute(select(sensors.c.sensor_id)).scalars().all()
    start = (END - dt.timedelta(days=365)).isoformat()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    chosen = random.Random(seed).sample(ids, min(requests, len(ids)))
    counts = []
    with app.test_client() as client:

        def ask(sensor_id: str) -> None:
            params = {"start": start, "end": END.isoformat(), "max_points": 2000}
            counts.append(
                client.get(
                    f"/api/v1/sensors/{sensor_id}/readings", headers=headers, query_string=params
                ).json["readings"]
            )

        times = [harness.timed(lambda s=s: ask(s))[0] for s in chosen]
    return {
        "p95_ms": percentile(times, 95) * 1000,
        "dropped": dropped,
        "readings_per_answer": harness.median(counts),
    }


def nightly(base, sensors_count: int, history_days: int, shards: int) -> dict:
    from benchmarks.bench_nightly import nightly as one_night

    night = one_night(base, sensors_count, history_days, shards)
    return {**night, "us_per_reading": night["seconds"] * 1e6 / max(1, night["new_readings"])}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main() -> None:
    args = harness.options(
        __doc__,
        sensors=(100_000, "sensors of the stored network (parts 1-4)"),
        days=(2, "days of 15-minute readings each"),
        requests=(50, "requests timed for the map and for readings"),
        nightly_sensors=(100_000, "sensors of the large night"),
        baseline_sensors=(6_500, "sensors of the night it is held against"),
        history_days=(1, "days loaded before each timed night"),
        shards=(4, "shard processes of each sharded night"),
        skip_nightly=(False, "measure parts 1-4 only"),
    ).parse_args()
    base = args.database_url
    with Scratch(base, "scale") as scratch, harness.scratch_folder("scale") as folder:
        started = time.perf_counter()
        fill(scratch.engine, args.sensors, args.days)
        print(f"filled {args.sensors:,} sensors × {args.days} days in {time.perf_counter() - started:.0f} s")
        stored = storage(scratch.engine)
        archived = archive(scratch.engine, Path(folder), args.days)
        with scratch.engine.connect() as connection:
            ids = connection.execute(select(sensors.c.sensor_id)).scalars().all()
        held = archived_year(Path(folder), ids, args.days)
        app = back_end(scratch.url, Path(folder))
        mapped = map_answer(app, args.requests)
        ranges = readings_answer(app, scratch.engine, args.days, args.requests, held=held)
        app.extensions["grow_wow"]["engine"].dispose()
    nights = {}
    if not args.skip_nightly:
        for size in (args.baseline_sensors, args.nightly_sensors):
            nights[size] = nightly(base, size, args.history_days, args.shards)

    print(f"\n{args.sensors:,} sensors × {args.days} days into {base.render_as_string()}")
    rows = [
        ("PostgreSQL: bytes a reading (heap + indexes)", stored["total"], f"{stored['readings']:,} readings"),
        ("  heap", stored["heap"]),
        ("  primary key and other indexes", stored["index"]),
        ("Parquet archive: bytes a reading", archived["per_reading"], f"{archived['files']} files"),
        ("  seconds to archive", archived["seconds"]),
        ("map, a new visitor: kB gzip-compressed", mapped["gzip_kb"], f"{mapped['kb']:,.0f} kB plain"),
        ("map: p95 ms", mapped["p95_ms"], f"first build {mapped['first_seconds']:.2f} s"),
        (
            "readings, a sensor's year, archived but its last days: p95 ms",
            ranges["p95_ms"],
            f"{ranges['readings_per_answer']:,.0f} readings an answer",
        ),
    ]
    for size, night in nights.items():
        rows.append(
            (f"nightly, {size:,} sensors: seconds", night["seconds"], f"{night['new_readings']:,} readings")
        )
        rows.append(("  µs a reading", night["us_per_reading"], f"shards equal: {night['shards_equal']}"))
    harness.table(rows, {"figure": "<50", "value": ">10.1f"})
    large = nights.get(args.nightly_sensors)
    base_night = nights.get(args.baseline_sensors)
    harness.finish(
        {
            "bytes_per_reading": round(stored["total"], 1),
            "heap_bytes_per_reading": round(stored["heap"], 1),
            "index_bytes_per_reading": round(stored["index"], 1),
            "parquet_bytes_per_reading": round(archived["per_reading"], 2),
            "map_first_load_kb_100k": round(mapped["gzip_kb"], 1),
            "map_p95_ms_100k": round(mapped["p95_ms"], 1),
            "readings_p95_ms": round(ranges["p95_ms"], 1),
            "nightly_seconds_100k": round(large["seconds"], 1) if large else None,
            "us_per_reading": round(large["us_per_reading"], 1) if large else None,
            "us_per_reading_6500": round(base_night["us_per_reading"], 1) if base_night else None,
            "sensors": args.sensors,
        }
    )


if __name__ == "__main__":
    main()
