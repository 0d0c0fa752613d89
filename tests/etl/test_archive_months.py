"""Finished months of the archive again by sensor (issue 34): a sensor's year read back from 12 files, not
365, each month rewritten when one of its days changes, checked by verify like every file."""

import datetime as dt

import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.archive import bucket_of, files_to_read, month_path, open_store, read_manifest, read_sensor
from core.load import bulk_upsert
from core.schema import readings
from etl import archive as archiving
from etl import archive_months
from tests.etl import test_retention as retention
from tests.etl.test_retention import NOW

# Ten days across a month's end, hourly, for a sensor of each source: January (6 days) and February (4) are
# finished months by NOW.
FIRST, LAST = "2026-01-26", "2026-02-04 23:00"


def hourly(sensor_id: str, seed: int) -> pd.DataFrame:
    return retention.hourly(sensor_id, seed, FIRST, LAST)


@pytest.fixture
def stored(engine):
    return retention.two_gardens(engine, first=FIRST, last=LAST)


YEAR = (dt.date(2026, 1, 1), dt.date(2026, 12, 31))


def test_a_sensors_year_is_read_from_one_file_a_finished_month(stored, tmp_path):
    done = archiving.archive(stored, tmp_path, NOW, 3, "CC BY 4.0")
    assert done["months"] == 4  # January and February, for GROW and openSenseMap
    manifest = read_manifest(tmp_path)
    wanted = files_to_read(manifest, "osem:b1", "opensensemap", *YEAR)
    assert wanted == [month_path(dt.date(2026, month, 1), "opensensemap", 0, 1) for month in (1, 2)]
    january = pq.read_table(tmp_path / wanted[0]).to_pandas()
    assert january["sensor_id"].unique().tolist() == ["osem:b1"] and len(january) == 6 * 24
    assert january["ts"].is_monotonic_increasing
    truth = hourly("osem:b1", 2)
    start, end = dt.datetime(2026, 1, 28, 5, tzinfo=dt.UTC), dt.datetime(2026, 2, 3, 12, tzinfo=dt.UTC)
    got = read_sensor(tmp_path, "osem:b1", "opensensemap", start, end)
    truth = truth[(truth["ts"] >= start) & (truth["ts"] <= end)]
    assert got["ts"].tolist() == truth["ts"].tolist()
    assert got["soil_moisture"].tolist() == truth["soil_moisture"].tolist()


def test_a_month_not_over_is_read_day_by_day():
    manifest = {
        "files": {f"readings/day=2026-04-0{d}/source=grow/readings.parquet": {} for d in (1, 2, 4)},
        "months": {},
    }
    assert files_to_read(manifest, "g1", "grow", dt.date(2026, 4, 2), dt.date(2026, 4, 9)) == [
        "readings/day=2026-04-02/source=grow/readings.parquet",
        "readings/day=2026-04-04/source=grow/readings.parquet",
    ]


def test_a_late_reading_rewrites_its_month_alone_and_verify_checks_the_months(stored, tmp_path):
    archiving.archive(stored, tmp_path, NOW, 3, "CC BY 4.0")
    before = {path: path.read_bytes() for path in (tmp_path / "sensors").rglob("*.parquet")}
    assert archiving.archive(stored, tmp_path, NOW, 3, "CC BY 4.0")["months"] == 0
    with stored.begin() as connection:
        late = {"sensor_id": "g1", "ts": pd.Timestamp("2026-02-02 07:00", tz="UTC"), "soil_moisture": 44.0}
        bulk_upsert(connection, readings, pd.DataFrame([late]))
    assert archiving.archive(stored, tmp_path, NOW, 3, "CC BY 4.0")["months"] == 1
    changed = [path.relative_to(tmp_path).as_posix() for path in before if path.read_bytes() != before[path]]
    assert changed == [month_path(dt.date(2026, 2, 1), "grow", 0, 1)]
    got = read_sensor(
        tmp_path,
        "g1",
        "grow",
        dt.datetime(2026, 2, 2, 7, tzinfo=dt.UTC),
        dt.datetime(2026, 2, 2, 7, tzinfo=dt.UTC),
    )
    assert got["soil_moisture"].tolist() == [44.0]
    (tmp_path / changed[0]).write_bytes(b"not parquet")
    assert archiving.verify(tmp_path) == [f"{changed[0]}: its bytes changed since it was archived"]


def test_a_large_month_is_split_by_the_hash_of_its_sensors_ids(stored, tmp_path, monkeypatch):
    monkeypatch.setattr(archive_months, "SENSOR_FILE_ROWS", 50)  # January's 144 readings a source: 3 files
    archiving.archive(stored, tmp_path, NOW, 3, "CC BY 4.0")
    january = read_manifest(tmp_path)["months"]["2026-01/grow"]
    assert january["buckets"] == 3 and january["rows"] == 6 * 24
    assert list(january["files"]) == [month_path(dt.date(2026, 1, 1), "grow", bucket_of("g1", 3), 3)]
    store = open_store(tmp_path)
    start, end = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 31, 23, tzinfo=dt.UTC)
    assert len(read_sensor(store, "g1", "grow", start, end)) == 6 * 24


def test_a_value_leaves_the_database_for_the_archive_to_its_last_digit(stored, tmp_path):
    # A daily mean from the Vale da Lama files: 15 digits, which a float32 archive cut to 7.
    at = pd.Timestamp("2026-01-29 05:00", tz="UTC")
    with stored.begin() as connection:
        bulk_upsert(
            connection,
            readings,
            pd.DataFrame([{"sensor_id": "g1", "ts": at, "soil_moisture": 11.3407692307692}]),
        )
    archiving.archive(stored, tmp_path, NOW, 3, "CC BY 4.0")
    assert archiving.drop_archived_months(stored, tmp_path, NOW, keep_months=2)[0].startswith(
        "2026-01: 288 readings dropped"
    )
    got = read_sensor(tmp_path, "g1", "grow", at.to_pydatetime(), at.to_pydatetime())
    assert got["soil_moisture"].tolist() == [11.3407692307692]
