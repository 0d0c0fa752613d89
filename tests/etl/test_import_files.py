"""A gardener's own files: a folder of CSV (one file per sensor, and one with a sensor column) with a
mapping, and an ISMN station file, imported through the same checks and quarantine as the APIs, and
imported again without changing anything."""

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.db import init_db, make_engine, read_frame
from core.schema import anomalies, quarantine, readings, sensors
from etl.cli import cli
from etl.settings import load_settings

ISMN_HEADER = (
    "REMEDHUS   REMEDHUS        Carretoro       41.26595   -5.38488   778.00    0.0000    0.0500  "
    "Stevens-Hydra-Probe"
)
ISMN_FILE = "REMEDHUS_REMEDHUS_Carretoro_sm_0.000000_0.050000_Stevens-Hydra-Probe_20190610_20190610.stm"


def write_folder(folder):
    folder.mkdir()
    (folder / "mapping.json").write_text(
        json.dumps(
            {
                "time": {"column": "when", "timezone": "Europe/Berlin"},
                "sensor_column": "logger",
                "variables": {
                    "soil_moisture": {"column": "VWC", "unit": "m³/m³"},
                    "air_temperature": {"column": "T", "unit": "°C"},
                    "light": {"column": "lux", "unit": "lx"},
                },
            }
        )
    )
    (folder / "sensors.csv").write_text(
        "sensor,latitude,longitude,name,owner\n"
        "bed 1,52.52,13.40,Raised bed,anna\n"
        "bed-2,52.53,13.41,Tomatoes,anna\n"
        "bed-3,52.54,13.42,Herbs,ben\n"
    )
    rows = ["logger,when,VWC,T,lux"]
    for hour in range(48):
        day, h = divmod(hour, 24)
        for logger, wet in (("bed 1", 0.31), ("bed-2", 0.22)):
            rows.append(f"{logger},2019-06-{10 + day:02d} {h:02d}:00,{wet:.2f},{15 + h % 10},{h * 1000}")
    rows.append("bed 1,not a time,0.30,15,0")  # a bad row: its time cannot be read
    rows.append("bed-2,2019-06-12 00:00,0.22,9000,0")  # no thermometer reads 9,000 °C
    (folder / "loggers.csv").write_text("\n".join(rows) + "\n")
    # One logger's own file: no sensor column, the file names it.
    own = ["when,VWC,T,lux", *(f"2019-06-10 {h:02d}:30,0.40,{12 + h % 5},0" for h in range(12))]
    (folder / "bed-3.csv").write_text("\n".join(own) + "\n")
    body = [ISMN_HEADER]
    for hour in range(24):
        flag = "D03" if hour == 5 else "G"
        body.append(f"2019/06/10 {hour:02d}:00   0.1{hour % 10}{hour % 7} {flag} M")
    (
        folder / "REMEDHUS_REMEDHUS_Carretoro_sm_0.000000_0.050000_Stevens-Hydra-Probe_20190610_20190610.stm"
    ).write_text("\n".join(body) + "\n")


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"])
def test_a_folder_of_csv_and_ismn_files_is_imported_checked_and_imported_again_unchanged(
    tmp_path, engine_name, request, monkeypatch
):
    database = (
        f"sqlite:///{tmp_path / 'files.sqlite'}"
        if engine_name == "sqlite"
        else request.getfixturevalue("postgres_schemas")()
    )
    folder = tmp_path / "garden"
    write_folder(folder)
    env = {"DATABASE_URL": database, "ETL_NOW": "2019-07-01T00:00:00Z"}
    engine = make_engine(load_settings(database_url=database))
    init_db(engine)
    first = CliRunner().invoke(cli, ["import-files", str(folder)], env=env)
    assert first.exit_code == 0, first.output
    assert "read 3 files: 4 sensors, 133 readings" in first.output, first.output
    assert "133 readings; 1 stretches ISMN flagged kept as history" in first.output, first.output
    assert "set aside 1 refused and 1 repaired records" in first.output

    with engine.connect() as connection:
        stored = read_frame(connection, select(readings)).sort_values(["sensor_id", "ts"], ignore_index=True)
        placed = read_frame(connection, select(sensors)).set_index("sensor_id")
        set_aside = connection.execute(
            select(quarantine.c.source, quarantine.c.action, quarantine.c.reason)
        ).all()
        history = read_frame(connection, select(anomalies))
    assert sorted(placed.index) == ["file:REMEDHUS.Carretoro", "file:bed-1", "file:bed-2", "file:bed-3"]
    assert (stored["sensor_id"] == "file:bed-3").sum() == 12
    assert placed.loc["file:bed-1", "owner_id"] == "anna" and placed.loc["file:bed-1", "address"]
    bed = stored[stored["sensor_id"] == "file:bed-1"]
    assert len(bed) == 48 and bed["soil_moisture"].eq(31.0).all()  # m³/m³ as %
    assert bed["ts"].iloc[0] == pd.Timestamp("2019-06-09 22:00", tz="UTC")  # Berlin's summer time
    assert bed["light"].max() == pytest.approx(23_000 * 0.0015984)
    tomato = stored[stored["sensor_id"] == "file:bed-2"]
    assert len(tomato) == 49 and tomato["air_temperature"].isna().sum() == 1  # 9,000 °C kept as missing
    station = stored[stored["sensor_id"] == "file:REMEDHUS.Carretoro"]
    # Issue 32: the hour ISMN flagged D03 is a real value with ISMN's opinion beside it, as history.
    assert len(station) == 24 and station["soil_moisture"].between(10, 20).all()
    flagged = history.set_index("kind").loc["ismn-flag"]
    assert flagged["sensor_id"] == "file:REMEDHUS.Carretoro" and flagged["variable"] == "soil_moisture"
    assert flagged["start_at"] == flagged["end_at"] == pd.Timestamp("2019-06-10 05:00", tz="UTC")
    assert "D03" in flagged["explanation"] and "GLDAS soil temperature" in flagged["explanation"]
    reasons = sorted(reason for _, _, reason in set_aside)
    assert not any("ISMN flag" in r for r in reasons) and any("time unreadable" in r for r in reasons)
    assert any("9000" in r and "stored as missing" in r for r in reasons)

    again = CliRunner().invoke(cli, ["import-files", str(folder)], env=env)
    assert again.exit_code == 0, again.output
    assert "0 rows written" in again.output
    with engine.connect() as connection:
        after = read_frame(connection, select(readings)).sort_values(["sensor_id", "ts"], ignore_index=True)
        assert len(connection.execute(select(quarantine)).all()) == len(set_aside)
        assert len(connection.execute(select(anomalies)).all()) == len(history)
    pd.testing.assert_frame_equal(after, stored)


def test_csv_without_a_mapping_or_in_an_unknown_unit_is_refused_whole_in_one_line(tmp_path):
    folder = tmp_path / "garden"
    write_folder(folder)
    database = f"sqlite:///{tmp_path / 'files.sqlite'}"
    init_db(make_engine(load_settings(database_url=database)))
    env = {"DATABASE_URL": database}
    (folder / "mapping.json").unlink()
    refused = CliRunner().invoke(cli, ["import-files", str(folder)], env=env)
    assert refused.exit_code == 1 and "need a mapping.json" in refused.output
    mapping = {"time": {"column": "when"}, "variables": {"soil_moisture": {"column": "VWC", "unit": "pF"}}}
    (folder / "mapping.json").write_text(json.dumps(mapping))
    refused = CliRunner().invoke(cli, ["import-files", str(folder)], env=env)
    assert refused.exit_code == 1 and "soil_moisture in 'pF'" in refused.output
    assert "Traceback" not in refused.output


def test_awkward_files_are_read_or_set_aside_never_a_crash(tmp_path):
    """What loggers write: times with their offset across a clock change, a Latin-1 file, an empty file,
    local times in the hour that comes twice, dates no parser knows, and an ISMN air temperature (its
    depth a height: -2.0)."""
    import datetime as dt

    from etl.sources.files import read_folder

    folder = tmp_path / "awkward"
    folder.mkdir()
    mapping = {
        "time": {"column": "t", "timezone": "Europe/Berlin"},
        "variables": {"air_temperature": {"column": "T (°C)", "unit": "°C"}},
    }
    (folder / "mapping.json").write_text(json.dumps(mapping))
    (folder / "sensors.csv").write_text(
        "sensor,latitude,longitude,owner\noffsets,52.5,13.4,\nlatin,52.5,13.4,ben\nautumn,52.5,13.4,ben\n"
        "dotted,52.5,13.4,ben\n"
    )
    (folder / "offsets.csv").write_text(
        "t,T (°C)\n2019-03-31T01:30:00+01:00,4.0\n2019-03-31T03:30:00+02:00,5.0\n2019-03-31T02:00:00Z,6.0\n"
    )
    (folder / "latin.csv").write_bytes("t,T (°C)\n2019-06-01 12:00,21.5\n".encode("cp1252"))
    (folder / "empty.csv").write_text("")
    (folder / "autumn.csv").write_text(
        "t,T (°C)\n2019-10-27 01:30,9.0\n2019-10-27 02:30,8.5\n2019-10-27 03:30,8.0\n"
    )
    (folder / "dotted.csv").write_text("t,T (°C)\n01.05.2019 10:00,12.0\n")
    ta = "TERENO_TERENO_Gevenich_ta_-2.000000_-2.000000_HMP45_20190601_20190601.stm"
    (folder / ta).write_text(
        "TERENO TERENO Gevenich 50.98 6.32 108.00 -2.0000 -2.0000 HMP45\n2019/06/01 12:00   18.4 G M\n"
    )

    found = read_folder(folder, None, dt.datetime(2019, 12, 1, tzinfo=dt.UTC))
    rows = found.readings.set_index(["sensor_id", "ts"])["air_temperature"]
    utc = lambda text: pd.Timestamp(text, tz="UTC")  # noqa: E731
    assert rows["file:offsets"].to_dict() == {utc("2019-03-31 00:30"): 4.0, utc("2019-03-31 01:30"): 5.0,
                                              utc("2019-03-31 02:00"): 6.0}  # fmt: skip
    assert rows["file:latin"].to_dict() == {utc("2019-06-01 10:00"): 21.5}
    assert list(rows["file:autumn"].index) == [utc("2019-10-26 23:30"), utc("2019-10-27 02:30")]
    assert rows["file:TERENO.Gevenich"].tolist() == [18.4]
    reasons = {(q.entity_id, q.reason) for q in found.quarantined}
    assert any(e == "file:autumn" and "clock change" in r for e, r in reasons)
    assert any(e == "file:dotted" and r == "time unreadable" for e, r in reasons)
    assert any(r == "empty file" for _, r in reasons)
    placed = found.sensors.set_index("sensor_id")
    assert pd.isna(placed.loc["file:offsets", "owner_id"]) and placed.loc["file:latin", "owner_id"] == "ben"
    assert pd.isna(placed.loc["file:dotted", "first_sample_at"])  # placed, nothing readable: no span


def hostile_folder(tmp_path, files: dict[str, bytes]):
    """A folder whose mapping reads column `t` as UTC times and `T` as °C, and `SM` as soil moisture in %."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    mapping = {
        "time": {"column": "t"},
        "variables": {
            "air_temperature": {"column": "T", "unit": "°C"},
            "soil_moisture": {"column": "SM", "unit": "%"},
        },
    }
    (folder / "mapping.json").write_text(json.dumps(mapping))
    (folder / "good.csv").write_text("t,T,SM\n2019-06-01 12:00,21.5,30\n")
    places = "".join(f"{name.removesuffix('.csv')},52.5,13.4\n" for name in ["good", *files])
    (folder / "sensors.csv").write_text("sensor,latitude,longitude\n" + places)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def read_hostile(folder):
    import datetime as dt

    from etl.sources.files import read_folder

    return read_folder(folder, None, dt.datetime(2019, 12, 1, tzinfo=dt.UTC))


def test_a_header_repeating_one_name_100000_times_is_refused_in_under_a_second_and_the_rest_imports(
    tmp_path,
):
    import time

    folder = hostile_folder(tmp_path, {"repeat.csv": ("a," * 100_000).encode() + b"a\n1,2\n"})
    started = time.perf_counter()
    found = read_hostile(folder)
    assert time.perf_counter() - started < 1.0
    refused = [q for q in found.quarantined if q.record == "repeat.csv"]
    assert len(refused) == 1 and "repeats the column name 'a'" in refused[0].reason
    assert len(refused[0].reason) < 300
    assert found.readings["sensor_id"].tolist() == ["file:good"]  # and "repeat" is placed, with no readings


def test_a_file_larger_than_a_sensor_file_can_be_is_refused_unread_and_the_rest_imports(
    tmp_path, monkeypatch
):
    """Issue 32: a file is sized before it is read; one far larger than any logger's is refused in one
    line that says how large, not read into memory whole (a .stm as much as a .csv)."""
    from etl.sources import files

    monkeypatch.setattr(files, "MAX_FILE_BYTES", 4_000)
    huge = b"t,T,SM\n" + b"2019-06-01 12:00,20.0,30\n" * 400  # 10 kB here stands for gigabytes
    station = tmp_path / "ismn"
    station.mkdir()
    (station / ISMN_FILE).write_text("\n".join([ISMN_HEADER, *["2019/06/10 00:00   0.25 G M"] * 200]) + "\n")
    found = read_hostile(hostile_folder(tmp_path, {"huge.csv": huge}))
    refused = [q for q in found.quarantined if q.record == "huge.csv"]
    assert len(refused) == 1 and "10 kB: larger than the 4 kB a file may be" in refused[0].reason
    assert found.readings["sensor_id"].tolist() == ["file:good"]
    ismn = read_hostile(station)
    assert [q.record for q in ismn.quarantined] == [ISMN_FILE] and ismn.readings.empty
    assert "larger than the 4 kB a file may be" in ismn.quarantined[0].reason


def test_utf16_files_from_excel_import_and_a_nul_in_a_header_is_refused_with_its_reason(tmp_path):
    utf16 = "t\tT\tSM\n2019-06-01 13:00\t22,5\t31\n".encode("utf-16")  # Excel's "Unicode text": tabs, BOM
    nul = b"t,T\x00,SM\n2019-06-01 14:00,23.0,32\n"
    found = read_hostile(hostile_folder(tmp_path, {"excel.csv": utf16, "nul.csv": nul}))
    rows = found.readings.set_index("sensor_id")
    assert rows.loc["file:excel", "air_temperature"] == 22.5 and rows.loc["file:excel", "soil_moisture"] == 31
    refused = [q for q in found.quarantined if q.record == "nul.csv"]
    assert len(refused) == 1 and "NUL" in refused[0].reason and "\x00" not in refused[0].reason


def test_decimal_commas_and_percent_signs_are_read_and_what_cannot_be_read_is_set_aside_with_its_place(
    tmp_path,
):
    european = b"t;T;SM\n2019-06-01 15:00;0,25;25%\n2019-06-01 16:00;abc;26,5 %\n"
    found = read_hostile(hostile_folder(tmp_path, {"europe.csv": european}))
    rows = found.readings[found.readings["sensor_id"] == "file:europe"].set_index("ts")
    assert rows["air_temperature"].tolist()[0] == 0.25 and rows["soil_moisture"].tolist() == [25.0, 26.5]
    assert pd.isna(rows["air_temperature"].tolist()[1])
    unread = [q for q in found.quarantined if q.entity_id == "file:europe"]
    assert [(q.record, q.reason) for q in unread] == [
        ("europe.csv line 3", "column T: 'abc' is not a number")
    ]


def test_the_mapping_may_state_the_separator_and_the_decimal_mark(tmp_path):
    """A comma-separated export whose numbers have decimal commas, quoted: the file alone cannot say so
    (commas split its fields), the mapping can; a mapping stating neither lets the file say."""
    folder = hostile_folder(tmp_path, {"one.csv": b't,T,SM\n2019-06-01 15:00,"0,25","20,5"\n'})
    mapping = json.loads((folder / "mapping.json").read_text())
    unread = [q for q in read_hostile(folder).quarantined if q.entity_id == "file:one"]
    assert len(unread) == 2  # a point is the mark when commas separate: "0,25" is no number
    (folder / "mapping.json").write_text(json.dumps({**mapping, "separator": ",", "decimal": ","}))
    rows = read_hostile(folder).readings.set_index("sensor_id")
    assert rows.loc["file:one", ["air_temperature", "soil_moisture"]].tolist() == [0.25, 20.5]
    (folder / "mapping.json").write_text(json.dumps({**mapping, "separator": "|"}))
    from etl.sources.files import FilesError

    with pytest.raises(FilesError, match="separator"):
        read_hostile(folder)


def test_an_ismn_download_imports_from_its_top_folder_or_a_stations_as_it_comes(tmp_path):
    """Issue 32: the top folder of a download (NETWORK/STATION/*.stm beside ISMN's readme, metadata and
    each station's static variables) ended in a traceback; a station's folder was refused for its
    `*_static_variables.csv`."""
    from etl.sources.files import FilesError

    top = tmp_path / "Data_separate_files_header_20190610_20190610_1_abcde_20190611"
    station = top / "REMEDHUS" / "Carretoro"
    station.mkdir(parents=True)
    (top / "Readme.txt").write_text("ISMN\n")
    (top / "Metadata.xml").write_text("<xml/>\n")
    (station / "REMEDHUS_REMEDHUS_Carretoro_static_variables.csv").write_text("quantity_name;unit;value\n")
    body = [ISMN_HEADER, *(f"2019/06/10 {h:02d}:00   0.2{h % 10} G M" for h in range(24))]
    (station / ISMN_FILE).write_text("\n".join(body) + "\n")
    for folder in (top, station):
        found = read_hostile(folder)
        assert found.readings["sensor_id"].unique().tolist() == ["file:REMEDHUS.Carretoro"]
        assert len(found.readings) == 24
    with pytest.raises(FilesError, match="nothing to import"):
        read_hostile(_only_a_readme(tmp_path))


def _only_a_readme(tmp_path):
    folder = tmp_path / "readme-only"
    folder.mkdir()
    (folder / "Readme.txt").write_text("nothing here\n")
    return folder


@pytest.mark.slow  # reads a real download: about 10 s
def test_the_real_ismn_download_imports_from_its_top_folder_every_value_kept_and_every_flag_beside_it():
    """Issue 32: values ISMN flags D (dubious) or C (implausible) are real readings with ISMN's opinion:
    kept, with the flag as imported history; only its M rows (nothing measured) are set aside."""
    import datetime as dt

    from devtools import realdata
    from etl.sources.files import read_folder
    from tests.devtools.test_realdata import need_realdata

    need_realdata()
    download = sorted((realdata.realdata_dir() / "ismn_tahmo_ammacatch_smps").glob("Data_separate_files_*"))[
        0
    ]
    found = read_folder(download, None, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    shallowest = {}
    for path in download.rglob("*_sm_*.stm"):
        depth = float(path.name.split("_sm_")[1].split("_")[0])
        if path.parent.name not in shallowest or depth < shallowest[path.parent.name][0]:
            shallowest[path.parent.name] = (depth, path)
    values = flags = 0
    for _, path in shallowest.values():
        rows = pd.read_csv(path, sep=r"\s+", skiprows=1, header=None, usecols=[0, 1, 2, 3])
        kept = rows[rows[3] != "M"]
        values += len(kept)
        flags += (kept[3] != "G").sum()
    assert found.readings["sensor_id"].nunique() == len(shallowest) > 10
    # A value no probe can send (-69.6 %) is kept in the quarantine, with its row, as the APIs' are.
    repaired = sum(q.action == "repaired" for q in found.quarantined)
    assert found.readings["soil_moisture"].notna().sum() + repaired == values > 100_000
    history = found.history
    assert set(history["kind"]) == {"ismn-flag"} and flags > 500
    # Each flagged value lies in a stretch of history naming its flag; stretches cover nothing else.
    readings = found.readings.set_index("sensor_id")
    covered = 0
    for stretch in history.itertuples():
        times = readings.loc[[stretch.sensor_id], "ts"]
        covered += times.between(stretch.start_at, stretch.end_at).sum()
        assert stretch.explanation.startswith("ISMN flagged")
    assert covered + repaired == flags  # what no probe can send is below 0 m³/m³: ISMN flags it C01 too


# --- fuzzing: whatever a file holds, it is imported or refused in one line, quickly -----------------------

FUZZ_HEADERS = st.sampled_from(["t,T,SM", "t;T;SM", "t\tT\tSM", "t,t,T", "", "a" * 5_000, "t,T,SM,\x00"])
FUZZ_CELLS = st.one_of(
    st.sampled_from(["2019-06-01 12:00", "0,25", "25%", "abc", "-9999", "", "=1+1", "1e308", "nan"]),
    st.text(max_size=20),
)


@st.composite
def fuzz_files(draw):
    """A file as a logger, a spreadsheet or an attacker might write it: a header, rows of odd cells,
    joined by one separator, in one encoding (with or without its byte order mark), or random bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=2_000))
    separator = draw(st.sampled_from([",", ";", "\t"]))
    rows = draw(st.lists(st.lists(FUZZ_CELLS, min_size=1, max_size=4), max_size=8))
    text = "\n".join([draw(FUZZ_HEADERS), *(separator.join(row) for row in rows)])
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]))
    return text.encode(encoding, errors="replace")


@pytest.mark.slow  # 150 files fuzzed (15 s)
@settings(
    max_examples=150,
    deadline=None,
    database=None,  # nothing written under .hypothesis/
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(content=fuzz_files())
def test_any_file_is_imported_or_refused_in_one_line_within_a_second(tmp_path_factory, content):
    import time

    from etl.sources.files import FilesError

    folder = hostile_folder(tmp_path_factory.mktemp("fuzz"), {"fuzz.csv": content})
    started = time.perf_counter()
    try:
        found = read_hostile(folder)
    except FilesError as exc:  # the folder refused whole: one printable line that says why
        message = str(exc)
        assert message.isprintable() and len(message) <= 400, message
    else:
        assert "file:good" in set(found.readings["sensor_id"])  # the other file is never lost
        for record in found.quarantined:
            assert record.reason.isprintable() and len(record.reason) <= 300, record.reason
    assert time.perf_counter() - started < 1.0
