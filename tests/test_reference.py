"""Reference checks against the nearest WOW station: inject a disagreement on known days, find exactly
those days; a sensor that agrees with its station is not flagged."""

import numpy as np
import pandas as pd
import pytest

from etl.detect.reference import check_temperature_against_station, daily_comparison

START = pd.Timestamp("2019-06-01", tz="UTC")
DAYS = 10


def weather(freq: str, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.date_range(START, periods=DAYS * 96, freq="15min")
    hours = np.arange(len(index)) / 4
    truth = 15 + 6 * np.sin((hours % 24 - 9) / 24 * 2 * np.pi) + np.repeat(rng.normal(0, 2, DAYS), 96)
    series = pd.Series(truth + rng.normal(0, 0.3, len(index)), index=index)
    return series.resample(freq).first() if freq != "15min" else series


def pair(station_freq="30min"):
    station = weather(station_freq, seed=1)
    sensor = weather("15min", seed=1) + 0.5  # same weather, a little warmer, its own noise
    sensor += np.random.default_rng(9).normal(0, 0.3, len(sensor))
    return sensor, station


def check(sensor, station):
    return check_temperature_against_station(sensor, station, "900123", 3.2)


def days(first: int, last: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    return START + pd.Timedelta(days=first), START + pd.Timedelta(days=last + 1) - pd.Timedelta(seconds=1)


@pytest.mark.parametrize("station_freq", ["15min", "30min", "1h"])
def test_a_sensor_that_agrees_with_its_station_is_not_flagged(station_freq):
    assert check(*pair(station_freq)) == []


def test_a_sensor_in_full_sun_is_flagged_on_those_days():
    sensor, station = pair()
    hours = (sensor.index.hour + sensor.index.minute / 60).to_numpy()
    sun = np.clip(np.sin((hours - 6) / 12 * np.pi), 0, None)
    on = (sensor.index >= days(4, 6)[0]) & (sensor.index <= days(4, 6)[1])
    sensor[on] += 14 * sun[on]
    flags = check(sensor, station)
    assert [(f.kind, f.start, f.end) for f in flags] == [("hot_spot", *days(4, 6))]
    assert flags[0].explanation.startswith("air temperature up to 1")
    assert "WOW station 900123 (3.2 km)" in flags[0].explanation and flags[0].explanation.endswith(
        "on 3 days"
    )


def test_a_sensor_indoors_is_flagged_for_losing_the_daily_swing():
    sensor, station = pair()
    on = sensor.index >= days(6, 9)[0]
    sensor[on] = 20 + np.random.default_rng(2).normal(0, 0.2, on.sum())
    flags = check(sensor, station)
    assert [(f.kind, f.start, f.end) for f in flags] == [("no_daily_cycle", *days(6, 9))]


def test_a_biased_sensor_is_flagged_with_its_side():
    sensor, station = pair()
    sensor[sensor.index < days(2, 2)[1]] -= 6
    flags = check(sensor, station)
    assert [(f.kind, f.start, f.end) for f in flags] == [("temperature_bias", *days(0, 2))]
    assert "below WOW station" in flags[0].explanation


def test_days_with_too_few_hours_on_either_side_are_not_judged():
    sensor, station = pair()
    station = station[station.index.hour < 10]  # the station reports only mornings
    assert daily_comparison(sensor, station).empty
    assert check(sensor + 10, station) == []
