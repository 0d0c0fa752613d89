"""What is wrong with a well-behaved-only nightly run, shown over real HTTP against the simulator
misbehaving one way at a time: each test fails on the code before issue 14 and passes now."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import requests
from sqlalchemy import select

from core.db import init_db, make_engine, read_frame
from core.schema import detection_state, etl_runs, quarantine, readings, sensor_wow, wow_sites
from etl import detect_anomalies, extract_all_grow_data, find_nearest_wow_live, store_sensor_info
from etl.runner import STEPS, run_nightly
from etl.shard import Shard
from etl.sources.wow import Answer, WowClient
from etl.step import StepContext
from flask_back_end import create_app
from flask_back_end.settings import load_settings as backend_settings
from tests.factories import NOW, TOKEN, pipeline_settings

UTC = dt.UTC


@pytest.fixture
def upstream(small_network, simulator):
    """The simulator serving the small network; call it with misbehaviour options, get its URL."""
    return lambda **options: simulator(serving=small_network, **options)


def night(url: str, database: str, now: dt.datetime, **misbehaviour) -> list:
    """Move the simulator to `now` with this misbehaviour (none: a clean night) and run the nightly job."""
    requests.post(f"{url}/sim/clock", json={"now": now.isoformat()}, timeout=5).raise_for_status()
    requests.post(f"{url}/sim/misbehaviour", json=calm(**misbehaviour), timeout=5).raise_for_status()
    settings = pipeline_settings(database, url, now, http_attempts=2, http_deadline_s=2.0)
    engine = make_engine(settings)
    init_db(engine)
    return run_nightly(settings, engine, Shard())


def calm(**misbehaviour) -> dict:
    rates = ("omit_variable_rate", "future_rate", "unrequested_rate", "poison_name_rate", "bad_id_rate")
    return {
        **dict.fromkeys(rates, 0.0),
        "infinity_rate": 0.0,
        "late_rate": 0.0,
        "wow_down": False,
        **misbehaviour,
    }


def stored_readings(database: str) -> pd.DataFrame:
    with make_engine(pipeline_settings(database, "http://127.0.0.1:9")).connect() as connection:
        frame = read_frame(connection, select(readings))
    return frame.sort_values(["sensor_id", "ts"], ignore_index=True)


def truth(network, now=NOW) -> pd.DataFrame:
    codes = list(network.sensors["sensor_id"])
    return network.visible_readings(codes, network.start, network.end, now).sort_values(
        ["sensor_id", "ts"], ignore_index=True
    )


def test_a_variable_left_out_one_night_is_fetched_again_and_nothing_is_lost(
    tmp_path, small_network, upstream
):
    url, database = upstream(seed=3), f"sqlite:///{tmp_path}/gaps.sqlite"
    night(url, database, NOW - dt.timedelta(days=2), omit_variable_rate=0.3, unrequested_rate=1.0)
    night(url, database, NOW)
    pd.testing.assert_frame_equal(stored_readings(database), truth(small_network), check_dtype=False)


def test_a_wrong_clock_neither_stores_the_future_nor_skips_the_sensor(tmp_path, small_network, upstream):
    url, database = upstream(seed=3), f"sqlite:///{tmp_path}/clock.sqlite"
    night(url, database, NOW - dt.timedelta(days=2), future_rate=0.3)
    night(url, database, NOW)
    pd.testing.assert_frame_equal(stored_readings(database), truth(small_network), check_dtype=False)


def test_poisoned_records_are_quarantined_and_the_night_goes_on(database_url, small_network, upstream):
    url = upstream(seed=5)
    reports = night(
        url,
        database_url,
        NOW - dt.timedelta(days=2),
        poison_name_rate=0.3,
        bad_id_rate=0.2,
        infinity_rate=0.02,
    )
    assert [r.name for r in reports] == [name for name, _ in STEPS]
    engine = make_engine(pipeline_settings(database_url, url))
    with engine.connect() as connection:
        held = read_frame(connection, select(readings))
        actions = connection.execute(select(quarantine.c.source, quarantine.c.action)).all()
    assert {("grow sensors", "repaired"), ("grow sensors", "refused"), ("grow readings", "repaired")} <= set(
        actions
    )
    values = held[["soil_moisture", "air_temperature", "light", "battery_level"]].to_numpy(dtype=float)
    assert np.isfinite(values[~np.isnan(values)]).all()
    # The back end's JSON of a sensor that was sent Infinity is valid JSON, its charts plain numbers.
    poisoned = requests.get(f"{url}/sim/poisoned", timeout=5).json()
    sensor = next(e["sensor_id"] for e in poisoned if e["kind"] == "value" and e["source"] == "grow")
    app = create_app(backend_settings(database_url=database_url, backend_token=TOKEN))
    with app.test_client() as client:
        answer = client.get(
            f"/api/v1/sensors/{sensor}/readings",
            headers={"Authorization": f"Bearer {TOKEN}"},
            query_string={"start": "2019-06-19", "end": "2019-06-29"},
        )
    assert answer.status_code == 200
    json.loads(answer.get_data(as_text=True), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    app.extensions["grow_wow"]["engine"].dispose()

    night(url, database_url, NOW)  # upstream behaves again: the true values arrive
    pd.testing.assert_frame_equal(stored_readings(database_url), truth(small_network), check_dtype=False)


def stations_and_links(database: str) -> tuple[list, list]:
    with make_engine(pipeline_settings(database, "http://127.0.0.1:9")).connect() as connection:
        stations = connection.execute(
            select(wow_sites.c.site_id, wow_sites.c.is_live, wow_sites.c.last_report_at).order_by(
                wow_sites.c.site_id
            )
        ).all()
        links = connection.execute(
            select(sensor_wow.c.sensor_id, sensor_wow.c.site_id).order_by(sensor_wow.c.sensor_id)
        ).all()
    return stations, links


def test_an_unreachable_wow_keeps_stations_and_links_as_they_are(tmp_path, small_network, upstream):
    url, database = upstream(), f"sqlite:///{tmp_path}/wow.sqlite"
    first = NOW - dt.timedelta(days=5)
    night(url, database, first)
    before = stations_and_links(database)
    assert any(live for _, live, _ in before[0])

    # WOW is down; the saved station file (from the network's last day) is configured.
    requests.post(f"{url}/sim/clock", json={"now": (first + dt.timedelta(days=1)).isoformat()}, timeout=5)
    requests.post(f"{url}/sim/misbehaviour", json={"wow_down": True}, timeout=5).raise_for_status()
    settings = pipeline_settings(
        database,
        url,
        first + dt.timedelta(days=1),
        wow_stations_file=small_network.folder / "wow_observations_europe.json",
        http_attempts=1,
    )
    run_nightly(settings, make_engine(settings), Shard())
    assert stations_and_links(database) == before
    with make_engine(settings).connect() as connection:
        counts = (
            connection.execute(
                select(etl_runs.c.counts)
                .where(etl_runs.c.step == "find_nearest_wow_live")
                .order_by(etl_runs.c.run_id)
            )
            .scalars()
            .all()
        )
    assert counts[-1] == {"wow_unreachable": 1}

    # WOW answers, but with no station at all: an outage too, not a night every station died.
    empty_answer = Answer(pd.DataFrame(columns=["site_id", "ts", "latitude", "longitude"]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WowClient, "get_box_observations", lambda self, box, start, end: empty_answer)
        run_nightly(settings, make_engine(settings), Shard())
    assert stations_and_links(database) == before

    # An empty database has nothing better than the file: it seeds the stations.
    empty = f"sqlite:///{tmp_path}/empty.sqlite"
    settings = pipeline_settings(
        empty, url, first, wow_stations_file=settings.wow_stations_file, http_attempts=1
    )
    engine = make_engine(settings)
    init_db(engine)
    context = StepContext(settings, engine, Shard(), first)
    store_sensor_info.run(context)
    find_nearest_wow_live.run(context)
    assert len(stations_and_links(empty)[0]) > 0


def test_a_day_uploaded_late_is_fetched_and_checked_again(tmp_path, small_network, upstream):
    url, database = upstream(seed=2), f"sqlite:///{tmp_path}/late.sqlite"
    night(url, database, NOW - dt.timedelta(days=3), late_rate=0.5, late_days=2)
    assert len(stored_readings(database)) < len(truth(small_network, NOW - dt.timedelta(days=3)))

    # Next night the late days are there, older than the newest reading by days.
    requests.post(f"{url}/sim/clock", json={"now": NOW.isoformat()}, timeout=5).raise_for_status()
    requests.post(f"{url}/sim/misbehaviour", json=calm(), timeout=5).raise_for_status()
    settings = pipeline_settings(database, url, NOW)
    engine = make_engine(settings)
    context = StepContext(settings, engine, Shard(), NOW)
    for step in (store_sensor_info, find_nearest_wow_live, extract_all_grow_data):
        step.run(context)
    pd.testing.assert_frame_equal(stored_readings(database), truth(small_network), check_dtype=False)
    with engine.connect() as connection:
        marks = dict(
            connection.execute(select(detection_state.c.sensor_id, detection_state.c.recheck_from)).all()
        )
    assert any(mark is not None for mark in marks.values())  # detection checks those days again

    detect_anomalies.run(context)
    with engine.connect() as connection:
        marks = connection.execute(select(detection_state.c.recheck_from)).scalars().all()
    assert all(mark is None for mark in marks)
