"""`python -m models.train --from-db [--sensors a,b,c]`: train the three autoencoders on the network's own
sensors, read from DATABASE_URL as in 2019, and write them into models/ (or --out). Without --sensors it
picks them itself: the sensors healthy over the whole span (no anomaly ever, per the last analysis) with
at least MIN_DAYS days of readings. The days a condition covered (frozen soil, snow, a watering system)
are left out of training, and so are, for the soil moisture model, the days its station saw rain:
detection never asks a model about those, and a storm day would set the soil model's threshold so high
that only gross faults passed it.

The shipped models learnt from the clean sensors of a simulated year instead: `python -m
devtools.train_models` makes that network and calls `train_models` here. Seeded: the same data and seed
give the same models.

Held-out sensors (three in ten, never trained on) calibrate each threshold: the errors of their normal days
set how large an error must be before a day is called anomalous (see `calibrate`).
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np
import pandas as pd

from detection.model import (
    MODEL_DIR,
    SLOTS,
    VARIABLES,
    Autoencoder,
    Windows,
    daily_windows,
    quiet_tensorflow,
)

HELD_OUT_SHARE = 0.3  # enough held-out sensors that every climate is among them
MAX_WINDOWS = 8000  # per variable: plenty for a daily shape, and training stays within minutes
MARGIN = 2.0
MIN_DAYS = 30  # of readings, for a healthy sensor to be picked for training


def calibrate(errors: np.ndarray) -> float:
    """The threshold: twice the largest error of any held-out normal day. A sensor holds ~90 days and
    a network hundreds of sensors, so even the 99.9th percentile would flag one clean sensor in ten;
    past the whole of the normal days, with room, is where faults live (measured: `python -m
    devtools.evaluate`)."""
    return float(errors.max() * MARGIN)


def healthy_sensors(connection, min_days: int = MIN_DAYS) -> list[str]:
    """The sensors healthy over their whole span (no anomaly ever: `analyse_anomalies`' healthy) whose
    readings cover at least `min_days` days."""
    from sqlalchemy import func, select

    from core.schema import readings, sensor_health
    from core.vocabulary import Health

    span = (
        select(readings.c.sensor_id)
        .group_by(readings.c.sensor_id)
        .having(func.count(func.distinct(func.date(readings.c.ts))) >= min_days)
        .subquery()
    )
    query = (
        select(sensor_health.c.sensor_id)
        .where(sensor_health.c.status == Health.HEALTHY.value)
        .where(sensor_health.c.sensor_id.in_(select(span.c.sensor_id)))
        .order_by(sensor_health.c.sensor_id)
    )
    return list(connection.execute(query).scalars())


def database_readings(sensor_ids: list[str] | None):
    """The readings of these sensors (or, if none are named, of the healthy ones: `healthy_sensors`),
    the sensors, and the days their stations saw rain (None without stations)."""
    from sqlalchemy import select

    from core.db import make_engine, read_frame
    from core.schema import readings
    from core.settings import CoreSettings, load_role_settings

    engine = make_engine(load_role_settings(CoreSettings))
    with engine.connect() as connection:
        if not sensor_ids:
            sensor_ids = healthy_sensors(connection)
            if len(sensor_ids) < 2:
                raise click.UsageError(
                    f"only {len(sensor_ids)} sensor(s) healthy with {MIN_DAYS} days of readings: "
                    "run the nightly "
                    "steps first, or name the sensors you trust with --sensors"
                )
            click.echo(f"training on the {len(sensor_ids)} sensors healthy over the whole span")
        frame = read_frame(connection, select(readings).where(readings.c.sensor_id.in_(sensor_ids)))
        wet = _database_wet_days(connection, sensor_ids)
    engine.dispose()
    missing = sorted(set(sensor_ids) - set(frame["sensor_id"]))
    if missing:
        raise click.UsageError(f"no readings in the database for sensor(s): {', '.join(missing)}")
    return frame, sensor_ids, wet


def _database_wet_days(connection, sensor_ids: list[str]) -> pd.DataFrame | None:
    """The days each sensor's linked station saw rain, from the stored links and station reports."""
    from sqlalchemy import select

    from core.db import read_frame
    from core.schema import sensor_wow, wow_observations
    from detection.detect import wet_days

    links = read_frame(connection, select(sensor_wow).where(sensor_wow.c.sensor_id.in_(sensor_ids)))
    sites = sorted(set(links["site_id"].dropna())) if len(links) else []
    if not sites:
        return None
    query = select(wow_observations.c.site_id, wow_observations.c.ts, wow_observations.c.rainfall)
    stations = read_frame(connection, query.where(wow_observations.c.site_id.in_(sites)))
    stations["ts"] = pd.to_datetime(stations["ts"], utc=True)
    return wet_days(stations, links)


def without_conditions(readings: pd.DataFrame) -> pd.DataFrame:
    """`readings` with the values blanked that a condition covers: detection never asks a model about
    them, so a model need not learn them (a frozen probe's flat day would teach it flat days are normal)."""
    from core.vocabulary import CONDITIONS
    from detection.conditions import find_conditions, stand_down

    frame = readings.assign(sensor_id=readings["sensor_id"].astype("category"))
    return stand_down(frame, find_conditions(frame), CONDITIONS)


def split_sensors(sensor_ids: np.ndarray, rng: np.random.Generator) -> tuple[set, set]:
    """Sensors for training and sensors held out for calibration (at least one each)."""
    shuffled = rng.permutation(np.unique(sensor_ids))
    held = max(1, round(len(shuffled) * HELD_OUT_SHARE))
    if len(shuffled) < 2:
        raise click.UsageError("training needs at least two sensors: one to learn from, one to calibrate")
    return set(shuffled[held:]), set(shuffled[:held])


def _without_days(windows: Windows, skip: pd.DataFrame | None) -> Windows:
    if skip is None or skip.empty or windows.keys.empty:
        return windows
    marked = windows.keys.merge(skip.drop_duplicates().assign(skip=True), on=["sensor_id", "day"], how="left")
    keep = ~marked["skip"].fillna(False).to_numpy(dtype=bool)
    return Windows(windows.keys[keep].reset_index(drop=True), windows.values[keep])


def build_model(units: int = 16, layers_each_side: int = 1):
    """LSTM encoder → repeated code → LSTM decoder → one value per slot."""
    quiet_tensorflow()
    import keras

    inputs = keras.Input((SLOTS, 1))
    x = inputs
    for i in range(layers_each_side):
        x = keras.layers.LSTM(units, return_sequences=i < layers_each_side - 1)(x)
    x = keras.layers.RepeatVector(SLOTS)(x)
    for _ in range(layers_each_side):
        x = keras.layers.LSTM(units, return_sequences=True)(x)
    outputs = keras.layers.TimeDistributed(keras.layers.Dense(1))(x)
    return keras.Model(inputs, outputs)


def train_variable(
    readings: pd.DataFrame,
    variable: str,
    seed: int,
    epochs: int,
    units: int,
    source: str,
    skip: pd.DataFrame | None = None,
) -> Autoencoder:
    """One model, trained and calibrated on the days of `readings`, less those in `skip` (sensor_id,
    day)."""
    import keras

    keras.utils.set_random_seed(seed)
    windows = _without_days(daily_windows(readings, variable), skip)
    rng = np.random.default_rng(seed)
    train_ids, held_ids = split_sensors(windows.keys["sensor_id"].to_numpy(), rng)
    is_train = windows.keys["sensor_id"].isin(train_ids).to_numpy()
    train = windows.values[is_train]
    if len(train) > MAX_WINDOWS:
        train = train[np.sort(rng.choice(len(train), MAX_WINDOWS, replace=False))]
    low, high = (float(q) for q in np.quantile(train, [0.005, 0.995]))
    high = max(high, low + 1e-3)
    model = build_model(units)
    model.compile(optimizer=keras.optimizers.Adam(0.005), loss="mse")
    autoencoder = Autoencoder(variable, model, low, high, threshold=np.inf, info={})
    scaled = autoencoder.scale(train)[..., None]
    stop = keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    history = model.fit(
        scaled, scaled, epochs=epochs, batch_size=128, validation_split=0.1, shuffle=True, verbose=0,
        callbacks=[stop],
    )  # fmt: skip
    held_errors = autoencoder.errors(windows.values[~is_train])
    autoencoder.threshold = calibrate(held_errors)
    autoencoder.info = {
        "trained_on": source,
        "seed": seed,
        "units": units,
        "training_windows": len(train),
        "days_left_out": "wet days (station rain of 1 mm or more)" if skip is not None else "none",
        "training_sensors": len(train_ids),
        "held_out_windows": len(held_errors),
        "held_out_sensors": len(held_ids),
        "epochs_run": len(history.history["loss"]),
        "held_out_error": {
            "median": float(np.median(held_errors)),
            "p99": float(np.quantile(held_errors, 0.99)),
            "p99.9": float(np.quantile(held_errors, 0.999)),
            "max": float(held_errors.max()),
        },
    }
    return autoencoder


def train_models(
    readings: pd.DataFrame,
    source: str,
    out: Path = MODEL_DIR,
    seed: int = 2026,
    epochs: int = 30,
    units: int = 16,
    variables: tuple[str, ...] = VARIABLES,
    wet: pd.DataFrame | None = None,
) -> None:
    """Train, calibrate and save one model per variable from `readings` (sensor_id, ts, variables), the
    days under a condition (frost, snow, a watering system) left out, and for soil moisture the `wet`
    days (sensor_id, day: `detection.detect.wet_days`) too."""
    quiet_tensorflow()
    out.mkdir(parents=True, exist_ok=True)
    readings = without_conditions(readings)
    for variable in variables or VARIABLES:
        began = time.perf_counter()
        skip = wet if variable == "soil_moisture" else None
        autoencoder = train_variable(readings, variable, seed, epochs, units, source, skip)
        autoencoder.save(out)
        info = autoencoder.info
        click.echo(
            f"{variable:16} {info['training_windows']:6d} days from {info['training_sensors']} sensors, "
            f"{info['epochs_run']} epochs, threshold {autoencoder.threshold:.5f} "
            f"(held-out median {info['held_out_error']['median']:.5f}), "
            f"{time.perf_counter() - began:.0f} s"
        )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--from-db", is_flag=True, help="learn from the sensors in DATABASE_URL")
@click.option("--sensors", help="comma-separated sensor ids you trust [default: those healthy all along]")
@click.option("--seed", type=int, default=2026, show_default=True)
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True, help="at most (stops early)")
@click.option("--units", type=click.IntRange(2), default=16, show_default=True, help="LSTM units per layer")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=MODEL_DIR, show_default=True)
@click.option("--variable", "variables", multiple=True, type=click.Choice(VARIABLES), help="[default: all]")
def main(from_db, sensors, seed, epochs, units, out, variables) -> None:
    """Train the soil moisture, light and air temperature autoencoders on the network's healthy sensors
    (or those you name) and save them with their scaling and calibrated thresholds (the shipped ones:
    python -m devtools.train_models)."""
    if not from_db:
        raise click.UsageError(
            "--from-db trains on the sensors in DATABASE_URL (the healthy ones, or --sensors a,b,c); "
            "the shipped models come from python -m devtools.train_models"
        )
    ids = [s.strip() for s in (sensors or "").split(",") if s.strip()]
    frame, ids, wet = database_readings(ids or None)
    source = f"database sensors {','.join(ids)}" if len(ids) <= 20 else f"{len(ids)} healthy database sensors"
    train_models(frame, source, out, seed, epochs, units, variables, wet)


if __name__ == "__main__":
    main(prog_name="python -m models.train")
