"""The weekly crontab line over seven weeks of nightly runs: it finds a slow drift the nights missed, and
finds it again a week later without adding a second."""

import pandas as pd

from core.load import bulk_upsert
from core.schema import sensor_wow, sensors, wow_sites
from tests.etl.test_recheck import (
    DAY,
    TOWN,
    add_day,
    drifts,
    nightly,
    run_weekly,
    stored_anomalies,
    town_data,
)
from tests.factories import START


def test_the_weekly_crontab_line_finds_a_slow_drift_the_nightly_runs_missed(engine, database_url):
    town, station = town_data(days=60)  # weather under which next week's look puts the start a day earlier
    with engine.begin() as connection:
        bulk_upsert(connection, sensors, pd.DataFrame({"sensor_id": list(TOWN)}))
        site = {"site_id": ["900123"], "latitude": [51.5], "longitude": [-0.1], "is_live": [True]}
        bulk_upsert(connection, wow_sites, pd.DataFrame(site))
        links = {"sensor_id": list(TOWN), "site_id": "900123", "distance_km": 3.0}
        bulk_upsert(connection, sensor_wow, pd.DataFrame(links))
    for day in range(1, 46):  # each night one more day of readings, checked incrementally
        now = add_day(engine, town, station, day)
        nightly(engine, database_url, now)
    assert drifts(engine) == []  # each night saw three days: far too few for a drift

    run_weekly(database_url, now)
    found = drifts(engine)
    assert [sensor for sensor, _, _ in found] == ["c"]
    assert abs(found[0][1] - (START + 20 * DAY)) <= 4 * DAY
    assert found[0][2] == now - pd.Timedelta(seconds=1)
    before = stored_anomalies(engine)
    run_weekly(database_url, now)  # the same days again: nothing added
    pd.testing.assert_frame_equal(stored_anomalies(engine), before)

    # A week later the window has moved and the drift is found again from a day earlier: it replaces the
    # stored one rather than adding a second.
    for day in range(46, 53):
        now = add_day(engine, town, station, day)
        nightly(engine, database_url, now)
    run_weekly(database_url, now)
    later = drifts(engine)
    assert [sensor for sensor, _, _ in later] == ["c"]
    assert later[0][1] == found[0][1] - DAY and later[0][2] == now - pd.Timedelta(seconds=1)
