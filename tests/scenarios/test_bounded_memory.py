"""Detection and analysis in bounded memory, whatever the history: a long history is checked in windows
of DETECT_WINDOW_DAYS, in chunks of the readings ETL_MEMORY_MB allows, each committed as it is done.
(The memory itself is measured in test_bounded_memory_peak.py: a file of its own, so that pytest -n runs
it beside these.)"""

import pandas as pd
import pytest
from sqlalchemy import select

from core.db import init_db, make_engine
from core.schema import anomalies, detection_state, sensor_health
from core.vocabulary import CONDITIONS
from detection.reference import COMMON
from devtools.evaluate import store_network
from devtools.simulator.generate import generate
from devtools.simulator.network import Network
from etl import analyse_anomalies, detect_anomalies
from etl.settings import load_settings
from etl.shard import Shard
from etl.step import StepContext
from tests.factories import NOW

RULES = {"detect_checks": "-unusual_day"}  # no TensorFlow: the rules and the stations find the faults
SMALL = {"etl_memory_mb": 256, "detect_window_days": 30}  # chunks of 20,000 readings, 30-day windows


@pytest.fixture(scope="module")
def long_network(tmp_path_factory):
    """16 sensors over 120 days, with the simulator's faults."""
    folder = tmp_path_factory.mktemp("long")
    generate(folder, 16, 120, 11, NOW)
    return Network(folder)


def loaded(path, network, days: int | None = None):
    url = f"sqlite:///{path}"
    engine = make_engine(load_settings(database_url=url))
    init_db(engine)
    if days is not None:
        network = _last_days(network, days)
    store_network(engine, network)
    return url, engine


def _last_days(network, days):
    """The network as if it had started `days` before its end (its readings before then left out)."""
    start = pd.Timestamp(NOW) - pd.Timedelta(days=days)

    class Shorter:
        sensors, stations = network.sensors, network.stations

        def __getattr__(self, name):
            return getattr(network, name)

        def visible_readings(self, codes, _start, end, now):
            return network.visible_readings(codes, start.to_pydatetime(), end, now=now)

        def station_observations(self, sites, _start, end):
            return network.station_observations(sites, start.to_pydatetime(), end)

    return Shorter()


def detect(engine, url, **settings):
    settings = load_settings(database_url=url, **RULES, **settings)
    return detect_anomalies.run(StepContext(settings, engine, Shard(), NOW))


def found(engine) -> pd.DataFrame:
    columns = [anomalies.c[n] for n in ("sensor_id", "variable", "kind", "start_at", "end_at")]
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(select(*columns)).all(), columns=[c.name for c in columns])
    return frame.sort_values(list(frame.columns), ignore_index=True)


CONDITION_VALUES = [kind.value for kind in CONDITIONS]


def is_soil_stuck(frame: pd.DataFrame) -> pd.Series:
    return (frame["kind"] == "stuck") & (frame["variable"] == "soil_moisture")


def without_drift(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["kind"] != "drift"].reset_index(drop=True)


def faults(frame: pd.DataFrame, common: bool = True) -> pd.DataFrame:
    """The anomalies but the drifts and the soil's stuck holds, conditions left out (and the kinds
    weather can raise in every garden at once, unless `common`)."""
    frame = without_drift(frame)
    frame = frame[~is_soil_stuck(frame)]
    frame = frame[~frame["kind"].isin(CONDITION_VALUES)]
    if not common:
        shared = pd.Series(list(zip(frame["kind"], frame["variable"])), index=frame.index).isin(COMMON)
        frame = frame[~shared]
    return frame.reset_index(drop=True)


def state(engine) -> dict:
    with engine.connect() as connection:
        return {
            s: (pd.Timestamp(until), mark)
            for s, until, mark in connection.execute(
                select(
                    detection_state.c.sensor_id,
                    detection_state.c.analysed_until,
                    detection_state.c.recheck_from,
                )
            ).all()
        }


@pytest.fixture(scope="module")
def checked_in_windows(tmp_path_factory, long_network):
    """The long history loaded and checked in windows and chunks (SMALL), once for the two tests that
    compare a check with it (they only read it): its engine."""
    from tests.conftest import _forget_the_shell

    with pytest.MonkeyPatch.context() as monkeypatch:
        _forget_the_shell(monkeypatch)
        url, engine = loaded(tmp_path_factory.mktemp("windows") / "windows.sqlite", long_network)
        detect(engine, url, **SMALL)
    yield engine
    engine.dispose()


def test_a_long_first_check_in_windows_finds_what_one_whole_look_finds(
    tmp_path, long_network, checked_in_windows
):
    whole_url, whole = loaded(tmp_path / "whole.sqlite", long_network)
    detect(whole, whole_url, detect_window_days=365)
    parts = checked_in_windows

    expected, got = found(whole), found(parts)
    assert len(expected) > 5  # the simulator's faults are there to find
    # Every fault one look finds is found, with the same start and end, once. Not the drift check: it
    # weighs a sensor against the rain over all it sees, so its verdict depends on the span (as the
    # weekly 45-day look's does); windows overlap by what it needs at either end. Nor the conditions:
    # frost is told from the air of the days before, so a window that opens in a cold spell may begin
    # the spell earlier; each is found, overlapping the one look's.
    pd.testing.assert_frame_equal(faults(got, common=False), faults(expected, common=False))
    # Nor a soil probe's stuck hold: it is judged against how long the sensor holds still on the days
    # around, and a window sees fewer of them near its ends. Every hold the one look calls stuck, the
    # windows call stuck too (over the same span).
    for _, hold in expected[is_soil_stuck(expected)].iterrows():
        same = got[is_soil_stuck(got) & (got["sensor_id"] == hold["sensor_id"])]
        assert ((same["start_at"] <= hold["end_at"]) & (same["end_at"] >= hold["start_at"])).any(), hold
    # A flag every garden by a station raises at once is weather (`reference.without_common`): the one
    # look sees all of them together; windows of sensors whose histories begin apart may not, and then
    # keep such a flag. Every one the one look kept, the windows keep.
    kept = faults(got)[["sensor_id", "kind", "start_at"]].merge(faults(expected), how="right", indicator=True)
    assert (kept["_merge"] == "both").all(), kept
    conditions = got[got["kind"].isin(CONDITION_VALUES)]
    for _, spell in expected[expected["kind"].isin(CONDITION_VALUES)].iterrows():
        same = conditions[
            (conditions["sensor_id"] == spell["sensor_id"]) & (conditions["kind"] == spell["kind"])
        ]
        assert ((same["start_at"] <= spell["end_at"]) & (same["end_at"] >= spell["start_at"])).any(), spell
    # Every sensor is checked to its latest reading, with no look left over.
    assert {s: mark for s, (_, mark) in state(parts).items()} == dict.fromkeys(state(whole), None)
    assert {s: until for s, (until, _) in state(parts).items()} == {
        s: until for s, (until, _) in state(whole).items()
    }


def test_a_killed_first_check_resumes_where_it_stopped(
    tmp_path, long_network, checked_in_windows, monkeypatch
):
    clean = checked_in_windows
    url, engine = loaded(tmp_path / "killed.sqlite", long_network)
    real, calls = detect_anomalies._check_chunk, []

    def dies_at_the_fourth_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # the kill
        return real(*args, **kwargs)

    monkeypatch.setattr(detect_anomalies, "_check_chunk", dies_at_the_fourth_chunk)
    with pytest.raises(KeyboardInterrupt):
        detect(engine, url, **SMALL)
    committed = state(engine)
    assert committed  # the first chunks stayed
    monkeypatch.setattr(detect_anomalies, "_check_chunk", real)
    detect(engine, url, **SMALL)
    pd.testing.assert_frame_equal(found(engine), found(clean))
    assert state(engine) == state(clean)


def health(engine) -> pd.DataFrame:
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(select(sensor_health)).all())
    return frame.drop(columns="updated_at").sort_values("sensor_id", ignore_index=True)


def test_analysis_shard_by_shard_equals_the_whole(tmp_path, long_network):
    url, engine = loaded(tmp_path / "analysed.sqlite", long_network)
    detect(engine, url)
    settings = load_settings(database_url=url)
    analyse_anomalies.run(StepContext(settings, engine, Shard(), NOW))
    whole = health(engine)
    assert set(whole["status"]) >= {"recovered", "healthy"}
    with engine.begin() as connection:
        connection.execute(sensor_health.delete())
    for i in (1, 2, 3):
        analyse_anomalies.run(StepContext(settings, engine, Shard(i, 3), NOW))
    pd.testing.assert_frame_equal(health(engine), whole)
