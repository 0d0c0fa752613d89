"""How fast the GROW client fetches and parses readings from the local simulator, and how fast a network
is generated.

Generates a network (default 6,500 sensors × 30 days, timed), serves it with `python -m devtools.simulator
serve` in its own process on loopback, then fetches every reading of a subset of sensors over HTTP with
`GrowClient` (requests of 10 sensors × 10 days, a pool of workers), parsed and joined by timestamp. A
reading is one timestamp of one sensor with its variables joined.

    python benchmarks/bench_fetch.py --sensors 6500 --days 30 --fetch-sensors 500
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.simulator.generate import generate  # noqa: E402
from devtools.simulator.network import Network  # noqa: E402
from etl.settings import load_settings  # noqa: E402
from etl.sources.grow import GrowClient  # noqa: E402

END = dt.datetime(2019, 7, 1, tzinfo=dt.UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(folder: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.simulator",
            "serve",
            "--data",
            str(folder),
            "--port",
            str(port),
            "--quiet",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            requests.get(f"http://127.0.0.1:{port}/sim/health", timeout=1).raise_for_status()
            return server
        except requests.RequestException:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the simulator did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=6500, help="sensors in the generated network")
    parser.add_argument("--days", type=int, default=30, help="days of readings")
    parser.add_argument("--fetch-sensors", type=int, default=500, help="sensors whose readings are fetched")
    parser.add_argument("--workers", type=int, default=4, help="concurrent requests")
    parser.add_argument("--repeat", type=int, default=3, help="fetch rounds; the median is reported")
    parser.add_argument("--seed", type=int, default=2019)
    args = parser.parse_args()

    (ROOT / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "var", prefix="bench_fetch_") as folder:
        started = time.perf_counter()
        generate(folder, args.sensors, args.days, args.seed, END)
        generate_seconds = time.perf_counter() - started
        network = Network(folder)
        codes = list(network.sensors["sensor_id"][: args.fetch_sensors])
        expected = len(network.visible_readings(codes, network.start, network.end, END))

        port = free_port()
        server = serve(Path(folder), port)
        try:
            settings = load_settings(
                grow_api_url=f"http://127.0.0.1:{port}/grow/api",
                grow_api_key="sim-grow-key",
                fetch_workers=args.workers,
            )
            client = GrowClient(settings)
            rounds = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                readings = client.get_readings(codes, network.start, network.end)
                rounds.append(time.perf_counter() - started)
                if len(readings) != expected:
                    raise SystemExit(f"fetched {len(readings):,} readings, the network holds {expected:,}")
        finally:
            server.terminate()
            server.wait(timeout=10)

    seconds = statistics.median(rounds)
    rate = expected / seconds
    requests_made = -(-len(codes) // 10) * -(-args.days // 10)
    print(f"network of {args.sensors:,} sensors × {args.days} days generated in {generate_seconds:.1f} s")
    print(f"{'fetch':<40} {'readings':>10} {'requests':>9} {'seconds':>8} {'readings/s':>11}")
    print(
        f"{f'{len(codes)} sensors × {args.days} days, {args.workers} workers':<40} "
        f"{expected:>10,} {requests_made:>9,} {seconds:>8.2f} {rate:>11,.0f}"
    )
    print(f"rounds: {', '.join(f'{r:.2f} s' for r in rounds)} (median of {args.repeat})")
    print(json.dumps({"readings_per_s": round(rate), "generate_seconds": round(generate_seconds, 1)}))


if __name__ == "__main__":
    main()
