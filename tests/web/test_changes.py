"""The changes feed for mirrors (issue 34): `/api/v1/changes` lists days of readings, anomalies and health
that changed since a cursor, oldest first; paging through it skips nothing and repeats nothing, also
where many changes share one time (a night's health is written in one statement)."""

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import func, select, update

from core.schema import anomalies, readings, readings_days, sensor_health
from etl.loaders import mark_days_changed
from flask_back_end import create_app
from flask_back_end.settings import load_settings
from tests.factories import TOKEN, seed


@pytest.fixture
def client(settings, engine):
    seed(engine)
    with engine.begin() as connection:  # seed writes readings directly; the loaders note their days
        mark_days_changed(connection, pd.read_sql(select(readings.c.sensor_id, readings.c.ts), connection))
    app = create_app(load_settings(backend_token=TOKEN, changes_settle_s=0))
    with app.test_client() as client:
        yield client
    app.extensions["grow_wow"]["engine"].dispose()


def changes(client, **params):
    answer = client.get("/api/v1/changes", headers={"Authorization": f"Bearer {TOKEN}"}, query_string=params)
    assert answer.status_code == 200, answer.json
    return answer.json


def every_change(client, limit: int) -> tuple[list[dict], str]:
    seen, cursor = [], None
    while True:
        page = changes(client, limit=limit, **({"since": cursor} if cursor else {}))
        seen += page["changes"]
        cursor = page["cursor"]
        if not page["more"]:
            return seen, cursor


def identity(change: dict) -> tuple:
    return (
        change["kind"],
        change.get("day"),
        change.get("source"),
        change.get("sensor_id"),
        str(change.get("anomaly")),
    )


def test_paging_through_the_changes_one_at_a_time_skips_nothing_and_repeats_nothing(client, engine):
    seen, _ = every_change(client, limit=1)
    with engine.connect() as connection:
        expected = sum(
            connection.scalar(select(func.count()).select_from(table))
            for table in (readings_days, anomalies, sensor_health)
        )
    assert len(seen) == expected == len({identity(change) for change in seen})
    assert {change["kind"] for change in seen} == {"readings", "anomaly", "health"}
    times = [change["changed_at"] for change in seen]
    assert times == sorted(times)  # oldest first
    assert every_change(client, limit=500)[0] == seen  # the same, whatever the page size


def test_after_the_last_cursor_only_what_changed_since_is_listed(client, engine):
    _, cursor = every_change(client, limit=3)
    assert changes(client, since=cursor)["changes"] == []
    later = dt.datetime.now(dt.UTC) - dt.timedelta(
        milliseconds=1
    )  # the next night's analysis, as it dates it
    with engine.begin() as connection:
        connection.execute(
            update(sensor_health)
            .where(sensor_health.c.sensor_id == "s2")
            .values(status="silent", updated_at=later)
        )
    news = changes(client, since=cursor)
    assert [(c["kind"], c["sensor_id"], c["status"]) for c in news["changes"]] == [("health", "s2", "silent")]
    assert news["more"] is False


def test_a_cursor_the_api_did_not_give_is_refused_in_words(client):
    answer = client.get(
        "/api/v1/changes",
        headers={"Authorization": f"Bearer {TOKEN}"},
        query_string={"since": "not-a-cursor"},
    )
    assert answer.status_code == 400 and "not a cursor this API gave" in answer.json["message"]


def test_a_change_younger_than_the_settling_time_waits_for_the_next_read(settings, engine):
    """A write still in progress dates its rows when it began: a feed that listed the newest at once would
    let a mirror pass over them."""
    seed(engine)
    app = create_app(load_settings(backend_token=TOKEN))  # 10 minutes, as deployed
    with app.test_client() as client:
        assert changes(client)["changes"] == []  # all of seed's rows were written just now
    app.extensions["grow_wow"]["engine"].dispose()
