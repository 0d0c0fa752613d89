"""A network of 100,000 sensors: what a reading costs stored and archived, how the map and a sensor's
readings answer on it, and what a night costs a reading beside GROW's 6,500 (issue 34).

1. Storage: a scratch schema of DATABASE_URL (default: the local PostgreSQL) filled with `--sensors`
   sensors × `--days` days of 15-minute readings (as bench_api fills it, a day of every sensor at a time as
   the nightly extract writes them; untimed); PostgreSQL's own sizes
   of the readings' monthly partitions (heap and indexes) and of the series keying them, over the rows.
2. Archive: `etl.archive` writes those days as Parquet; its bytes over the readings, and its seconds.
3. The map: what the dashboard's map page fetches for its first paint in a 1400 × 1000 window (its page's
   scripts and styles, and `/api/v1/map/view` for Europe at zoom 4, then for the view fitted to the
   network), gzip-compressed as the dashboard sends it; and the p95 of `/map/view` over `--requests` views
   at random zoom levels and places. (The old answer of every sensor, `/api/v1/map`, beside it.)
4. Readings: the year before the fill archived as `--sensors` sensors' months are (by sensor, in hash
   buckets; the one bucket read is written full size), the first half of the fill's days dropped from the
   database (as READINGS_KEEP_MONTHS would, the archive verified first), and the readings route asked for
   a year of random sensors of that bucket, most from the archive (pyarrow) and the rest from the
   database: its p95.
5. Nightly (unless --skip-nightly): `bench_nightly`'s night at `--baseline-sensors` and at
   `--nightly-sensors`, each over a history of `--history-days`: seconds and µs per new reading.

    python benchmarks/bench_scale.py --sensors 100000 --days 2 --nightly-sensors 100000
    python benchmarks/bench_scale.py --parts map --skip-nightly   # the map alone: sensors, no readings
"""

from __future__ import annotations

import datetime as dt
import gzip
import math
import random
import re
import sys
import time
from pathlib import Path

import orjson
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness
from benchmarks.bench_api import END, fill
from benchmarks.scratch import Scratch
from core import reading_store
from core.schema import readings, sensors
from core.vocabulary import SENSOR_VARIABLES
from tests.factories import TOKEN

PARTS = ("storage", "archive", "map", "readings")
VARIABLE_NAMES = list(SENSOR_VARIABLES)


def storage(engine) -> dict:
    """Bytes a reading in PostgreSQL: the heap and indexes of every month's partition, and the series
    that gives each sensor its key (core.reading_store); as the nights wrote them, then once the months
    are over and their indexes rebuilt (`compact_finished_months`, a week after each month: all but the
    last month of a year)."""

    def measured() -> dict:
        with engine.connect() as connection:
            count = connection.scalar(select(func.count()).select_from(readings))
            size = reading_store.sizes(connection)
        total = size["heap"] + size["index"] + size["series"]
        index = size["index"] + size["series"]
        return {
            "readings": count,
            "heap": size["heap"] / count,
            "index": index / count,
            "total": total / count,
        }

    written = measured()
    reading_store.compact_finished_months(engine, END.to_pydatetime() + dt.timedelta(days=62))
    return {**measured(), "written": written}


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


VIEWPORT = (1400, 1000)  # the browser tests' window, in pixels
FRONT_END = Path(__file__).resolve().parent.parent / "flask_front_end"


def map_answer(app, requests: int, seed: int = 34) -> dict:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with app.test_client() as client:
        whole_seconds, whole = harness.timed(lambda: client.get("/api/v1/map", headers=headers).get_data())

        def ask(zoom: int, latitude: float, longitude: float) -> bytes:
            bbox = ",".join(f"{v:.5f}" for v in viewport(latitude, longitude, zoom))
            answer = client.get(
                "/api/v1/map/view", headers=headers, query_string={"zoom": zoom, "bbox": bbox}
            )
            assert answer.status_code == 200, answer.json
            return answer.get_data()

        # As all_grow_map.js: Europe at zoom 4, then the view fitted to the network's bounds.
        first_seconds, first = harness.timed(lambda: ask(4, 50.5, 8.0))
        fitted = fit(orjson.loads(first)["bounds"])
        painted = [first, ask(*fitted)]
        rng = random.Random(seed)
        west, south, east, north = orjson.loads(first)["bounds"]
        views = [
            (rng.randint(4, 18), rng.uniform(south, north), rng.uniform(west, east)) for _ in range(requests)
        ]
        times = [harness.timed(lambda v=v: ask(*v))[0] for v in views]
    assets = sum(len(gzip.compress(path.read_bytes(), 6)) for path in page_assets("all_grow_map.html"))
    answers = sum(len(gzip.compress(body, 6)) for body in painted)
    return {
        "first_seconds": first_seconds,
        "first_zoom": fitted[0],
        "kb": sum(len(body) for body in painted) / 1024,
        "answers_gzip_kb": answers / 1024,
        "gzip_kb": (answers + assets) / 1024,
        "p95_ms": percentile(times, 95) * 1000,
        "whole_gzip_kb": len(gzip.compress(whole, 6)) / 1024,
        "whole_seconds": whole_seconds,
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


def page_assets(template: str) -> list[Path]:
    """The static files a dashboard page loads: those its template, the templates it extends or imports,
    name (Leaflet's, not Google's)."""
    folder, seen, found = FRONT_END / "templates", set(), []
    todo = [template]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        text = (folder / name).read_text(encoding="utf-8")
        todo += re.findall(r"{%\s*(?:extends|import|include)\s+\"([^\"]+)\"", text)
        found += [FRONT_END / "static" / f for f in re.findall(r"filename='([^']+)'", text)]
    return sorted(set(found))


def mercator(latitude: float, longitude: float) -> tuple[float, float]:
    y = math.log(math.tan(math.pi / 4 + math.radians(latitude) / 2))
    return (longitude + 180) / 360, 0.5 - y / (2 * math.pi)


def degrees(x: float, y: float) -> tuple[float, float]:
    latitude = math.degrees(2 * math.atan(math.exp((0.5 - y) * 2 * math.pi)) - math.pi / 2)
    return latitude, x * 360 - 180


def viewport(latitude: float, longitude: float, zoom: int) -> tuple[float, float, float, float]:
    """The bbox the page asks for: its window around the centre, within the world."""
    x, y = mercator(latitude, longitude)
    world = 256 * 2**zoom
    half_x, half_y = VIEWPORT[0] / 2 / world, VIEWPORT[1] / 2 / world
    north, west = degrees(x - half_x, y - half_y)
    south, east = degrees(x + half_x, y + half_y)
    return max(west, -180), max(south, -85), min(east, 180), min(north, 85)


def fit(bounds: list[float]) -> tuple[int, float, float]:
    """Leaflet's fitBounds (20 px of padding, at most zoom 12): the zoom and the centre."""
    west, south, east, north = bounds
    (x0, y0), (x1, y1) = mercator(north, west), mercator(south, east)
    scale = min((VIEWPORT[0] - 40) / max(x1 - x0, 1e-9), (VIEWPORT[1] - 40) / max(y1 - y0, 1e-9)) / 256
    latitude, longitude = degrees((x0 + x1) / 2, (y0 + y1) / 2)
    return min(12, math.floor(math.log2(scale))), latitude, longitude


def readings_answer(
    app, engine, days: int, requests: int, seed: int = 7, held: list[str] | None = None
) -> dict:
    """A year of random sensors: the months before the fill from the archive (`archived_year`), the fill's
    days half from the archive, half from the database."""
    from core.schema import readings as table

    half = END.to_pydatetime() - dt.timedelta(days=days - days // 2)
    with engine.begin() as connection:
        if reading_store.is_store(connection):
            dropped = reading_store.delete_before(connection, half)
        else:
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
        parts=(",".join(PARTS), "which of parts 1-4 to measure: storage, archive, map, readings"),
    ).parse_args()
    parts = set(args.parts.split(","))
    if not parts <= set(PARTS):
        raise SystemExit(f"--parts: {', '.join(sorted(parts - set(PARTS)))} is none of {', '.join(PARTS)}")
    base = args.database_url
    with Scratch(base, "scale") as scratch, harness.scratch_folder("scale") as folder:
        started = time.perf_counter()
        days = args.days if parts - {"map"} else 0  # the map needs no readings
        fill(scratch.engine, args.sensors, days, by_day=True)
        print(f"filled {args.sensors:,} sensors × {days} days in {time.perf_counter() - started:.0f} s")
        stored = storage(scratch.engine) if "storage" in parts else None
        archived = (
            archive(scratch.engine, Path(folder), args.days) if parts & {"archive", "readings"} else None
        )
        held = None
        if "readings" in parts:
            with scratch.engine.connect() as connection:
                ids = connection.execute(select(sensors.c.sensor_id)).scalars().all()
            held = archived_year(Path(folder), ids, args.days)
        app = back_end(scratch.url, Path(folder))
        mapped = map_answer(app, args.requests) if "map" in parts else None
        ranges = (
            readings_answer(app, scratch.engine, args.days, args.requests, held=held)
            if "readings" in parts
            else None
        )
        app.extensions["grow_wow"]["engine"].dispose()
    nights = {}
    if not args.skip_nightly:
        for size in (args.baseline_sensors, args.nightly_sensors):
            nights[size] = nightly(base, size, args.history_days, args.shards)

    print(f"\n{args.sensors:,} sensors × {args.days} days into {base.render_as_string()}")
    rows = []
    if stored:
        rows += [
            (
                "PostgreSQL: bytes a reading (heap + indexes), months over",
                stored["total"],
                f"{stored['readings']:,} readings",
            ),
            ("  heap", stored["heap"]),
            ("  indexes (key, time) and the series", stored["index"]),
            ("  as the nights write them, the month not over", stored["written"]["total"]),
        ]
    if archived:
        rows += [
            ("Parquet archive: bytes a reading", archived["per_reading"], f"{archived['files']} files"),
            ("  seconds to archive", archived["seconds"]),
        ]
    if mapped:
        rows += [
            ("map, first paint: kB gzip-compressed", mapped["gzip_kb"], f"zoom {mapped['first_zoom']}"),
            ("  of which the views' answers", mapped["answers_gzip_kb"], f"{mapped['kb']:,.1f} kB plain"),
            ("map, a view: p95 ms", mapped["p95_ms"], f"first build {mapped['first_seconds']:.2f} s"),
            ("  every sensor in one answer (/map): kB gzip", mapped["whole_gzip_kb"]),
        ]
    if ranges:
        rows.append(
            (
                "readings, a sensor's year, archived but its last days: p95 ms",
                ranges["p95_ms"],
                f"{ranges['readings_per_answer']:,.0f} readings an answer",
            )
        )
    for size, night in nights.items():
        rows.append(
            (f"nightly, {size:,} sensors: seconds", night["seconds"], f"{night['new_readings']:,} readings")
        )
        rows.append(("  µs a reading", night["us_per_reading"], f"shards equal: {night['shards_equal']}"))
        for step, seconds in night["steps"].items():  # where a larger network's time goes
            rows.append((f"    {step}: µs a reading", seconds * 1e6 / max(1, night["new_readings"])))
        sharded = f"{night['shard_seconds']:.1f} s as {args.shards} shards"
        rows.append(("  peak RSS MB", night["peak_mb"], sharded))
    harness.table(rows, {"figure": "<50", "value": ">10.1f"})
    large = nights.get(args.nightly_sensors)
    base_night = nights.get(args.baseline_sensors)
    figure = lambda part, name, digits=1: round(part[name], digits) if part else None  # noqa: E731
    harness.finish(
        {
            "bytes_per_reading": figure(stored, "total"),
            "heap_bytes_per_reading": figure(stored, "heap"),
            "index_bytes_per_reading": figure(stored, "index"),
            "bytes_per_reading_month_being_written": figure(stored and stored["written"], "total"),
            "parquet_bytes_per_reading": figure(archived, "per_reading", 2),
            "map_first_load_kb_100k": figure(mapped, "gzip_kb"),
            "map_answers_kb_100k": figure(mapped, "answers_gzip_kb"),
            "map_p95_ms_100k": figure(mapped, "p95_ms"),
            "map_whole_answer_kb_100k": figure(mapped, "whole_gzip_kb"),
            "readings_p95_ms": figure(ranges, "p95_ms"),
            "nightly_seconds_100k": round(large["seconds"], 1) if large else None,
            "us_per_reading": round(large["us_per_reading"], 1) if large else None,
            "us_per_reading_6500": round(base_night["us_per_reading"], 1) if base_night else None,
            "sensors": args.sensors,
        }
    )


if __name__ == "__main__":
    main()
