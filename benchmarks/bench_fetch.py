"""How fast the GROW client fetches and parses readings from the local simulator, and how fast a network
is generated.

Generates a network (default 6,500 sensors × 30 days, timed), serves it with `python -m devtools.simulator
serve` in its own process on loopback, then fetches every reading of a subset of sensors over HTTP with
`GrowClient` (requests of 10 sensors × 10 days, a pool of workers), parsed and joined by timestamp. A
reading is one timestamp of one sensor with its variables joined.

    python benchmarks/bench_fetch.py --sensors 6500 --days 30 --fetch-sensors 500
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness
from devtools.simulator.generate import generate
from devtools.simulator.network import Network
from etl.settings import load_settings
from etl.sources.grow import GrowClient

END = dt.datetime(2019, 7, 1, tzinfo=dt.UTC)


def main() -> None:
    args = harness.options(
        __doc__,
        database=False,
        sensors=(6500, "sensors in the generated network"),
        days=(30, "days of readings"),
        fetch_sensors=(500, "sensors whose readings are fetched"),
        workers=(4, "concurrent requests"),
        repeat=(3, "fetch rounds; the median is reported"),
        seed=2019,
    ).parse_args()

    with harness.scratch_folder("fetch") as folder:
        generate_seconds, _ = harness.timed(lambda: generate(folder, args.sensors, args.days, args.seed, END))
        network = Network(folder)
        codes = list(network.sensors["sensor_id"][: args.fetch_sensors])
        expected = len(network.visible_readings(codes, network.start, network.end, END))

        with harness.simulator(folder) as simulator:
            settings = load_settings(
                grow_api_url=f"{simulator}/grow/api", grow_api_key="sim-grow-key", fetch_workers=args.workers
            )
            client = GrowClient(settings)

            def fetch() -> None:
                readings = client.get_readings(codes, network.start, network.end)
                if len(readings) != expected:
                    raise SystemExit(f"fetched {len(readings):,} readings, the network holds {expected:,}")

            rounds, _ = harness.rounds(args.repeat, fetch)

    seconds = harness.median(rounds)
    rate = expected / seconds
    requests_made = -(-len(codes) // 10) * -(-args.days // 10)
    print(f"network of {args.sensors:,} sensors × {args.days} days generated in {generate_seconds:.1f} s")
    harness.table(
        [
            (
                f"{len(codes)} sensors × {args.days} days, {args.workers} workers",
                expected,
                requests_made,
                seconds,
                rate,
            )
        ],
        {"fetch": "<40", "readings": ">10,", "requests": ">9,", "seconds": ">8.2f", "readings/s": ">11,.0f"},
    )
    print(f"rounds: {', '.join(f'{r:.2f} s' for r in rounds)} (median of {args.repeat})")
    harness.finish({"readings_per_s": round(rate), "generate_seconds": round(generate_seconds, 1)})


if __name__ == "__main__":
    main()
