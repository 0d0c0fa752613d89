"""The seeded database the back-end tests share: four sensors (faulty, healthy, recovered, unchecked),
one WOW station, readings with one spike, anomalies and health."""

import numpy as np
import pandas as pd

from core.load import bulk_upsert
from core.schema import anomalies, readings, sensor_health, sensor_wow, sensors, wow_observations, wow_sites

TOKEN = "test-service-token"
START = pd.Timestamp("2019-06-01", tz="UTC")


def seed(engine) -> None:
    """s1 (faulty, ten days of readings with one spike, linked to a station), s2 (healthy, no readings),
    r1 (recovered, one day of readings), 0042 (not checked yet)."""
    times = pd.date_range(START, periods=10 * 96, freq="15min")
    soil = 30 + np.sin(np.arange(len(times)) / 20)
    soil[500] = 95.0  # one spike that a downsampled answer must still show
    with engine.begin() as connection:
        bulk_upsert(
            connection,
            sensors,
            pd.DataFrame(
                {
                    "sensor_id": ["s1", "s2", "0042", "r1"],
                    "name": ["Tomato bed", "Lawn", "Orchard", "Hedge"],
                    "owner_id": ["owner-a", "owner-a", "owner-b", "owner-b"],
                    "latitude": [51.5, 52.2, 48.8, 45.76],
                    "longitude": [-0.1, 0.1, 2.3, 4.84],
                    "address": [
                        "1 High Street, London",
                        "Cambridge",
                        "Rue de Rivoli, Paris",
                        "Quai Saint-Vincent, Lyon",
                    ],
                    "first_sample_at": pd.to_datetime([START, None, None, START], utc=True),
                    "last_sample_at": pd.to_datetime(
                        [times[-1], None, None, START + pd.Timedelta(hours=23.75)], utc=True
                    ),
                    "days_active": [10, None, None, 1],
                }
            ),
        )
        site = {"site_id": ["900123"], "name": ["London WOW"], "latitude": [51.49], "longitude": [-0.12]}
        bulk_upsert(connection, wow_sites, pd.DataFrame({**site, "is_live": [True]}))
        link = {"sensor_id": ["s1"], "site_id": ["900123"], "distance_km": [1.7]}
        bulk_upsert(connection, sensor_wow, pd.DataFrame(link))
        values = {"soil_moisture": soil, "air_temperature": 15.0, "light": 10.0, "battery_level": 80.0}
        frame = pd.DataFrame({"sensor_id": "s1", "ts": times, **values})
        hedge = pd.DataFrame({"sensor_id": "r1", "ts": times[:96], **values, "soil_moisture": 22.0})
        bulk_upsert(connection, readings, pd.concat([frame, hedge]))
        station_times = pd.date_range(START, periods=10 * 48, freq="30min")
        reports = {
            "air_temperature": 14.0,
            "rainfall": np.where(np.arange(len(station_times)) == 100, 2.5, 0.0),
        }
        bulk_upsert(
            connection, wow_observations, pd.DataFrame({"site_id": "900123", "ts": station_times, **reports})
        )
        spike_at = times[500]
        bulk_upsert(
            connection,
            anomalies,
            pd.DataFrame(
                {
                    "sensor_id": ["s1", "s1"],
                    "variable": ["soil_moisture", "air_temperature"],
                    "kind": ["spike", "temperature_bias"],
                    "start_at": [spike_at, START + pd.Timedelta(days=1)],
                    "end_at": [spike_at, START + pd.Timedelta(days=2)],
                    "score": [6.5, 1.2],
                    "detector": ["rule", "reference"],
                    "explanation": [
                        "1 soil moisture spike of up to 65.0 %",
                        "air temperature on average 4.8 °C above",
                    ],
                }
            ),
        )
        bulk_upsert(
            connection,
            sensor_health,
            pd.DataFrame(
                {
                    "sensor_id": ["s1", "s2", "r1"],
                    "status": ["faulty", "healthy", "recovered"],
                    "last_anomaly_at": pd.to_datetime(
                        [START + pd.Timedelta(days=9), None, START - pd.Timedelta(days=3)], utc=True
                    ),
                    "latest_reading_at": pd.to_datetime([times[-1], None, times[95]], utc=True),
                    "days_since_anomaly": [0.5, None, 3.99],
                    "counts": [
                        {"kind": {"spike": 1}, "variable": {"soil_moisture": 1}},
                        {"kind": {}, "variable": {}},
                        {"kind": {"stuck": 1}, "variable": {"light": 1}},
                    ],
                    "reason": [
                        "1 soil moisture spike of up to 65.0 %",
                        "no anomaly found",
                        "light stuck at 0",
                    ],
                }
            ),
        )
