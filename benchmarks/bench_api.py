"""How fast the back end answers under gunicorn: the all-sensors map and one sensor's 9-day readings.

A scratch schema of DATABASE_URL (default: the local PostgreSQL) is filled with a network (default
6,500 sensors with 14 days of 15-minute readings, health and station links; untimed), then
`flask_back_end.application:application` is served by gunicorn (2 workers, threads) on loopback, and a
load generator in this process (keep-alive connections, one thread each) asks:

1. latency: the map answer, then the default readings answer (the 9 days up to the latest reading) of
   random sensors, one request at a time per connection, `--latency-clients` connections;
2. throughput: the readings route from `--clients` connections for `--seconds`.

The map is asked for twice: as a new visitor (the whole answer, built once per worker since the data
last changed) and with the ETag of an earlier visit (304, no body). Prints p50/p95/p99 and requests/s
per run; the last line is JSON with map_p95_ms, map_304_p95_ms, readings_p95_ms and readings_rps.

    python benchmarks/bench_api.py --sensors 6500 --days 14 --requests 400 --clients 8 --seconds 15
"""

from __future__ import annotations

import http.client
import os
import random
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness
from benchmarks.harness import ROOT
from benchmarks.scratch import Scratch
from core.load import bulk_upsert
from core.schema import readings, sensor_health, sensor_wow, sensors, wow_sites

END = pd.Timestamp("2019-07-01", tz="UTC")
STATUSES = np.array(["healthy", "faulty", "recovered"])


def fill(engine, sensor_count: int, days: int, seed: int = 6500, by_day: bool = False) -> int:
    """Sensors across Europe with health, a station link each, and `days` of readings (0: none); returns
    readings. The readings go in 250 sensors at a time, or with `by_day` a day of every sensor at a time,
    as the nightly extract writes them (what PostgreSQL's indexes grow from)."""
    rng = np.random.default_rng(seed)
    ids = [f"b{i:07x}" for i in range(sensor_count)]
    start = END - pd.Timedelta(days=days)
    times = pd.date_range(start, END, freq="15min", inclusive="left")
    status = STATUSES[rng.choice(3, size=sensor_count, p=[0.7, 0.1, 0.2])]
    with engine.begin() as connection:
        bulk_upsert(
            connection,
            sensors,
            pd.DataFrame(
                {
                    "sensor_id": ids,
                    "name": [f"Garden {i}" for i in range(sensor_count)],
                    "owner_id": [f"owner-{i % 900}" for i in range(sensor_count)],
                    "latitude": rng.uniform(36, 60, sensor_count).round(5),
                    "longitude": rng.uniform(-9, 25, sensor_count).round(5),
                    "address": [f"{i} Garden Lane, Town {i % 400}" for i in range(sensor_count)],
                    "first_sample_at": start,
                    "last_sample_at": times[-1] if days else start,
                    "days_active": days,
                }
            ),
        )
        sites = pd.DataFrame(
            {
                "site_id": [f"9{i:05d}" for i in range(300)],
                "latitude": 50.0,
                "longitude": 5.0,
                "is_live": True,
            }
        )
        bulk_upsert(connection, wow_sites, sites)
        links = {"sensor_id": ids, "site_id": sites["site_id"].to_numpy()[np.arange(sensor_count) % 300]}
        bulk_upsert(connection, sensor_wow, pd.DataFrame({**links, "distance_km": 5.0}))
        health = {
            "sensor_id": ids,
            "status": status,
            "latest_reading_at": times[-1] if days else start,
            "reason": np.where(status == "healthy", "no anomaly found", "soil moisture stuck"),
        }
        bulk_upsert(connection, sensor_health, pd.DataFrame(health))
    hours = (times.hour + times.minute / 60).to_numpy()
    total = 0
    every = np.arange(sensor_count)
    if by_day:
        parts = [(every, day) for day in np.array_split(np.arange(len(times)), max(1, days))]
    else:
        parts = [(chunk, slice(None)) for chunk in np.array_split(every, max(1, sensor_count // 250))]
    for chunk, when in parts if days else []:
        n, at, hour = len(chunk), times[when], hours[when]
        frame = pd.DataFrame(
            {
                "sensor_id": np.repeat(np.array(ids)[chunk], len(at)),
                "ts": np.tile(at, n),
                "soil_moisture": (30 + rng.normal(0, 1, (n, len(at)))).ravel().round(2),
                "air_temperature": (
                    15 + 6 * np.sin((hour - 9) / 24 * 2 * np.pi) + rng.normal(0, 0.5, (n, len(at)))
                )
                .ravel()
                .round(2),
                "light": np.tile(np.clip(20 * np.sin((hour - 6) / 24 * 2 * np.pi), 0, None), n).round(2),
                "battery_level": 80.0,
            }
        )
        with engine.begin() as connection:
            total += bulk_upsert(connection, readings, frame)
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
    return total


def serve(database_url: str, token: str, port: int, workers: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "BACKEND_TOKEN": token}
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        f"--workers={workers}",
        "--worker-class=gthread",
        f"--threads={threads}",
        f"--bind=127.0.0.1:{port}",
        "--log-level=warning",
        "flask_back_end.application:application",
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/api/v1/health")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("gunicorn did not answer its health check within 60 s")


def drive(
    port: int,
    token: str,
    paths,
    clients: int,
    requests: int | None,
    seconds: float | None,
    extra: dict | None = None,
    expect: int = 200,
):
    """`clients` keep-alive connections asking for `next(paths)` in turn (with the `extra` headers),
    each until it has made `requests` or `seconds` have passed; an answer other than `expect` fails the
    run. Returns (latencies in ms, wall seconds)."""
    headers = {"Authorization": f"Bearer {token}", **(extra or {})}
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start_line = threading.Barrier(clients + 1)

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, path_for = [], paths(number)
        start_line.wait()
        stop = time.perf_counter() + seconds if seconds else None
        while (requests is None or len(mine) < requests) and (stop is None or time.perf_counter() < stop):
            began = time.perf_counter()
            connection.request("GET", next(path_for), headers=headers)
            response = connection.getresponse()
            body = response.read()
            mine.append((time.perf_counter() - began) * 1000)
            if response.status != expect:
                failures.append(f"{response.status} {body[:200]!r}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, first: {failures[0]}")
    return latencies, wall


def map_etag(port: int, token: str) -> str:
    """The map answer's ETag, as a browser keeps it for its next visit."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/api/v1/map", headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    response.read()
    return response.getheader("ETag")


def percentiles(latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50": statistics.median(latencies), "p95": cuts[94], "p99": cuts[98]}


def readings_paths(sensor_ids: list[str], seed: int):
    def paths(number: int):
        rng = random.Random(seed + number)
        while True:
            yield f"/api/v1/sensors/{rng.choice(sensor_ids)}/readings"

    return paths


def main() -> None:
    args = harness.options(
        __doc__,
        sensors=6500,
        days=14,
        requests=(400, "per latency run, over all connections"),
        latency_clients=(2, "connections in the latency runs"),
        clients=(8, "connections in the throughput run"),
        seconds=(15.0, "length of the throughput run"),
        workers=(2, "gunicorn workers"),
        threads=(4, "threads per gunicorn worker"),
    ).parse_args()
    base = args.database_url

    with Scratch(base, "api") as scratch:
        seconds, stored = harness.timed(lambda: fill(scratch.engine, args.sensors, args.days))
        print(f"filled {args.sensors:,} sensors, {stored:,} readings in {seconds:.0f} s")
        with scratch.engine.connect() as connection:
            sensor_ids = [row[0] for row in connection.exec_driver_sql("SELECT sensor_id FROM sensors")]
        token, port = secrets.token_urlsafe(24), harness.free_port()
        server = serve(scratch.url, token, port, args.workers, args.threads)
        try:
            per_client = max(1, args.requests // args.latency_clients)

            def map_paths(_number: int):
                while True:
                    yield "/api/v1/map"

            drive(port, token, map_paths, args.latency_clients, 10, None)  # warm both workers' pools
            tag = {"If-None-Match": map_etag(port, token)}
            runs = {
                "map (all sensors)": drive(port, token, map_paths, args.latency_clients, per_client, None),
                "map, unchanged (304)": drive(
                    port, token, map_paths, args.latency_clients, per_client, None, tag, expect=304
                ),
                "readings (9 days), latency": drive(
                    port, token, readings_paths(sensor_ids, 1), args.latency_clients, per_client, None
                ),
                f"readings (9 days), {args.clients} clients": drive(
                    port, token, readings_paths(sensor_ids, 2), args.clients, None, args.seconds
                ),
            }
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(
        f"back end under gunicorn ({args.workers} workers × {args.threads} threads) on loopback, "
        f"{args.sensors:,} sensors × {args.days} days in {base.render_as_string()}"
    )
    figures = {
        name: {**percentiles(latencies), "requests": len(latencies), "rps": len(latencies) / wall}
        for name, (latencies, wall) in runs.items()
    }
    harness.table(
        [(name, f["requests"], f["p50"], f["p95"], f["p99"], f["rps"]) for name, f in figures.items()],
        {
            "run": "<34",
            "requests": ">9,",
            "p50 ms": ">8.1f",
            "p95 ms": ">8.1f",
            "p99 ms": ">8.1f",
            "req/s": ">8.0f",
        },
    )
    harness.finish(
        {
            "map_p95_ms": round(figures["map (all sensors)"]["p95"], 1),
            "map_304_p95_ms": round(figures["map, unchanged (304)"]["p95"], 1),
            "readings_p95_ms": round(figures["readings (9 days), latency"]["p95"], 1),
            "readings_rps": round(figures[f"readings (9 days), {args.clients} clients"]["rps"]),
        }
    )


if __name__ == "__main__":
    main()
