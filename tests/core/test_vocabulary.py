"""The domain's words are defined once (core/vocabulary.py): the README's table, the API's schema, the
dashboard's legend and the database's check constraint all say the same as the vocabulary."""

import re
from pathlib import Path

import pytest
from flask import render_template
from markupsafe import escape
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from core.schema import sensor_health, sensors
from core.vocabulary import SENSOR_VARIABLES, AnomalyKind, Detector, Health
from flask_back_end import create_app as create_back_end
from flask_back_end.settings import load_settings as back_end_settings
from flask_front_end import create_app as create_front_end
from flask_front_end import statuses
from flask_front_end.settings import load_settings as front_end_settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_kind_has_a_detector_and_a_meaning():
    assert {kind.detector for kind in AnomalyKind} == set(Detector)
    assert all(kind.meaning and kind.label == kind.value.replace("_", " ") for kind in AnomalyKind)


def test_the_readme_lists_exactly_the_kinds_of_anomaly():
    detectors = "|".join(detector.value for detector in Detector)
    rows = re.findall(rf"^\| `([a-z0-9_-]+)` \| ({detectors}) \| (.+) \|$", README, flags=re.MULTILINE)
    assert rows == [(kind.value, kind.detector.value, kind.meaning) for kind in AnomalyKind]


def test_the_api_document_names_the_kinds_detectors_statuses_and_variables(tmp_path):
    app = create_back_end(back_end_settings(database_url=f"sqlite:///{tmp_path / 'api.sqlite'}"))
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    anomaly = schemas["Anomaly"]["properties"]
    assert anomaly["kind"]["enum"] == [kind.value for kind in AnomalyKind]
    assert anomaly["detector"]["enum"] == [detector.value for detector in Detector]
    point = schemas["ReadingPoint"]
    assert set(SENSOR_VARIABLES) <= set(point["properties"])
    status = next(p for p in spec["paths"]["/api/v1/sensors"]["get"]["parameters"] if p["name"] == "status")
    assert status["schema"]["enum"] == [health.value for health in Health]
    assert "silent" in status["schema"]["enum"]
    # The answers name the same statuses: a sensor's, and the counts per status (plus not checked yet).
    for answer in ("SensorSummary", "Health"):
        assert schemas[answer]["properties"]["status"]["enum"] == [*(health.value for health in Health), None]
    counts = schemas["StatusCounts"]
    assert sorted(counts["properties"]) == sorted(counts["required"]) == sorted([*Health, "unchecked"])


def test_the_sensor_page_legend_explains_every_kind(tmp_path):
    app = create_front_end(
        front_end_settings(database_url=f"sqlite:///{tmp_path / 'web.sqlite'}", frontend_secret_key="key")
    )

    with app.test_request_context():
        legend = render_template("_kinds_legend.html", anomaly_kinds=list(AnomalyKind))
    for kind in AnomalyKind:
        assert f'data-kind="{kind.value}"' in legend and str(escape(kind.meaning)) in legend
    assert legend.count("<dt") == len(AnomalyKind)


def test_the_dashboard_has_a_look_for_every_status():
    assert [look.value for look in statuses.LOOKS] == [*(health.value for health in Health), "unchecked"]
    assert sorted(statuses.WORST_FIRST) == sorted(look.value for look in statuses.LOOKS)
    assert len({look.colour for look in statuses.LOOKS}) == len(statuses.LOOKS)
    assert statuses.BY_VALUE["silent"].dated and not any(look.dated for look in statuses.LOOKS[:3])
    # Never told by colour alone: a symbol of its own each, and text on the colour readable (WCAG AA).
    assert len({look.symbol for look in statuses.LOOKS}) == len(statuses.LOOKS)
    assert {look.value: round(contrast(look.colour, look.ink), 2) >= 4.5 for look in statuses.LOOKS} == {
        look.value: True for look in statuses.LOOKS
    }


def contrast(one: str, other: str) -> float:
    """WCAG 2 contrast ratio of two `#rrggbb` colours."""

    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_database_refuses_a_status_outside_the_vocabulary(engine):
    with engine.begin() as connection:
        connection.execute(insert(sensors).values(sensor_id="s1"))
        for status in Health:
            connection.execute(sensor_health.delete())
            connection.execute(insert(sensor_health).values(sensor_id="s1", status=status.value))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(sensor_health.delete())
        connection.execute(insert(sensor_health).values(sensor_id="s1", status="broken"))
