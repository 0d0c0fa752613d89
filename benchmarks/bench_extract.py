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

import datetime as dt
import sys
from pathlib import Path

import requests
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness
from benchmarks.scratch import Scratch
from core.schema import readings, wow_observations
from devtools.simulator.generate import generate
from etl import extract_all_grow_data, find_nearest_wow_live, store_sensor_info
from etl.settings import load_settings
from etl.shard import Shard
from etl.step import StepContext

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
        harness.scratch_folder("extract") as folder,
    ):
        generate(folder, sensors, days, 2019, END)
        with harness.simulator(folder) as simulator:
            requests.post(f"{simulator}/sim/clock", json={"now": now.isoformat()}, timeout=10)
            settings = load_settings(
                database_url=scratch.url,
                grow_api_url=f"{simulator}/grow/api",
                grow_api_key="sim-grow-key",
                wow_api_url=f"{simulator}/wow/api",
                wow_api_key="sim-wow-key",
                etl_now=now,
                fetch_workers=workers,
            )
            engine = scratch.engine
            context = StepContext(settings, engine, Shard(), now)
            store_sensor_info.run(context)
            find_nearest_wow_live.run(context)
            seconds, _ = harness.timed(lambda: extract_all_grow_data.run(context))
            result = {"seconds": seconds, "counts": counts(engine)}
            if later is not None:
                requests.post(f"{simulator}/sim/clock", json={"now": later.isoformat()}, timeout=10)
                context = StepContext(settings.model_copy(update={"etl_now": later}), engine, Shard(), later)
                linking, _ = harness.timed(
                    lambda: (store_sensor_info.run(context), find_nearest_wow_live.run(context))
                )
                extracting, _ = harness.timed(lambda: extract_all_grow_data.run(context))
                after = counts(engine)
                result.update(
                    nightly_seconds=extracting,
                    nightly_all_steps=linking + extracting,
                    nightly_rows=(after[0] - result["counts"][0], after[1] - result["counts"][1]),
                )
    return result


def main() -> None:
    args = harness.options(
        __doc__,
        sensors=(500, "sensors of the full-history run"),
        days=(90, "days of the full-history run"),
        nightly_sensors=(6500, "sensors of the nightly run"),
        nightly_history=(2, "days stored before the nightly run"),
        workers=(4, "concurrent requests"),
    ).parse_args()
    base = args.database_url

    full = scenario(base, args.sensors, args.days, END, None, args.workers)
    day = dt.timedelta(days=1)
    nightly = scenario(base, args.nightly_sensors, args.nightly_history + 1, END - day, END, args.workers)

    rate = full["counts"][0] / full["seconds"]
    new_readings, new_observations = nightly["nightly_rows"]
    print(f"extract_all_grow_data from the local simulator into {base.render_as_string()}")
    harness.table(
        [
            (
                f"full history: {args.sensors} sensors × {args.days} days",
                *full["counts"],
                full["seconds"],
                rate,
            ),
            (
                f"nightly: {args.nightly_sensors:,} sensors, one new day",
                new_readings,
                new_observations,
                nightly["nightly_seconds"],
                new_readings / nightly["nightly_seconds"],
            ),
        ],
        {
            "run": "<46",
            "readings": ">10,",
            "observations": ">13,",
            "seconds": ">8.1f",
            "readings/s": ">11,.0f",
        },
    )
    print(
        f"nightly with store_sensor_info and find_nearest_wow_live too: {nightly['nightly_all_steps']:.1f} s"
    )
    harness.finish({"readings_per_s": round(rate), "nightly_seconds": round(nightly["nightly_seconds"], 1)})


if __name__ == "__main__":
    main()
