"""`detect`: every check on readings held in a DataFrame, no database needed.

    from detection.detect import detect
    anomalies = detect(readings, stations=observations, links=links)

`readings` has a UTC `ts` column (or index) and any of soil_moisture, air_temperature, light and
battery_level, for one sensor or many (a `sensor_id` column); samples may be 15-minute, hourly or
irregular. `stations` (site_id, ts, air_temperature, rainfall) and `links` (sensor_id, site_id,
distance_km) are optional: without them the station checks are skipped. `models` are the autoencoders
shipped in models/ unless given (a dict of variable → `detection.model.Autoencoder`, or None for no
model check; or a Future of either, waited for by the model check alone), used when `config` runs the
model checks. `config` says which checks run with which thresholds (`detection.checks.configure`; unless
given, every check but the models, with its defaults: `configure("all")` runs the models too).
The answer has one row per anomaly, in the columns of the `anomalies` table, with the detector that
found it: "rule", "model" or "reference"; and one row per condition the garden went through (frozen
soil, snow, a watering system: detector "condition", `detection.conditions`), during which the checks
it would trip stand down.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

import pandas as pd

from core.vocabulary import AnomalyKind, Detector
from detection.checks import CHECKS, DEFAULT, Configuration
from detection.conditions import Grid, Views, find_conditions
from detection.model import Autoencoder, ErrorMemo, check_with_models, shipped
from detection.reference import check_against_stations, station_rain, without_common
from detection.rules import Flag, check_sensors

ANOMALY_COLUMNS = ["sensor_id", "variable", "kind", "start_at", "end_at", "score", "detector", "explanation"]


def detect(
    readings: pd.DataFrame,
    stations: pd.DataFrame | None = None,
    links: pd.DataFrame | None = None,
    models: Mapping[str, Autoencoder] | Future | str | None = "shipped",
    config: Configuration = DEFAULT,
    memo: ErrorMemo | None = None,
) -> pd.DataFrame:
    """Run the checks `config` selects: the rules on all sensors at once, the models on all their days
    at once, and the station checks where a linked station's data is given. `memo` holds the models'
    errors of days an earlier window asked about (`detection.model.ErrorMemo`)."""
    readings = _with_time_column(readings)
    if "sensor_id" not in readings:
        readings = readings.assign(sensor_id="sensor")
    # Sensor ids as categories, once: every grouping by sensor after (the rules, the station checks)
    # then goes by their codes instead of hashing millions of strings again.
    readings = readings.assign(sensor_id=readings["sensor_id"].astype("category"))
    has_stations = stations is not None and len(stations) > 0 and links is not None and len(links) > 0
    if has_stations:
        stations = _with_time_column(stations)
        stations = stations.assign(site_id=stations["site_id"].astype("category"))  # as the sensor ids
        links = links[links["site_id"].notna()]

    soil_model = "unusual_day.soil_moisture"
    rained = (
        wet_days(stations, links, config.thresholds[soil_model].wet_day_rain_mm)
        if has_stations and config.runs(soil_model)
        else None
    )
    # The readings' hours, made once: frost and snow are read from them, the views blank by them.
    hourly = Grid(readings, "sensor_id")
    conditions = find_conditions(readings, stations if has_stations else None, links, config, hourly)
    rows = [_row(sensor, flag, Detector.CONDITION) for sensor, flag in conditions]
    # Each check sees the readings as the conditions it stands down for leave them (blanked while frost,
    # snow or a watering system last; `Check.stands_down`), each view made once, before the threads.
    running = [c for c in CHECKS.values() if config.runs(c.name) and c.detector != Detector.CONDITION]
    views = Views(readings, conditions, config, hourly).prepare(running)
    # The models run in a thread beside the rules: TensorFlow computes outside the GIL, so the two
    # share the machine's cores (measured: 15.4 s → 8.7 s on 500 sensors × 90 days, 2 cores).
    # So do the station checks: numpy and pandas' grouping release the GIL for much of their work.
    with ThreadPoolExecutor(2, thread_name_prefix="checks") as pool:
        by_models = pool.submit(_check_with_models, views, models, rained, config, memo)
        by_stations = (
            pool.submit(check_against_stations, views, stations, links, config) if has_stations else None
        )
        rain = station_rain(stations, links, readings) if has_stations else None
        found = check_sensors(views, config, rain=rain)
        if has_stations:  # a jump every garden by a station makes at once is weather
            found = without_common(found, links)
        rows += [_row(sensor, flag, Detector.RULE) for sensor, flag in found]
        if has_stations:
            rows += [_row(sensor, flag, Detector.REFERENCE) for sensor, flag in by_stations.result()]
        rows += by_models.result()
    found = pd.DataFrame(rows, columns=ANOMALY_COLUMNS)
    return found.sort_values(["sensor_id", "start_at", "variable", "kind"], ignore_index=True)


def _check_with_models(views: Views, models, rained, config: Configuration, memo) -> list[dict]:
    """`check_with_models` with `models` as `detect` takes them. A Future (models still loading) is
    waited for here, on the models' thread, so the rules need not wait for TensorFlow."""
    if not config.running(Detector.MODEL):
        return []  # no model check runs: TensorFlow is not even loaded
    if isinstance(models, Future):
        models = models.result()
    models = shipped() if isinstance(models, str) and models == "shipped" else (models or {})
    return check_with_models(views, models, rained, config, memo)


def wet_days(stations: pd.DataFrame, links: pd.DataFrame, min_rain_mm: float = 1.0) -> pd.DataFrame | None:
    """(sensor_id, day) of the UTC days on which a sensor's station recorded at least `min_rain_mm`."""
    if "rainfall" not in stations:
        return None
    rain = stations.groupby([stations["site_id"], stations["ts"].dt.floor("D").rename("day")])[
        "rainfall"
    ].sum()
    wet = rain[rain >= min_rain_mm].reset_index()[["site_id", "day"]]
    return links[["sensor_id", "site_id"]].merge(wet, on="site_id")[["sensor_id", "day"]]


def _row(sensor: str, flag: Flag, detector: Detector) -> dict:
    return {
        "sensor_id": sensor,
        "variable": flag.variable,
        "kind": AnomalyKind(flag.kind).value,  # plain strings in the table, as from the database
        "start_at": flag.start,
        "end_at": flag.end,
        "score": round(float(flag.score), 3),
        "detector": detector.value,
        "explanation": flag.explanation,
    }


def _with_time_column(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame with a timezone-aware `ts` column, whether the times came as a column or the index."""
    if "ts" not in frame:
        frame = frame.rename_axis("ts").reset_index()
    ts = pd.to_datetime(frame["ts"])
    if ts.dt.tz is None:
        raise ValueError(
            "readings need timezone-aware timestamps (UTC): use tz_localize('UTC') if they are UTC"
        )
    return frame.assign(ts=ts.dt.tz_convert("UTC"))
