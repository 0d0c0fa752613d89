"""`detect`: every check on readings held in a DataFrame, no database needed.

    from etl.detect.detect import detect
    anomalies = detect(readings, stations=observations, links=links)

`readings` has a UTC `ts` column (or index) and any of soil_moisture, air_temperature, light and
battery_level, for one sensor or many (a `sensor_id` column); samples may be 15-minute, hourly or
irregular. `stations` (site_id, ts, air_temperature, rainfall) and `links` (sensor_id, site_id,
distance_km) are optional: without them only the rules run. The answer has one row per anomaly, in the
columns of the `anomalies` table.
"""

from __future__ import annotations

import pandas as pd

from etl.detect.reference import check_temperature_against_station
from etl.detect.rules import Flag, check_sensor

ANOMALY_COLUMNS = ["sensor_id", "variable", "kind", "start_at", "end_at", "score", "detector", "explanation"]


def detect(
    readings: pd.DataFrame, stations: pd.DataFrame | None = None, links: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Run the rule checks on every sensor, and the station checks where a linked station's data is given."""
    readings = _with_time_column(readings)
    if "sensor_id" not in readings:
        readings = readings.assign(sensor_id="sensor")
    station_series = {}
    if stations is not None and len(stations):
        stations = _with_time_column(stations)
        station_series = {
            site: own.set_index("ts")["air_temperature"] for site, own in stations.groupby("site_id")
        }
    link_of = (
        {}
        if links is None
        else {r.sensor_id: (r.site_id, r.distance_km) for r in links.itertuples() if pd.notna(r.site_id)}
    )

    rows = []
    for sensor, own in readings.groupby("sensor_id", sort=True):
        series = own.set_index("ts").drop(columns="sensor_id")
        rows += [_row(sensor, flag, "rule") for flag in check_sensor(series)]
        site, distance = link_of.get(sensor, (None, None))
        if site in station_series and "air_temperature" in series:
            flags = check_temperature_against_station(
                series["air_temperature"], station_series[site], site, distance
            )
            rows += [_row(sensor, flag, "reference") for flag in flags]
    return pd.DataFrame(rows, columns=ANOMALY_COLUMNS)


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
