"""The nightly steps and their runner, on SQLite and PostgreSQL, against the simulator over HTTP."""

import dataclasses
import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest
import requests
from sqlalchemy import select, update

from core.db import init_db, make_engine
from core.schema import etl_runs, fetch_state, sensor_wow, sensors, wow_sites
from etl.extract_all_grow_data import fetch_plan, split_by_sensors, station_plan
from etl.find_nearest_wow_live import link_sensors, nearest
from etl.geo import haversine_km
from etl.runner import STEPS, run_nightly
from etl.runs import RunRecord, latest_runs, nightly_verdict
from etl.shard import Shard
from etl.sources.grow import Batch
from etl.sources.http import SourceError
from etl.step import StepContext
from etl.store_sensor_info import days_active, needs_address
from tests.factories import NOW, assert_same_database, pipeline_settings, snapshot

UTC = dt.UTC


# --- pure pieces --------------------------------------------------------------------------------------


def test_shards_split_every_sensor_into_exactly_one_part_stably():
    keys = [f"sensor{i}" for i in range(3000)]
    parts = [Shard(i, 3) for i in (1, 2, 3)]
    owners = [[p.contains(k) for p in parts].index(True) for k in keys]
    assert all(sum(p.contains(k) for p in parts) == 1 for k in keys)
    assert min(np.bincount(owners)) > 900  # about a third each
    assert Shard.parse("2/3") == Shard(2, 3) and str(Shard.parse(None)) == "all"
    for bad in ("0/3", "4/3", "x", "1/0"):
        with pytest.raises(ValueError):
            Shard.parse(bad)


def test_the_spatial_index_finds_the_same_nearest_station_as_brute_force():
    rng = np.random.default_rng(1)
    sites = rng.uniform([35, -10], [60, 30], (400, 2))
    points = rng.uniform([35, -10], [60, 30], (300, 2))
    index, distance = nearest(points[:, 0], points[:, 1], sites[:, 0], sites[:, 1])
    brute = haversine_km(points[:, 0, None], points[:, 1, None], sites[None, :, 0], sites[None, :, 1])
    assert (index == brute.argmin(axis=1)).all()
    assert np.allclose(distance, brute.min(axis=1))


def test_links_stop_at_the_maximum_distance_and_say_why():
    sensor_frame = pd.DataFrame(
        {
            "sensor_id": ["near", "far", "nowhere"],
            "latitude": [51.50, 52.50, None],
            "longitude": [-0.12, 3.0, None],
        }
    )
    live = pd.DataFrame({"site_id": ["A", "B"], "latitude": [51.52, 55.0], "longitude": [-0.10, -3.0]})
    links = link_sensors(sensor_frame, live, max_km=50).set_index("sensor_id")
    assert links.loc["near", "site_id"] == "A" and links.loc["near", "distance_km"] < 3
    assert links.loc["far", "site_id"] is None
    assert links.loc["far", "reason"].startswith("no live WOW station within 50 km (nearest ")
    assert links.loc["nowhere", "reason"] == "no coordinates"
    # Station A stops being live: the sensor is relinked to the next nearest, or says why not.
    relinked = link_sensors(sensor_frame, live[live["site_id"] != "A"], max_km=500).set_index("sensor_id")
    assert relinked.loc["near", "site_id"] == "B"


def test_the_fetch_plan_rereads_days_before_each_watermark_and_skips_sensors_with_nothing_since():
    ts = pd.Timestamp
    frame = pd.DataFrame(
        {
            "sensor_id": ["new", "behind", "current", "ancient", "dead"],
            "first_sample_at": [
                ts("2019-06-01", tz="UTC"),
                ts("2019-01-01", tz="UTC"),
                ts("2019-01-01", tz="UTC"),
                ts("2010-01-01", tz="UTC"),
                ts("2019-01-01", tz="UTC"),
            ],
            "last_sample_at": [
                ts("2019-06-30", tz="UTC"),
                ts("2019-06-30", tz="UTC"),
                ts("2019-06-29", tz="UTC"),
                ts("2019-06-30", tz="UTC"),
                ts("2019-06-10", tz="UTC"),
            ],
        }
    )
    marks = {
        "behind": ts("2019-06-25 12:00", tz="UTC"),
        "current": ts("2019-06-30", tz="UTC"),  # nothing new, but late uploads may fill the last days
        "dead": ts("2019-06-30", tz="UTC"),  # nothing since long before the days re-read
    }
    plan = fetch_plan(frame, marks, NOW, dt.timedelta(days=3), dt.timedelta(days=365)).set_index("sensor_id")[
        "start"
    ]
    assert plan.to_dict() == {
        "ancient": ts("2018-07-01", tz="UTC"),  # history is capped
        "new": ts("2019-06-01", tz="UTC"),
        "behind": ts("2019-06-22 12:00", tz="UTC"),
        "current": ts("2019-06-27", tz="UTC"),
    }


def test_addresses_are_looked_up_for_new_moved_or_unaddressed_sensors_only():
    fetched = pd.DataFrame(
        {
            "sensor_id": ["same", "moved", "new", "blank"],
            "latitude": [51.5, 51.5, 40, 45],
            "longitude": [0.0, 0.0, 0, 5],
        }
    )
    stored = pd.DataFrame(
        {
            "sensor_id": ["same", "moved", "blank"],
            "address": ["London", "London", None],
            "address_latitude": [51.5, 51.51, 45],
            "address_longitude": [0.0, 0.0, 5],
        }
    )
    assert needs_address(fetched, stored).tolist() == [False, True, True, True]


def test_days_active_counts_whole_days_from_the_first_sample_to_the_last_as_2019_did():
    # As 2019 counted: whole days (24 h) from the first sample to the last; a sensor's first day is 0.
    span = days_active(
        pd.Series(
            pd.to_datetime(["2019-06-01 00:00", "2019-06-01 12:00", "2019-06-01 12:00", None], utc=True)
        ),
        pd.Series(
            pd.to_datetime(
                ["2019-06-30 10:00", "2019-06-02 11:59", "2019-06-02 12:00", "2019-06-30 00:00"], utc=True
            )
        ),
    )
    assert span.tolist() == [29, 0, 1, pd.NA]


# --- the pipeline against the simulator ---------------------------------------------------------------


def snapshot_health(engine) -> list:
    from core.schema import sensor_health

    with engine.connect() as connection:
        return connection.execute(
            select(sensor_health.c.sensor_id, sensor_health.c.status, sensor_health.c.reason)
        ).all()


def stored_readings(engine) -> pd.DataFrame:
    return snapshot(engine)["readings"].assign(ts=lambda f: pd.to_datetime(f["ts"], utc=True))


@pytest.fixture
def network(small_network):
    return small_network


@pytest.fixture
def simulator(simulator, small_network):
    """The simulator serving the small network."""
    return lambda **options: simulator(serving=small_network, **options)


def test_the_nightly_run_fills_the_database_and_running_it_again_changes_nothing(
    database_url, network, simulator
):
    settings = pipeline_settings(database_url, simulator())
    engine = make_engine(settings)
    init_db(engine)
    first = run_nightly(settings, engine, Shard())
    before = snapshot(engine)
    again = run_nightly(settings, engine, Shard())

    assert [r.name for r in first] == [
        "store_sensor_info",
        "find_nearest_wow_live",
        "extract_all_grow_data",
        "detect_anomalies",
        "analyse_anomalies",
        "notify_owners",
    ]
    assert all(r.rows > 0 for r in first[:-1]) and first[-1].rows == 0  # no mail server: no mail
    assert [r.rows for r in again] == [0] * len(STEPS)
    assert_same_database(snapshot(engine), before)

    codes = list(network.sensors["sensor_id"])
    truth = network.visible_readings(codes, network.start, network.end, NOW).sort_values(
        ["sensor_id", "ts"], ignore_index=True
    )
    pd.testing.assert_frame_equal(stored_readings(engine), truth, check_dtype=False)
    assert before["sensors"]["country"].notna().all()
    links = before["sensor_wow"]
    linked = links["site_id"].notna()
    assert linked.mean() >= 0.5 and (links.loc[linked, "distance_km"] <= 50).all()
    assert links.loc[~linked, "reason"].str.startswith("no live WOW station within 50 km").all()
    live = set(network.stations.loc[network.stations["state"] == "live", "site_id"])
    assert set(links.loc[linked, "site_id"]) <= live
    # Each linked station's reports, from the first sample of the sensors it serves up to now.
    sensor_first = before["sensors"].set_index("sensor_id")["first_sample_at"]
    first_needed = pd.to_datetime(links.loc[linked, "sensor_id"].map(sensor_first), utc=True)
    observations = before["wow_observations"].assign(ts=lambda f: pd.to_datetime(f["ts"], utc=True))
    for site, first in first_needed.groupby(links.loc[linked, "site_id"]).min().items():
        expected = network.station_observations([site], first.to_pydatetime(), NOW)
        got = observations[(observations["site_id"] == site) & (observations["ts"] >= first)]
        assert len(got) == len(expected), site
    with engine.connect() as connection:
        statuses = connection.execute(select(etl_runs.c.step, etl_runs.c.status, etl_runs.c.rows)).all()
    assert len(statuses) == 2 * len(STEPS) and {s for _, s, _ in statuses} == {"ok"}

    health = pd.DataFrame(snapshot_health(engine), columns=["sensor_id", "status", "reason"]).set_index(
        "sensor_id"
    )
    labels = network.labels().set_index("sensor_id")
    silent = health[health["status"] == "silent"]
    # A silent sensor says what it was before it went quiet.
    was = silent["reason"].str.extract(r"before that: (\w+)")[0]
    unhealthy = set(health.index[health["status"].isin(["faulty", "recovered"])])
    unhealthy |= set(was.index[was != "healthy"])
    assert len(health) == len(network.sensors)
    assert unhealthy <= set(labels.index)  # no clean sensor is called faulty
    for code in labels.index[
        labels["kind"].isin(["spike", "out_of_range", "dying_battery", "probe_out_of_soil"])
    ]:
        assert code in unhealthy, (code, labels.loc[code, "kind"])
        assert health.loc[code, "reason"]
    latest = stored_readings(engine).groupby("sensor_id")["ts"].max()
    quiet = pd.Timestamp(NOW) - latest
    assert set(silent.index) == set(quiet.index[quiet >= pd.Timedelta(days=3)])


def test_late_uploads_arrive_in_the_next_run(tmp_path, network, simulator):
    earlier = dt.datetime(2019, 6, 26, tzinfo=UTC)
    url = simulator(now=earlier)
    database = f"sqlite:///{tmp_path}/late.sqlite"
    engine = make_engine(pipeline_settings(database, url, earlier))
    init_db(engine)
    run_nightly(pipeline_settings(database, url, earlier), engine, Shard())
    requests.post(f"{url}/sim/clock", json={"now": NOW.isoformat()}, timeout=5).raise_for_status()
    run_nightly(pipeline_settings(database, url, NOW), engine, Shard())

    codes = list(network.sensors["sensor_id"])
    truth = network.visible_readings(codes, network.start, network.end, NOW).sort_values(
        ["sensor_id", "ts"], ignore_index=True
    )
    pd.testing.assert_frame_equal(stored_readings(engine), truth, check_dtype=False)


def test_a_failed_window_holds_its_sensors_back_the_night_goes_on_and_the_next_run_completes(
    tmp_path, network, simulator, monkeypatch
):
    from etl.sources.grow import GrowClient

    url = simulator()
    database = f"sqlite:///{tmp_path}/gap.sqlite"
    settings = pipeline_settings(database, url)
    engine = make_engine(settings)
    init_db(engine)
    real = GrowClient.get_readings_window
    gap = dt.datetime(2019, 6, 25, tzinfo=UTC)
    victims = set()

    def flaky(self, codes, start, end):
        if start <= gap <= end and not victims:
            victims.update(codes)
            return Batch(
                tuple(codes),
                start,
                end,
                error=SourceError("GROW API readings of …: HTTP 503 after 5 attempts"),
            )
        return real(self, codes, start, end)

    monkeypatch.setattr(GrowClient, "get_readings_window", flaky)
    run_nightly(settings, engine, Shard())  # a failed request does not stop the night
    with engine.connect() as connection:
        runs = dict(connection.execute(select(etl_runs.c.step, etl_runs.c.counts)).all())
        held = dict(
            connection.execute(
                select(fetch_state.c.entity_id, fetch_state.c.fetched_through).where(
                    fetch_state.c.held_since.is_not(None)
                )
            ).all()
        )
    assert runs["extract_all_grow_data"]["failed_requests"] == 1
    assert set(held) == victims and all(through < gap for through in held.values())
    stored = stored_readings(engine)
    assert len(victims) == 10
    assert stored.loc[stored["sensor_id"].isin(victims), "ts"].max() > pd.Timestamp(gap)  # later ones load

    monkeypatch.setattr(GrowClient, "get_readings_window", real)
    run_nightly(settings, engine, Shard())
    codes = list(network.sensors["sensor_id"])
    truth = network.visible_readings(codes, network.start, network.end, NOW).sort_values(
        ["sensor_id", "ts"], ignore_index=True
    )
    pd.testing.assert_frame_equal(stored_readings(engine), truth, check_dtype=False)


def test_the_runner_stops_at_the_first_failing_step_and_records_why(tmp_path):
    database = f"sqlite:///{tmp_path}/fail.sqlite"
    settings = pipeline_settings(database, "http://127.0.0.1:9", http_attempts=1)
    engine = make_engine(settings)
    init_db(engine)
    with pytest.raises(SourceError, match="GROW API sensor list: connection refused"):
        run_nightly(settings, engine, Shard())
    with engine.connect() as connection:
        runs = connection.execute(select(etl_runs.c.step, etl_runs.c.status, etl_runs.c.error)).all()
    assert runs == [
        ("store_sensor_info", "failed", "GROW API sensor list: connection refused after 1 attempts")
    ]
    ok, verdict = nightly_verdict(latest_runs(engine), NOW, dt.timedelta(hours=26))
    assert not ok and verdict.startswith("FAILED: store_sensor_info") and "connection refused" in verdict


def _record(step, status="ok", shard=None, started=NOW - dt.timedelta(hours=3), error=None):
    finished = None if status == "running" else started + dt.timedelta(minutes=5)
    return RunRecord(step, shard, started, finished, status, 10, error)


ALL_OK = [_record(name) for name, _ in STEPS]


@pytest.mark.parametrize(
    ("records", "healthy", "verdict"),
    [
        (ALL_OK, True, "OK: the last nightly run finished 2.9 h ago"),
        ([], False, "NEVER RUN"),
        ([_record(name, started=NOW - dt.timedelta(hours=30)) for name, _ in STEPS], False, "STALE"),
        (
            [
                *ALL_OK[:2],
                _record("extract_all_grow_data", "failed", "2/4", error="WOW API: 503"),
                *ALL_OK[3:],
            ],
            False,
            "FAILED: extract_all_grow_data (shard 2/4)",
        ),
        (
            [*ALL_OK[:3], _record("detect_anomalies", "running", started=NOW - dt.timedelta(hours=27))],
            False,
            "STUCK: detect_anomalies",
        ),
        (
            [
                *ALL_OK[:4],
                _record("analyse_anomalies", shard="1/2"),
                _record("analyse_anomalies", "failed", "2/2"),
            ],
            False,
            "FAILED: analyse_anomalies (shard 2/2)",
        ),
    ],
)
def test_the_status_verdict_for_monitoring(records, healthy, verdict):
    ok, said = nightly_verdict(records, NOW, dt.timedelta(hours=26))
    assert ok is healthy and said.startswith(verdict), said


def test_an_import_run_by_hand_that_failed_does_not_make_the_nightly_job_unhealthy():
    """A mistyped `import-2019 --from` fails and is recorded; the nightly job is as healthy as it was."""
    failed_import = _record("import_2019", "failed", error="cannot read the 2019 database: no such file")
    ok, said = nightly_verdict([*ALL_OK, failed_import], NOW, dt.timedelta(hours=26))
    assert ok and said.startswith("OK"), said


EARLIER = NOW - dt.timedelta(days=3)


@pytest.mark.parametrize(
    ("records", "healthy", "verdict"),
    [
        (  # four shards once, one failed; the network runs whole since
            [
                *ALL_OK,
                *[_record(name, shard=f"{i}/4", started=EARLIER) for name, _ in STEPS for i in (1, 2, 4)],
                _record("detect_anomalies", "failed", "3/4", started=EARLIER, error="killed"),
            ],
            True,
            "OK",
        ),
        (  # one shard of an old plan left marked running
            [*ALL_OK, _record("extract_all_grow_data", "running", "2/8", started=EARLIER)],
            True,
            "OK",
        ),
        (  # whole once; now two shards, and one failed
            [
                *[_record(name, started=EARLIER) for name, _ in STEPS],
                *[_record(name, shard="1/2") for name, _ in STEPS],
                _record("store_sensor_info", "failed", "2/2", error="GROW API: 503"),
            ],
            False,
            "FAILED: store_sensor_info (shard 2/2)",
        ),
    ],
    ids=["old shard failed", "old shard running", "new shard failed"],
)
def test_status_judges_the_shard_plan_of_the_latest_run(records, healthy, verdict):
    ok, said = nightly_verdict(records, NOW, dt.timedelta(hours=26))
    assert ok is healthy and said.startswith(verdict), said


def test_only_new_or_moved_sensors_are_geocoded_again(tmp_path, simulator, monkeypatch):
    from etl import store_sensor_info

    database = f"sqlite:///{tmp_path}/geo.sqlite"
    settings = pipeline_settings(database, simulator())
    engine = make_engine(settings)
    init_db(engine)
    looked_up = []
    real = store_sensor_info.geocode
    monkeypatch.setattr(
        store_sensor_info,
        "geocode",
        lambda geocoder, todo: looked_up.append(len(todo)) or real(geocoder, todo),
    )
    context = StepContext(settings, engine, Shard(), NOW)
    store_sensor_info.run(context)
    store_sensor_info.run(context)
    with engine.begin() as connection:
        connection.execute(
            update(sensors)
            .where(sensors.c.sensor_id == select(sensors.c.sensor_id).limit(1).scalar_subquery())
            .values(address_latitude=0.0)
        )
    store_sensor_info.run(context)
    assert looked_up == [20, 0, 1]


def test_a_linked_station_that_stops_being_live_is_replaced(tmp_path, simulator, monkeypatch):
    from etl import find_nearest_wow_live
    from etl.sources.wow import WowClient

    database = f"sqlite:///{tmp_path}/relink.sqlite"
    settings = pipeline_settings(database, simulator())
    engine = make_engine(settings)
    init_db(engine)
    context = StepContext(settings, engine, Shard(), NOW)
    from etl import store_sensor_info

    store_sensor_info.run(context)
    find_nearest_wow_live.run(context)
    with engine.connect() as connection:
        first = dict(connection.execute(select(sensor_wow.c.sensor_id, sensor_wow.c.site_id)).all())
    dropped = pd.Series(list(first.values())).mode()[0]  # the busiest station goes quiet
    real = WowClient.get_recent

    def without(self, now, *args):
        recent = real(self, now, *args)
        quiet = recent.stations["site_id"] == dropped
        return dataclasses.replace(recent, stations=recent.stations[~quiet])

    monkeypatch.setattr(WowClient, "get_recent", without)
    find_nearest_wow_live.run(context)
    with engine.connect() as connection:
        second = dict(connection.execute(select(sensor_wow.c.sensor_id, sensor_wow.c.site_id)).all())
        still_live = connection.scalar(select(wow_sites.c.is_live).where(wow_sites.c.site_id == dropped))
    moved = [s for s, site in first.items() if site == dropped]
    assert moved and all(second[s] != dropped for s in moved)
    assert all(second[s] == first[s] for s in first if s not in moved)
    assert still_live is False


def test_stations_are_read_from_their_watermark_unless_the_live_window_covered_them_up_to_now():
    from etl.fetch_state import Stored
    from etl.find_nearest_wow_live import covered_through
    from etl.sources.wow import Answer

    ts = pd.Timestamp
    first_needed = pd.Series(
        {
            "nightly": ts("2019-06-01", tz="UTC"),  # the live window took it up to now: nothing to read
            "new": ts("2019-06-20", tz="UTC"),  # never read: its history
            "lapsed": ts("2019-06-01", tz="UTC"),  # missed some nights: from its watermark
            "never": pd.NaT,
        }
    )
    watermarks = {"nightly": ts(NOW), "lapsed": ts("2019-06-27", tz="UTC")}
    plan = station_plan(first_needed, watermarks, NOW, dt.timedelta(hours=6), dt.timedelta(days=365))
    assert plan == {
        "new": (ts("2019-06-20", tz="UTC"), ts(NOW)),
        "lapsed": (ts("2019-06-26 18:00", tz="UTC"), ts(NOW)),
        "never": (ts(NOW) - pd.Timedelta(days=365), ts(NOW)),
    }

    # The live window covers a linked station up to now only when it is contiguous with the station's
    # watermark, the station was seen in every window of the box, and nothing of it was refused.
    since = NOW - dt.timedelta(hours=24)
    stored = {
        site: Stored(ts(since) - pd.Timedelta(minutes=30), None, 0)
        for site in ("nightly", "unseen", "refused")
    }
    stored["lapsed"] = Stored(ts("2019-06-27", tz="UTC"), None, 0)
    answer = Answer(
        pd.DataFrame(),
        incomplete={"refused": "air_temperature not a possible report"},
        seen_in_every_window=frozenset({"nightly", "lapsed", "refused", "new"}),
    )
    linked = {"nightly", "lapsed", "unseen", "refused", "new"}
    covered = covered_through(linked, answer, stored, since, NOW)
    assert list(covered["entity_id"]) == ["nightly"]
    assert covered["fetched_through"].tolist() == [ts(NOW)]


def test_health_follows_the_2019_meaning_with_the_threshold_a_setting():
    from etl.analyse_anomalies import sensor_health_rows

    ts = pd.Timestamp
    found = pd.DataFrame(
        {
            "sensor_id": ["fresh", "old", "old"],
            "variable": ["soil_moisture", "light", "air_temperature"],
            "kind": ["stuck", "stuck", "hot_spot"],
            "end_at": [ts("2019-06-29", tz="UTC"), ts("2019-06-10", tz="UTC"), ts("2019-06-12", tz="UTC")],
            "score": [2.0, 1.0, 3.0],
            "explanation": [
                "soil moisture stuck at 31.2 % for 30 h",
                "light stuck",
                "air temperature up to 14.0 °C above …",
            ],
        }
    )
    latest = {s: ts("2019-06-30", tz="UTC") for s in ("fresh", "old", "clean")}
    health = sensor_health_rows(["fresh", "old", "clean"], found, latest, faulty_days=2).set_index(
        "sensor_id"
    )
    assert health["status"].to_dict() == {"fresh": "faulty", "old": "recovered", "clean": "healthy"}
    assert health.loc["fresh", "reason"] == "soil moisture stuck at 31.2 % for 30 h"
    assert health.loc["old", "reason"].startswith("recovered 18.0 days ago; last: air temperature up to 14.0")
    assert health.loc["old", "counts"] == {
        "kind": {"hot_spot": 1, "stuck": 1},
        "variable": {"air_temperature": 1, "light": 1},
    }
    stricter = sensor_health_rows(["fresh"], found, latest, faulty_days=0.5)
    assert stricter["status"].tolist() == ["recovered"]


def test_an_anomaly_that_goes_on_extends_the_stored_one():
    from etl.detect_anomalies import continue_stored

    ts = pd.Timestamp
    stored = pd.DataFrame(
        {
            "sensor_id": ["s"],
            "variable": ["soil_moisture"],
            "kind": ["stuck"],
            "start_at": [ts("2019-06-20", tz="UTC")],
            "end_at": [ts("2019-06-25", tz="UTC")],
        }
    )
    found = pd.DataFrame(
        {
            "sensor_id": ["s", "s"],
            "variable": ["soil_moisture", "light"],
            "kind": ["stuck", "stuck"],
            "start_at": [ts("2019-06-24", tz="UTC"), ts("2019-06-24", tz="UTC")],
            "end_at": [ts("2019-06-27", tz="UTC"), ts("2019-06-27", tz="UTC")],
        }
    )
    merged = continue_stored(found, stored).set_index("variable")
    assert merged.loc["soil_moisture", "start_at"] == ts("2019-06-20", tz="UTC")  # continued
    assert merged.loc["light", "start_at"] == ts("2019-06-24", tz="UTC")  # a new one


def test_the_requests_split_into_parts_keep_each_sensor_whole_and_in_order():
    t = [dt.datetime(2019, 6, d, tzinfo=dt.UTC) for d in (1, 11, 21)]
    windows = [(("a", "b"), t[0], t[1]), (("a", "b"), t[1], t[2]), (("c",), t[0], t[1]), (("d",), t[1], t[2])]
    parts = split_by_sensors(windows, 2)
    assert parts == [[windows[0], windows[1], windows[3]], [windows[2]]]
    assert split_by_sensors(windows, 1) == [windows]
    assert split_by_sensors(windows[:2], 4) == [windows[:2]]  # never an empty part: one sensor group
    assert split_by_sensors([], 2) == [[]]


# --- alerts by mail through a whole night (issue 33) ------------------------------------------------------


def owner_accounts(engine, network) -> dict[str, str]:
    """One account with an address for each owner of the network: owner id → address."""
    from flask_front_end import accounts

    addresses = {}
    for i, owner in enumerate(sorted(set(network.sensors["owner_id"]))):
        addresses[owner] = f"owner{i}@example.org"
        accounts.create_user(
            engine, f"owner{i}", "a long password", "owner", owner_id=owner, email=addresses[owner]
        )
    return addresses


def mailed_sensors(inbox) -> dict[str, list[str]]:
    """Address → the sensor ids its mails named as needing a look, in order, repeats kept."""
    said = {}
    for (to,), message in inbox.messages:
        said.setdefault(to, []).extend(
            re.findall(r"\(([^()\s]+)\): (?:faulty|silent)", message.get_content())
        )
    return said


def test_a_mail_server_refusing_for_a_night_sends_every_alert_once_the_next_and_the_night_goes_on(
    tmp_path, network, simulator, smtp_server
):
    port, inbox = smtp_server
    mail = dict(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none", mail_link_secret="s" * 32)
    settings = pipeline_settings(f"sqlite:///{tmp_path}/mail.sqlite", simulator(), **mail)
    engine = make_engine(settings)
    init_db(engine)
    addresses = owner_accounts(engine, network)
    inbox.refusing = True
    first = run_nightly(settings, engine, Shard())  # a failed step would raise
    assert len(first) == len(STEPS) and inbox.messages == []
    bad = pd.DataFrame(snapshot_health(engine), columns=["sensor_id", "status", "reason"])
    bad = bad[bad["status"].isin(["faulty", "silent"])].merge(network.sensors[["sensor_id", "owner_id"]])
    assert bad["owner_id"].nunique() >= 2  # the night found faults to tell of, for more than one owner
    with engine.connect() as connection:
        counts = connection.execute(
            select(etl_runs.c.counts).where(etl_runs.c.step == "notify_owners")
        ).scalar()
    assert counts["mail_failed"] == bad["owner_id"].nunique()  # one refused try per account, none lost

    inbox.refusing = False
    run_nightly(settings, engine, Shard())  # the server answers again
    run_nightly(settings, engine, Shard())  # and once more: nothing twice
    expected = {addresses[owner]: sorted(group["sensor_id"]) for owner, group in bad.groupby("owner_id")}
    assert {to: sorted(ids) for to, ids in mailed_sensors(inbox).items()} == expected
    assert len(inbox.messages) == len(expected)


def test_a_mail_server_that_never_answers_costs_the_night_one_timeout_not_one_per_account(
    tmp_path, network, simulator
):
    import socket

    silent = socket.socket()  # listens, never speaks: a mail server hung or behind a black hole
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    mail = dict(
        smtp_host="127.0.0.1", smtp_port=silent.getsockname()[1], smtp_security="none", smtp_timeout_s=0.5
    )
    settings = pipeline_settings(f"sqlite:///{tmp_path}/mail.sqlite", simulator(), **mail)
    engine = make_engine(settings)
    init_db(engine)
    owner_accounts(engine, network)
    try:
        records = run_nightly(settings, engine, Shard())  # a failed step would raise
    finally:
        silent.close()
    assert len(records) == len(STEPS)
    from core.schema import mail_ledger

    with engine.connect() as connection:
        tried = connection.execute(
            select(mail_ledger.c.user_id, mail_ledger.c.attempts, mail_ledger.c.sent_at)
        ).all()
    accounts_owed = {user for user, _, _ in tried}
    assert len(accounts_owed) >= 2 and all(sent is None for _, _, sent in tried)
    # The first account's try waited out the timeout; the others were not tried tonight, and wait.
    assert len({user for user, attempts, _ in tried if attempts}) == 1
