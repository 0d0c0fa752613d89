"""Retention (issue 34): whole months older than READINGS_KEEP_MONTHS leave the database once archived and
verified, never one that is not; the back end still charts them, from the archive."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from core.load import bulk_upsert
from core.schema import readings, sensors
from etl import archive as archiving
from flask_back_end import create_app
from flask_back_end.settings import load_settings
from tests.factories import TOKEN

NOW = dt.datetime(2026, 5, 15, 6, tzinfo=dt.UTC)


FIRST, LAST = "2026-01-25", "2026-03-05 23:00"


def hourly(sensor_id: str, seed: int, first: str = FIRST, last: str = LAST) -> pd.DataFrame:
    """Hourly readings from `first` to `last` (by default 25 January to 5 March 2026)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(first, last, freq="h", tz="UTC")
    values = {name: np.round(rng.uniform(5, 40, len(ts)), 2) for name in archiving.VARIABLES}
    return pd.DataFrame({"sensor_id": sensor_id, "ts": ts, **values})


def two_gardens(engine, **span):
    """A GROW sensor and an openSenseMap box, hourly over the span."""
    with engine.begin() as connection:
        bulk_upsert(connection, sensors, pd.DataFrame({"sensor_id": ["g1", "osem:b1"]}))
        bulk_upsert(connection, readings, pd.concat([hourly("g1", 1, **span), hourly("osem:b1", 2, **span)]))
    return engine


@pytest.fixture
def stored(engine):
    return two_gardens(engine)


def months_in_database(engine) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(select(readings.c.ts)).scalars()
        return sorted({f"{ts:%Y-%m}" for ts in rows})


def test_archived_and_verified_months_are_dropped_and_the_rest_kept(stored, tmp_path):
    archiving.archive(stored, tmp_path, NOW, 3, "CC BY 4.0")
    said = archiving.drop_archived_months(stored, tmp_path, NOW, keep_months=2)  # keep March and after
    assert said == [
        "2026-01: 336 readings dropped, archived and verified",
        "2026-02: 1,344 readings dropped, archived and verified",
    ]
    assert months_in_database(stored) == ["2026-03"]
    assert archiving.drop_archived_months(stored, tmp_path, NOW, keep_months=2) == []  # nothing more


def test_a_month_with_a_day_missing_corrupt_or_short_in_the_archive_is_kept(stored, tmp_path):
    archiving.archive(stored, tmp_path, NOW, 3, "CC BY 4.0")
    (tmp_path / "readings/day=2026-01-27/source=grow/readings.parquet").unlink()
    february = tmp_path / "readings/day=2026-02-03/source=opensensemap/readings.parquet"
    february.write_bytes(february.read_bytes()[:-4] + b"XXXX")
    said = archiving.drop_archived_months(stored, tmp_path, NOW, keep_months=2)
    assert said == [
        "2026-01: kept, readings/day=2026-01-27/source=grow/readings.parquet is not archived",
        "2026-02: kept, readings/day=2026-02-03/source=opensensemap/readings.parquet is not as archived "
        "(its checksum differs)",
    ]
    assert months_in_database(stored) == ["2026-01", "2026-02", "2026-03"]


def test_the_charts_still_show_a_dropped_month_from_the_archive(stored, tmp_path):
    archiving.archive(stored, tmp_path, NOW, 3, "CC BY 4.0")
    archiving.drop_archived_months(stored, tmp_path, NOW, keep_months=2)
    app = create_app(load_settings(backend_token=TOKEN, archive_dir=str(tmp_path)))
    with app.test_client() as client:
        answer = client.get(
            "/api/v1/sensors/osem:b1/readings",
            headers={"Authorization": f"Bearer {TOKEN}"},
            query_string={"start": "2026-02-20T00:00:00Z", "end": "2026-03-02T23:59:59Z", "max_points": 5000},
        ).json
    app.extensions["grow_wow"]["engine"].dispose()
    truth = hourly("osem:b1", 2)
    truth = truth[(truth["ts"] >= "2026-02-20") & (truth["ts"] <= "2026-03-02 23:59:59")]
    assert (
        answer["readings"] == len(truth) == 11 * 24
    )  # February's part from the archive, March's from the database
    got = pd.DataFrame(answer["items"])
    assert got["soil_moisture"].tolist() == truth["soil_moisture"].tolist()  # as stored, to the digit
    assert pd.to_datetime(got["ts"], utc=True).tolist() == truth["ts"].tolist()
    with stored.connect() as connection:
        assert connection.scalar(select(func.min(readings.c.ts))) == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def test_a_sensor_whose_every_month_is_archived_opens_on_its_last_days(stored, tmp_path):
    from sqlalchemy import update

    with stored.begin() as connection:
        last = dt.datetime(2026, 3, 5, 23, tzinfo=dt.UTC)
        connection.execute(update(sensors).values(last_sample_at=last))
    archiving.archive(stored, tmp_path, NOW, 3, "CC BY 4.0")
    archiving.drop_archived_months(stored, tmp_path, NOW, keep_months=1)  # January to March: all of it
    assert months_in_database(stored) == []
    app = create_app(load_settings(backend_token=TOKEN, archive_dir=str(tmp_path)))
    with app.test_client() as client:
        answer = client.get("/api/v1/sensors/g1/readings", headers={"Authorization": f"Bearer {TOKEN}"}).json
    app.extensions["grow_wow"]["engine"].dispose()
    assert answer["readings"] == 9 * 24 + 1 and answer["end"].startswith("2026-03-05T23:00")
