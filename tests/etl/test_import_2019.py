"""A 2019 deployment moves over: a database in 2019's shape (its tables as its scripts made them) is
imported through the nightly checks and quarantine, the 2019 routes then answer for its sensors as the
2019 back end did, and a second import changes nothing."""

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text

from core.db import init_db, make_engine, read_frame
from core.schema import anomalies, quarantine, readings, sensor_health, sensor_wow, sensors, wow_sites
from etl import analyse_anomalies
from etl.cli import cli
from etl.settings import load_settings
from etl.shard import Shard
from etl.step import StepContext
from flask_back_end import create_app as create_back_end
from flask_back_end.settings import load_settings as back_end_settings
from tests.factories import NOW, TOKEN, assert_same_database, snapshot

# As 2019's main_scripts created them (store_sensor_info.py, extract_all_grow_data.py,
# find_nearest_wow_live.py) and its machine_learning/detect_anomalies.py.
DDL_2019 = [
    """CREATE TABLE all_sensor_info(sensor_id varchar(8), days_active integer, start_date timestamp,
       end_date timestamp, latitude numeric, longitude numeric, address varchar(140),
       owner_id varchar(36))""",
    """CREATE TABLE grow_anomalies(grow_table varchar(18), soil_date timestamp, light_date timestamp,
       air_date timestamp, last_analysed timestamp)""",
    """CREATE TABLE grow_to_wow_mapping(sensor_id varchar(8), grow_lat numeric, grow_lon numeric,
       site_id varchar(36), wow_lat numeric, wow_lon numeric, distance numeric)""",
]
SITE = "c1d3cfdd-4829-e911-9462-0003ff59610a"
GROW_DATA = """CREATE TABLE {}(sensor_id varchar(8), datetime timestamp, soil_moisture numeric, light numeric,
               air_temperature numeric, battery_level numeric)"""
ADDRESS = "10 Downing Street London Greater London England United Kingdom SW1A 2AA"


def build_2019(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        for ddl in DDL_2019:
            connection.execute(text(ddl))
        sensors_2019 = [
            (
                "0a1b2c3d",
                9,
                "2019-05-01T00:00:00",
                "2019-05-10T12:00:00",
                51.5034,
                -0.1276,
                ADDRESS,
                "owner-1",
            ),
            (
                "4e5f6g7h",
                0,
                "2019-05-02T06:00:00",
                "2019-05-02T18:00:00",
                48.85,
                2.35,
                "Paris France",
                "owner-2",
            ),
            ("badplace", 1, "2019-05-01T00:00:00", "2019-05-02T00:00:00", 95.0, 2.0, "Nowhere", "owner-3"),
        ]
        for row in sensors_2019:
            connection.execute(
                text("INSERT INTO all_sensor_info VALUES (:a, :b, :c, :d, :e, :f, :g, :h)"),
                dict(zip("abcdefgh", row)),
            )
        flagged = [
            ("grow_data_0a1b2c3d", "2019-05-01 00:00:00", None, None),
            ("grow_data_0a1b2c3d", None, None, "2019-05-02 00:00:00"),
            ("grow_data_unlisted", "2019-05-01 00:00:00", None, None),  # no such sensor imported
            ("grow_data_0a1b2c3d", None, None, None),  # no date at all
        ]
        links = [
            ("0a1b2c3d", 51.5034, -0.1276, SITE, 51.48, -0.05, 5.9),
            ("unlisted", 48.0, 2.0, SITE, 51.48, -0.05, 300.0),  # no such sensor imported
            ("4e5f6g7h", 48.85, 2.35, "not a site id!", 48.9, 2.4, 4.0),
        ]
        for link in links:
            connection.execute(
                text("INSERT INTO grow_to_wow_mapping VALUES (:a, :b, :c, :d, :e, :f, :g)"),
                dict(zip("abcdefg", link)),
            )
        for table, soil, light, air in flagged:
            connection.execute(
                text("INSERT INTO grow_anomalies VALUES (:t, :s, :l, :a, '2019-06-30 02:00:00')"),
                {"t": table, "s": soil, "l": light, "a": air},
            )
        for sensor, hours in (("0a1b2c3d", 48), ("4e5f6g7h", 12), ("badplace", 4), ("unlisted", 4)):
            connection.execute(text(GROW_DATA.format(f"grow_data_{sensor}")))
            times = pd.date_range("2019-05-01", periods=hours * 4, freq="15min")
            for i, ts in enumerate(times):
                soil = 1e6 if (sensor == "0a1b2c3d" and i == 7) else 20 + i % 5  # no probe reads a million %
                when = None if (sensor == "4e5f6g7h" and i == 3) else ts.strftime("%Y-%m-%d %H:%M:%S")
                connection.execute(
                    text(f"INSERT INTO grow_data_{sensor} VALUES (:s, :t, :m, :l, :a, :b)"),
                    {"s": sensor, "t": when, "m": soil, "l": 10.5, "a": 14.25, "b": 80},
                )
    engine.dispose()


@pytest.mark.parametrize("engine_name", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_2019_database_is_imported_checked_answered_as_2019_did_and_imported_again_unchanged(
    tmp_path, engine_name, request
):
    if engine_name == "sqlite":
        old, ours = f"sqlite:///{tmp_path / 'grow_2019.sqlite'}", f"sqlite:///{tmp_path / 'ours.sqlite'}"
    else:
        make = request.getfixturevalue("postgres_schemas")
        old, ours = make(), make()
    build_2019(old)
    engine = make_engine(load_settings(database_url=ours))
    init_db(engine)
    env = {"DATABASE_URL": ours, "ETL_NOW": "2019-07-01T00:00:00Z", "IMPORT_2019_URL": old}
    first = CliRunner().invoke(cli, ["import-2019"], env=env)
    assert first.exit_code == 0, first.output
    # The tables of a sensor set aside, or of none listed, are not read: 192 + 48 readings.
    assert "read 3 sensors, 4 grow_data tables (240 readings)" in first.output, first.output
    assert (
        ", 1 station links and 2 days 2019's model flagged; wrote 2 sensor rows, 239 readings, 2 stations"
        " and links, and 2 anomalies" in first.output
    )
    # Refused: badplace, its table, the unlisted table, a row without a time, two grow_anomalies rows, two
    # grow_to_wow_mapping rows; repaired: the 1e6 %.
    assert "set aside 8 refused and 1 repaired records" in first.output
    assert "secret" not in first.output and old not in first.output

    with engine.connect() as connection:
        placed = read_frame(connection, select(sensors)).set_index("sensor_id")
        stored = read_frame(connection, select(readings))
        reasons = connection.execute(select(quarantine.c.reason)).scalars().all()
    assert sorted(placed.index) == ["0a1b2c3d", "4e5f6g7h"]
    assert placed.loc["0a1b2c3d", "address_2019"] == ADDRESS and placed.loc["0a1b2c3d", "days_active"] == 9
    assert placed.loc["4e5f6g7h", "days_active"] == 0  # as 2019 counted: under a day is 0
    by_sensor = stored.groupby("sensor_id").size().to_dict()
    assert by_sensor == {"0a1b2c3d": 192, "4e5f6g7h": 47}  # one row without a time refused
    assert stored.loc[stored["sensor_id"] == "0a1b2c3d", "soil_moisture"].isna().sum() == 1
    assert any("no position in range" in r for r in reasons) and any("time unreadable" in r for r in reasons)

    # The station 2019 linked is kept (not known to be live: tonight's run judges that).
    with engine.connect() as connection:
        links = connection.execute(
            select(sensor_wow.c.sensor_id, sensor_wow.c.site_id, sensor_wow.c.distance_km)
        ).all()
        live = connection.execute(select(wow_sites.c.is_live).where(wow_sites.c.site_id == SITE)).scalar_one()
    assert links == [("0a1b2c3d", SITE, 5.9)] and live is False

    # 2019's flagged days are kept, as their own kind, and do not make the sensor faulty today.
    with engine.connect() as connection:
        flagged = read_frame(connection, select(anomalies)).sort_values("start_at", ignore_index=True)
    assert flagged[["sensor_id", "variable", "kind"]].values.tolist() == [
        ["0a1b2c3d", "soil_moisture", "2019-model"],
        ["0a1b2c3d", "air_temperature", "2019-model"],
    ]
    assert flagged["end_at"].iloc[0] == pd.Timestamp("2019-05-01 23:45", tz="UTC")  # 96 rows of 15 minutes
    analyse_anomalies.run(StepContext(load_settings(database_url=ours), engine, Shard(), NOW))
    with engine.connect() as connection:
        status, reason = connection.execute(
            select(sensor_health.c.status, sensor_health.c.reason).where(
                sensor_health.c.sensor_id == "0a1b2c3d"
            )
        ).one()
    assert status == "silent" and reason.endswith("before that: healthy"), reason  # quiet since May 2019

    # The 2019 routes answer for the imported sensors as the 2019 back end did.
    back = create_back_end(back_end_settings(database_url=ours, backend_token=TOKEN)).test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    listed = {row["sensor_id"]: row for row in back.get("/api/all_grow_true_json", headers=headers).json}
    assert (
        listed["0a1b2c3d"]["start_date"] == "2019-05-01T00:00:00" and listed["0a1b2c3d"]["days_active"] == 9
    )
    found = back.get("/grow_by_address", query_string={"address": ADDRESS}, headers=headers).json
    assert [row["sensor_id"] for row in found] == ["0a1b2c3d"]

    before = snapshot(engine)
    again = CliRunner().invoke(cli, ["import-2019"], env=env)
    assert again.exit_code == 0, again.output
    assert "wrote 0 sensor rows, 0 readings, 0 stations and links, and 0 anomalies" in again.output
    assert_same_database(snapshot(engine), before)


def test_a_database_that_is_not_2019_s_is_refused_in_one_line(tmp_path):
    ours = f"sqlite:///{tmp_path / 'ours.sqlite'}"
    init_db(make_engine(load_settings(database_url=ours)))
    empty = tmp_path / "empty.sqlite"
    create_engine(f"sqlite:///{empty}").connect().close()
    result = CliRunner().invoke(
        cli, ["import-2019", "--from", f"sqlite:///{empty}"], env={"DATABASE_URL": ours}
    )
    assert result.exit_code == 1 and "not a 2019 database: it has no all_sensor_info table" in result.output


def test_importing_into_a_live_database_keeps_what_the_nightly_runs_know_and_settles_on_duplicates(
    tmp_path, engine
):
    """Run on a database the nightly job fills: the sensors it knows keep their names, geocoded
    addresses and dates (2019's address is added beside); a NULL id or address is no "nan"; two rows of
    one time in a 2019 table settle on one and the import repeats without writing."""
    from sqlalchemy import insert

    old = f"sqlite:///{tmp_path / 'grow_2019.sqlite'}"
    build_2019(old)
    with create_engine(old).begin() as connection:
        connection.execute(
            text("INSERT INTO all_sensor_info VALUES (NULL, 1, NULL, NULL, 50.0, 5.0, NULL, NULL)")
        )
        connection.execute(text("UPDATE all_sensor_info SET address = NULL WHERE sensor_id = '4e5f6g7h'"))
        connection.execute(
            text("INSERT INTO grow_data_4e5f6g7h VALUES ('4e5f6g7h', '2019-05-02 00:00:00', 99, 1, 1, 1)")
        )  # a second row at a time the table already has
    ours = engine.url.render_as_string(hide_password=False)
    with engine.begin() as connection:
        connection.execute(
            insert(sensors).values(
                sensor_id="0a1b2c3d",
                name="Tomato bed",
                latitude=51.5034,
                longitude=-0.1276,
                address="10 Downing St, London SW1A 2AA, UK",
                last_sample_at=pd.Timestamp("2019-06-30 23:45", tz="UTC"),
            )
        )
    env = {"DATABASE_URL": ours, "ETL_NOW": "2019-07-01T00:00:00Z", "IMPORT_2019_URL": old}
    assert CliRunner().invoke(cli, ["import-2019"], env=env).exit_code == 0
    with engine.connect() as connection:
        placed = read_frame(connection, select(sensors)).set_index("sensor_id")
    kept = placed.loc["0a1b2c3d"]
    assert kept["name"] == "Tomato bed" and kept["address"] == "10 Downing St, London SW1A 2AA, UK"
    assert kept["address_2019"] == ADDRESS and kept["last_sample_at"] == pd.Timestamp(
        "2019-06-30 23:45", tz="UTC"
    )
    assert "nan" not in placed.index and pd.isna(placed.loc["4e5f6g7h", "address"])
    again = CliRunner().invoke(cli, ["import-2019"], env=env)
    assert "wrote 0 sensor rows, 0 readings" in again.output, again.output


def test_a_missing_sqlite_file_is_refused_and_not_created(tmp_path):
    ours = f"sqlite:///{tmp_path / 'ours.sqlite'}"
    init_db(make_engine(load_settings(database_url=ours)))
    missing = tmp_path / "typo.sqlite"
    result = CliRunner().invoke(
        cli, ["import-2019", "--from", f"sqlite:///{missing}"], env={"DATABASE_URL": ours}
    )
    assert result.exit_code == 1 and "no such file" in result.output and not missing.exists()
