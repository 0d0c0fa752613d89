"""Conditions, not faults: frozen soil, snow cover and a watering system are recognised, shown with an
explanation and stand the checks down while they last; a fault inside one is still found once it ends;
and without the condition the same readings would be flagged (so each test can fail)."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from core.vocabulary import CONDITIONS, NOT_FAULTS, AnomalyKind, Detector
from detection.checks import configure
from detection.conditions import stand_down
from detection.detect import detect
from detection.rules import Flag
from etl.analyse_anomalies import sensor_health_rows

WINTER = pd.Timestamp("2026-01-05", tz="UTC")
SUMMER = pd.Timestamp("2026-06-01", tz="UTC")
DAY = pd.Timedelta(days=1)
HOUR = pd.Timedelta(hours=1)
LINKS = pd.DataFrame({"sensor_id": ["s1"], "site_id": ["900123"], "distance_km": [3.0]})


def garden(start: pd.Timestamp, days: int, mean: np.ndarray, seed: int = 3):
    """A healthy sensor and its station: air temperature around each day's `mean` (°C) with a day/night
    swing, light following the sun, soil slowly drying, and a station feeling the same air, no rain."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=days * 96, freq="15min")
    hours = np.arange(len(index)) / 4
    swing = 4 * np.sin((hours % 24 - 9) / 24 * 2 * np.pi)
    air = np.interp(hours / 24, np.arange(days) + 0.5, mean) + swing  # the weather changes over a day
    sun = np.clip(np.sin((hours % 24 - 7) / 10 * np.pi), 0, None)
    readings = pd.DataFrame(
        {
            "sensor_id": "s1",
            "ts": index,
            "soil_moisture": 30 - 0.01 * hours + rng.normal(0, 0.15, len(index)),
            "air_temperature": air + 0.5 + rng.normal(0, 0.3, len(index)),
            "light": np.round(8 * sun * (1 + rng.normal(0, 0.03, len(index))), 2),
            "battery_level": 80.0,
        }
    )
    station = (
        pd.DataFrame({"site_id": "900123", "ts": index, "air_temperature": air, "rainfall": 0.0})
        .iloc[::4]
        .reset_index(drop=True)
    )
    return readings, station


def frost(days: int = 24, first: int = 8, last: int = 15) -> np.ndarray:
    """Daily mean air temperature: mild, then `first`..`last` well below zero, then mild again."""
    mean = np.full(days, 4.0)
    mean[first : last + 1] = -6.0
    return mean


def freeze_probe(readings: pd.DataFrame, begin: pd.Timestamp, end: pd.Timestamp, share: float = 0.6):
    """The probe reads ice from `begin` to `end`: it falls to `share` of its reading over a few hours as
    the water freezes, then holds that value exactly."""
    inside = (readings["ts"] >= begin) & (readings["ts"] < end)
    held = readings.loc[inside, "soil_moisture"].iloc[0]
    steps = np.arange(inside.sum())
    falling = held * (1 - (1 - share) * np.minimum(1, steps / 24))
    readings.loc[inside, "soil_moisture"] = np.round(falling, 2)
    return inside


def faults(found: pd.DataFrame) -> pd.DataFrame:
    return found[found["detector"] != Detector.CONDITION.value]


def conditions(found: pd.DataFrame, kind: AnomalyKind) -> pd.DataFrame:
    return found[found["kind"] == kind.value]


def test_every_condition_kind_is_found_by_the_condition_detector_and_is_no_fault():
    assert {AnomalyKind.FROZEN_SOIL, AnomalyKind.SNOW_COVER, AnomalyKind.WATERING_SYSTEM} == CONDITIONS
    assert all(kind.detector == Detector.CONDITION and kind.is_condition for kind in CONDITIONS)
    assert not AnomalyKind.STUCK.is_condition


def test_a_frozen_spell_is_a_condition_not_a_fault():
    readings, station = garden(WINTER, 24, frost())
    frozen = freeze_probe(readings, WINTER + 9 * DAY, WINTER + 16.5 * DAY)

    found = detect(readings, station, LINKS, models=None)

    spell = conditions(found, AnomalyKind.FROZEN_SOIL)
    assert len(spell) == 1
    assert spell["start_at"].iloc[0] <= readings.loc[frozen, "ts"].min()
    assert spell["end_at"].iloc[0] >= readings.loc[frozen, "ts"].max()
    assert "frozen" in spell["explanation"].iloc[0] and "stand down" in spell["explanation"].iloc[0]
    assert faults(found).empty, faults(found)[["kind", "explanation"]]
    # Without the condition, today's rules call the frozen probe stuck.
    without = detect(readings, station, LINKS, models=None, config=configure("all,-frozen_soil"))
    assert "stuck" in set(faults(without)["kind"])


def test_frost_seen_only_at_the_station_still_stands_the_soil_checks_down():
    readings, station = garden(WINTER, 24, frost())
    readings["air_temperature"] = np.nan  # a sensor whose air temperature is gone
    freeze_probe(readings, WINTER + 9 * DAY, WINTER + 16.5 * DAY)
    found = detect(readings, station, LINKS, models=None)
    assert "WOW station" in conditions(found, AnomalyKind.FROZEN_SOIL)["explanation"].iloc[0]
    assert faults(found).empty


def test_a_sensor_warm_indoors_while_its_station_freezes_is_not_frozen_soil_but_indoors():
    readings, station = garden(WINTER, 24, frost())
    # Brought in for the winter on day 6: a warm room, no daily swing, a pot that is watered.
    inside = readings["ts"] >= WINTER + 6 * DAY
    hours = np.arange(inside.sum()) / 4
    readings.loc[inside, "air_temperature"] = 18 + 0.5 * np.sin(hours / 24 * 2 * np.pi)
    found = detect(readings, station, LINKS, models=None)
    assert conditions(found, AnomalyKind.FROZEN_SOIL).empty  # the station's frost is not this pot's
    assert "no_daily_cycle" in set(faults(found)["kind"])  # "indoors or covered?"


def test_a_probe_stuck_through_a_frozen_spell_is_found_after_the_thaw():
    readings, station = garden(WINTER, 24, frost())
    freeze_probe(readings, WINTER + 9 * DAY, WINTER + 16.5 * DAY)
    # The probe never comes back: it reads its frozen value for days after the thaw.
    after = readings["ts"] >= WINTER + 16.5 * DAY
    readings.loc[after, "soil_moisture"] = readings.loc[~after, "soil_moisture"].iloc[-1]

    found = detect(readings, station, LINKS, models=None)

    spell = conditions(found, AnomalyKind.FROZEN_SOIL)
    stuck = faults(found)
    assert list(stuck["kind"]) == ["stuck"]
    assert stuck["variable"].iloc[0] == "soil_moisture"
    assert stuck["end_at"].iloc[0] > spell["end_at"].max()  # found where the thaw left it stuck


def test_soil_wetted_by_the_thaw_is_not_rising_without_rain_but_the_same_rise_in_summer_is():
    def soaked(readings, since):
        wetting = (readings["ts"] >= since) & (readings["ts"] < since + 4 * DAY)
        readings.loc[wetting, "soil_moisture"] += np.linspace(0, 5, wetting.sum())  # snowmelt soaking in
        readings.loc[readings["ts"] >= since + 4 * DAY, "soil_moisture"] += 5

    readings, station = garden(WINTER, 28, frost(28))
    freeze_probe(readings, WINTER + 9 * DAY, WINTER + 16.5 * DAY)
    soaked(readings, WINTER + 18 * DAY)  # a day after the checks came back from the frost
    assert faults(detect(readings, station, LINKS, models=None)).empty
    readings, station = garden(SUMMER, 28, np.full(28, 16.0))
    soaked(readings, SUMMER + 18 * DAY)
    assert "rising_without_rain" in set(faults(detect(readings, station, LINKS, models=None))["kind"])


def test_snow_cover_is_a_condition_and_the_air_and_light_checks_stand_down():
    readings, station = garden(WINTER, 16, np.full(16, 1.0))
    buried = (readings["ts"] >= WINTER + 6.4 * DAY) & (readings["ts"] < WINTER + 9.6 * DAY)
    rng = np.random.default_rng(5)
    # Under snow: near 0 °C whatever the air does, and dark.
    readings.loc[buried, "air_temperature"] = (
        -0.3 + 0.05 * np.sin(np.arange(buried.sum()) / 40) + rng.normal(0, 0.02, buried.sum())
    )
    readings.loc[buried, "light"] = np.round(readings.loc[buried, "light"] * 0.04, 2)

    found = detect(readings, station, LINKS, models=None)

    snow = conditions(found, AnomalyKind.SNOW_COVER)
    assert len(snow) == 1
    assert snow["start_at"].iloc[0] <= readings.loc[buried, "ts"].min()
    assert snow["end_at"].iloc[0] >= readings.loc[buried, "ts"].max()
    assert "under snow" in snow["explanation"].iloc[0]
    assert faults(found).empty, faults(found)[["kind", "explanation"]]
    without = detect(readings, station, LINKS, models=None, config=configure("all,-snow_cover"))
    assert {"no_daily_cycle", "break"} & set(faults(without)["kind"])


def test_snow_over_a_hard_frost_is_snow_cover_though_the_buried_sensor_reads_well_below_zero():
    """Seed 30301's false alarms: under -13 °C air, a sensor under a few cm of snow reads about -4 °C in
    tenths, for days on end (with no light to say so at night, its jump into the snow looked a break)."""
    readings, station = garden(WINTER, 16, np.full(16, -10.0))
    buried = (readings["ts"] >= WINTER + 3 * DAY) & (readings["ts"] < WINTER + 13 * DAY)
    hours = np.arange(buried.sum()) / 4
    readings.loc[buried, "air_temperature"] = np.round(-4.0 + 0.6 * np.sin(hours / 24 * 2 * np.pi), 1)
    readings.loc[buried, "light"] = np.round(readings.loc[buried, "light"] * 0.08, 2)
    found = detect(readings, station, LINKS, models=None)
    snow = conditions(found, AnomalyKind.SNOW_COVER)
    assert len(snow) == 1
    assert snow["start_at"].iloc[0] <= readings.loc[buried, "ts"].min()
    assert snow["end_at"].iloc[0] >= readings.loc[buried, "ts"].max()
    assert faults(found).empty, faults(found)[["kind", "explanation"]]


def test_snow_falling_on_a_sensor_at_night_is_snow_cover_though_an_hour_stirs_it():
    """Seed 30403's false alarms: at -13 °C on a December evening, snow buries a sensor, which jumps to
    -4 °C and stays there, flat but for one hour that moves 0.4 °C; dark the next morning. With no light
    at night to say so, the jump looked a break."""
    readings, station = garden(WINTER, 16, np.full(16, -10.0))
    fell = WINTER + 8 * DAY + 19 * HOUR
    buried = (readings["ts"] >= fell) & (readings["ts"] < fell + 4 * DAY)
    readings.loc[buried, "air_temperature"] = -4.1
    readings.loc[
        buried & (readings["ts"] >= fell + 7 * HOUR) & (readings["ts"] < fell + 8 * HOUR), "air_temperature"
    ] = [-4.1, -4.5, -4.2, -4.4]
    readings.loc[buried, "light"] = np.round(readings.loc[buried, "light"] * 0.03, 2)
    found = detect(readings, station, LINKS, models=None)
    snow = conditions(found, AnomalyKind.SNOW_COVER)
    assert (snow["start_at"] <= fell).any()
    assert faults(found).empty, faults(found)[["kind", "explanation"]]


def test_a_sensor_flat_at_0_c_in_daylight_is_not_under_snow_but_stuck():
    readings, station = garden(WINTER, 16, np.full(16, 1.0))
    stuck = (readings["ts"] >= WINTER + 6 * DAY) & (readings["ts"] < WINTER + 9 * DAY)
    readings.loc[stuck, "air_temperature"] = -0.3  # its light says the sun still reaches it
    found = detect(readings, station, LINKS, models=None)
    assert conditions(found, AnomalyKind.SNOW_COVER).empty
    assert "stuck" in set(faults(found)["kind"])


def watered_garden(system: bool):
    """A summer garden without rain, 18 days, whose soil dries 0.7 % a day; a watering system gives it
    1.5 % every morning at 05:00 UTC from day 5 on (too short a history for the drift check)."""
    readings, station = garden(SUMMER, 18, np.full(18, 18.0))
    hours = ((readings["ts"] - SUMMER) / pd.Timedelta(hours=1)).to_numpy()
    readings["soil_moisture"] = 30 - 0.03 * hours + np.random.default_rng(1).normal(0, 0.15, len(hours))
    if system:
        mornings = np.floor((hours - 5) / 24) - 4  # how many 05:00 wettings since day 5 began
        readings["soil_moisture"] += 1.5 * np.clip(mornings + 1, 0, None)
    return readings, station


def test_a_watering_system_is_not_a_fault():
    readings, station = watered_garden(system=True)
    found = detect(readings, station, LINKS, models=None)
    system = conditions(found, AnomalyKind.WATERING_SYSTEM)
    assert len(system) == 1
    assert "05:" in system["explanation"].iloc[0] and "watering system" in system["explanation"].iloc[0]
    assert system["start_at"].iloc[0] <= SUMMER + 6 * DAY
    assert faults(found).empty, faults(found)[["kind", "explanation"]]
    # Without it, the soil rising through dry days would be called a fault.
    without = detect(readings, station, LINKS, models=None, config=configure("all,-watering_system"))
    assert "rising_without_rain" in set(faults(without)["kind"])


def test_a_garden_dried_by_the_sun_alone_has_no_watering_system():
    readings, station = watered_garden(system=False)
    found = detect(readings, station, LINKS, models=None)
    assert found.empty


def test_a_sensor_moved_to_a_sunnier_wetter_pot_is_found_and_a_shower_is_not():
    readings, station = garden(SUMMER, 14, np.full(14, 16.0))
    moved = readings["ts"] >= SUMMER + 7.3 * DAY
    readings.loc[moved, "soil_moisture"] *= 1.6
    readings.loc[moved, "light"] = np.round(readings.loc[moved, "light"] * 2.5, 2)
    readings.loc[moved, "air_temperature"] += 1.5
    found = faults(detect(readings, station, LINKS, models=None))
    assert "moved" in set(found["kind"])
    first = found[found["kind"] == "moved"].iloc[0]
    assert abs(first["start_at"] - SUMMER - 7.3 * DAY) < pd.Timedelta(minutes=20)
    assert "moved to another pot or garden" in first["explanation"]

    shower, station = garden(SUMMER, 14, np.full(14, 16.0))
    shower.loc[shower["ts"] >= SUMMER + 7.3 * DAY, "soil_moisture"] += 10  # rain: light as before
    station.loc[(station["ts"] - SUMMER - 7.3 * DAY).abs() < pd.Timedelta(minutes=30), "rainfall"] = 6.0
    assert "moved" not in set(faults(detect(shower, station, LINKS, models=None))["kind"])


def test_a_sensor_moved_during_a_frozen_spell_is_found_after_the_thaw():
    readings, station = garden(WINTER, 28, frost(28))
    freeze_probe(readings, WINTER + 9 * DAY, WINTER + 16.5 * DAY)
    moved = readings["ts"] >= WINTER + 12 * DAY  # to a shadier, drier pot while the checks stood down
    readings.loc[moved & (readings["ts"] >= WINTER + 16.5 * DAY), "soil_moisture"] *= 0.5
    readings.loc[moved, "light"] = np.round(readings.loc[moved, "light"] * 0.3, 2)
    found = faults(detect(readings, station, LINKS, models=None))
    assert "moved" in set(found["kind"]), found[["kind", "explanation"]]
    assert found.loc[found["kind"] == "moved", "start_at"].min() >= WINTER + 16 * DAY  # seen at the thaw
    # Wetter after the thaw, and darker: the melt wets the soil, so no move is told across the spell.
    wetter = readings.copy()
    thawed = moved & (readings["ts"] >= WINTER + 16.5 * DAY)
    wetter.loc[thawed, "soil_moisture"] *= 3.0
    assert "moved" not in set(faults(detect(wetter, station, LINKS, models=None))["kind"])
    # The same with the light gone through the spell (snow over it): nothing to judge it by.
    readings.loc[(readings["ts"] >= WINTER + 9 * DAY) & (readings["ts"] < WINTER + 17 * DAY), "light"] = (
        np.nan
    )
    assert "moved" not in set(faults(detect(readings, station, LINKS, models=None))["kind"])


def test_stand_down_blanks_exactly_the_span_of_each_condition():
    readings, _ = garden(WINTER, 4, np.full(4, -3.0))
    start, end = WINTER + DAY, WINTER + 2 * DAY - pd.Timedelta(seconds=1)
    snow = Flag("light", AnomalyKind.SNOW_COVER, start, end, 1.0, "under snow")
    blanked = stand_down(readings, [("s1", snow), ("other", snow)], [AnomalyKind.SNOW_COVER])
    inside = (readings["ts"] >= start) & (readings["ts"] <= end)
    for variable in ("soil_moisture", "air_temperature", "light"):
        assert blanked.loc[inside, variable].isna().all()
        pd.testing.assert_series_equal(blanked.loc[~inside, variable], readings.loc[~inside, variable])
    pd.testing.assert_series_equal(blanked["battery_level"], readings["battery_level"])
    assert stand_down(readings, [("s1", snow)], [AnomalyKind.FROZEN_SOIL]) is readings


@pytest.mark.parametrize("kind", sorted(NOT_FAULTS))
def test_a_sensor_with_only_conditions_or_2019_history_is_healthy(kind):
    found = pd.DataFrame(
        {
            "sensor_id": ["s1"],
            "variable": ["soil_moisture"],
            "kind": [kind.value],
            "end_at": [pd.Timestamp("2026-01-10", tz="UTC")],
            "score": [1.0],
            "explanation": ["not a fault"],
        }
    )
    latest = {"s1": dt.datetime(2026, 1, 11, tzinfo=dt.UTC)}
    health = sensor_health_rows(["s1"], found, latest, faulty_days=2)
    assert health["status"].tolist() == ["healthy"]


def test_a_jump_every_garden_by_a_station_makes_at_once_is_weather_not_a_fault():
    first, station = garden(SUMMER, 6, np.full(6, 15.0))
    second = first.assign(sensor_id="s2", air_temperature=first["air_temperature"] + 0.4)
    jump = first["ts"] >= SUMMER + 3.2 * DAY
    for frame in (first, second):
        frame.loc[jump, "air_temperature"] += 8  # a warm front the station's own reports missed
    links = pd.DataFrame({"sensor_id": ["s1", "s2"], "site_id": "900123", "distance_km": [3.0, 4.0]})
    alone = faults(detect(first, station, LINKS, models=None))
    assert "break" in set(alone["kind"])
    both = faults(detect(pd.concat([first, second], ignore_index=True), station, links, models=None))
    assert not {"break", "temperature_bias"} & set(both["kind"]), both[["sensor_id", "kind"]]


def test_nothing_to_check_is_nothing_found():
    empty = pd.DataFrame(
        {"sensor_id": pd.Series([], dtype=object), "ts": pd.to_datetime([], utc=True)}
        | {
            v: pd.Series([], dtype=float)
            for v in ("soil_moisture", "air_temperature", "light", "battery_level")
        }
    )
    assert detect(empty, models=None).empty
    assert detect(empty.iloc[:0], pd.DataFrame(columns=["site_id", "ts"]), LINKS, models=None).empty


def test_a_window_that_opens_on_a_frosty_night_is_not_frozen_soil():
    # Three mild autumn days whose nights dip below zero: the soil is not frozen, however cold the
    # first hour of the window the nightly step looks at.
    readings, station = garden(pd.Timestamp("2026-10-20 03:00", tz="UTC"), 3, np.full(3, 2.0))
    assert readings["air_temperature"].iloc[:8].max() < 0  # the window opens in the frost
    assert conditions(detect(readings, station, LINKS, models=None), AnomalyKind.FROZEN_SOIL).empty


def test_a_sensor_without_light_is_not_buried_by_a_calm_night():
    readings, station = garden(WINTER, 5, np.full(5, 3.0))
    readings = readings.drop(columns="light")
    night = readings["ts"].dt.hour.isin([1, 2, 3])
    readings.loc[night, "air_temperature"] = 1.0  # calm for three hours each night
    assert conditions(detect(readings, station, LINKS, models=None), AnomalyKind.SNOW_COVER).empty
