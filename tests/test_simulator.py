"""The simulated network: deterministic, physically sensible, with the faults its labels claim."""

import datetime as dt
import re
import subprocess
import sys

import numpy as np
import pytest
import requests

from devtools.simulator.generate import FAULT_KINDS, generate
from devtools.simulator.network import GROW_VARIABLES, MISSING, SCALE, WOW_VARIABLES, Network
from devtools.simulator.server import Keys, create_app

END = dt.datetime(2019, 7, 1, tzinfo=dt.UTC)
SIMULATOR = [sys.executable, "-m", "devtools.simulator"]


def series(array, row) -> np.ndarray:
    values = np.asarray(array[row], dtype=float)
    return np.where(values <= MISSING + 1, np.nan, values / SCALE)


def nearest_station(network, sensor) -> int:
    s = network.sensors.iloc[sensor]
    d = (network.stations["latitude"] - s["latitude"]) ** 2 + (
        (network.stations["longitude"] - s["longitude"]) * np.cos(np.radians(s["latitude"]))
    ) ** 2
    return int(d.to_numpy().argmin())


def test_the_same_seed_gives_the_same_network_and_another_seed_another(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate(tmp_path / name, sensors=12, days=3, seed=seed, end=END)
    a, b, c = (Network(tmp_path / n) for n in "abc")
    for variable in GROW_VARIABLES:
        assert np.array_equal(a.grow[variable], b.grow[variable])
    for variable in WOW_VARIABLES:
        assert np.array_equal(a.wow[variable], b.wow[variable])
    assert a.labels().equals(b.labels())
    assert (tmp_path / "a" / "network.json").read_text() == (tmp_path / "b" / "network.json").read_text()
    assert not np.array_equal(a.grow["air_temperature"], c.grow["air_temperature"])


def test_a_quarter_of_sensors_carry_a_labelled_fault_of_every_kind(network):
    labels = network.labels()
    assert len(labels) == round(0.25 * len(network.sensors))
    assert set(labels["kind"]) == set(FAULT_KINDS)
    assert labels["sensor_id"].is_unique
    assert set(labels["sensor_id"]) <= set(network.sensors["sensor_id"])
    assert labels[["sensor_id", "variable", "kind", "start", "end"]].notna().all().all()
    assert (labels["end"] > labels["start"]).all()


def test_sensors_have_owners_with_several_sensors_and_stand_in_grow_places(network):
    per_owner = network.sensors.groupby("owner_id").size()
    assert per_owner.max() >= 3
    assert len(per_owner) < len(network.sensors)
    assert network.sensors["latitude"].between(34, 72).all()
    assert network.sensors["longitude"].between(-25, 45).all()


def test_wow_stations_are_dense_in_the_uk(tmp_path):
    generate(tmp_path, sensors=400, days=1, seed=1, end=END)
    stations = Network(tmp_path).stations
    uk = stations["latitude"].between(49.9, 59) & stations["longitude"].between(-8, 2)
    uk_area, europe_area = 9 * 10, 38 * 70
    assert uk.mean() / uk_area > 10 * (1 - uk.mean()) / europe_area


def clean_sensors(network):
    faulty = set(network.labels()["sensor_id"])
    return [i for i, code in enumerate(network.sensors["sensor_id"]) if code not in faulty]


def test_a_clean_sensor_and_its_station_feel_the_same_weather(network):
    correlations = []
    for sensor in clean_sensors(network):
        station = nearest_station(network, sensor)
        if network.stations.at[station, "place"] != network.sensors.at[sensor, "place"]:
            continue
        ours, theirs = (
            series(network.grow["air_temperature"], sensor),
            series(network.wow["air_temperature"], station),
        )
        both = ~np.isnan(ours) & ~np.isnan(theirs)
        correlations.append(np.corrcoef(ours[both], theirs[both])[0, 1])
        assert abs(np.nanmean(ours[both] - theirs[both])) < 3
    assert len(correlations) >= 10
    assert np.median(correlations) > 0.9


def test_soil_moisture_rises_with_rain_and_dries_without(network):
    rises_in_rain, changes_in_dry = [], []
    for sensor in clean_sensors(network):
        station = nearest_station(network, sensor)
        if network.stations.at[station, "place"] != network.sensors.at[sensor, "place"]:
            continue
        soil = series(network.grow["soil_moisture"], sensor)
        rain = np.nan_to_num(series(network.wow["rainfall"], station))
        change = np.diff(soil, prepend=np.nan)
        rainy = np.convolve(rain > 0.5, np.ones(4), mode="same") > 0
        rises_in_rain.append(np.nanmean(change[rainy]) if rainy.any() else np.nan)
        changes_in_dry.append(np.nanmean(change[~rainy]))
    assert np.nanmedian(rises_in_rain) > 0.1
    assert np.nanmedian(changes_in_dry) < 0


def test_light_follows_the_sun_and_batteries_only_fall(network):
    for sensor in clean_sensors(network)[:10]:
        light = series(network.grow["light"], sensor)
        lon = network.sensors.at[sensor, "longitude"]
        hours = (np.arange(network.steps) * 0.25 + lon / 15) % 24
        assert np.nanmax(light[(hours > 1) & (hours < 3)]) < 0.5  # night
        assert np.nanmean(light[(hours > 11) & (hours < 13)]) > 2  # midday
        battery = series(network.grow["battery_level"], sensor)
        assert (np.diff(battery[~np.isnan(battery)]) <= 0).all()


def fault_window(network, kind):
    label = network.labels().query("kind == @kind").iloc[0]
    sensor = network.sensor_index[label["sensor_id"]]
    first = network.step_of(label["start"].to_pydatetime())
    last = network.step_of(label["end"].to_pydatetime())
    return label, sensor, first, last


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_is_really_in_the_readings_where_its_label_says(network, kind):
    label, sensor, first, last = fault_window(network, kind)
    values = series(network.grow[label["variable"]], sensor)
    inside, before = values[first : last + 1], values[max(0, first - 96 * 3) : first]
    station = series(network.wow["air_temperature"], nearest_station(network, sensor))
    if kind == "stuck":
        assert np.nanstd(inside) < 0.05 < np.nanstd(before)
    elif kind == "spike":
        assert np.nanmax(np.abs(np.diff(inside))) > 10
    elif kind == "drift":
        assert abs(np.nanmean(values[last - 96 : last]) - np.nanmean(before)) > 5
    elif kind == "out_of_range":
        assert (
            ((inside > 100) | (inside < -40)).mean() > 0.9
            if label["variable"] == "soil_moisture"
            else (((inside > 60) | (inside < -40)).mean() > 0.9)
        )
    elif kind == "probe_out_of_soil":
        assert np.nanmax(values[first + 96 : last + 1]) < 4 < np.nanmean(before)
    elif kind == "full_sun":
        assert np.nanmax(values[first:] - station[first:]) > 6
    elif kind == "indoors":
        assert np.nanstd(values[first:]) < 1.5 < np.nanstd(station[first:])
    elif kind == "dying_battery":
        assert np.nanmin(inside) == 0
        assert np.isnan(series(network.grow["soil_moisture"], sensor)[last + 1 :]).all()
    elif kind == "noisy":
        assert np.nanstd(np.diff(inside)) > 3 * np.nanstd(np.diff(before))


def test_every_reader_sees_a_station_without_a_rain_gauge_report_no_rain(network):
    site = network.stations.loc[network.stations["state"] == "no_rain_gauge", "site_id"].iloc[0]
    read = network.station_observations([site], network.start, network.end)
    assert len(read) > 96 and read["air_temperature"].notna().all() and read["rainfall"].isna().all()
    served = (
        create_app(network, keys=Keys())
        .test_client()
        .get(
            "/wow/api/observations/byversion",
            query_string={
                "site_id": site,
                "start_time": "2019-06-20T00:00:00",
                "end_time": "2019-06-21T00:00:00",
            },
            headers={"Ocp-Apim-Subscription-Key": "sim-wow-key"},
        )
        .get_json()["Object"]
    )
    assert served and all(o["RainfallAmount_Millimetre"] is None for o in served)


@pytest.mark.slow  # two subprocesses: about 5 s
def test_the_simulator_command_generates_and_serves(tmp_path):
    folder = tmp_path / "net"
    made = subprocess.run(
        [
            *SIMULATOR,
            "generate",
            "--sensors",
            "6",
            "--days",
            "2",
            "--seed",
            "5",
            "--out",
            str(folder),
            "--end",
            "2019-07-01",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    assert "6 sensors" in made.stdout
    with subprocess.Popen(
        [*SIMULATOR, "serve", "--data", str(folder), "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as server:
        try:
            said = server.stdout.readline()  # says the port it bound: parallel runs never collide on one
            url = re.search(r"on (http://127\.0\.0\.1:\d+) ", said)
            assert url and not url.group(1).endswith(":0"), said
            health = requests.get(f"{url.group(1)}/sim/health", timeout=5).json()
            assert health["sensors"] == 6
            assert requests.get(f"{url.group(1)}/labels.csv", timeout=2).status_code == 404
        finally:
            server.terminate()
