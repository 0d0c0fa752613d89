"""Owners' answers as labels (issue 33): `python -m etl export-labels` writes each beside the anomaly it
answers, and `devtools.evaluate --feedback` reports precision per kind on them."""

import datetime as dt
import json

import pandas as pd
from click.testing import CliRunner

from core import answers
from devtools import evaluate
from etl.cli import cli
from tests.factories import START, seed

NOW = dt.datetime(2019, 6, 12, tzinfo=dt.UTC)
SPIKE = {"sensor_id": "s1", "variable": "soil_moisture", "kind": "spike"}
BIAS = {"sensor_id": "s1", "variable": "air_temperature", "kind": "temperature_bias"}


def answered(engine):
    seed(engine)
    with engine.begin() as connection:
        spike = {**SPIKE, "start_at": (START + pd.Timedelta(minutes=15 * 500)).to_pydatetime()}
        bias = {**BIAS, "start_at": (START + pd.Timedelta(days=1)).to_pydatetime()}
        answers.record_answer(
            connection, spike, "not_a_fault", "watering", "=cmd|' /C calc'!A0", None, "olive", NOW
        )
        answers.record_answer(connection, bias, "fixed", None, "moved it to the shade", None, "olive", NOW)


def test_export_labels_writes_every_answer_beside_its_anomaly(engine, settings, tmp_path):
    answered(engine)
    out = tmp_path / "labels.csv"
    result = CliRunner().invoke(cli, ["export-labels", "--out", str(out)], obj=None)
    assert result.exit_code == 0, result.output
    assert "2 answers written to" in result.output
    rows = pd.read_csv(out)
    assert rows.columns.tolist() == answers.LABEL_COLUMNS
    spike = rows[rows["kind"] == "spike"].iloc[0]
    assert (spike["answer"], spike["reason"], spike["detector"]) == ("not_a_fault", "watering", "rule")
    assert spike["explanation"] == "1 soil moisture spike of up to 65.0 %"
    assert spike["note"].startswith("'=")  # a note is data, never a formula in a spreadsheet
    assert rows[rows["kind"] == "temperature_bias"]["answer"].tolist() == ["fixed"]


def test_feedback_reports_precision_per_kind_on_what_owners_said(engine, settings, capsys):
    answered(engine)
    evaluate.feedback(settings.database_url.get_secret_value())
    printed = capsys.readouterr().out
    figures = json.loads(printed.strip().splitlines()[-1])
    assert figures == {"answered": 2, "precision_by_kind": {"spike": 0.0, "temperature_bias": 1.0}}
    assert "watering" in printed
