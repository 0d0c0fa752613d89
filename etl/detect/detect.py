"""`detect`: every check on readings held in a DataFrame, no database needed.

    from etl.detect.detect import detect
    anomalies = detect(readings, stations=observations, links=links)

`readings` has a UTC `ts` column (or index) and any of soil_moisture, air_temperature, light and
battery_level, for one sensor or many (a `sensor_id` column); samples may be 15-minute, hourly or
irregular. `stations` (site_id, ts, air_temperature, rainfall) and `links` (sensor_id, site_id,
distance_km) are optional: without them the station checks are skipped. `models` are the autoencoders
shipped in models/ unless given (a dict of variable → `models.autoencoder.Autoencoder`, or None for no
model check). The answer has one row per anomaly, in the columns of the `anomalies` table, with the
detector that found it: "rule", "model" or "reference".
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from etl.detect.model import check_with_models
from etl.detect.reference import check_soil_against_rain, check_temperature_against_station
from etl.detect.rules import Flag, check_sensor
from models.autoencoder import Autoencoder, shipped

ANOMALY_COLUMNS = ["sensor_id", "variable", "kind", "start_at", "end_at", "score", "detector", "explanation"]


def detect(
    readings: pd.DataFrame,
    stations: pd.DataFrame | None = None,
    links: pd.DataFrame | None = None,
    models: Mapping[str, Autoencoder] | str | None = "shipped",
) -> pd.DataFrame:
    """Run the rules on every sensor, the models on all their days at once, and the station checks
    where a linked station's data is given."""
    readings = _with_time_column(readings)
    if "sensor_id" not in readings:
        readings = readings.assign(sensor_id="sensor")
    station_series = {}
    if stations is not None and len(stations):
        stations = _with_time_column(stations)
        station_series = {site: own.set_index("ts") for site, own in stations.groupby("site_id")}
    link_of = (
        {}
        if links is None
        else {r.sensor_id: (r.site_id, r.distance_km) for r in links.itertuples() if pd.notna(r.site_id)}
    )

    models = shipped() if isinstance(models, str) and models == "shipped" else (models or {})
    rows = check_with_models(readings, models, _wet_days(stations, link_of))
    for sensor, own in readings.groupby("sensor_id", sort=True):
        series = own.set_index("ts").drop(columns="sensor_id")
        rows += [_row(sensor, flag, "rule") for flag in check_sensor(series)]
        site, distance = link_of.get(sensor, (None, None))
        if site in station_series:
            rows += [
                _row(sensor, flag, "reference")
                for flag in _against_station(series, station_series[site], site, distance)
            ]
    found = pd.DataFrame(rows, columns=ANOMALY_COLUMNS)
    return found.sort_values(["sensor_id", "start_at", "variable", "kind"], ignore_index=True)


def _wet_days(stations: pd.DataFrame | None, link_of: dict, min_rain_mm: float = 1.0) -> pd.DataFrame | None:
    """(sensor_id, day) of the UTC days on which a sensor's station recorded at least `min_rain_mm`."""
    if stations is None or not len(stations) or "rainfall" not in stations or not link_of:
        return None
    rain = stations.assign(day=stations["ts"].dt.floor("D")).groupby(["site_id", "day"])["rainfall"].sum()
    wet = rain[rain >= min_rain_mm].reset_index()[["site_id", "day"]]
    links = pd.DataFrame(
        [(sensor, site) for sensor, (site, _) in link_of.items()], columns=["sensor_id", "site_id"]
    )
    return links.merge(wet, on="site_id")[["sensor_id", "day"]]


def _against_station(series: pd.DataFrame, station: pd.DataFrame, site: str, distance: float) -> list[Flag]:
    flags = []
    if "air_temperature" in series and "air_temperature" in station:
        flags += check_temperature_against_station(
            series["air_temperature"], station["air_temperature"], site, distance
        )
    if "soil_moisture" in series and "rainfall" in station:
        flags += check_soil_against_rain(series["soil_moisture"], station["rainfall"], site, distance)
    return flags


def _row(sensor: str, flag: Flag, detector: str) -> dict:
    return {
        "sensor_id": sensor,
        "variable": flag.variable,
        "kind": flag.kind,
        "start_at": flag.start,
        "end_at": flag.end,
        "score": round(float(flag.score), 3),
        "detector": detector,
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
