"""How fast `detect_anomalies` turns stored readings into stored anomalies, and how 2019's method compares.

1. Full history: a generated network of 500 sensors × 90 days loaded straight into PostgreSQL (readings,
   linked stations and their reports; untimed), then `detect_anomalies` is timed from the database read
   to the anomalies written: the conditions, the rules and the station checks, as shipped (the models are
   off unless asked for; DETECT_CHECKS=all in the environment times them too).
2. The 2019 method on a subset of the same sensors, in the same run, as its machine_learning/
   detect_anomalies.py did it: each sensor's own table (`grow_data_<id>`, copied from the readings
   untimed) read whole with pandas and sorted, cut at the front to whole 96-row chunks, each variable
   MinMax-scaled per sensor and passed through its model (lstm_one_variable.py's LSTM(50) → LSTM(25) →
   LSTM(25) → LSTM(50) → Dense(1), all returning sequences), the equal-error rule, the sensor's old rows
   in grow_anomalies deleted and each anomaly inserted by its own INSERT. The networks are built but not
   trained: the weights do not change the time a forward pass takes.
3. Nightly: 6,500 sensors with two days already checked; one new day arrives and the step is timed.

A reading is one 15-minute sample of one sensor with all its variables. Works in a scratch schema of
DATABASE_URL (default: the local PostgreSQL), dropped afterwards.

    python benchmarks/bench_detect.py --sensors 500 --days 90 --baseline-sensors 10 --nightly-sensors 6500
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness
from benchmarks.scratch import Scratch
from core.schema import anomalies, readings
from detection.model import SLOTS, VARIABLES, quiet_tensorflow
from devtools.evaluate import store_network
from devtools.simulator.generate import generate
from devtools.simulator.network import Network
from etl import detect_anomalies
from etl.shard import Shard
from etl.step import StepContext

END = dt.datetime(2019, 7, 1, tzinfo=dt.UTC)


def step_context(scratch: Scratch, now: dt.datetime) -> StepContext:
    return StepContext(scratch.settings, scratch.engine, Shard(), now)


def count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(table))


def model_2019():
    """2019's autoencoder (lstm_one_variable.py), one per variable."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((SLOTS, 1)),
            keras.layers.LSTM(50, return_sequences=True),
            keras.layers.LSTM(25, return_sequences=True),
            keras.layers.LSTM(25, return_sequences=True),
            keras.layers.LSTM(50, return_sequences=True),
            keras.layers.Dense(1),
        ]
    )
    model.compile(loss="mse", optimizer="adam")
    return model


def tables_2019(engine, sensor_ids: list[str]) -> dict[str, str]:
    """Each sensor's readings in a table of its own, as 2019 kept them (untimed); {sensor: table}."""
    quote = engine.dialect.identifier_preparer.quote
    tables = {sensor: quote(f"grow_data_{sensor}") for sensor in sensor_ids}
    with engine.begin() as connection:
        for sensor, table in tables.items():
            connection.execute(
                text(
                    f"CREATE TABLE {table} AS SELECT sensor_id, ts AS datetime, soil_moisture, light,"
                    " air_temperature, battery_level FROM readings WHERE sensor_id = :sensor"
                ),
                {"sensor": sensor},
            )
        connection.execute(
            text(
                "CREATE TABLE grow_anomalies (grow_table varchar(64), soil_date timestamp,"
                " light_date timestamp, air_date timestamp, last_analysed timestamp)"
            )
        )
    return tables


def method_2019(engine, tables: dict[str, str], models: dict) -> int:
    """2019's detection, table by table; returns the readings analysed."""
    analysed = 0
    column_of = {"soil_moisture": "soil_date", "light": "light_date", "air_temperature": "air_date"}
    with engine.connect() as connection:
        for table in tables.values():
            frame = pd.read_sql(text(f"SELECT * FROM {table}"), connection, parse_dates=["datetime"])
            frame = frame.sort_values("datetime")
            frame = frame[len(frame) % SLOTS :]  # whole days of 96 rows, cut at the front
            analysed += len(frame)
            if frame.empty:
                continue
            dates = frame["datetime"].to_numpy().reshape(-1, SLOTS)
            found = []
            for variable in VARIABLES:
                values = frame[[variable]].to_numpy(dtype=np.float32)
                span = np.nanmax(values) - np.nanmin(values)
                scaled = (values - np.nanmin(values)) / (span if span else 1.0)  # MinMaxScaler per sensor
                windows = np.nan_to_num(scaled).reshape(-1, SLOTS, 1)
                rebuilt = models[variable].predict(windows, verbose=0)
                error = ((windows - rebuilt) ** 2).mean(axis=1)[:, 0]
                found += [(variable, dates[i][0]) for i in np.flatnonzero(error[:-1] == error[1:])]
            name = table.strip('"')
            connection.execute(text("DELETE FROM grow_anomalies WHERE grow_table = :t"), {"t": name})
            for variable, date in found:  # one INSERT each, as 2019's insert_anomalies
                connection.execute(
                    text(
                        f"INSERT INTO grow_anomalies (grow_table, {column_of[variable]}, last_analysed)"
                        " VALUES (:t, :d, now())"
                    ),
                    {"t": name, "d": pd.Timestamp(date).to_pydatetime()},
                )
            connection.commit()
    return analysed


def full_history(base, sensors_count: int, days: int, baseline_sensors: int) -> dict:
    with Scratch(base, "full") as scratch, harness.scratch_folder("detect") as folder:
        generate(folder, sensors_count, days, 2019, END)
        network = Network(folder)
        loaded = store_network(scratch.engine, network)
        seconds, _ = harness.timed(lambda: detect_anomalies.run(step_context(scratch, END)))
        found = count(scratch.engine, anomalies)

        quiet_tensorflow()
        models = {variable: model_2019() for variable in VARIABLES}
        subset = list(network.sensors["sensor_id"][: baseline_sensors + 1])
        tables = tables_2019(scratch.engine, subset)
        warm = dict(list(tables.items())[:1])
        method_2019(scratch.engine, warm, models)  # warm up TensorFlow, as ours was by its first chunk
        rest = dict(list(tables.items())[1:])
        baseline_seconds, baseline_readings = harness.timed(lambda: method_2019(scratch.engine, rest, models))
    return {
        "readings": loaded,
        "seconds": seconds,
        "anomalies": found,
        "baseline_seconds": baseline_seconds,
        "baseline_readings": baseline_readings,
    }


def nightly(base, sensors_count: int) -> dict:
    with Scratch(base, "nightly") as scratch, harness.scratch_folder("detect") as folder:
        generate(folder, sensors_count, 3, 2020, END)
        network = Network(folder)
        yesterday = END - dt.timedelta(days=1)
        store_network(scratch.engine, network, until=yesterday)
        detect_anomalies.run(step_context(scratch, yesterday))  # the nights before: untimed
        before = count(scratch.engine, readings)
        store_network(scratch.engine, network)
        new = count(scratch.engine, readings) - before
        seconds, _ = harness.timed(lambda: detect_anomalies.run(step_context(scratch, END)))
        return {"seconds": seconds, "new_readings": new}


def main() -> None:
    args = harness.options(
        __doc__,
        sensors=(500, "sensors of the full-history run"),
        days=(90, "days of the full-history run"),
        baseline_sensors=(10, "sensors the 2019 method checks"),
        nightly_sensors=(6500, "sensors of the nightly run"),
    ).parse_args()
    base = args.database_url

    full = full_history(base, args.sensors, args.days, args.baseline_sensors)
    night = nightly(base, args.nightly_sensors)

    rate = full["readings"] / full["seconds"]
    baseline_rate = full["baseline_readings"] / full["baseline_seconds"]
    print(f"detect_anomalies, database read to anomalies written, on {base.render_as_string()}")
    harness.table(
        [
            (
                f"ours, full history: {args.sensors} sensors × {args.days} days",
                full["readings"],
                full["seconds"],
                rate,
                f"  ({full['anomalies']} anomalies)",
            ),
            (
                f"2019 method: {args.baseline_sensors} of those sensors, one by one",
                full["baseline_readings"],
                full["baseline_seconds"],
                baseline_rate,
            ),
            (
                f"ours, nightly: {args.nightly_sensors:,} sensors, one new day",
                night["new_readings"],
                night["seconds"],
                night["new_readings"] / night["seconds"],
            ),
        ],
        {"run": "<52", "readings": ">10,", "seconds": ">8.1f", "readings/s": ">11,.0f"},
    )
    print(f"ours vs 2019: {rate / baseline_rate:.1f}× the readings per second")
    harness.finish(
        {
            "readings_per_s": round(rate),
            "ratio_vs_2019": round(rate / baseline_rate, 1),
            "nightly_seconds": round(night["seconds"], 1),
        }
    )


if __name__ == "__main__":
    main()
