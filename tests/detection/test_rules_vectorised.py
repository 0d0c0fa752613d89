"""The rules on many sensors at once (`check_sensors`) flag exactly what each sensor's readings alone
get flagged with, whatever the order and sampling of the rows, and no window reaches from one sensor
into the next; a fault injected into one sensor of many is found on it, and the clean ones are left
alone. The array pieces the rules stand on agree with the numpy and pandas functions they replace."""

import numpy as np
import pandas as pd
import pytest

from detection import rules
from detection.checks import configure
from detection.detect import detect
from detection.rules import Samples, check_sensor, check_sensors, sensor_samples
from tests.factories import START, clean


def per_sensor(readings: pd.DataFrame, config=None) -> list:
    """The rules sensor by sensor, as detection ran them before they went over all sensors at once."""
    found = []
    for sensor, own in readings.groupby("sensor_id", sort=True):
        series = own.set_index("ts").drop(columns="sensor_id")
        found += [(sensor, flag) for flag in check_sensor(series, *([config] if config else []))]
    return found


def as_rows(code: str, frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename_axis("ts").reset_index().assign(sensor_id=code)


def at(day: float) -> pd.Timestamp:
    return START + pd.Timedelta(days=day)


def faulty_garden() -> pd.DataFrame:
    """Ten sensors, some sampled hourly or irregularly, six with one fault each, in shuffled rows."""
    frames = {f"clean{i}": clean(seed=i) for i in range(3)}
    frames["hourly"] = clean(seed=4, freq="1h")
    irregular = clean(seed=5)
    frames["irregular"] = irregular[np.random.default_rng(5).random(len(irregular)) < 0.6]
    spiky = clean(seed=6)
    for hour in (1, 3.5, 5):
        spiky.loc[at(4) + pd.Timedelta(hours=hour), "air_temperature"] += 20
    frames["spiky"] = spiky
    stuck = clean(seed=7)
    stuck.loc[at(2.5) : at(2.5) + pd.Timedelta(hours=30), "soil_moisture"] = 31.0
    frames["stuck"] = stuck
    pulled = clean(seed=8)
    pulled.loc[at(4) :, "soil_moisture"] = 1.2
    frames["pulled"] = pulled
    empty = clean(seed=9)
    empty.loc[at(5) :, "battery_level"] = np.floor(np.linspace(4, 0, len(empty.loc[at(5) :])))
    frames["empty"] = empty
    hot = clean(seed=10)
    hot.loc[at(3) : at(3) + pd.Timedelta(hours=10), "air_temperature"] = 85.0
    frames["hot"] = hot
    readings = pd.concat([as_rows(code, frame) for code, frame in frames.items()], ignore_index=True)
    return readings.sample(frac=1, random_state=3)


def test_faults_are_found_on_their_own_sensor_and_the_clean_sensors_are_left_alone():
    found = check_sensors(faulty_garden())
    kinds = {}
    for sensor, flag in found:
        kinds.setdefault(sensor, set()).add(flag.kind)
    faults = {
        "spiky": "spike",
        "stuck": "stuck",
        "pulled": "probe_out_of_soil",  # with the break of its fall, and stuck where it lies
        "empty": "battery_exhausted",
        "hot": "out_of_range",
    }
    assert set(kinds) == set(faults)
    assert all(faults[sensor] in kinds[sensor] for sensor in faults), kinds
    assert kinds["spiky"] == {"spike"} and kinds["hot"] == {"out_of_range"}
    [(_, spike)] = [(s, f) for s, f in found if s == "spiky"]
    assert (spike.start, spike.end) == (at(4) + pd.Timedelta(hours=1), at(4) + pd.Timedelta(hours=5))
    assert spike.explanation.startswith("3 air temperature spikes")


def test_all_sensors_at_once_flag_exactly_what_each_sensor_alone_does():
    readings = faulty_garden()
    assert check_sensors(readings) == per_sensor(readings)
    # Thresholds that flag every rule's kind many times over, to compare many flags.
    strict = configure(
        "all",
        {
            "spike.soil_moisture": {"threshold": 0.5},
            "break.air_temperature": {"threshold": 0.8},
            "stuck.light": {"ignore_below": None},
            "saturation": {"level": 30, "tolerance": 3, "min_duration": "6h"},
        },
    )
    many = check_sensors(readings, strict)
    assert many == per_sensor(readings, strict) and len(many) > 100
    assert len({flag.kind for _, flag in many}) == 7


def test_on_the_simulated_network_all_sensors_at_once_flag_exactly_what_each_sensor_alone_does(network):
    readings = network.visible_readings(
        list(network.sensors["sensor_id"]), network.start, network.end, network.end
    )
    at_once = check_sensors(readings.sample(frac=1, random_state=1))
    assert at_once == per_sensor(readings)
    faulty = set(network.labels()["sensor_id"])
    assert {sensor for sensor, _ in at_once} <= faulty  # the clean sensors raise nothing
    assert {flag.kind for _, flag in at_once} >= {"spike", "out_of_range", "battery_exhausted", "stuck"}
    found = detect(readings, models=None)
    rule_rows = found[found["detector"] == "rule"].drop(columns="detector")  # conditions aside
    expected = [(s, f.variable, f.kind, f.start, f.end, round(f.score, 3), f.explanation) for s, f in at_once]
    assert sorted(map(tuple, rule_rows.itertuples(index=False))) == sorted(expected)


def test_no_window_reaches_from_one_sensor_into_the_next():
    # Two sensors at the same times, one 30 °C warmer than the other: a window that ran on from one
    # sensor's last samples into the other's first would see a spike or a break there.
    cool = clean(seed=1)
    warm = clean(seed=2).assign(air_temperature=lambda frame: frame["air_temperature"] + 30)
    readings = pd.concat([as_rows("a", cool), as_rows("b", warm)], ignore_index=True)
    assert check_sensors(readings) == [] == per_sensor(readings)


def test_sensors_with_too_few_samples_or_none_of_a_variable_are_judged_on_what_they_have():
    few = as_rows("few", clean().iloc[:3].assign(air_temperature=[10.0, 10.0, 30.0]))  # too few for a spike
    blank = as_rows("blank", clean().assign(soil_moisture=np.nan))
    readings = pd.concat([few, blank, as_rows("whole", clean())], ignore_index=True)
    assert check_sensors(readings) == per_sensor(readings) == []


# --- the pieces ---------------------------------------------------------------------------------------


def irregular_sensors(seed: int = 0, sensors: int = 4) -> pd.DataFrame:
    """Sensors sampled at random gaps (some exactly an hour, some of a few seconds)."""
    rng = np.random.default_rng(seed)
    frames = []
    for code in range(sensors):
        gaps = rng.choice([5, 60, 600, 900, 1800, 3600, 7200], size=300)
        times = START + pd.to_timedelta(np.cumsum(gaps), unit="s")
        values = rng.normal(15, 5, len(times))
        frames.append(pd.DataFrame({"sensor_id": f"s{code}", "ts": times, "air_temperature": values}))
    return pd.concat(frames, ignore_index=True)


def centred_medians(readings: pd.DataFrame, window: str) -> np.ndarray:
    """pandas' centred rolling median with both ends in, sensor by sensor (the reference the rules must
    match), over `window` or two of the sensor's median steps, whichever is longer."""
    medians = []
    for _, own in readings.groupby("sensor_id"):
        series = own.set_index("ts")["air_temperature"]
        step = pd.Series(series.index).diff().median()
        span = max(pd.Timedelta(window), 2 * step)
        medians.append(series.rolling(span, center=True, min_periods=3, closed="both").median())
    return np.concatenate(medians)


@pytest.mark.parametrize("window", ["2h", "1h", "75min", "10s"])
def test_centred_windows_hold_what_pandas_centred_rolling_windows_hold(window):
    readings = irregular_sensors()
    samples = sensor_samples(readings, ["air_temperature"])["air_temperature"]
    start, end = rules._centred_windows(samples, pd.Timedelta(window))
    theirs = centred_medians(readings, window)
    enough = end - start >= 3
    assert np.array_equal(rules._medians(samples.values, start[enough], end[enough]), theirs[enough])
    assert np.isnan(theirs[~enough]).all()


def test_leaps_are_exact_wherever_they_pass_the_threshold():
    readings = irregular_sensors(3)
    samples = sensor_samples(readings, ["air_temperature"])["air_temperature"]
    theirs = np.abs(samples.values - centred_medians(readings, "2h"))
    ours = rules._leaps(samples.values, *rules._centred_windows(samples, pd.Timedelta("2h")), 6.0, 3)
    leaping = theirs > 6.0
    assert leaping.sum() > 50 and np.array_equal(ours[leaping], theirs[leaping])
    assert (
        np.array_equal(np.isnan(ours), np.isnan(theirs)) and (ours[~leaping & ~np.isnan(ours)] <= 6.0).all()
    )


def test_counting_neighbours_step_by_step_or_by_search_agrees():
    samples = sensor_samples(irregular_sensors(1), ["air_temperature"])["air_temperature"]
    for after in (False, True):
        stepped = samples.neighbours(pd.Timedelta(hours=2), after=after)
        searched = samples.neighbours(pd.Timedelta(hours=2), after=after, most=1)
        assert np.array_equal(stepped, searched) and stepped.max() > 1


@pytest.mark.parametrize("side", ["left", "right"])
def test_search_is_searchsorted_within_each_sensor(side):
    samples = sensor_samples(irregular_sensors(2), ["air_temperature"])["air_temperature"]
    rng = np.random.default_rng(4)
    rows = rng.integers(0, len(samples.ns), 500)
    targets = samples.ns[rows] + rng.integers(-(10**13), 10**13, len(rows))
    targets[:50] = samples.ns[rows[:50]]  # exactly on a sample
    expected = []
    for row, target in zip(rows, targets):
        own = np.flatnonzero(samples.sensor == samples.sensor[row])
        expected.append(own[0] + np.searchsorted(samples.ns[own], target, side=side))
    assert np.array_equal(samples.search(rows, targets, side), expected)


def test_medians_are_numpy_medians_of_the_slices(monkeypatch):
    values = np.random.default_rng(6).normal(0, 1, 1000)
    low = np.random.default_rng(7).integers(0, 990, 300)
    high = low + np.random.default_rng(8).integers(1, 10, 300)
    expected = [np.median(values[a:b]) for a, b in zip(low, high)]
    assert np.array_equal(rules._medians(values, low, high), expected)
    monkeypatch.setattr(rules, "MEDIAN_CELLS", 20)  # several passes
    assert np.array_equal(rules._medians(values, low, high), expected)


def test_samples_of_one_series_are_that_series_present_values_in_time_order():
    series = clean()["soil_moisture"].iloc[::-1]
    series.iloc[[3, 7]] = np.nan
    samples = Samples.of_series(series, "soil_moisture")
    assert np.array_equal(samples.values, series.sort_index().dropna().to_numpy())
    assert samples.times(np.arange(len(samples.ns))).equals(series.sort_index().dropna().index)
