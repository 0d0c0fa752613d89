"""The chaos nights: 50 sensors × 5 nights against an upstream that misbehaves in a different way every
night (sensors and variables left out, wrong clocks, codes not asked for, poisoned names and ids,
Infinity for values, late days, trickling answers, WOW down), each misbehaviour on at least one night,
then two clean nights. Afterwards the database holds exactly the generated readings, the quarantine
exactly the poisoned records, and every night ran all five steps."""

import datetime as dt
import json
import random
import re

import numpy as np
import pandas as pd
import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select

from core.db import init_db, make_engine, read_frame
from core.schema import etl_runs, fetch_gaps, quarantine, readings, sensor_wow, sensors, wow_observations
from devtools.simulator.generate import generate
from devtools.simulator.network import Network
from etl.cli import cli
from etl.runner import STEPS, run_nightly
from etl.shard import Shard
from tests.factories import etl_env, pipeline_settings

SENSORS, CHAOS_NIGHTS, CLEAN_NIGHTS = 50, 5, 2
END = dt.datetime(2019, 7, 1, tzinfo=dt.UTC)
FIRST_NIGHT = END - dt.timedelta(days=CHAOS_NIGHTS + CLEAN_NIGHTS - 1)
RATES = (
    "omit_sensor_rate",
    "omit_variable_rate",
    "future_rate",
    "unrequested_rate",
    "poison_name_rate",
    "bad_id_rate",
    "infinity_rate",
    "late_rate",
    "trickle_rate",
)
CALM = {**dict.fromkeys(RATES, 0.0), "wow_down": False}


WOW_DOWN = 1  # the night WOW does not answer at all
TRICKLE_RATE = 0.3  # on the one night answers trickle: a third of the calls, so that some surely do


def night_mix(rng: random.Random, night: int) -> dict:
    """A different mix each night: three to six misbehaviours at 10–20 %, and WOW down on one night.
    The misbehaviours are dealt out over the nights first (RATES[night::CHAOS_NIGHTS]), so each comes at
    least once, then more are drawn. Answers trickle on their own night only: each trickled call waits
    out the deadline twice (a retry trickles too); twenty nights of them took two thirds of the time."""
    mix = dict(CALM)
    dealt = RATES[night::CHAOS_NIGHTS]
    others = [name for name in RATES if name not in dealt and name != "trickle_rate"]
    for name in [*dealt, *rng.sample(others, rng.randint(3, 6) - len(dealt))]:
        mix[name] = round(rng.uniform(0.10, 0.20), 3)
    if mix["trickle_rate"]:
        mix["trickle_rate"] = TRICKLE_RATE
    mix["wow_down"] = night == WOW_DOWN
    return mix


def quarantine_key(source: str, action: str, record: dict) -> tuple:
    if source == "grow readings":
        return (source, record["LocationCode"], record["VariableCode"], record["DateTime"])
    if source == "wow observations":
        return (source, record["SiteId"], record["ReportEndDateTime"])
    return (source, record["Code"], record["Name"] if action == "repaired" else None)


def poisoned_key(entry: dict) -> tuple:
    if entry["source"] == "wow":
        return ("wow observations", entry["site_id"], entry["DateTime"])
    if entry["kind"] in ("value", "future"):
        return ("grow readings", entry["sensor_id"], entry["variable_code"], entry["DateTime"])
    if entry["kind"] == "name":
        return ("grow sensors", entry["sensor_id"], entry["name"])
    return ("grow sensors", entry["code"], None)


def status(database: str, url: str, now: dt.datetime):
    """`python -m etl status` with thresholds of 0: any gap or quarantined record fails it."""
    env = etl_env(database, url, now, STATUS_MAX_GAPS="0", STATUS_MAX_QUARANTINED="0")
    return CliRunner().invoke(cli, ["status"], env=env)


@pytest.fixture(scope="module")
def chaos_network(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chaos-network")
    generate(folder, sensors=SENSORS, days=30, seed=4242, end=END)
    return Network(folder)


def test_five_nights_of_chaos_then_two_clean_nights_lose_nothing(tmp_path, chaos_network, simulator, caplog):
    url = simulator(serving=chaos_network, now=FIRST_NIGHT, seed=7)
    database = f"sqlite:///{tmp_path}/chaos.sqlite"
    engine = make_engine(pipeline_settings(database, url, FIRST_NIGHT))
    init_db(engine)
    rng, mixes = random.Random(2026), []
    for night in range(CHAOS_NIGHTS + CLEAN_NIGHTS):
        now = FIRST_NIGHT + dt.timedelta(days=night)
        mix = night_mix(rng, night) if night < CHAOS_NIGHTS else CALM
        mixes.append(mix)
        requests.post(f"{url}/sim/clock", json={"now": now.isoformat()}, timeout=5).raise_for_status()
        requests.post(f"{url}/sim/misbehaviour", json=mix, timeout=5).raise_for_status()
        settings = pipeline_settings(
            database, url, now, http_attempts=2, http_timeout_s=2, http_deadline_s=1.0, fetch_workers=4
        )
        reports = run_nightly(settings, engine, Shard())
        assert [r.name for r in reports] == [name for name, _ in STEPS], f"night {night}: {mix}"
        if night == CHAOS_NIGHTS - 1:
            after_chaos = status(database, url, now)

    # The morning after the last chaos night, etl status listed what upstream left undone, and failed.
    assert after_chaos.exit_code == 1
    held = int(re.search(r"held back: (\d+) sensors and stations", after_chaos.output)[1])
    quarantined = int(re.search(r"quarantined by the last run: (\d+) records", after_chaos.output)[1])
    assert held > 0 and quarantined > 0, after_chaos.output
    assert "stamped in the future" in after_chaos.output or "not a possible" in after_chaos.output

    # Every night ran all five steps, each ok; the chaos showed in the run records.
    with engine.connect() as connection:
        runs = connection.execute(select(etl_runs.c.step, etl_runs.c.status, etl_runs.c.counts)).all()
        stored = read_frame(connection, select(readings)).sort_values(["sensor_id", "ts"], ignore_index=True)
        rows = connection.execute(select(quarantine.c.source, quarantine.c.action, quarantine.c.record)).all()
        given_up = connection.execute(select(fetch_gaps)).all()
        observations = read_frame(connection, select(wow_observations)).sort_values(["site_id", "ts"])
        links = read_frame(connection, select(sensor_wow).where(sensor_wow.c.site_id.is_not(None)))
        sensor_rows = read_frame(connection, select(sensors.c.sensor_id, sensors.c.first_sample_at))
    assert len(runs) == len(STEPS) * (CHAOS_NIGHTS + CLEAN_NIGHTS)
    assert {status for _, status, _ in runs} == {"ok"}
    problems = pd.DataFrame([counts or {} for _, _, counts in runs]).sum()
    assert problems["gaps"] > 0 and problems["quarantined"] > 0 and problems["wow_unreachable"] > 0
    assert given_up == []
    # Every misbehaviour came on some night (the poisons are checked below), and the trickles were met:
    # calls given up at the deadline.
    assert {name for mix in mixes for name in RATES if mix[name]} == set(RATES)
    assert any("no complete answer within 1 s" in record.getMessage() for record in caplog.records)

    # Exactly the generated readings: none lost, none duplicated, values equal.
    codes = list(chaos_network.sensors["sensor_id"])
    truth = chaos_network.visible_readings(codes, chaos_network.start, chaos_network.end, END)
    truth = truth.sort_values(["sensor_id", "ts"], ignore_index=True)
    pd.testing.assert_frame_equal(stored, truth, check_dtype=False)
    # Each station linked at the end holds its reports, values equal, from the first sample of the sensors
    # it serves up to now; no station report from a wrong clock or with an impossible value was stored.
    first_sample = pd.to_datetime(sensor_rows.set_index("sensor_id")["first_sample_at"], utc=True)
    first_needed = links["sensor_id"].map(first_sample).groupby(links["site_id"]).min()
    for site, first in first_needed.items():
        expected = chaos_network.station_observations([site], first.to_pydatetime(), END)
        got = observations[(observations["site_id"] == site) & (observations["ts"] >= first)]
        columns = ["ts", "air_temperature", "rainfall", "relative_humidity"]
        pd.testing.assert_frame_equal(
            got[columns].reset_index(drop=True), expected[columns], check_dtype=False, obj=site
        )
    assert observations["ts"].max() <= pd.Timestamp(END)
    values = observations[["air_temperature", "rainfall", "relative_humidity"]].to_numpy(dtype=float)
    assert not np.isinf(values).any()

    # Exactly the poisoned records in quarantine.
    served = requests.get(f"{url}/sim/poisoned", timeout=5).json()
    expected = {poisoned_key(entry) for entry in served}
    found = {quarantine_key(source, action, json.loads(record)) for source, action, record in rows}
    assert found == expected
    assert {e["kind"] for e in served} == {"name", "id", "value", "future"}

    # After the clean nights nothing is held back and nothing new quarantined: etl status is content.
    result = status(database, url, END)
    assert "held back: 0 sensors and stations" in result.output
    assert "quarantined by the last run: 0 records" in result.output
    assert result.exit_code == 0, result.output


def test_a_network_on_opensensemap_through_three_nights_of_failing_answers_loses_nothing(tmp_path, simulator):
    """The same nights on openSenseMap: up to a fifth of the answers failing each night (5xx, 429, cut
    short, HTML), some trickling, WOW down one night; then two clean nights. Every measurement served ends up
    stored once, as its 15-minute mean. (Ten days of history: the first night reads them all, and thirty
    took it four times as long, proving nothing more.)"""
    from devtools.simulator import osem

    folder = tmp_path / "network"
    generate(folder, sensors=20, days=10, seed=4343, end=END)
    network = Network(folder)
    nights = 6
    first_night = END - dt.timedelta(days=nights - 1)
    url = simulator(serving=network, now=first_night, seed=9)
    database = f"sqlite:///{tmp_path}/osem-chaos.sqlite"
    engine = make_engine(pipeline_settings(database, url, first_night))
    init_db(engine)
    rng = random.Random(2027)
    for night in range(nights):
        now = first_night + dt.timedelta(days=night)
        chaos = (
            0 < night < nights - 2
        )  # the first night finds the stations (there is no list to fall back on)
        mix = {
            **CALM,
            "error_rate": round(rng.uniform(0.10, 0.20), 3) if chaos else 0.0,
            "trickle_rate": 0.1 if chaos else 0.0,
            "wow_down": night == 2,
        }
        requests.post(f"{url}/sim/clock", json={"now": now.isoformat()}, timeout=5).raise_for_status()
        requests.post(f"{url}/sim/misbehaviour", json=mix, timeout=5).raise_for_status()
        settings = pipeline_settings(
            database,
            url,
            now,
            sensor_sources="opensensemap",
            osem_grouptag=osem.GROUPTAG,
            osem_api_url=f"{url}/osem",
            http_attempts=2,
            http_timeout_s=2,
            http_deadline_s=1.0,
        )
        reports = run_nightly(settings, engine, Shard())
        assert [r.name for r in reports] == [name for name, _ in STEPS], f"night {night}: {mix}"

    with engine.connect() as connection:
        runs = connection.execute(select(etl_runs.c.status, etl_runs.c.counts)).all()
        stored = read_frame(connection, select(readings)).sort_values(["sensor_id", "ts"], ignore_index=True)
        given_up = connection.execute(select(fetch_gaps)).all()
    assert {status for status, _ in runs} == {"ok"}
    problems = pd.DataFrame([counts or {} for _, counts in runs]).sum()
    assert problems["failed_requests"] > 0 and problems["osem_held_back"] > 0  # the chaos was met
    assert problems["wow_unreachable"] > 0
    assert given_up == []
    codes = list(network.sensors["sensor_id"])
    truth = osem.expected_readings(network, codes, network.start, END, END)
    truth = truth.sort_values(["sensor_id", "ts"], ignore_index=True)
    assert not stored.duplicated(["sensor_id", "ts"]).any()
    pd.testing.assert_frame_equal(stored[["sensor_id", "ts"]], truth[["sensor_id", "ts"]], check_dtype=False)
    for variable in ("soil_moisture", "air_temperature", "light"):
        assert np.allclose(stored[variable], truth[variable], atol=1e-3, equal_nan=True), variable
