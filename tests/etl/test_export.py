"""`python -m etl export-sensor`: a sensor's last days as CSV and a PNG, equal to what is stored."""

import datetime as dt

import pandas as pd
from click.testing import CliRunner
from sqlalchemy import select

from core.csv_cells import safe_frame, safe_row
from core.db import read_frame
from core.schema import readings
from etl.cli import cli
from tests.factories import seed


def test_a_sensors_last_days_are_exported_as_stored_with_their_anomalies_and_charts(engine, tmp_path):
    seed(engine)
    result = CliRunner().invoke(cli, ["export-sensor", "s1", "--days", "6", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output

    with engine.connect() as connection:
        stored = read_frame(connection, select(readings).where(readings.c.sensor_id == "s1").order_by("ts"))
    last = stored["ts"].max()
    expected = stored[stored["ts"] > last - dt.timedelta(days=6)].drop(columns="sensor_id")
    exported = pd.read_csv(tmp_path / "out" / "s1_readings.csv")
    exported["ts"] = pd.to_datetime(exported["ts"], utc=True)
    pd.testing.assert_frame_equal(
        exported.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False
    )
    # The spike of day 5 is inside the six days; the bias of days 1-2 is not.
    found = pd.read_csv(tmp_path / "out" / "s1_anomalies.csv")
    assert list(found["kind"]) == ["spike"] and found["explanation"].iloc[0].startswith("1 soil moisture")
    assert (tmp_path / "out" / "s1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{len(expected):,} readings and 1 anomalies of s1" in result.output


def test_an_unknown_sensor_or_one_without_readings_is_refused_in_one_line(engine, tmp_path):
    seed(engine)
    for sensor, words in (("nope", "no sensor 'nope'"), ("s2", "has no readings")):
        result = CliRunner().invoke(cli, ["export-sensor", sensor, "--out", str(tmp_path / "out")])
        assert result.exit_code != 0 and words in result.output, result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing half written


def test_text_a_spreadsheet_would_run_as_a_formula_is_written_as_text_and_numbers_as_numbers():
    frame = pd.DataFrame(
        {
            "name": ['=HYPERLINK("http://x","y")', "+1", "-cmd", "@SUM(A1)", "\tx", "Rose bed", None],
            "soil_moisture": [-1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        }
    )
    safe = safe_frame(frame)
    assert safe["name"].tolist()[:6] == [
        '\'=HYPERLINK("http://x","y")',
        "'+1",
        "'-cmd",
        "'@SUM(A1)",
        "'\tx",
        "Rose bed",
    ]
    assert pd.isna(safe["name"].iloc[6]) and safe["soil_moisture"].tolist() == frame["soil_moisture"].tolist()
    assert safe_row({"explanation": "=1+1", "score": -2.0}) == {"explanation": "'=1+1", "score": -2.0}


def test_a_sensor_id_on_the_command_line_is_data_never_a_path(tmp_path, settings):
    for typed in ("..", "../network", "a b"):
        result = CliRunner().invoke(cli, ["export-sensor", typed, "--out", str(tmp_path / "out")])
        assert result.exit_code == 2 and "not a sensor id" in result.output, result.output
    assert not (tmp_path / "out").exists()
