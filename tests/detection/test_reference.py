"""Reference checks against the nearest WOW station: inject a disagreement on known days, find exactly
those days; a sensor that agrees with its station is not flagged."""

import numpy as np
import pandas as pd
import pytest

from detection.checks import configure
from detection.reference import (
    check_against_stations,
    check_soil_against_rain,
    check_soil_drift,
    check_temperature_against_station,
    daily_comparison,
)
from tests.factories import DAYS, START, pair


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
    assert (
        flags[0].explanation.startswith("air temperature ")
        and "warmer by day than by night" in flags[0].explanation
    )
    assert "in full sun?" in flags[0].explanation
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


def test_a_smaller_bias_is_flagged_under_a_lower_threshold_given_by_name():
    sensor, station = pair()
    sensor[sensor.index < days(2, 2)[1]] -= 4  # 3.5 °C below on average: under the default 4 °C
    assert check(sensor, station) == []
    flags = check_temperature_against_station(sensor, station, "900123", 3.2, max_mean_difference=2.5)
    assert [(f.kind, f.start, f.end) for f in flags] == [("temperature_bias", *days(0, 2))]


@pytest.mark.parametrize(
    ("helper", "threshold"),
    [
        (check_temperature_against_station, "max_mean_diference"),
        (check_soil_against_rain, "min_raise"),
        (check_soil_drift, "min_day"),
    ],
)
def test_a_misspelt_threshold_is_refused_not_ignored(helper, threshold):
    sensor, station = pair()
    with pytest.raises(ValueError, match=f"has no threshold '{threshold}'"):
        helper(sensor, station, "900123", 3.2, **{threshold: 1.0})


def soil_and_rain(rain_days: tuple[int, ...] = (2,)) -> tuple[pd.Series, pd.Series]:
    """A garden drying towards its wilting point, wetted by showers that the station also records."""
    rng = np.random.default_rng(4)
    index = pd.date_range(START, periods=DAYS * 96, freq="15min")
    rain = pd.Series(0.0, index=index)
    for day in rain_days:
        rain[START + pd.Timedelta(days=day, hours=14) : START + pd.Timedelta(days=day, hours=16)] = 1.5
    level, soil = 9.0, []
    for mm in rain.to_numpy():
        level += 0.3 * mm - 0.0012 * (level - 8.0)
        soil.append(level)
    station_rain = rain.resample("30min").sum()
    return pd.Series(soil, index=index) + rng.normal(0, 0.15, len(index)), station_rain


def rain_check(soil, rain):
    return check_soil_against_rain(soil, rain, "900123", 3.2)


def test_soil_that_dries_between_showers_is_not_flagged():
    assert rain_check(*soil_and_rain()) == []


def test_soil_climbing_through_dry_days_is_flagged_on_those_days():
    soil, rain = soil_and_rain()
    since = soil.index >= days(5, 5)[0]
    soil[since] += np.linspace(0, 4, since.sum())  # drifting up 0.8 % a day
    flags = rain_check(soil, rain)
    assert [f.kind for f in flags] == ["rising_without_rain"]
    assert days(5, 6)[0] <= flags[0].start <= days(6, 6)[0] and flags[0].end == days(9, 9)[1]
    assert "0.0 mm of rain" in flags[0].explanation


def test_a_climb_with_rain_at_the_station_or_a_watering_can_is_not_flagged():
    soil, rain = soil_and_rain(rain_days=(2, 5, 6, 7, 8, 9))
    since = soil.index >= days(5, 5)[0]
    soil[since] += np.linspace(0, 4, since.sum())
    assert rain_check(soil, rain) == []  # the station saw the rain that wets it
    soil, rain = soil_and_rain()
    soil[soil.index >= START + pd.Timedelta(days=6, hours=19)] += 12  # watered once, in the evening
    assert rain_check(soil, rain) == []


def test_a_small_rise_that_the_little_rain_recorded_explains_is_not_flagged():
    soil, rain = soil_and_rain()
    rain[days(6, 6)[0] + pd.Timedelta(hours=10)] = 0.8  # mm, in one report
    rising = (soil.index >= days(6, 6)[0]) & (soil.index <= days(7, 7)[1])
    after = soil.index > days(7, 7)[1]
    small, large = soil.copy(), soil.copy()
    for series, total in ((small, 2.2), (large, 6.0)):
        series[rising] += np.linspace(0, total, rising.sum())
        series[after] += total
    assert rain_check(small, rain) == []  # 0.8 mm (a little more at the garden) wets soil a few %
    assert [f.kind for f in rain_check(large, rain)] == ["rising_without_rain"]  # but not 6 %


def test_soil_climbing_in_two_gardens_by_one_station_at_once_is_weather_it_missed():
    soil, rain = soil_and_rain()
    since = soil.index >= days(5, 5)[0]
    climbing = soil.copy()
    climbing[since] += np.linspace(0, 4, since.sum())
    frames = {
        sensor: pd.DataFrame({"sensor_id": sensor, "ts": soil.index, "soil_moisture": series.to_numpy()})
        for sensor, series in (("a", climbing), ("b", climbing + 0.7), ("c", soil))
    }
    stations = pd.DataFrame({"site_id": "900123", "ts": rain.index, "rainfall": rain.to_numpy()})
    links = pd.DataFrame({"sensor_id": ["a", "b", "c"], "site_id": "900123", "distance_km": [3.2, 4.0, 2.0]})
    rising = configure("rising_without_rain")
    # One garden climbing alone is a fault; two at once, the day the station saw nothing, is a shower
    # (or snowmelt) that missed the station's gauge.
    alone = pd.concat([frames["a"], frames["c"]])
    assert [(s, f.kind) for s, f in check_against_stations(alone, stations, links, rising)] == [
        ("a", "rising_without_rain")
    ]
    together = pd.concat(frames.values())
    assert check_against_stations(together, stations, links, rising) == []


def test_a_station_without_rain_reports_is_no_evidence():
    soil, rain = soil_and_rain()
    soil[soil.index >= days(5, 5)[0]] += np.linspace(0, 4, (soil.index >= days(5, 5)[0]).sum())
    assert rain_check(soil, rain.iloc[:10]) == []


def garden(
    days: int = 45,
    seed: int = 5,
    gain: float = 2.0,
    wilting: float = 8.0,
    showers: int | None = None,
    dry_from: int | None = None,
) -> tuple[pd.Series, pd.Series]:
    """Six weeks of a garden's soil moisture, wetted by showers on about a third of the days (which the
    station records too) and drying towards its wilting point between them; no shower from day
    `dry_from` on. Gardens given the same `showers` seed share the weather."""
    weather = np.random.default_rng(seed if showers is None else showers)
    index = pd.date_range(START, periods=days * 96, freq="15min")
    rain = np.zeros(len(index))
    wet_days = np.flatnonzero(weather.random(days) < 0.35)
    for day in wet_days[wet_days < (dry_from or days)]:
        first = day * 96 + int(weather.integers(0, 80))
        rain[first : first + 8] = weather.exponential(1.0)
    level, soil = 25.0, []
    for mm in rain:
        level += gain * mm * max(0.0, 1 - level / 45) - 0.0012 * (level - wilting)
        soil.append(level)
    noise = np.random.default_rng(seed).normal(0, 0.15, len(index))
    return pd.Series(soil, index=index) + noise, pd.Series(rain, index=index).resample("30min").sum()


def drift_check(soil, rain):
    return check_soil_drift(soil, rain, "900123", 3.2)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_soil_that_follows_the_rain_does_not_drift(seed):
    assert drift_check(*garden(seed=seed)) == []


@pytest.mark.parametrize("sign", [1, -1])
def test_soil_drifting_away_from_what_the_rain_explains_is_flagged_from_when_it_began(sign):
    soil, rain = garden(seed=6)
    since = soil.index >= START + pd.Timedelta(days=20)
    soil[since] += sign * np.linspace(0, 15, since.sum())
    flags = drift_check(soil, rain)
    assert [f.kind for f in flags] == ["drift"]
    # A slow ramp hides its first days in the weather: its start is found to within days.
    assert abs(flags[0].start - (START + pd.Timedelta(days=20))) <= pd.Timedelta(days=4)
    assert flags[0].end == days(44, 44)[1]
    assert f"drifted {'+' if sign > 0 else '-'}1" in flags[0].explanation
    assert drift_check(soil[soil.index < START + pd.Timedelta(days=15)], rain) == []  # too short to tell


def test_a_record_of_months_that_walks_from_its_first_day_is_a_season_and_one_that_turns_later_drifts():
    """Seeds 30403 and 30409's false alarms: half a year of soil wetting from spring into autumn in
    ways the station's fading rain and warmth do not capture. A ramp the fit would start before the
    record's first day walks all along: that is a season. A probe that turns in the middle drifts."""
    soil, rain = garden(days=200, seed=6)
    assert drift_check(soil + np.linspace(0, 15, len(soil)), rain) == []
    since = soil.index >= START + pd.Timedelta(days=100)
    soil[since] += np.linspace(0, 20, since.sum())
    assert [f.kind for f in drift_check(soil, rain)] == ["drift"]


def test_soil_drying_through_a_dry_spell_is_weather_and_a_fall_while_it_rains_is_a_drift():
    """Seeds 30401 and 30402's false alarms: a garden whose station saw its rain stop for five weeks
    dries towards its wilting point, faster than fading sums of rain follow. A probe that falls as
    much while the showers go on drifts."""
    soil, rain = garden(days=120, seed=6, dry_from=85)
    since = soil.index >= START + pd.Timedelta(days=85)
    # drying as spring's lengthening days take ever more: steadily, two thirds of a percent a day
    soil[since] = soil[since].iloc[0] - np.linspace(0, 25, since.sum())
    assert drift_check(soil, rain) == []
    soil, rain = garden(days=120, seed=6)
    soil[since] -= np.linspace(0, 25, since.sum())
    assert [f.kind for f in drift_check(soil, rain)] == ["drift"]


def test_a_drift_shows_in_how_soil_dries_on_dry_days_too():
    # The level test is switched off: the drying test alone finds the drift, from the station's rain
    # and warmth, where the soil dries slower than the weather explains.
    soil, rain = garden(seed=6)
    since = soil.index >= START + pd.Timedelta(days=20)
    soil[since] += np.linspace(0, 15, since.sum())
    warmth = pd.Series(15 + 3 * np.sin(np.arange(len(rain)) / 48 * np.pi), index=rain.index)
    only_drying = {"min_explained": 2.0}
    flags = check_soil_drift(soil, rain, "900123", 3.2, station_temperature=warmth, **only_drying)
    assert [f.kind for f in flags] == ["drift"] and "on dry days" in flags[0].explanation
    # Only dry days tell, so the start is known to the nearest dry days.
    assert abs(flags[0].start - (START + pd.Timedelta(days=20))) <= pd.Timedelta(days=7)
    clean_soil, rain = garden(seed=6)
    assert check_soil_drift(clean_soil, rain, "900123", 3.2, station_temperature=warmth, **only_drying) == []


def test_a_drift_that_the_neighbours_share_is_weather():
    soil, rain = garden(seed=6)
    since = soil.index >= START + pd.Timedelta(days=20)
    frames = []
    for sensor, shift in (("a", 0), ("b", 0.4)):  # two gardens by one station, wetting up together
        drifted = soil + shift
        drifted[since] += np.linspace(0, 15, since.sum())
        frames.append(
            pd.DataFrame({"sensor_id": sensor, "ts": soil.index, "soil_moisture": drifted.to_numpy()})
        )
    stations = pd.DataFrame({"site_id": "900123", "ts": rain.index, "rainfall": rain.to_numpy()})
    links = pd.DataFrame({"sensor_id": ["a", "b"], "site_id": "900123", "distance_km": [3.2, 4.0]})
    both = pd.concat(frames, ignore_index=True)
    assert [f.kind for _, f in check_against_stations(both, stations, links)] == []
    alone = both[both["sensor_id"] == "a"]
    assert [(s, f.kind) for s, f in check_against_stations(alone, stations, links)] == [("a", "drift")]


def town(drifting: set[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Five gardens by one station, each its own soil, all under the same showers."""
    frames = []
    for i, sensor in enumerate("abcde"):
        soil, rain = garden(seed=20 + i, gain=1.5 + 0.3 * i, wilting=6 + i, showers=6)
        if sensor in drifting:
            since = soil.index >= START + pd.Timedelta(days=20)
            soil[since] += np.linspace(0, 15, since.sum())
        frames.append(pd.DataFrame({"sensor_id": sensor, "ts": soil.index, "soil_moisture": soil.to_numpy()}))
    stations = pd.DataFrame({"site_id": "900123", "ts": rain.index, "rainfall": rain.to_numpy()})
    links = pd.DataFrame({"sensor_id": list("abcde"), "site_id": "900123", "distance_km": 3.0})
    return pd.concat(frames, ignore_index=True), stations, links


def test_the_gardens_by_a_station_witness_the_weather_so_one_drifting_probe_stands_out():
    assert check_against_stations(*town(drifting=set())) == []
    found = check_against_stations(*town(drifting={"c"}))
    assert [(s, f.kind) for s, f in found] == [("c", "drift")]
    assert abs(found[0][1].start - (START + pd.Timedelta(days=20))) <= pd.Timedelta(days=4)


def test_a_station_check_switched_off_leaves_its_fault_alone_and_the_others_still_run():
    readings, stations, links = town(drifting={"c"})
    assert [
        (s, f.kind) for s, f in check_against_stations(readings, stations, links, configure("-drift"))
    ] == []
    kept = check_against_stations(readings, stations, links, configure("-temperature,-rising_without_rain"))
    assert [(s, f.kind) for s, f in kept] == [("c", "drift")]


def test_a_common_event_is_found_past_the_same_sensors_other_flags():
    from detection.reference import without_common
    from detection.rules import Flag

    def brk(hour):
        at = START + pd.Timedelta(hours=hour)
        return Flag("air_temperature", "break", at, at + pd.Timedelta(hours=6), 1.5, "jumped")

    links = pd.DataFrame({"sensor_id": ["a", "b", "c"], "site_id": ["s", "s", "t"], "distance_km": 1.0})
    found = [("a", brk(10)), ("a", brk(11)), ("b", brk(12)), ("c", brk(12))]
    # a at 10:00 and 11:00 and b at 12:00 are one front by station s; c's station is another.
    assert [(s, f.start.hour) for s, f in without_common(found, links)] == [("c", 12)]


def test_a_lasting_bias_that_begins_beside_a_neighbours_short_one_is_no_common_event():
    from detection.reference import without_common
    from detection.rules import Flag

    def bias(first_day, days):
        start = START + pd.Timedelta(days=first_day)
        return Flag(
            "air_temperature", "temperature_bias", start, start + pd.Timedelta(days=days), 2.0, "above"
        )

    links = pd.DataFrame({"sensor_id": ["a", "b", "c"], "site_id": "s", "distance_km": 1.0})
    # a drifts away for good; b is off for a day as it starts; c is off that same day as b: weather.
    found = [("a", bias(20, 160)), ("b", bias(20, 1)), ("c", bias(20.5, 1))]
    assert [(s, f.kind) for s, f in without_common(found, links)] == [("a", "temperature_bias")]
