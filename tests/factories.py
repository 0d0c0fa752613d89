"""What the tests share, in one place: synthetic sensors and stations, the seeded database of the
web-app tests, database snapshots to compare runs, the settings and environment of a pipeline run
against the simulator, and the listing of var/ that shows no test wrote there. Randomness is seeded
everywhere: the same test sees the same data every run."""

import datetime as dt
import fnmatch
import os
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select

from core.load import bulk_upsert
from core.schema import (
    anomalies,
    detection_state,
    readings,
    sensor_health,
    sensor_wow,
    sensors,
    wow_observations,
    wow_sites,
)
from etl.settings import load_settings

START = pd.Timestamp("2019-06-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)
DAYS = 10  # of a synthetic station's weather
SIMULATED_END = "2019-07-01T00:00:00+00:00"  # the end of the generated networks' readings
NOW = dt.datetime(2019, 7, 1, tzinfo=dt.UTC)  # a pipeline run's present, at that end


# --- one synthetic sensor and station ---------------------------------------------------------------


def clean(days: int = 7, freq: str = "15min", seed: int = 1) -> pd.DataFrame:
    """A healthy garden sensor: daily temperature and light cycles, soil drying with one shower."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(START, periods=days * 96, freq="15min")
    hours = np.arange(len(index)) / 4
    sun = np.clip(np.sin((hours % 24 - 6) / 12 * np.pi), 0, None)
    soil = 30 - 0.05 * hours + np.where(hours > 72, 8, 0) + rng.normal(0, 0.15, len(index))
    frame = pd.DataFrame(
        {
            "air_temperature": 14
            + 5 * np.sin((hours % 24 - 9) / 24 * 2 * np.pi)
            + rng.normal(0, 0.3, len(index)),
            "soil_moisture": soil,
            "light": np.round(25 * sun * (1 + rng.normal(0, 0.03, len(index))), 2),
            "battery_level": np.floor(80 - hours * 0.01),
        },
        index=index,
    )
    return frame.resample(freq).first() if freq != "15min" else frame


def weather(freq: str, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.date_range(START, periods=DAYS * 96, freq="15min")
    hours = np.arange(len(index)) / 4
    truth = 15 + 6 * np.sin((hours % 24 - 9) / 24 * 2 * np.pi) + np.repeat(rng.normal(0, 2, DAYS), 96)
    series = pd.Series(truth + rng.normal(0, 0.3, len(index)), index=index)
    return series.resample(freq).first() if freq != "15min" else series


def pair(station_freq="30min"):
    """A station and a sensor beside it: the same weather, the sensor a little warmer with its own noise."""
    station = weather(station_freq, seed=1)
    sensor = weather("15min", seed=1) + 0.5
    sensor += np.random.default_rng(9).normal(0, 0.3, len(sensor))
    return sensor, station


# --- the seeded database of the web-app tests -----------------------------------------------------------


TOKEN = "test-service-token"


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
                    # As 2019 wrote s1's: Google's address components' long names joined by spaces.
                    "address_2019": [
                        "1 High Street London Greater London England United Kingdom",
                        None,
                        None,
                        None,
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


SILENT_SINCE = START + pd.Timedelta(hours=47.75)  # the silent sensor's last reading: 2019-06-02 23:45 UTC


# Sensors at the edges of what the database may hold, each from a path that stores such rows (import-2019,
# a source that names nothing, a station that never reported): every page and route must answer them.
EDGE_ID = "a" * 55 + ":b@c.d-e_"  # 64 characters, every sign the id pattern allows
ODD_SENSORS = {
    "bare": "nothing but its id: no name, owner, place, readings, health or station",
    "far-link": "linked by 2019 with no distance, to a station that never reported",
    "faulty-silent": "faulty with no reason, no counts and no reading time",
    EDGE_ID: "an id at the edge of the pattern, owner-a's, with one reading",
}


def seed_odd(engine) -> None:
    """Beside seed's rows (call seed first), ODD_SENSORS."""
    with engine.begin() as connection:
        bulk_upsert(connection, sensors, pd.DataFrame({"sensor_id": ["bare", "far-link", "faulty-silent"]}))
        edge = {"sensor_id": [EDGE_ID], "owner_id": ["owner-a"], "latitude": [51.5], "longitude": [0.0]}
        bulk_upsert(connection, sensors, pd.DataFrame(edge))
        never = {"site_id": ["never-reported"], "latitude": [50.0], "longitude": [1.0], "is_live": [False]}
        bulk_upsert(connection, wow_sites, pd.DataFrame(never))
        link = {"sensor_id": ["far-link"], "site_id": ["never-reported"], "distance_km": [None]}
        bulk_upsert(connection, sensor_wow, pd.DataFrame(link))
        bulk_upsert(
            connection, sensor_health, pd.DataFrame({"sensor_id": ["faulty-silent"], "status": ["faulty"]})
        )
        one = {"sensor_id": [EDGE_ID], "ts": [START], "soil_moisture": [30.0]}
        bulk_upsert(connection, readings, pd.DataFrame(one))


def seed_silent(engine) -> None:
    """Beside seed's rows (call seed first), q1 of owner-a: two days of readings, then silence (the
    nightly analysis has marked it silent). Not in seed itself, so the tests that count seed's sensors
    keep their numbers."""
    times = pd.date_range(START, SILENT_SINCE, freq="15min")
    with engine.begin() as connection:
        sensor = {
            "sensor_id": ["q1"],
            "name": ["Greenhouse"],
            "owner_id": ["owner-a"],
            "latitude": [51.75],
            "longitude": [-1.26],
            "address": ["2 Mill Lane, Oxford"],
            "first_sample_at": pd.to_datetime([START], utc=True),
            "last_sample_at": pd.to_datetime([SILENT_SINCE], utc=True),
            "days_active": [2],
        }
        bulk_upsert(connection, sensors, pd.DataFrame(sensor))
        values = {"soil_moisture": 25.0, "air_temperature": 16.0, "light": 12.0, "battery_level": 3.0}
        bulk_upsert(connection, readings, pd.DataFrame({"sensor_id": "q1", "ts": times, **values}))
        health = {
            "sensor_id": ["q1"],
            "status": ["silent"],
            "last_anomaly_at": pd.to_datetime([None], utc=True),
            "latest_reading_at": pd.to_datetime([SILENT_SINCE], utc=True),
            "days_since_anomaly": [None],
            "counts": [{"kind": {}, "variable": {}}],
            "reason": ["silent: no reading since 2019-06-02 23:45 UTC (8.0 days); before that: healthy"],
        }
        bulk_upsert(connection, sensor_health, pd.DataFrame(health))


# --- snapshots of a database ------------------------------------------------------------------------------


DATA_TABLES = (sensors, wow_sites, sensor_wow, readings, wow_observations)
RESULT_TABLES = (anomalies, sensor_health, detection_state)
BOOKKEEPING = {"updated_at", "detected_at", "anomaly_id"}


def snapshot(engine, tables=DATA_TABLES) -> dict[str, pd.DataFrame]:
    """Each table's rows without bookkeeping columns, sorted by every column left."""
    out = {}
    with engine.connect() as connection:
        for table in tables:
            columns = [c for c in table.columns if c.name not in BOOKKEEPING]
            frame = pd.DataFrame(
                connection.execute(select(*columns)).all(), columns=[c.name for c in columns]
            )
            order = [c.name for c in columns if c.name != "counts"]  # a JSON column does not sort
            out[table.name] = frame.sort_values(order, ignore_index=True)
    return out


def assert_same_database(left, right):
    for name in left:
        pd.testing.assert_frame_equal(left[name], right[name], check_dtype=False, obj=name)


# --- a pipeline run against the simulator ---------------------------------------------------------------


def pipeline_settings(database_url, url, now=NOW, **overrides):
    return load_settings(
        database_url=database_url,
        grow_api_url=f"{url}/grow/api",
        grow_api_key="sim-grow-key",
        wow_api_url=f"{url}/wow/api",
        wow_api_key="sim-wow-key",
        http_backoff_s=0.01,
        etl_now=now,
        **overrides,
    )


def etl_env(database_url, url, now=NOW, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GROW_", "WOW_", "DATABASE_URL", "ETL_"))}
    env.update(
        {
            "DATABASE_URL": database_url,
            "GROW_API_URL": f"{url}/grow/api",
            "GROW_API_KEY": "sim-grow-key",
            "WOW_API_URL": f"{url}/wow/api",
            "WOW_API_KEY": "sim-wow-key",
            "ETL_NOW": now.isoformat(),
            "HTTP_BACKOFF_S": "0.01",
        }
    )
    env.update(extra)
    return env


# --- what is under var/ ---------------------------------------------------------------------------------

# var/airflow-venv is made by `make test` (maybe still while the tests start): never compared. The outputs
# of a developer's own runs (`make demo`, training, evaluation, bundles, benchmarks) may change beside
# the tests: only their appearing or vanishing counts. SQLite's companions of the demo database come and
# go while the demo runs: never compared.
VAR_IGNORED = (
    "airflow-venv",
    "peers",
    "grow_wow.sqlite-wal",
    "grow_wow.sqlite-shm",
    "grow_wow.sqlite-journal",
)
VAR_DEVELOPER_OUTPUTS = ("grow_wow.sqlite*", "demo-network", "eval*", "train-*", "bundles", "bench_*")


def var_listing(var_dir: Path) -> dict[str, tuple]:
    """Every file and folder under var_dir by its relative path: (size, mtime in ns) for files, () for
    folders and for the developer's outputs."""
    listing: dict[str, tuple] = {}
    if not var_dir.is_dir():
        return listing
    for top in var_dir.iterdir():
        if top.name in VAR_IGNORED:
            continue
        if any(fnmatch.fnmatch(top.name, pattern) for pattern in VAR_DEVELOPER_OUTPUTS):
            listing[top.name] = ()
            continue
        paths = [top, *top.rglob("*")] if top.is_dir() and not top.is_symlink() else [top]
        for path in paths:
            stat = path.lstat()
            is_file = not path.is_dir() or path.is_symlink()
            listing[str(path.relative_to(var_dir))] = (stat.st_size, stat.st_mtime_ns) if is_file else ()
    return listing


def var_changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    """What changed between two listings, one phrase a path: added, changed or removed."""
    added = [f"added {path}" for path in sorted(after.keys() - before.keys())]
    removed = [f"removed {path}" for path in sorted(before.keys() - after.keys())]
    kept = sorted(before.keys() & after.keys())
    changed = [f"changed {path}" for path in kept if before[path] != after[path]]
    return added + changed + removed


# --- AWS as the deployment guide sets it up -------------------------------------------------------------


def guide_secrets() -> dict[str, tuple[str, ...]]:
    """The secrets each role's IAM policy lets it read, as deploy/README.md ("IAM") gives them: the EC2
    role the policy's resources, the Beanstalk instance profiles the ones the sentence after it names."""
    import re

    guide = (Path(__file__).resolve().parent.parent / "deploy" / "README.md").read_text()
    iam = guide[guide.index("IAM: each role") :]
    policy = iam[iam.index("```json") : iam.index("```", iam.index("```json") + 3)]
    web = re.search(r"Beanstalk instance profiles get (.*?) only", iam, re.S).group(1)
    return {
        "nightly": tuple(re.findall(r"secret:([\w-]+?)-\*", policy)),
        "web": tuple(re.findall(r"`([\w-]+?)-\*`", web)),
    }


GUIDE_SECRETS = guide_secrets()


class RefusingSecrets:
    """A Secrets Manager client that, like an IAM policy, lets a role read only the secrets it allows."""

    def __init__(self, client, allowed):
        self.client, self.allowed, self.asked = client, set(allowed), []

    def get_secret_value(self, SecretId):
        from botocore.exceptions import ClientError

        self.asked.append(SecretId)
        if SecretId not in self.allowed:
            error = {"Error": {"Code": "AccessDeniedException", "Message": f"not allowed: {SecretId}"}}
            raise ClientError(error, "GetSecretValue")
        return self.client.get_secret_value(SecretId=SecretId)
