"""Readings stored lean (issue 34): on PostgreSQL monthly partitions keyed by a small integer behind the
`readings` view (core.reading_store); a database from before moves over in batches while the web apps
answer; SQLite keeps its one table."""

import threading

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import OperationalError

from core import reading_store
from core.db import SchemaOutdated, ensure_schema, init_db, latest_times, make_engine, read_frame
from core.load import bulk_upsert
from core.schema import anomalies, metadata, readings, sensor_health, sensors
from flask_back_end import create_app
from flask_back_end.settings import load_settings
from tests.core.test_db import schema_differences
from tests.factories import START, TOKEN, seed

SENSORS = 12
SPLIT = 1500  # sensors enough that each night's readings split the key index's pages


def database_at_0010(settings):
    """A database as revision 0010 left it (readings one text-keyed table on both engines), holding the
    seeded garden and readings with awkward values for SENSORS more sensors across a month's end."""
    from alembic import command

    from core.db import alembic_config

    engine = make_engine(settings)
    with engine.begin() as connection:
        metadata.create_all(connection)  # 0011 changes only readings, and only on PostgreSQL
        command.stamp(alembic_config(connection), "0010")
    seed(engine)
    times = pd.date_range("2019-05-31 18:00", periods=32, freq="15min", tz="UTC")
    rng = np.random.default_rng(11)
    awkward = [0.1 + 0.2, 1e-300, -0.0, 2.0**52 + 0.5, np.nan, 123456.789012345678]
    frames = []
    for n in range(SENSORS):
        values = rng.normal(20, 5, size=(len(times), 4))
        values[: len(awkward), n % 4] = awkward
        frames.append(
            pd.DataFrame(
                {"sensor_id": f"m{n:02d}", "ts": times}
                | dict(zip(["soil_moisture", "air_temperature", "light", "battery_level"], values.T))
            )
        )
    with engine.begin() as connection:
        bulk_upsert(connection, readings, pd.concat(frames, ignore_index=True))
    return engine


def all_readings(engine) -> pd.DataFrame:
    with engine.connect() as connection:
        return read_frame(connection, select(readings).order_by(readings.c.sensor_id, readings.c.ts))


def other_tables(engine) -> dict:
    with engine.connect() as connection:
        return {
            table.name: read_frame(connection, select(table).order_by(*table.primary_key.columns))
            for table in (anomalies, sensor_health, sensors)
        }


def readings_answered(client) -> int:
    """How many readings the back end gives for s1's ten seeded days."""
    answer = client.get(
        "/api/v1/sensors/s1/readings",
        headers={"Authorization": f"Bearer {TOKEN}"},
        query_string={"start": START.isoformat(), "end": (START + pd.Timedelta(days=10)).isoformat()},
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.json["readings"]


def test_a_database_at_0010_keeps_every_reading_byte_for_byte(settings):
    engine = database_at_0010(settings)
    before, tables = all_readings(engine), other_tables(engine)
    said = init_db(engine)
    assert said.startswith("upgraded schema from revision 0010 to 0011")
    after = all_readings(engine)
    pd.testing.assert_frame_equal(after, before, check_exact=True)
    # Byte for byte: the same float64 bits, -0.0 and NULL included.
    for column in ("soil_moisture", "air_temperature", "light", "battery_level"):
        assert after[column].to_numpy().tobytes() == before[column].to_numpy().tobytes()
    for name, frame in other_tables(engine).items():
        pd.testing.assert_frame_equal(frame, tables[name], check_exact=True, obj=name)
    with engine.connect() as connection:
        assert schema_differences(connection) == []
        if engine.dialect.name == "postgresql":
            assert said.endswith(f"moved {len(before):,} readings into monthly partitions")
            assert list(reading_store.partitions(connection)) == [
                pd.Timestamp(m).date() for m in ("2019-05-01", "2019-06-01")
            ]
            assert not reading_store.legacy_left(connection)
            # Each sensor's last time comes from the store's series, as the table's index gave it.
            latest = latest_times(connection, readings, sensors, "sensor_id")
            assert latest["s1"] == before[before["sensor_id"] == "s1"]["ts"].max()
    ensure_schema(engine)  # the nightly steps may run
    assert init_db(engine) == "schema already at revision 0011"


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_back_end_answers_whole_while_readings_move_and_a_stopped_move_goes_on(settings, monkeypatch):
    engine = database_at_0010(settings)
    before = all_readings(engine)
    app = create_app(load_settings(backend_token=TOKEN))
    whole = readings_answered(app.test_client())
    assert whole == 10 * 96

    # A reader asking all along, on a connection of its own: never refused, never a reading short.
    answers, stop = [], threading.Event()

    def keep_asking():
        client = app.test_client()
        while not stop.is_set():
            answers.append(readings_answered(client))

    asker = threading.Thread(target=keep_asking)
    asker.start()
    # Between batches, the back end shows every reading once; the move is stopped after the third batch.
    between = []

    def after_batch(line):
        between.append(readings_answered(app.test_client()))
        if len(between) == 3:
            raise KeyboardInterrupt("the operator stops init-db")

    move = reading_store.move_legacy
    monkeypatch.setattr(reading_store, "move_legacy", lambda e: move(e, sensors_a_batch=2, say=after_batch))
    try:
        with pytest.raises(KeyboardInterrupt):
            init_db(engine)
        assert between == [whole] * 3
        with pytest.raises(SchemaOutdated, match="still moving its readings"):
            ensure_schema(engine)
        assert readings_answered(app.test_client()) == whole
        # Run again, it goes on from where it stopped and finishes.
        between.clear()
        monkeypatch.setattr(
            reading_store, "move_legacy", lambda e: move(e, sensors_a_batch=2, say=between.append)
        )
        assert "moved" in init_db(engine)
    finally:
        stop.set()
        asker.join(timeout=30)
    assert len(between) >= 3
    assert answers and set(answers) == {whole}
    pd.testing.assert_frame_equal(all_readings(engine), before, check_exact=True)
    ensure_schema(engine)
    app.extensions["grow_wow"]["engine"].dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_keeps_readings_in_monthly_partitions_under_a_view(engine):
    frame = pd.DataFrame(
        {
            "sensor_id": ["a", "a", "b"],
            "ts": pd.to_datetime(["2026-01-31 23:45", "2026-02-01 00:00", "2026-03-15 12:00"], utc=True),
            "light": [1.0, 2.0, 3.0],
        }
    )
    with engine.begin() as connection:
        bulk_upsert(connection, readings, frame)
    with engine.connect() as connection:
        months = reading_store.partitions(connection)
        assert [f"{m:%Y-%m}" for m in months] == ["2026-01", "2026-02", "2026-03"]
        rows = {name: connection.scalar(text(f'SELECT count(*) FROM "{name}"')) for name in months.values()}
        assert list(rows.values()) == [1, 1, 1]
        # A query for one month reads that month's partition alone.
        plan = "\n".join(
            connection.scalars(
                text(
                    "EXPLAIN SELECT * FROM readings WHERE sensor_id = 'a' "
                    "AND ts >= '2026-02-01' AND ts < '2026-03-01'"
                )
            )
        )
        assert "reading_rows_y2026m02" in plan
        assert "reading_rows_y2026m01" not in plan and "reading_rows_y2026m03" not in plan
        # The key is a small integer; the text id lives once, in the series.
        series = connection.execute(
            text("SELECT sensor_id, first_at, last_at FROM reading_series ORDER BY 1")
        ).all()
        assert [s[0] for s in series] == ["a", "b"]
        assert series[0][1:] == tuple(frame["ts"][:2].dt.to_pydatetime())
    with engine.begin() as connection:  # retention drops a month whole; each series starts at what is left
        assert reading_store.drop_month(connection, pd.Timestamp("2026-01-01").date()) == 1
    with engine.connect() as connection:
        assert [f"{m:%Y-%m}" for m in reading_store.partitions(connection)] == ["2026-02", "2026-03"]
        first = connection.execute(text("SELECT first_at FROM reading_series WHERE sensor_id = 'a'")).scalar()
        assert first == frame["ts"][1].to_pydatetime()
    with engine.begin() as connection:  # what is older than a moment: February whole, March up to the 15th
        assert reading_store.delete_before(connection, pd.Timestamp("2026-03-15 13:00", tz="UTC")) == 2
    with engine.connect() as connection:
        assert [f"{m:%Y-%m}" for m in reading_store.partitions(connection)] == ["2026-03"]
        spans = connection.execute(text("SELECT sensor_id, first_at FROM reading_series ORDER BY 1")).all()
    assert spans == [("a", None), ("b", None)]
    assert all_readings(engine).empty


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_reading_written_by_hand_in_a_new_month_gets_its_partition_and_series(engine):
    moment = pd.Timestamp("2027-04-02 06:00", tz="UTC").to_pydatetime()
    with engine.begin() as connection:
        connection.execute(insert(readings).values(sensor_id="hand", ts=moment, soil_moisture=31.5))
    with engine.connect() as connection:
        assert "reading_rows_y2027m04" in reading_store.partitions(connection).values()
        assert latest_times(connection, readings, sensors, "sensor_id") == {}  # "hand" is no sensor
        span = connection.execute(text("SELECT first_at, last_at FROM reading_series")).one()
    assert span == (moment, moment)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_dropping_a_month_gives_up_rather_than_stall_the_readers(engine, monkeypatch):
    """A month's partition is dropped only when no query holds the readings; a long read makes it give up
    after DROP_WAIT_S (and retention keeps the month for its next run), never queue the web apps behind it."""
    frame = pd.DataFrame(
        {"sensor_id": "a", "ts": pd.to_datetime(["2026-01-10", "2026-02-10"], utc=True), "light": [1.0, 2.0]}
    )
    with engine.begin() as connection:
        bulk_upsert(connection, readings, frame)
    monkeypatch.setattr(reading_store, "DROP_WAIT_S", 0.5)
    reader = engine.connect()
    reader.begin()
    assert len(reader.execute(select(readings)).all()) == 2  # a long read, still open
    with pytest.raises(OperationalError, match="lock timeout"), engine.begin() as connection:
        reading_store.drop_month(connection, pd.Timestamp("2026-01-01").date())
    reader.rollback()
    reader.close()
    assert len(all_readings(engine)) == 2
    with engine.begin() as connection:
        assert reading_store.drop_month(connection, pd.Timestamp("2026-01-01").date()) == 1
    assert all_readings(engine)["light"].tolist() == [2.0]


@pytest.mark.slow  # 7 s: a month's worth of nights for 1,500 sensors
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_finished_month_gets_its_indexes_rebuilt_compact_once(engine):
    """Every night adds each sensor's readings in the middle of the key index, splitting its pages; a
    week after the month ends its partition's indexes are rebuilt, once, and the readings are the same."""
    days = pd.date_range("2026-01-28", periods=5, freq="D", tz="UTC")  # into February
    for day in days:
        times = pd.date_range(day, periods=96, freq="15min")
        frame = pd.DataFrame(
            {"sensor_id": np.repeat([f"s{n:04d}" for n in range(SPLIT)], 96), "ts": np.tile(times, SPLIT)}
        ).assign(soil_moisture=30.0)
        with engine.begin() as connection:
            bulk_upsert(connection, readings, frame)
    before = all_readings(engine)

    def key_index_bytes(month: str) -> int:
        with engine.connect() as connection:
            return connection.scalar(text(f"SELECT pg_relation_size('reading_rows_y{month}_sensor_key_idx')"))

    grown = key_index_bytes("2026m01")
    assert reading_store.compact_finished_months(engine, pd.Timestamp("2026-02-07 12:00", tz="UTC")) == []
    said = reading_store.compact_finished_months(engine, pd.Timestamp("2026-02-08 12:00", tz="UTC"))
    assert said == ["2026-01: readings' indexes rebuilt compact"]  # February is not over
    assert key_index_bytes("2026m01") < 0.8 * grown
    assert reading_store.compact_finished_months(engine, pd.Timestamp("2026-02-09", tz="UTC")) == []
    pd.testing.assert_frame_equal(all_readings(engine), before, check_exact=True)
