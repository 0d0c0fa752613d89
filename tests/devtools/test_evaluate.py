"""The evaluation: scoring against labels counts what a person would count, the 2019 baseline flags only
identical consecutive days, and the command prints its table, writes its plot and ends with its JSON."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from devtools import evaluate
from etl.sources.wow import WowClient
from tests.factories import START, clean

DAY = pd.Timedelta(days=1)


def test_the_2019_rule_flags_two_identical_days_and_nothing_else():
    frame = clean(days=5).rename_axis("ts").reset_index().assign(sensor_id="s1")
    day2 = (frame["ts"] >= START + 2 * DAY) & (frame["ts"] < START + 3 * DAY)
    day3 = (frame["ts"] >= START + 3 * DAY) & (frame["ts"] < START + 4 * DAY)
    assert evaluate.baseline_2019(frame).empty  # every real day differs from the next
    frame.loc[day2 | day3, "soil_moisture"] = 21.5  # stuck flat across both
    found = evaluate.baseline_2019(frame)
    assert found[["sensor_id", "variable"]].values.tolist() == [["s1", "soil_moisture"]]
    assert (found["start_at"].iloc[0], found["end_at"].iloc[0]) == (START + 2 * DAY, START + 4 * DAY)
    frame.loc[day3, "soil_moisture"] = 21.6  # stuck, but at another value: the rule misses it
    assert evaluate.baseline_2019(frame).empty


def anomaly(sensor, start_day, end_day):
    return (sensor, START + start_day * DAY, START + end_day * DAY)


def test_sensor_and_day_scores_count_hits_misses_and_false_alarms():
    labels = pd.DataFrame(
        {
            "sensor_id": ["a", "b", "c"],
            "variable": "soil_moisture",
            "kind": ["stuck", "stuck", "spike"],
            "start": [START + 2 * DAY, START + 2 * DAY, START + 5 * DAY],
            "end": [START + 4 * DAY, START + 4 * DAY, START + 6 * DAY],
        }
    )
    found = pd.DataFrame(
        [anomaly("a", 3, 3.5), anomaly("b", 8, 9), anomaly("c", 5, 6.5), anomaly("d", 1, 1.5)],
        columns=["sensor_id", "start_at", "end_at"],
    )
    outcome = evaluate.sensor_outcome(found, labels, ["a", "b", "c", "d", "e"])
    assert outcome.set_index("sensor_id")["flagged"].to_dict() == {
        "a": True,  # overlaps its fault
        "b": False,  # flagged far from its fault: not a hit
        "c": True,
        "d": True,  # a clean sensor flagged: a false alarm
        "e": False,
    }
    scores = evaluate.sensor_scores(outcome)
    assert scores.loc["stuck", ["precision", "recall"]].tolist() == [0.5, 0.5]  # 1 hit, 1 false alarm
    assert scores.loc["spike", ["precision", "recall"]].tolist() == [0.5, 1.0]
    assert np.isclose(scores.loc["all", "f1"], 2 * (2 / 3) * (2 / 3) / (4 / 3))

    readings = pd.DataFrame(
        {"sensor_id": np.repeat(list("abcde"), 10), "ts": np.tile(START + np.arange(10) * DAY, 5)}
    )
    kinds = outcome.set_index("sensor_id")["kind"]
    days = evaluate.day_scores(found, labels, readings, kinds)
    # a: fault days 2-4 (3), found day 3 → 1 hit; b: 3 missed, 2 false; c: days 5-6 both found; d: 1 false
    tp, fp, fn = 3, 3, 5
    assert np.isclose(days.at["all", "precision"], tp / (tp + fp))
    assert np.isclose(days.at["all", "recall"], tp / (tp + fn))


@pytest.mark.slow  # detect() with the shipped models: about 25 s
def test_the_command_prints_the_table_plots_and_ends_with_its_figures(small_network, tmp_path):
    plot = tmp_path / "confusion.png"
    result = CliRunner().invoke(evaluate.main, ["--data", str(small_network.folder), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    figures = json.loads(lines[-1])
    assert set(figures) >= {"sensor_f1", "min_kind_f1", "clean_fp_rate", "day_f1", "baseline_sensor_f1"}
    assert all(0 <= figures[k] <= 1 for k in ("sensor_f1", "min_kind_f1", "clean_fp_rate", "day_f1"))
    assert figures["sensors"] == 20 and figures["days"] == 12
    assert any(line.startswith("all ") for line in lines)
    assert "clean sensors flagged:" in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_evaluation_sees_the_stations_as_the_etl_fetches_them(small_network, simulator, source_settings):
    _, stations, links = evaluate.network_frames(small_network)
    sites = sorted(set(links["site_id"].dropna()))
    client = WowClient(source_settings(simulator(serving=small_network)))
    fetched = pd.concat(
        [client.get_site_observations(s, small_network.start, small_network.end).observations for s in sites],
        ignore_index=True,
    )
    assert len(sites) >= 3
    assert {"site_id", "ts", "air_temperature", "rainfall"} <= set(stations.columns)
    pd.testing.assert_frame_equal(stations, fetched[list(stations.columns)])


def test_the_detector_table_shows_what_each_detector_finds_alone_and_what_a_model_adds():
    labels = pd.DataFrame(
        {
            "sensor_id": ["a", "b"],
            "variable": "soil_moisture",
            "kind": ["stuck", "noisy"],
            "start": [START + 2 * DAY, START + 2 * DAY],
            "end": [START + 4 * DAY, START + 4 * DAY],
        }
    )
    found = pd.DataFrame(
        [
            (*anomaly("a", 3, 3.5), "rule", "soil_moisture"),
            (*anomaly("a", 3, 3.5), "model", "soil_moisture"),  # found by the rules too: adds nothing
            (*anomaly("b", 3, 3.5), "model", "light"),  # b is found by the light model alone
            (*anomaly("c", 1, 1.5), "reference", "air_temperature"),  # a false alarm
        ],
        columns=["sensor_id", "start_at", "end_at", "detector", "variable"],
    )
    table = evaluate.detector_table(found, labels, ["a", "b", "c", "d"])
    assert table.loc["stuck", ["all", "rule", "rule alone", "model", "model alone"]].tolist() == [
        1,
        1,
        0,
        1,
        0,
    ]
    assert table.loc[
        "noisy", ["all", "model alone", "without light model", "without soil_moisture model"]
    ].tolist() == [1, 1, 0, 1]
    assert table.loc["clean", ["sensors", "all", "reference alone"]].tolist() == [2, 1, 1]
    assert evaluate.models_that_help(table) == {"light": ["noisy"], "soil_moisture": []}


def test_winter_false_alarms_are_counted_apart_from_the_rest_of_the_year():
    winter, summer = pd.Timestamp("2026-01-10", tz="UTC"), pd.Timestamp("2026-07-10", tz="UTC")
    days = pd.date_range(winter, periods=4, freq="D").append(pd.date_range(summer, periods=4, freq="D"))
    readings = pd.DataFrame({"sensor_id": np.repeat(["c1", "c2"], len(days)), "ts": np.tile(days, 2)})
    found = pd.DataFrame({"sensor_id": ["c1"], "start_at": [winter + DAY], "end_at": [winter + 1.5 * DAY]})
    figures = evaluate.winter_false_alarms(found, readings, ["c1", "c2"])
    assert figures == {"clean_fp_rate_winter": 0.5, "clean_day_fp_winter": 0.125, "clean_day_fp_rest": 0.0}


def test_the_evaluation_sees_opensensemap_readings_as_the_client_stores_them(
    small_network, simulator, source_settings
):
    from devtools.simulator import osem
    from etl.sources.opensensemap import OpenSenseMapClient

    readings, _, links = evaluate.network_frames(small_network)
    seen, links, labels, unseen = evaluate.as_opensensemap(
        small_network, readings, links, small_network.labels()
    )
    url = simulator(serving=small_network)
    client = OpenSenseMapClient(source_settings(url, osem_api_url=f"{url}/osem"))
    codes = [f"osem:{osem.box_id(c)}" for c in small_network.sensors["sensor_id"][:4]]
    batches = client.iter_windows(client.request_windows(codes, small_network.start, small_network.end))
    fetched = pd.concat([b.readings for b in batches], ignore_index=True)
    expected = seen[seen["sensor_id"].isin(codes)]
    key = ["sensor_id", "ts"]
    fetched, expected = (f.sort_values(key, ignore_index=True) for f in (fetched, expected))
    pd.testing.assert_frame_equal(fetched[key], expected[key], check_dtype=False)
    for variable in ("soil_moisture", "air_temperature", "light", "battery_level"):
        assert np.allclose(fetched[variable], expected[variable], atol=1e-9, equal_nan=True), variable
    assert (
        set(links["sensor_id"]) <= set(seen["sensor_id"])
        and labels["sensor_id"].str.startswith("osem:").all()
    )
    assert (unseen["variable"] == "battery_level").all()


def test_read_through_opensensemap_detection_finds_what_it_finds_on_grow(network):
    """Light in lux to the hundredth, readings on the quarter hour and no battery lose nothing but the
    battery's faults. (The 30-day test network is short for some checks on either source: docs/sources.md
    gives the figures of a 200-sensor, 120-day one.)"""
    grow = evaluate.evaluate(network.folder, models=None)["figures"]
    osem = evaluate.evaluate(network.folder, models=None, source="opensensemap")["figures"]
    assert osem["source"] == "opensensemap" and osem["not_visible_on_source"] >= 1
    assert grow["sensors"] - osem["not_visible_on_source"] <= osem["sensors"] < grow["sensors"]
    assert osem["sensor_f1"] >= grow["sensor_f1"] - 0.02 and osem["clean_fp_rate"] <= grow["clean_fp_rate"]
    assert osem["day_f1"] >= grow["day_f1"] - 0.02
