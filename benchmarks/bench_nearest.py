"""How fast sensors are linked to their nearest live WOW station, against the 2019 method.

Ours: `etl.find_nearest_wow_live.link_sensors` (a BallTree with the haversine metric, plus the distance
limit and reasons). 2019: for every sensor, a pure-Python haversine to every station and the minimum —
measured on a subset of sensors and scaled to the whole, since it is quadratic. Both run in this process
on the same points: sensors and stations placed by the simulator.

    python benchmarks/bench_nearest.py --sensors 6500 --stations 5000
"""

from __future__ import annotations

import datetime as dt
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness
from devtools.simulator.generate import generate
from devtools.simulator.network import Network
from etl.find_nearest_wow_live import link_sensors


def haversine_2019(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The textbook formula in plain Python, as the 2019 script computed it for every pair."""
    lat1, lon1, lat2, lon2 = map(math.radians, (lat1, lon1, lat2, lon2))
    a = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 6371.0088 * 2 * math.asin(math.sqrt(a))


def nearest_2019(
    sensors: list[tuple[float, float]], stations: list[tuple[str, float, float]]
) -> list[tuple[str, float]]:
    found = []
    for lat, lon in sensors:
        best = min(stations, key=lambda s: haversine_2019(lat, lon, s[1], s[2]))
        found.append((best[0], haversine_2019(lat, lon, best[1], best[2])))
    return found


def main() -> None:
    args = harness.options(
        __doc__,
        database=False,
        sensors=6500,
        stations=5000,
        subset=(200, "sensors the 2019 method is timed on"),
        repeat=5,
    ).parse_args()

    with harness.scratch_folder("nearest") as folder:
        generate(
            folder, args.sensors, 1, 2019, dt.datetime(2019, 7, 1, tzinfo=dt.UTC), stations=args.stations
        )
        network = Network(folder)
        sensors = network.sensors[["sensor_id", "latitude", "longitude"]]
        live = network.stations[["site_id", "latitude", "longitude"]]

    ours, links = harness.rounds(args.repeat, lambda: link_sensors(sensors, live, max_km=50))

    subset = sensors.iloc[: args.subset]
    station_list = list(live.itertuples(index=False, name=None))
    old_subset_seconds, old = harness.timed(
        lambda: nearest_2019(list(zip(subset["latitude"], subset["longitude"])), station_list)
    )
    old_seconds = old_subset_seconds * len(sensors) / len(subset)

    # Same answers: the 2019 nearest station is ours wherever ours is within the limit.
    ours_subset = links.iloc[: args.subset]
    agree = np.mean([np.isclose(d, o_d, atol=1e-3) for d, (_, o_d) in zip(ours_subset["distance_km"], old)])
    seconds = harness.median(ours)
    print(
        f"{len(sensors):,} sensors linked to the nearest of {len(live):,} stations (median of {args.repeat})"
    )
    harness.table(
        [
            ("BallTree (haversine), distance limit and reasons", seconds, 1),
            (
                f"2019: pure-Python haversine, {args.subset} sensors, scaled",
                old_seconds,
                old_seconds / seconds,
            ),
        ],
        {"method": "<52", "seconds": ">9.3f", "vs ours": ">8.0f"},
    )
    print(f"nearest distances agree with the 2019 method on {agree:.0%} of the subset")
    harness.finish({"seconds": round(seconds, 4), "ratio_vs_2019": round(old_seconds / seconds, 1)})


if __name__ == "__main__":
    main()
