"""The simulated network: deterministic, physically sensible, with the faults its labels claim."""

import datetime as dt
import json
import math
import re
import subprocess
import sys
import time

import numpy as np
import orjson
import pytest
import requests

from devtools.simulator.generate import FAULT_KINDS, generate
from devtools.simulator.network import (
    GROW_VARIABLES,
    MISSING,
    NODATA,
    SCALE,
    STEP,
    WOW_VARIABLES,
    Network,
    Window,
)
from devtools.simulator.physics import RANGES, Physics, draw_physics
from devtools.simulator.places import PLACES
from devtools.simulator.server import Keys, Misbehaviour, create_app

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
        after = values[first + 96 : last + 1]
        assert np.nanmax(after) < 4 and np.nanmean(before) > 2.5 * np.nanmedian(after)
    elif kind == "full_sun":
        assert np.nanmax(values[first:] - station[first:]) > 6
    elif kind == "indoors":
        assert np.nanstd(values[first:]) < 1.5 < np.nanstd(station[first:])
    elif kind == "dying_battery":
        assert np.nanmin(inside) == 0
        assert np.isnan(series(network.grow["soil_moisture"], sensor)[last + 1 :]).all()
    elif kind == "noisy":
        assert np.nanstd(np.diff(inside)) > 3 * np.nanstd(np.diff(before))
    elif kind == "moved":  # every variable changes level at once
        light = series(network.grow["light"], sensor)
        ratio = np.nanmax(light[first : first + 96 * 3]) / np.nanmax(light[max(0, first - 96 * 3) : first])
        assert not 0.5 < ratio < 2
        assert abs(values[first] - values[first - 1]) > 0.3 * values[first - 1]
    elif kind == "indoors_for_winter":
        assert np.nanstd(inside) < 1.5 < np.nanstd(station[first : last + 1])
        assert 14 < np.nanmean(inside) < 21


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
        [
            *SIMULATOR,
            "serve",
            "--data",
            str(folder),
            "--port",
            "0",
            "--quiet",
            "--late-rate",
            "0.25",
            "--wow-down",
        ],
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
            settings = requests.get(f"{url.group(1)}/sim/misbehaviour", timeout=5).json()
            assert settings["late_rate"] == 0.25 and settings["wow_down"] is True
            assert requests.get(f"{url.group(1)}/labels.csv", timeout=2).status_code == 404
        finally:
            server.terminate()


# --- a hostile upstream: answers a client must not trust ----------------------------------------------

GROW = "Thingful.Connectors.GROWSensors"
GROW_AUTH = {"Authorization": "Bearer sim-grow-key"}
WOW_AUTH = {"Ocp-Apim-Subscription-Key": "sim-wow-key"}
NOW = dt.datetime(2019, 7, 1, tzinfo=dt.UTC)
ID = re.compile(r"[A-Za-z0-9_.:@\-]{1,64}")
BOTH_SOIL_CODES = ("soil_moisture", "calibrated_soil_moisture", "air_temperature")


def time_series(url, codes, start="20190620000000", end="20190621000000", variables=BOTH_SOIL_CODES):
    settings = {
        "LocationCodes": codes,
        "VariableCodes": [f"{GROW}.{v}" for v in variables],
        "StartDate": start,
        "EndDate": end,
        "Order": "asc",
    }
    body = {"Readers": [{"DataSourceCode": GROW, "Settings": settings}]}
    return requests.post(f"{url}/grow/api/timeSeries/get", json=body, headers=GROW_AUTH, timeout=5)


def ask_locations(url, timeout=5, stream=False) -> requests.Response:
    body = {"DataSourceCodes": [GROW]}
    return requests.post(
        f"{url}/grow/api/entity/locations/get", json=body, headers=GROW_AUTH, timeout=timeout, stream=stream
    )


def locations(url) -> dict:
    return ask_locations(url).json()["Locations"]


def wow(url, **query):
    times = {"start_time": "2019-06-20T00:00:00", "end_time": "2019-06-21T00:00:00"}
    return requests.get(
        f"{url}/wow/api/observations/byversion", params={**times, **query}, headers=WOW_AUTH, timeout=5
    )


def set_clock(url, now):
    requests.post(f"{url}/sim/clock", json={"now": now.isoformat()}, timeout=5).raise_for_status()


def poisoned(url, kind) -> list[dict]:
    return [p for p in requests.get(f"{url}/sim/poisoned", timeout=5).json() if p["kind"] == kind]


def stamps(answer) -> dict:
    """(code, variable code) → the DateTimes served."""
    return {
        (e["LocationCode"], e["VariableCode"]): [p["DateTime"] for p in e["Data"]] for e in answer["Data"]
    }


@pytest.fixture
def codes(network):
    return list(network.sensors["sensor_id"][:10])


@pytest.fixture
def site(network):
    return network.stations["site_id"].iloc[0]


def test_with_every_rate_zero_the_answers_are_as_before(simulator, codes, site):
    plain = simulator(now=NOW)
    tuned = simulator(now=NOW, seed=9, future_shift_days=3, late_days=5, trickle_s=0.5)
    for url in (plain, tuned):
        set_clock(url, NOW + dt.timedelta(days=1))  # another night: nothing to draw afresh
    assert time_series(plain, codes).content == time_series(tuned, codes).content
    assert locations(plain) == locations(tuned)
    assert wow(plain, site_id=site).content == wow(tuned, site_id=site).content
    assert requests.get(f"{tuned}/sim/poisoned", timeout=5).json() == []


def test_an_omitted_sensor_has_no_entries_and_an_omitted_variable_no_entry(simulator, codes):
    answer = time_series(simulator(now=NOW, omit_sensor_rate=1), codes).json()
    assert answer["Data"] == [] and answer["Meta"]["Locations"] == {}
    answer = time_series(simulator(now=NOW, omit_variable_rate=1), codes).json()
    assert answer["Data"] == [] and set(answer["Meta"]["Locations"]) == set(codes)


def test_a_wrong_clock_stamps_every_sample_of_a_sensor_or_site_in_the_future(simulator, codes, site):
    honest, wrong = simulator(now=NOW), simulator(now=NOW, future_rate=1, future_shift_days=30)
    true, served = stamps(time_series(honest, codes).json()), stamps(time_series(wrong, codes).json())
    month = dt.timedelta(days=30)
    assert served.keys() == true.keys()
    for key, times in true.items():
        assert served[key] == [
            (dt.datetime.strptime(t, "%Y%m%d%H%M%S") + month).strftime("%Y%m%d%H%M%S") for t in times
        ]
    true_ends = [o["ReportEndDateTime"] for o in wow(honest, site_id=site).json()["Object"]]
    served_ends = [o["ReportEndDateTime"] for o in wow(wrong, site_id=site).json()["Object"]]
    assert served_ends == [(dt.datetime.fromisoformat(t) + month).isoformat() for t in true_ends]
    future = poisoned(wrong, "future")
    assert len(future) == sum(map(len, served.values())) + len(served_ends)
    assert {(p["DateTime"], p["true_time"]) for p in future if p["source"] == "wow"} == set(
        zip(served_ends, true_ends)
    )


def test_an_answer_can_hold_a_code_nobody_asked_for(simulator, network, codes, site):
    url = simulator(now=NOW, unrequested_rate=1)
    answer = time_series(url, codes).json()
    (unasked,) = {e["LocationCode"] for e in answer["Data"]} - set(codes)
    assert unasked not in network.sensor_index
    extra = [e for e in answer["Data"] if e["LocationCode"] == unasked]
    assert {e["VariableCode"] for e in extra} == {f"{GROW}.{v}" for v in BOTH_SOIL_CODES}
    assert all("20190620000000" <= p["DateTime"] <= "20190621000000" for e in extra for p in e["Data"])
    (other,) = {o["SiteId"] for o in wow(url, site_id=site).json()["Object"]} - {site}
    assert other not in network.station_index
    box = {"top_left_lat": 57, "top_left_long": -4, "bottom_right_lat": 56, "bottom_right_long": -2}
    found = wow(url, **box, end_time="2019-06-20T03:00:00").json()["Object"]
    outside = [o for o in found if not (56 <= o["Latitude"] <= 57 and -4 <= o["Longitude"] <= -2)]
    assert outside and {o["SiteId"] for o in outside}.isdisjoint(network.station_index)


def test_poisoned_names_hold_a_nul_or_500_characters_and_are_recorded(simulator):
    url = simulator(now=NOW, poison_name_rate=1)
    names = {code: record["Name"] for code, record in locations(url).items()}
    assert all("\x00" in name or len(name) == 500 for name in names.values())
    assert {"\x00" in name for name in names.values()} == {True, False}
    recorded = poisoned(url, "name")
    assert {(p["sensor_id"], p["name"]) for p in recorded} == {(k.split("#")[1], n) for k, n in names.items()}


def test_extra_location_records_carry_codes_that_are_no_valid_id(simulator, network):
    url = simulator(now=NOW, bad_id_rate=1)
    found = locations(url)
    bad = [r for r in found.values() if not ID.fullmatch(r["Code"])]
    assert len(bad) == len(network.sensors) == len(found) - len(bad)
    assert {" " in r["Code"] and "/" in r["Code"] for r in bad} == {True, False}  # and 80 characters
    assert all(-180 <= r["X"] <= 180 and -90 <= r["Y"] <= 90 and r["FirstSampleTimestamp"] for r in bad)
    assert {p["code"] for p in poisoned(url, "id")} == {r["Code"] for r in bad}


def test_non_finite_values_break_strict_json_and_are_recorded(simulator, codes, site):
    url = simulator(now=NOW, infinity_rate=0.05)
    body = time_series(url, codes).text
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    served = {
        (e["LocationCode"], e["VariableCode"], p["DateTime"])
        for e in json.loads(body)["Data"]
        for p in e["Data"]
        if math.isinf(p["Value"])
    }
    observations = json.loads(wow(url, site_id=site).text)["Object"]
    served_wow = {
        o["ReportEndDateTime"] for o in observations if math.isinf(o["DryBulbTemperature_Celsius"] or 0)
    }
    assert served and served_wow
    recorded = poisoned(url, "value")
    assert {
        (p["sensor_id"], p["variable_code"], p["DateTime"]) for p in recorded if p["source"] == "grow"
    } == served
    assert {p["DateTime"] for p in recorded if p["source"] == "wow"} == served_wow
    assert {p["text"] for p in recorded} <= {"Infinity", "-Infinity", "1e999", "-1e999"}


def test_a_late_day_is_held_back_until_two_days_after_it_ended(simulator, network, codes):
    url, sensor = simulator(now=NOW, late_rate=1, late_days=2), codes[:1]
    start, end = dt.datetime(2019, 6, 28, tzinfo=dt.UTC), dt.datetime(2019, 6, 29, 23, 59, 59, tzinfo=dt.UTC)

    def served() -> list[str]:
        grow_times = start.strftime("%Y%m%d%H%M%S"), end.strftime("%Y%m%d%H%M%S")
        answer = time_series(url, sensor, *grow_times, variables=["air_temperature"]).json()
        return [p["DateTime"] for p in answer["Data"][0]["Data"]]

    assert {t[:8] for t in served()} == {"20190628"}  # 29 June is due on 2 July, 2 days after it ended
    later = NOW + dt.timedelta(days=2)
    set_clock(url, later)
    assert {t[:8] for t in served()} == {"20190628", "20190629"}
    truth = network.visible_readings(sensor, start, end, later)  # what is finally served is unchanged
    assert served() == truth["ts"].dt.strftime("%Y%m%d%H%M%S").tolist()


def test_a_trickled_answer_outlasts_a_read_timeout(simulator):
    url = simulator(now=NOW, trickle_rate=1, trickle_s=0.2)
    started, got = time.monotonic(), b""
    with ask_locations(url, timeout=(2, 1), stream=True) as answer:
        assert "Content-Length" not in answer.headers
        for piece in answer.iter_content(chunk_size=None):  # each piece comes well within the 1 s timeout
            got += piece
            if time.monotonic() - started > 1.2:
                break
    assert 4 <= len(got) <= 40  # a few bytes each 0.2 s: the ~20 kB body would take over an hour


def test_the_same_night_draws_the_same_and_the_next_night_afresh(simulator, codes):
    hostile = {"seed": 3, "omit_variable_rate": 0.5, "infinity_rate": 0.01}
    url, twin = simulator(now=NOW, **hostile), simulator(now=NOW, **hostile)
    first = time_series(url, codes).content
    assert time_series(url, codes).content == first == time_series(twin, codes).content
    set_clock(url, NOW + dt.timedelta(days=1))  # the window was uploaded long before: only draws change
    assert time_series(url, codes).content != first


def test_misbehaviour_is_set_at_run_time_and_checked(simulator, site):
    url = simulator(now=NOW)
    assert wow(url, site_id=site).status_code == 200
    changed = requests.post(f"{url}/sim/misbehaviour", json={"wow_down": True, "late_rate": 0.5}, timeout=5)
    assert changed.status_code == 200 and changed.json()["late_rate"] == 0.5
    down = wow(url, site_id=site)
    assert down.status_code == 503 and down.json()["statusCode"] == 503
    assert requests.get(f"{url}/sim/misbehaviour", timeout=5).json()["wow_down"] is True
    for wrong in ({"no_such_rate": 1}, {"wow_down": "yes"}, {"late_rate": 2}, {"seed": 1.5}, ["wow_down"]):
        refused = requests.post(f"{url}/sim/misbehaviour", json=wrong, timeout=5)
        assert refused.status_code == 400 and refused.json()["message"]


def test_only_poison_served_whole_is_recorded(network, serve):
    app = create_app(
        network, now=NOW, misbehaviour=Misbehaviour(poison_name_rate=1, error_rate=1, failures=("truncated",))
    )
    url = serve(app)
    assert ask_locations(url).status_code == 200  # but half a body: unreadable
    assert app.extensions["simulator"].poisoned() == []
    requests.post(f"{url}/sim/misbehaviour", json={"error_rate": 0}, timeout=5)
    locations(url)
    locations(url)
    assert len(app.extensions["simulator"].poisoned()) == len(network.sensors)  # once each


def test_a_network_starts_in_the_month_asked_and_its_winter_freezes_inland(tmp_path):
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    generate(tmp_path, sensors=60, days=45, seed=23, start=start)
    network = Network(tmp_path)
    assert network.start == start and network.end == start + dt.timedelta(days=45)
    soil = np.asarray(network.grow["soil_moisture"], dtype=float)
    air = np.asarray(network.grow["air_temperature"], dtype=float) / SCALE
    light = np.asarray(network.grow["light"], dtype=float) / SCALE
    places = network.sensors["place"].map(lambda p: PLACES[p].name)
    # Frozen soil: a probe's reading held for a day or more while its air is below 0 °C all along (a
    # probe that reports in steps holds for a day in other weather too, but not through frost).
    held = np.zeros(soil.shape, dtype=bool)
    held[:, 1:] = (np.diff(soil, axis=1) == 0) & (soil[:, 1:] > MISSING)
    frozen_rows = np.zeros(len(soil), dtype=bool)
    for row in range(len(soil)):
        edges = np.diff(np.concatenate([[0], held[row].astype(np.int8), [0]]))
        for first, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            frozen_rows[row] |= end - first >= 96 and np.median(air[row, first:end]) < 0
    assert frozen_rows.any()
    inland = places.isin(["Riga", "Berlin", "Vienna", "Szeged", "Ljubljana"]).to_numpy()
    mild = places.isin(["Lisbon", "Valencia", "Murcia", "Athens", "Nicosia"]).to_numpy()
    assert frozen_rows[inland].mean() > frozen_rows[mild].mean()
    # Snow: hours near 0 °C and dark by day, somewhere inland.
    noon = (np.arange(soil.shape[1]) % 96) == 48
    buried = (np.abs(air[:, noon] - 0.0) < 1.6) & (light[:, noon] < 0.5) & (light[:, noon] >= 0)
    assert buried[inland].any()
    # The truth of both is kept (never served): under snow a sensor is never warmer than melting snow.
    truth = network.conditions()
    assert set(truth["kind"]) == {"snow_cover", "frozen_soil"}
    for span in truth[truth["kind"] == "snow_cover"].itertuples():
        row = network.sensor_index[span.sensor_id]
        inside = series(network.grow["air_temperature"], row)[
            network.step_of(span.start.to_pydatetime()) : network.step_of(span.end.to_pydatetime()) + 1
        ]
        assert np.nanmax(inside) < 0.5


@pytest.mark.slow  # a subprocess
def test_the_command_takes_a_start_date(tmp_path):
    result = subprocess.run(
        [
            *SIMULATOR,
            "generate",
            "--sensors",
            "3",
            "--days",
            "2",
            "--start",
            "2025-11-01",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert Network(tmp_path).start == dt.datetime(2025, 11, 1, tzinfo=dt.UTC)
    both = subprocess.run(
        [
            *SIMULATOR,
            "generate",
            "--start",
            "2025-11-01",
            "--end",
            "2025-12-01",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
    )
    assert both.returncode == 2 and "not both" in both.stderr


def test_every_label_ends_after_it_starts_whatever_the_season_the_network_starts_in(tmp_path):
    generate(tmp_path, sensors=60, days=30, seed=5, start=dt.datetime(2024, 3, 1, tzinfo=dt.UTC))
    labels = Network(tmp_path).labels()
    assert (labels["end"] > labels["start"]).all(), labels[labels["end"] <= labels["start"]]
    assert "indoors_for_winter" in set(labels["kind"])


def test_a_fault_that_ice_looks_like_is_labelled_hidden_only_without_a_thaw_in_it():
    from devtools.simulator.generate import STEPS_PER_DAY, _hidden_by_frost

    frozen = np.ones(6 * STEPS_PER_DAY, dtype=bool)
    frozen[:STEPS_PER_DAY] = False  # a day before the freeze: the checks stand down a day early
    assert _hidden_by_frost("stuck", "soil_moisture", frozen)
    assert _hidden_by_frost("probe_out_of_soil", "soil_moisture", frozen)
    assert not _hidden_by_frost("spike", "soil_moisture", frozen)  # ice does not leap
    assert not _hidden_by_frost("stuck", "light", frozen)
    frozen[-4 * STEPS_PER_DAY :] = False  # thawed for four days: stuck there for all to see
    assert not _hidden_by_frost("stuck", "soil_moisture", frozen)


# --- a simulator that is not the detector's inverse: physics per seed, probes that report in steps -----


def test_each_seed_draws_its_own_physics_from_the_ranges_and_the_network_keeps_it(tmp_path):
    drawn = [draw_physics(seed) for seed in range(30)]
    for name, (low, high) in RANGES.items():
        values = [getattr(physics, name) for physics in drawn]
        assert all(low <= v <= high for v in values), name
        assert len(set(values)) == len(values), name  # no two seeds share a constant
    assert drawn[3] == draw_physics(3)
    assert all(p.thaw_c > p.freeze_c and p.burying_snow_mm > 0 for p in drawn)
    generate(tmp_path, sensors=4, days=1, seed=3, end=END)
    network = Network(tmp_path)
    assert Physics.from_dict(network.physics) == drawn[3]
    assert network.physics["burying_snow_mm"] == drawn[3].burying_snow_mm


def test_the_simulator_shares_no_code_or_constant_with_detection():
    """It is built from physics, not from the detector's numbers: it imports nothing of detection/, and
    detection's numbers (thresholds, module constants) are not the constants it draws."""
    import dataclasses
    import importlib
    import pkgutil
    from pathlib import Path

    import detection
    import devtools.simulator as simulator

    for path in Path(simulator.__file__).parent.glob("*.py"):
        assert not re.search(r"^\s*(from|import) detection", path.read_text(), re.MULTILINE), path.name
    theirs = set()
    for module in pkgutil.iter_modules(detection.__path__):
        loaded = importlib.import_module(f"detection.{module.name}")
        for value in vars(loaded).values():
            if isinstance(value, float):
                theirs.add(value)
            elif dataclasses.is_dataclass(value) and isinstance(value, type):
                theirs |= {f.default for f in dataclasses.fields(value) if isinstance(f.default, float)}
    for seed in range(30):
        ours = draw_physics(seed)
        assert not {getattr(ours, name) for name in RANGES} & theirs


def test_probes_report_in_their_steps_and_gauges_in_whole_tips(network):
    steps = network.sensors["soil_moisture_step"].to_numpy()
    assert set(steps) <= {0.1, 0.2, 0.5}
    for variable, step in (("soil_moisture", steps[:, None]), ("air_temperature", 0.1)):
        stored = np.asarray(network.grow[variable], dtype=float)
        values = stored[stored > NODATA] if variable == "air_temperature" else None
        if variable == "soil_moisture":
            values = np.where(stored > NODATA, stored, np.nan) / SCALE / step
            assert np.nanmax(np.abs(values - np.round(values))) < 1e-6
        else:
            assert (values % 10 == 0).all()
    rainfall = np.asarray(network.wow["rainfall"], dtype=float)
    tips = network.stations["rain_tip_mm"].to_numpy()[:, None]
    measured = np.where(rainfall > NODATA, rainfall / SCALE, np.nan)
    assert np.nanmax(np.abs(measured - np.round(measured / tips) * tips)) <= 0.005 + 1e-9
    assert np.nanmax(measured) > 0


def test_a_dry_night_holds_its_reading_and_the_soil_dries_by_day(network):
    """Evaporation follows the sun: over six dry hours of night (22-04 local solar time) a probe ends
    where it began, or within a step; over six dry hours of day (10-16) it falls."""
    faulty = set(network.labels()["sensor_id"])
    soil = np.asarray(network.grow["soil_moisture"], dtype=float) / SCALE
    drops, held = {"night": [], "day": []}, []
    for i, code in enumerate(network.sensors["sensor_id"]):
        if code in faulty:
            continue
        step = network.sensors.at[i, "soil_moisture_step"]
        hour = (np.arange(network.steps) * 0.25 + network.sensors.at[i, "longitude"] / 15) % 24
        for name, first_hour in (("night", 22), ("day", 10)):
            for first in np.flatnonzero((hour >= first_hour) & (hour < first_hour + 0.25)):
                window = soil[i, first : first + 24]
                if len(window) < 24 or (window < 0).any() or window.max() - window[0] > step + 1e-9:
                    continue  # cut short, missing, or wetted
                drops[name].append(window[0] - window[-1])
                if name == "night":
                    held.append(np.ptp(window) <= step + 1e-9)
    assert len(drops["night"]) > 200 and len(drops["day"]) > 200
    assert np.mean(np.abs(drops["night"]) < 1e-9) > 0.5  # most dry nights end where they began
    assert np.mean(held) > 0.8  # ... and stay within a step all night
    assert np.mean(drops["day"]) > 5 * np.mean(drops["night"]) > 0


def test_a_sensor_clock_runs_fast_or_slow_until_its_phone_sets_it_right(network):
    seconds = []
    for i in range(len(network.sensors)):
        times = network.sensor_times_us(i, Window(0, network.steps - 1)) // 1_000_000
        into_step = times - int(network.start.timestamp()) - np.arange(network.steps) * 900
        assert into_step.min() >= 0 and into_step.max() < 900  # each sample stays in its own step
        seconds.append(np.ptp(into_step))
        synced = network.syncs[network.syncs[:, 0] == i, 1]
        synced = synced[synced < network.steps]
        assert (into_step[synced] == network.sensors.at[i, "phase_s"]).all()
    assert max(seconds) > 10  # some clocks wander by many seconds between uploads
    # A window served holds exactly the samples whose times lie in it, edges included.
    sensor = int(np.argmax(seconds))
    times = network.sensor_times_us(sensor, Window(0, network.steps - 1))
    start, end = (dt.datetime.fromtimestamp(times[k] / 1e6, dt.UTC) for k in (500, 900))
    assert network.sensor_window(sensor, start, end) == Window(500, 900)
    assert network.sensor_window(sensor, start + dt.timedelta(seconds=1), end - STEP / 900) == Window(
        501, 899
    )


def test_what_is_uploaded_is_worked_out_afresh_for_each_moment_asked(tmp_path):
    generate(tmp_path, sensors=6, days=3, seed=5, end=END)
    network = Network(tmp_path)
    earlier = network.uploaded_until(END - dt.timedelta(days=1)).copy()
    now = network.uploaded_until(END)
    assert (now >= earlier).all() and (now > earlier).any()  # a day's syncs later, more is uploaded
    assert (network.uploaded_until(END - dt.timedelta(days=1)) == earlier).all()
    assert not now.flags.writeable  # kept for the next request: no caller may change it


def test_a_sensor_whose_phone_never_uploaded_keeps_time_from_its_installation(tmp_path):
    generate(tmp_path, sensors=3, days=2, seed=5, end=END)
    syncs = np.load(tmp_path / "grow_syncs.npy")
    np.save(tmp_path / "grow_syncs.npy", syncs[syncs[:, 0] != 0])
    network = Network(tmp_path)
    assert network.sensors.at[0, "clock_ppm"] != 0
    times = network.sensor_times_us(0, Window(0, network.steps - 1)) // 1_000_000
    into_step = times - int(network.start.timestamp()) - np.arange(network.steps) * 900
    assert into_step.min() >= 0 and into_step.max() < 900
    assert np.ptp(into_step) > 0  # its clock wandered since it was installed
