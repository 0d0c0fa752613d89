"""How fast `extract_all_grow_data` brings readings from the simulator into PostgreSQL, end to end.

1. Full history: a network of 500 sensors × 90 days, served by `python -m devtools.simulator serve` in its own
   process on loopback; sensors stored and linked first (untimed), then the extract is timed: HTTP,
   parsing, joining and loading, GROW readings and the linked WOW stations' observations.
2. Nightly: a network of 6,500 sensors whose history up to yesterday is already stored (loaded by the
   same pipeline, untimed); the simulated present moves on one day and the extract is timed again.

Works in a scratch schema of DATABASE_URL (default: the local PostgreSQL), dropped afterwards.

    python benchmarks/bench_extract.py --sensors 500 --days 90 --nightly-sensors 6500
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import requests
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_fetch import free_port, serve  # noqa: E402

from benchmarks.scratch import Scratch, benchmark_database  # noqa: E402
from core.schema import readings, wow_observations  # noqa: E402
from devtools.simulator.generate import generate  # noqa: E402
from etl import extract_all_grow_data, find_nearest_wow_live, store_sensor_info  # noqa: E402
from etl.settings import load_settings  # noqa: E402
from etl.shard import Shard  # noqa: E402
from etl.step import StepContext  # noqa: E402

END = dt.datetime(2019, 7, 1, tzinfo=dt.UTC)


def counts(engine) -> tuple[int, int]:
    with engine.connect() as connection:
        return (
            connection.scalar(select(func.count()).select_from(readings)),
            connection.scalar(select(func.count()).select_from(wow_observations)),
        )


def scenario(
    base, sensors: int, days: int, now: dt.datetime, later: dt.datetime | None, workers: int
) -> dict:
    """Generate, serve, store and link; then time the extract at `now` (and again at `later`)."""
    with (
        Scratch(base, f"extract_{sensors}") as scratch,
        tempfile.TemporaryDirectory(dir=ROOT / "var", prefix="bench_extract_") as folder,
    ):
        generate(folder, sensors, days, 2019, END)
        port = free_port()
        server = serve(Path(folder), port)
        requests.post(f"http://127.0.0.1:{port}/sim/clock", json={"now": now.isoformat()}, timeout=10)
        try:
            settings = load_settings(
                database_url=scratch.url,
                grow_api_url=f"http://127.0.0.1:{port}/grow/api",
                grow_api_key="sim-grow-key",
                wow_api_url=f"http://127.0.0.1:{port}/wow/api",
                wow_api_key="sim-wow-key",
                etl_now=now,
                fetch_workers=workers,
            )
            engine = scratch.engine
            context = StepContext(settings, engine, Shard(), now)
            store_sensor_info.run(context)
            find_nearest_wow_live.run(context)
            started = time.perf_counter()
            extract_all_grow_data.run(context)
            result = {"seconds": time.perf_counter() - started, "counts": counts(engine)}
            if later is not None:
                requests.post(
                    f"http://127.0.0.1:{port}/sim/clock", json={"now": later.isoformat()}, timeout=10
                )
                context = StepContext(settings.model_copy(update={"etl_now": later}), engine, Shard(), later)
                started = time.perf_counter()
                store_sensor_info.run(context)
                find_nearest_wow_live.run(context)
                linked = time.perf_counter()
                extract_all_grow_data.run(context)
                done = time.perf_counter()
                after = counts(engine)
                result.update(
                    nightly_seconds=done - linked,
                    nightly_all_steps=done - started,
                    nightly_rows=(after[0] - result["counts"][0], after[1] - result["counts"][1]),
                )
        finally:
            server.terminate()
            server.wait(timeout=10)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=500, help="sensors of the full-history run")
    parser.add_argument("--days", type=int, default=90, help="days of the full-history run")
    parser.add_argument("--nightly-sensors", type=int, default=6500, help="sensors of the nightly run")
    parser.add_argument("--nightly-history", type=int, default=2, help="days stored before the nightly run")
    parser.add_argument("--workers", type=int, default=4, help="concurrent requests")
    args = parser.parse_args()
    (ROOT / "var").mkdir(exist_ok=True)
    base = benchmark_database()

    full = scenario(base, args.sensors, args.days, END, None, args.workers)
    day = dt.timedelta(days=1)
    nightly = scenario(base, args.nightly_sensors, args.nightly_history + 1, END - day, END, args.workers)

    rate = full["counts"][0] / full["seconds"]
    print(f"extract_all_grow_data from the local simulator into {base.render_as_string()}")
    print(f"{'run':<46} {'readings':>10} {'observations':>13} {'seconds':>8} {'readings/s':>11}")
    print(
        f"{f'full history: {args.sensors} sensors × {args.days} days':<46} {full['counts'][0]:>10,} "
        f"{full['counts'][1]:>13,} {full['seconds']:>8.1f} {rate:>11,.0f}"
    )
    new_readings, new_observations = nightly["nightly_rows"]
    label = f"nightly: {args.nightly_sensors:,} sensors, one new day"
    nightly_rate = new_readings / nightly["nightly_seconds"]
    print(
        f"{label:<46} {new_readings:>10,} {new_observations:>13,} "
        f"{nightly['nightly_seconds']:>8.1f} {nightly_rate:>11,.0f}"
    )
    print(
        f"nightly with store_sensor_info and find_nearest_wow_live too: {nightly['nightly_all_steps']:.1f} s"
    )
    print(
        json.dumps({"readings_per_s": round(rate), "nightly_seconds": round(nightly["nightly_seconds"], 1)})
    )


if __name__ == "__main__":
    main()
