"""Bulk upsert: new rows in, changed rows updated, the same rows again change nothing."""

import logging
import threading

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from core.db import read_frame
from core.errors import LoadError
from core.load import bulk_upsert, copy_payload
from core.schema import anomalies, readings, sensor_health, sensors, wow_observations, wow_sites


def readings_frame(sensor_ids=("zg9xr321", "ab12cd34"), days=2, start="2019-05-01") -> pd.DataFrame:
    """15-minute readings for a few sensors, with a missing value now and then."""
    ts = pd.date_range(start, periods=96 * days, freq="15min", tz="UTC")
    frames = []
    for i, sensor_id in enumerate(sensor_ids):
        n = len(ts)
        hours = np.arange(n) / 4
        frame = pd.DataFrame(
            {
                "sensor_id": sensor_id,
                "ts": ts,
                "soil_moisture": 30 + i - hours * 0.01,
                "air_temperature": 12 + 6 * np.sin(hours / 24 * 2 * np.pi),
                "light": np.clip(np.sin((hours % 24 - 6) / 12 * np.pi), 0, None) * 20,
                "battery_level": 90.0 - hours * 0.001,
            }
        )
        frame.loc[frame.index % 17 == 3, "light"] = np.nan
        frame.loc[frame.index % 29 == 5, "soil_moisture"] = None
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def stored_readings(engine) -> pd.DataFrame:
    with engine.connect() as connection:
        rows = connection.execute(select(readings).order_by(readings.c.sensor_id, readings.c.ts)).all()
    frame = pd.DataFrame(rows, columns=[c.name for c in readings.columns])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.astype(
        {c: "float64" for c in ("soil_moisture", "air_temperature", "light", "battery_level")}
    )


def upsert(engine, table, frame) -> int:
    with engine.begin() as connection:
        return bulk_upsert(connection, table, frame)


def test_rows_go_in_with_values_nulls_and_instants_intact(engine):
    frame = readings_frame()
    assert upsert(engine, readings, frame) == len(frame)
    expected = frame.sort_values(["sensor_id", "ts"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(stored_readings(engine), expected, check_dtype=False, check_exact=True)


def test_loading_the_same_rows_again_changes_nothing(engine):
    frame = readings_frame()
    upsert(engine, readings, frame)
    before = stored_readings(engine)
    assert upsert(engine, readings, frame) == 0
    pd.testing.assert_frame_equal(stored_readings(engine), before)


def test_changed_and_new_rows_are_written_and_nothing_else(engine):
    frame = readings_frame(days=1)
    upsert(engine, readings, frame)
    later = readings_frame(days=2)  # yesterday again, plus a new day
    later.loc[5, "air_temperature"] = 38.5  # a late correction
    later.loc[7, "light"] = np.nan  # a value withdrawn
    written = upsert(engine, readings, later)
    assert written == 2 + 96 * 2
    pd.testing.assert_frame_equal(
        stored_readings(engine),
        later.sort_values(["sensor_id", "ts"]).reset_index(drop=True),
        check_dtype=False,
    )


def test_rows_later_than_the_stored_ones_go_straight_in_without_staging(engine, monkeypatch):
    """A night's readings follow the stored ones: they take PostgreSQL's fastest path (COPY into the
    table), not the staging table that compares each row with what is stored."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the staging path is PostgreSQL's")
    import core.load

    upsert(engine, readings, readings_frame(days=2))
    staged = []
    merge = core.load._merge_store  # readings live in the store on PostgreSQL (core.reading_store)
    monkeypatch.setattr(core.load, "_merge_store", lambda c, rows: staged.append(len(rows)) or merge(c, rows))
    later = readings_frame(days=1, start="2019-05-03")
    assert upsert(engine, readings, later) == len(later)
    assert staged == []
    # A late reading among them does take the staging path, and is written once.
    late = readings_frame(days=1, start="2019-05-01").iloc[[5]].assign(light=42.0)
    assert (
        upsert(engine, readings, pd.concat([late, readings_frame(days=1, start="2019-05-04")])) == 1 + 96 * 2
    )
    assert staged == [1]
    assert upsert(engine, readings, late) == 0


def test_when_a_key_repeats_in_one_batch_the_last_row_wins(engine):
    frame = readings_frame(sensor_ids=("s1",), days=1)
    repeat = frame.iloc[[10]].assign(air_temperature=99.0)
    assert upsert(engine, readings, pd.concat([frame, repeat])) == 96
    stored = stored_readings(engine)
    assert stored.loc[10, "air_temperature"] == 99.0
    assert len(stored) == 96


def test_text_json_and_boolean_columns_of_any_length_round_trip(engine):
    people = pd.DataFrame(
        {
            "sensor_id": ["a1", "b22", "c333", "d4444"],
            "name": ["Parrot Flower Power PI040297AA4A030551", "Jardín de São Paulo ✿", "", None],
            "owner_id": ["owner-1", "owner-1", None, "owner-2"],
            "latitude": [51.5, 40.4, np.nan, 48.85],
            "longitude": [-0.12, -3.7, np.nan, 2.35],
            "first_sample_at": pd.to_datetime(
                ["2017-01-01 22:08:41", None, "2018-03-01 00:00:00", "2019-01-01 00:00:00"], utc=True
            ),
            "days_active": pd.array([700, None, 3, 0], dtype="Int64"),
        }
    )
    assert upsert(engine, sensors, people) == 4
    assert upsert(engine, sensors, people) == 0
    with engine.connect() as connection:
        rows = connection.execute(select(sensors).order_by(sensors.c.sensor_id)).mappings().all()
    assert [r["name"] for r in rows] == [
        "Parrot Flower Power PI040297AA4A030551",
        "Jardín de São Paulo ✿",
        "",
        None,
    ]
    assert [r["owner_id"] for r in rows] == ["owner-1", "owner-1", None, "owner-2"]
    assert (
        rows[1]["first_sample_at"] is None
        and rows[0]["first_sample_at"].isoformat() == "2017-01-01T22:08:41+00:00"
    )
    assert [r["days_active"] for r in rows] == [700, None, 3, 0]
    assert rows[2]["latitude"] is None
    assert all(r["updated_at"] is not None for r in rows)

    health = pd.DataFrame(
        {
            "sensor_id": ["a1", "b22"],
            "status": ["faulty", "healthy"],
            "counts": [{"kind": {"stuck": 3}, "variable": {"soil_moisture": 3}}, {}],
            "reason": ["soil moisture stuck at 31.2 % for 3 days", None],
        }
    )
    upsert(engine, sensor_health, health)
    sites = pd.DataFrame(
        {
            "site_id": ["1001", "8b5c-guid"],
            "latitude": [51.0, 52.0],
            "longitude": [0.1, 0.2],
            "is_live": [True, False],
        }
    )
    upsert(engine, wow_sites, sites)
    with engine.connect() as connection:
        counts = connection.scalar(select(sensor_health.c.counts).where(sensor_health.c.sensor_id == "a1"))
        live = connection.execute(
            select(wow_sites.c.site_id, wow_sites.c.is_live).order_by(wow_sites.c.site_id)
        ).all()
    assert counts == {"kind": {"stuck": 3}, "variable": {"soil_moisture": 3}}
    assert live == [("1001", True), ("8b5c-guid", False)]


def test_updated_at_moves_only_when_a_row_changes(engine):
    frame = pd.DataFrame({"sensor_id": ["a1", "b2"], "name": ["first", "second"]})
    upsert(engine, sensors, frame)
    old = pd.Timestamp("2000-01-01", tz="UTC").to_pydatetime()
    with engine.begin() as connection:
        connection.execute(update(sensors).values(updated_at=old))
    upsert(engine, sensors, frame.assign(name=["first", "renamed"]))
    with engine.connect() as connection:
        stamps = dict(connection.execute(select(sensors.c.sensor_id, sensors.c.updated_at)).all())
    assert stamps["a1"] == old
    assert stamps["b2"] > old


def test_a_table_with_a_surrogate_key_upserts_on_its_natural_key(engine):
    found = pd.DataFrame(
        {
            "sensor_id": ["a1"],
            "variable": ["soil_moisture"],
            "kind": ["stuck"],
            "start_at": [pd.Timestamp("2019-05-01", tz="UTC")],
            "end_at": [pd.Timestamp("2019-05-03", tz="UTC")],
            "score": [1.0],
            "detector": ["rule"],
            "explanation": ["soil moisture stuck at 31.2 % for 2 days"],
        }
    )
    upsert(engine, anomalies, found)
    longer = found.assign(end_at=[pd.Timestamp("2019-05-04", tz="UTC")], explanation="stuck for 3 days")
    assert upsert(engine, anomalies, longer) == 1
    with engine.connect() as connection:
        rows = connection.execute(select(anomalies.c.end_at, anomalies.c.explanation)).all()
    assert [(r.end_at.day, r.explanation) for r in rows] == [(4, "stuck for 3 days")]


@pytest.mark.parametrize(
    ("table", "frame", "message"),
    [
        (readings, pd.DataFrame({"sensor_id": ["a"], "ts": [pd.Timestamp("2019-05-01")]}), "timezone-aware"),
        (readings, pd.DataFrame({"sensor_id": ["a"], "ts": ["tuesday"]}), "not timestamps"),
        (
            readings,
            pd.DataFrame({"sensor_id": ["a"], "ts": [pd.Timestamp("2019-05-01", tz="UTC")], "rain": [1.0]}),
            "no column rain",
        ),
        (readings, pd.DataFrame({"sensor_id": ["a"], "light": [1.0]}), "must carry its key"),
        (
            readings,
            pd.DataFrame({"sensor_id": [None], "ts": [pd.Timestamp("2019-05-01", tz="UTC")]}),
            "must not be empty",
        ),
    ],
)
def test_bad_rows_are_refused_with_a_clear_error_and_nothing_written(engine, table, frame, message):
    with pytest.raises(LoadError, match=message):
        upsert(engine, table, frame)
    assert stored_readings(engine).empty


def test_an_empty_batch_writes_nothing(engine):
    assert upsert(engine, readings, readings_frame().iloc[:0]) == 0


def test_binary_copy_layout_of_one_row():
    frame = pd.DataFrame(
        {"sensor_id": ["ab"], "ts": [pd.Timestamp("2000-01-01 00:00:01", tz="UTC")], "light": [np.nan]}
    )
    payload = copy_payload(readings, frame)
    body = payload[19:-2]
    assert payload.startswith(b"PGCOPY\n\xff\r\n\x00")
    assert payload.endswith(b"\xff\xff")
    # 3 fields; "ab" (2 bytes); 1 s after PostgreSQL's epoch in µs (8 bytes); NULL
    assert (
        body
        == b"\x00\x03"
        + b"\x00\x00\x00\x02ab"
        + b"\x00\x00\x00\x08"
        + (10**6).to_bytes(8, "big")
        + b"\xff\xff\xff\xff"
    )


def observations_frame(days=1, start="2019-05-01") -> pd.DataFrame:
    """A station's quarter-hourly reports: a time series with a unique key, as readings were before 0011."""
    frame = readings_frame(sensor_ids=("s1",), days=days, start=start)
    return pd.DataFrame(
        {"site_id": "s1", "ts": frame["ts"], "air_temperature": frame["air_temperature"], "rainfall": 0.2}
    )


def stored_observations(engine) -> pd.DataFrame:
    with engine.connect() as connection:
        query = select(wow_observations.c.site_id, wow_observations.c.ts, wow_observations.c.air_temperature)
        frame = read_frame(connection, query.add_columns(wow_observations.c.rainfall).order_by("ts"))
    return frame


def load_past_a_rival(engine, table, frame, rival_row: dict) -> dict:
    """Load `frame` on a thread while another transaction holds `rival_row` written but not committed;
    the rival commits after a second. What the load gave (`written` or `error`), and whether it was still
    waiting when the rival committed (`waited`)."""
    rival = engine.connect()
    rival.begin()
    rival.execute(insert(table).values(**rival_row))
    outcome = {}

    def load():
        try:
            outcome["written"] = upsert(engine, table, frame)
        except Exception as exc:  # reported by the test
            outcome["error"] = exc

    worker = threading.Thread(target=load)
    worker.start()
    worker.join(timeout=1.0)  # the load now waits on the rival
    outcome["waited"] = worker.is_alive()
    rival.commit()
    rival.close()
    worker.join(timeout=30)
    return outcome


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("stored_before", "path_taken"),
    [
        ([], "were not new after all"),  # rows newer than anything stored: the direct COPY meets the rival
        (["2019-06-01"], "concurrent writer"),  # older rows: the staging merge meets the rival
    ],
)
def test_a_concurrent_writer_of_the_same_keys_does_not_break_the_load(
    engine, caplog, stored_before, path_taken
):
    """Another transaction inserts one of our keys and commits while our load waits on it (a table with a
    unique key: the station reports)."""
    upsert(engine, wow_sites, pd.DataFrame({"site_id": ["s1"], "latitude": [51.0], "longitude": [0.0]}))
    frame = observations_frame()
    before = pd.DataFrame(
        {
            "site_id": "s1",
            "ts": pd.to_datetime(stored_before, utc=True),
            "air_temperature": 5.0,
            "rainfall": 0.0,
        }
    )
    upsert(engine, wow_observations, before)
    caplog.set_level(logging.INFO, logger="core.load")
    first = frame.loc[0, "ts"].to_pydatetime()
    outcome = load_past_a_rival(
        engine, wow_observations, frame, {"site_id": "s1", "ts": first, "air_temperature": -1.0}
    )
    assert "error" not in outcome, outcome.get("error")
    assert path_taken in caplog.text
    expected = pd.concat([before, frame]).sort_values("ts").reset_index(drop=True)
    pd.testing.assert_frame_equal(stored_observations(engine), expected, check_dtype=False)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("stored_before", [[], ["2019-06-01"]])
def test_a_load_waits_for_another_readings_writer_and_keeps_one_reading_a_time(engine, stored_before):
    """The readings store has no unique index: a writer of readings holds the readings lock until it
    commits, so a load that meets one waits, then finds its reading and merges ours over it."""
    frame = readings_frame(sensor_ids=("s1",), days=1)
    before = pd.DataFrame({"sensor_id": "s1", "ts": pd.to_datetime(stored_before, utc=True), "light": 5.0})
    upsert(engine, readings, before)
    first = frame.loc[0, "ts"].to_pydatetime()
    outcome = load_past_a_rival(engine, readings, frame, {"sensor_id": "s1", "ts": first, "light": -1.0})
    assert outcome["waited"]  # on the rival's lock
    assert "error" not in outcome, outcome.get("error")
    assert outcome["written"] == len(frame)  # the rival's reading updated, the others new
    expected = pd.concat([before, frame])[frame.columns].sort_values("ts").reset_index(drop=True)
    pd.testing.assert_frame_equal(stored_readings(engine), expected, check_dtype=False)


def test_a_reading_written_twice_by_hand_is_refused(engine):
    """SQL written by hand keeps one reading a sensor and time too (the store's trigger on PostgreSQL,
    the primary key on SQLite)."""
    moment = pd.Timestamp("2019-05-01", tz="UTC").to_pydatetime()
    with engine.begin() as connection:
        connection.execute(insert(readings).values(sensor_id="s1", ts=moment, light=1.0))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(readings).values(sensor_id="s1", ts=moment, light=2.0))
    with engine.begin() as connection:
        connection.execute(update(readings).where(readings.c.sensor_id == "s1").values(light=3.0))
    assert stored_readings(engine)["light"].tolist() == [3.0]
