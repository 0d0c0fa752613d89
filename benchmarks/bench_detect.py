"""How fast `detect_anomalies` turns stored readings into stored anomalies, and how 2019's method compares.

1. Full history: a generated network of 500 sensors × 90 days loaded straight into PostgreSQL (readings,
   linked stations and their reports; untimed), then `detect_anomalies` is timed from the database read
   to the anomalies written: the conditions, the rules and the station checks, as shipped (the models are
   off unless asked for; DETECT_CHECKS=all in the environment times them too).
2. The 2019 method on a subset of the same sensors, in the same run: per sensor, its readings read with
   pandas, MinMax-scaled per sensor, a 4 × LSTM(50) autoencoder called per sensor and variable, the
   equal-error rule, anomalies written with pandas. Its network is built but not trained: the weights
   do not change the time a forward pass takes.
3. Nightly: 6,500 sensors with two days already checked; one new day arrives and the step is timed.

A reading is one 15-minute sample of one sensor with all its variables. Works in a scratch schema of
DATABASE_URL (default: the local PostgreSQL), dropped afterwards.

    python benchmarks/bench_detect.py --sensors 500 --days 90 --baseline-sensors 10 --nightly-sensors 6500
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.scratch import Scratch, benchmark_database  # noqa: E402
from core.schema import anomalies, readings  # noqa: E402
from detection.autoencoder import SLOTS, VARIABLES, quiet_tensorflow  # noqa: E402
from devtools.evaluate import store_network  # noqa: E402
from devtools.simulator.generate import generate  # noqa: E402
from devtools.simulator.network import Network  # noqa: E402
from etl import detect_anomalies  # noqa: E402
from etl.shard import Shard  # noqa: E402
from etl.step import StepContext  # noqa: E402
from models.train import build_model  # noqa: E402

END = dt.datetime(2019, 7, 1, tzinfo=dt.UTC)


def step_context(scratch: Scratch, now: dt.datetime) -> StepContext:
    return StepContext(scratch.settings, scratch.engine, Shard(), now)


def count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(table))


def method_2019(engine, sensor_ids: list[str], model) -> tuple[float, int]:
    """2019's detection, sensor by sensor; returns (seconds, readings analysed)."""
    analysed = 0
    started = time.perf_counter()
    with engine.connect() as connection:
        for sensor in sensor_ids:
            frame = pd.read_sql(
                select(readings).where(readings.c.sensor_id == sensor).order_by(readings.c.ts), connection
            )
            analysed += len(frame)
            frame["day"] = pd.to_datetime(frame["ts"], utc=True).dt.floor("D")
            rows = []
            for variable in VARIABLES:
                values = frame[variable].astype(float)
                scaled = (values - values.min()) / max(values.max() - values.min(), 1e-9)  # MinMax per sensor
                days = [g.to_numpy()[:SLOTS] for _, g in scaled.groupby(frame["day"]) if len(g) >= SLOTS]
                if not days:
                    continue
                windows = np.nan_to_num(np.stack(days))[..., None].astype(np.float32)
                rebuilt = model.predict(windows, verbose=0)
                error = ((windows - rebuilt) ** 2).mean(axis=(1, 2))
                rows += [(sensor, variable, i) for i in np.flatnonzero(error[1:] == error[:-1])]
            pd.DataFrame(rows, columns=["sensor_id", "variable", "day"]).to_sql(
                "anomalies_2019", connection, if_exists="append", index=False
            )
        connection.commit()
    return time.perf_counter() - started, analysed


def full_history(base, sensors_count: int, days: int, baseline_sensors: int) -> dict:
    with Scratch(base, "full") as scratch, tempfile.TemporaryDirectory(dir=ROOT / "var") as folder:
        generate(folder, sensors_count, days, 2019, END)
        network = Network(folder)
        loaded = store_network(scratch.engine, network)
        started = time.perf_counter()
        detect_anomalies.run(step_context(scratch, END))
        seconds = time.perf_counter() - started
        found = count(scratch.engine, anomalies)

        quiet_tensorflow()
        model = build_model(units=50, layers_each_side=2)  # 2019: 4 × LSTM(50)
        subset = list(network.sensors["sensor_id"][:baseline_sensors])
        method_2019(scratch.engine, subset[:1], model)  # warm up TensorFlow, as ours was by its first chunk
        baseline_seconds, baseline_readings = method_2019(scratch.engine, subset, model)
    return {
        "readings": loaded,
        "seconds": seconds,
        "anomalies": found,
        "baseline_seconds": baseline_seconds,
        "baseline_readings": baseline_readings,
    }


def nightly(base, sensors_count: int) -> dict:
    with Scratch(base, "nightly") as scratch, tempfile.TemporaryDirectory(dir=ROOT / "var") as folder:
        generate(folder, sensors_count, 3, 2020, END)
        network = Network(folder)
        yesterday = END - dt.timedelta(days=1)
        store_network(scratch.engine, network, until=yesterday)
        detect_anomalies.run(step_context(scratch, yesterday))  # the nights before: untimed
        before = count(scratch.engine, readings)
        store_network(scratch.engine, network)
        new = count(scratch.engine, readings) - before
        started = time.perf_counter()
        detect_anomalies.run(step_context(scratch, END))
        return {"seconds": time.perf_counter() - started, "new_readings": new}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=500, help="sensors of the full-history run")
    parser.add_argument("--days", type=int, default=90, help="days of the full-history run")
    parser.add_argument("--baseline-sensors", type=int, default=10, help="sensors the 2019 method checks")
    parser.add_argument("--nightly-sensors", type=int, default=6500, help="sensors of the nightly run")
    args = parser.parse_args()
    (ROOT / "var").mkdir(exist_ok=True)
    base = benchmark_database()

    full = full_history(base, args.sensors, args.days, args.baseline_sensors)
    night = nightly(base, args.nightly_sensors)

    rate = full["readings"] / full["seconds"]
    baseline_rate = full["baseline_readings"] / full["baseline_seconds"]
    print(f"detect_anomalies, database read to anomalies written, on {base.render_as_string()}")
    print(f"{'run':<52} {'readings':>10} {'seconds':>8} {'readings/s':>11}")
    print(
        f"{f'ours, full history: {args.sensors} sensors × {args.days} days':<52} {full['readings']:>10,} "
        f"{full['seconds']:>8.1f} {rate:>11,.0f}   ({full['anomalies']} anomalies)"
    )
    print(
        f"{f'2019 method: {args.baseline_sensors} of those sensors, one by one':<52} "
        f"{full['baseline_readings']:>10,} {full['baseline_seconds']:>8.1f} {baseline_rate:>11,.0f}"
    )
    print(
        f"{f'ours, nightly: {args.nightly_sensors:,} sensors, one new day':<52} {night['new_readings']:>10,} "
        f"{night['seconds']:>8.1f} {night['new_readings'] / night['seconds']:>11,.0f}"
    )
    print(f"ours vs 2019: {rate / baseline_rate:.1f}× the readings per second")
    print(
        json.dumps(
            {
                "readings_per_s": round(rate),
                "ratio_vs_2019": round(rate / baseline_rate, 1),
                "nightly_seconds": round(night["seconds"], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
