"""Owners answer on the sensor page (issue 33): what an anomaly was, and pauses for maintenance; stored
with who and when, for the account's own sensors only, behind CSRF."""

import datetime as dt
import re

import pytest
from sqlalchemy import select

from core.schema import anomaly_answers, sensor_pauses
from tests.web.test_front_end import (  # noqa: F401 - fixtures
    app,
    cheap_scrypt,
    csrf_token,
    front_settings,
    log_in,
)

SPIKE = {"variable": "soil_moisture", "kind": "spike", "start_at": "2019-06-06T05:00:00+00:00"}


@pytest.fixture
def olive(app):  # noqa: F811 - the fixture imported above
    client = app.test_client()
    log_in(client, "olive")
    return client


def post(client, path, **form):
    return client.post(path, data={"csrf_token": csrf_token(client, "/sensors/s1"), **form})


def stored(engine, table) -> list[dict]:
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(select(table)).mappings()]


def test_the_sensor_page_offers_each_fault_an_answer(olive):
    page = olive.get("/sensors/s1").get_data(as_text=True)
    section = page[page.index('id="answers"') :]
    assert "1 soil moisture spike of up to 65.0 %" in section and "temperature bias" in section
    assert section.count('class="answer-form"') == 2
    assert 'value="not_a_fault"' in section and "in the shed for winter" in section


def test_not_a_fault_with_its_reason_is_stored_with_who_and_when_and_shown(olive, engine):
    answer = post(olive, "/sensors/s1/answers", **SPIKE, answer="not_a_fault", reason="watering", note="hose")
    assert answer.status_code == 302 and answer.location == "/sensors/s1#answers"
    [row] = stored(engine, anomaly_answers)
    assert (row["answer"], row["reason"], row["note"], row["answered_by"]) == (
        "not_a_fault",
        "watering",
        "hose",
        "olive",
    )
    page = olive.get("/sensors/s1").get_data(as_text=True)
    assert "Saved: not a fault (watering)" in page
    assert re.search(r"Answered by olive on \d{4}-\d\d-\d\d:\s+not a fault \(watering\): “hose”", page)


def test_an_incomplete_or_unknown_answer_is_refused_and_nothing_stored(olive, engine):
    post(olive, "/sensors/s1/answers", **SPIKE, answer="not_a_fault")
    assert "Not saved: say why it is not a fault." in olive.get("/sensors/s1").get_data(as_text=True)
    post(olive, "/sensors/s1/answers", **{**SPIKE, "start_at": "2019-06-01T00:00:00+00:00"}, answer="fixed")
    assert "Not saved: there is no such anomaly" in olive.get("/sensors/s1").get_data(as_text=True)
    assert olive.post("/sensors/s1/answers", data={**SPIKE, "answer": "fixed"}).status_code == 400  # no CSRF
    assert stored(engine, anomaly_answers) == []


def test_an_owner_cannot_answer_for_or_pause_someone_elses_sensor(olive, engine):
    r1 = {**SPIKE, "answer": "real_fault"}
    assert post(olive, "/sensors/r1/answers", **r1).status_code == 404
    assert post(olive, "/sensors/r1/pauses", start="2019-06-01", end="2019-06-02").status_code == 404
    assert post(olive, "/sensors/r1/pauses/1/end").status_code == 404
    assert stored(engine, anomaly_answers) == [] and stored(engine, sensor_pauses) == []


def test_a_pause_is_stored_for_whole_days_listed_and_ended(olive, engine):
    first, last = dt.date.today() - dt.timedelta(days=6), dt.date.today() + dt.timedelta(days=80)
    answer = post(olive, "/sensors/s1/pauses", start=first, end=first + dt.timedelta(days=400), note="winter")
    page = olive.get("/sensors/s1").get_data(as_text=True)
    assert "Not saved: a pause lasts a year at most." in page and stored(engine, sensor_pauses) == []
    answer = post(olive, "/sensors/s1/pauses", start=first, end=last, note="in the shed")
    assert answer.status_code == 302
    [pause] = stored(engine, sensor_pauses)
    assert pause["paused_by"] == "olive" and pause["note"] == "in the shed"
    after = last + dt.timedelta(days=1)  # the whole last day
    assert (pause["start_at"].isoformat()[:19], pause["end_at"].isoformat()[:19]) == (
        f"{first}T00:00:00",
        f"{after}T00:00:00",
    )
    page = olive.get("/sensors/s1").get_data(as_text=True)
    assert f"{first} to {after} 00:00 UTC, by olive: in the shed" in page and "End it now" in page
    post(olive, f"/sensors/s1/pauses/{pause['pause_id']}/end")
    [ended] = stored(engine, sensor_pauses)
    assert ended["end_at"] < pause["end_at"]
    assert "The pause is over." in olive.get("/sensors/s1").get_data(as_text=True)


def test_the_serial_number_that_proves_a_claim_never_reaches_a_browser(olive, engine):
    from sqlalchemy import update

    from core.schema import sensors

    with engine.begin() as connection:
        connection.execute(
            update(sensors).where(sensors.c.sensor_id == "s1").values(serial_number="GROW-SN-4471")
        )
    for path in ("/data/sensors/s1", "/sensors/s1", "/data/sensors?per_page=50", "/data/map"):
        assert "GROW-SN-4471" not in olive.get(path).get_data(as_text=True), path


def test_a_time_without_its_zone_or_a_date_past_any_calendar_is_refused_not_a_500(olive, engine):
    naive = {**SPIKE, "start_at": "2019-06-06T05:00:00"}
    assert post(olive, "/sensors/s1/answers", **naive, answer="real_fault").status_code == 302
    assert "time was not a time." in olive.get("/sensors/s1").get_data(as_text=True)
    for start, end in [("2026-01-01", "9999-12-31"), ("0001-01-01", "0001-01-02")]:
        assert post(olive, "/sensors/s1/pauses", start=start, end=end).status_code == 302
        assert "Not saved: a pause lies within a year of today." in olive.get("/sensors/s1").get_data(
            as_text=True
        )
    assert stored(engine, anomaly_answers) == [] and stored(engine, sensor_pauses) == []


def test_ending_a_pause_of_another_sensor_through_ones_own_sensor_changes_nothing(olive, engine):
    from core import answers

    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        theirs = answers.add_pause(
            connection, "r1", now, now + dt.timedelta(days=3), None, None, "oscar", now
        )
    post(olive, f"/sensors/s1/pauses/{theirs}/end")
    [pause] = stored(engine, sensor_pauses)
    assert pause["end_at"] > now + dt.timedelta(days=2)
