"""The open-data archive (issue 34): each finished day's readings as Parquet, one file a day and source,
with anomaly kinds and the day's health, a manifest of checksums and a licence; idempotent, and a day
changed by late readings written again, alone."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.load import bulk_upsert
from core.schema import anomalies, readings, sensors
from etl import archive as archiving

START = pd.Timestamp("2026-03-01", tz="UTC")
NOW = dt.datetime(2026, 3, 8, 6, 0, tzinfo=dt.UTC)  # 1–4 March finished (3 days' grace); 5 March on are not


def garden(sensor_id: str, days: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range(START, periods=days * 96, freq="15min")
    return pd.DataFrame(
        {
            "sensor_id": sensor_id,
            "ts": ts,
            "soil_moisture": np.round(30 + np.cumsum(rng.normal(0, 0.05, len(ts))), 1),
            "air_temperature": np.round(12 + 5 * np.sin(np.arange(len(ts)) / 96 * 2 * np.pi), 2),
            "light": np.round(np.clip(np.sin(np.arange(len(ts)) / 96 * 2 * np.pi), 0, None) * 20, 2),
            "battery_level": 80.0,
        }
    )


@pytest.fixture
def network(engine):
    with engine.begin() as connection:
        bulk_upsert(connection, sensors, pd.DataFrame({"sensor_id": ["g1", "osem:b1"]}))
        bulk_upsert(connection, readings, pd.concat([garden("g1", 6, 1), garden("osem:b1", 6, 2)]))
        stuck = {"sensor_id": "g1", "variable": "soil_moisture", "kind": "stuck", "detector": "rule"}
        bulk_upsert(
            connection,
            anomalies,
            pd.DataFrame(
                [
                    {
                        **stuck,
                        "start_at": START + pd.Timedelta(days=1, hours=2),
                        "end_at": START + pd.Timedelta(days=1, hours=5),
                    }
                ]
            ),
        )
    return engine


def test_each_finished_day_and_source_is_one_file_equal_to_the_database(network, tmp_path):
    done = archiving.archive(network, tmp_path, NOW, 3, "CC BY 4.0")
    assert done == {"written": 8, "kept": 0, "days": 4, "months": 0}  # 1–4 March, GROW and openSenseMap
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    files = manifest["files"]
    assert sorted(files) == [
        f"readings/day=2026-03-0{d}/source={s}/readings.parquet"
        for d in (1, 2, 3, 4)
        for s in ("grow", "opensensemap")
    ]
    day2 = pq.read_table(tmp_path / "readings/day=2026-03-02/source=grow/readings.parquet").to_pandas()
    assert len(day2) == 96 == files["readings/day=2026-03-02/source=grow/readings.parquet"]["rows"]
    expected = garden("g1", 6, 1).iloc[96:192].reset_index(drop=True)
    assert (day2["ts"].to_numpy() == expected["ts"].to_numpy()).all()
    assert np.allclose(day2["soil_moisture"], expected["soil_moisture"], atol=1e-4)
    stuck = day2["anomalies"].eq("stuck")
    assert stuck.sum() == 13  # 02:00 to 05:00 inclusive, every 15 minutes
    assert set(day2["health"]) == {"faulty"}
    day3 = pq.read_table(tmp_path / "readings/day=2026-03-03/source=grow/readings.parquet").to_pandas()
    assert day3["anomalies"].isna().all() and set(day3["health"]) == {"healthy"}
    assert "CC BY 4.0" in (tmp_path / "LICENCE.txt").read_text()
    assert archiving.verify(tmp_path) == []


def test_archiving_again_writes_nothing_and_a_late_reading_rewrites_its_day_alone(network, tmp_path):
    archiving.archive(network, tmp_path, NOW, 3, "CC BY 4.0")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")}
    assert archiving.archive(network, tmp_path, NOW, 3, "CC BY 4.0")["written"] == 0
    with network.begin() as connection:  # a late upload changes one reading of 3 March
        late = {"sensor_id": "osem:b1", "ts": START + pd.Timedelta(days=2, hours=7), "soil_moisture": 44.0}
        bulk_upsert(connection, readings, pd.DataFrame([late]))
    assert archiving.archive(network, tmp_path, NOW, 3, "CC BY 4.0")["written"] == 1
    changed = [p.relative_to(tmp_path).as_posix() for p in before if p.read_bytes() != before[p]]
    assert changed == ["readings/day=2026-03-03/source=opensensemap/readings.parquet"]
    assert archiving.verify(tmp_path) == []


def test_verify_names_a_file_missing_or_changed(network, tmp_path):
    archiving.archive(network, tmp_path, NOW, 3, "CC BY 4.0")
    one = tmp_path / "readings/day=2026-03-01/source=grow/readings.parquet"
    other = tmp_path / "readings/day=2026-03-02/source=grow/readings.parquet"
    one.write_bytes(one.read_bytes()[:-10] + b"0123456789")
    other.unlink()
    assert archiving.verify(tmp_path) == [
        "readings/day=2026-03-01/source=grow/readings.parquet: its bytes changed since it was archived",
        "readings/day=2026-03-02/source=grow/readings.parquet: missing",
    ]
    # Archiving again puts the missing one back; the corrupt one is found by verify, not overwritten.
    archiving.archive(network, tmp_path, NOW, 3, "CC BY 4.0")
    assert archiving.verify(tmp_path) == [
        "readings/day=2026-03-01/source=grow/readings.parquet: its bytes changed since it was archived"
    ]
