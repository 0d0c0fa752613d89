"""Rule checks in the SaQC manner: a clean synthetic series is not flagged; a fault injected at known
times is flagged there, and nowhere else."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from core.vocabulary import AnomalyKind
from detection.checks import CHECKS, StuckThresholds, configure
from detection.rules import (
    check_battery,
    check_break,
    check_probe_out_of_soil,
    check_range,
    check_saturation,
    check_sensor,
    check_spikes,
    check_stuck,
    intervals,
)
from tests.factories import HOUR, START, clean


def window(day: float, hours: float) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = START + pd.Timedelta(days=day)
    return start, start + pd.Timedelta(hours=hours)


def assert_one_flag_inside(flags, kind, start, end, slack=HOUR):
    found = [f for f in flags if f.kind == kind]
    assert len(found) == 1, found
    flag = found[0]
    assert start - slack <= flag.start and flag.end <= end + slack, (flag.start, flag.end)
    assert flag.score >= 1
    assert flag.explanation
    return flag


@pytest.mark.parametrize("freq", ["15min", "1h"])
def test_a_clean_sensor_raises_no_flag(freq):
    assert check_sensor(clean(freq=freq)) == []


def test_a_clean_sensor_sampled_irregularly_raises_no_flag():
    frame = clean()
    keep = np.random.default_rng(3).random(len(frame)) < 0.6  # uploads lost 40 % of the samples
    assert check_sensor(frame[keep]) == []


def test_out_of_range_values_are_flagged_where_they_are():
    frame = clean()
    start, end = window(3, 10)
    frame.loc[start:end, "air_temperature"] = 85.0
    flags = check_sensor(frame)
    flag = assert_one_flag_inside(flags, "out_of_range", start, end)
    assert (flag.start, flag.end) == (start, end)
    assert "85.0 °C" in flag.explanation
    assert not [f for f in flags if f.kind != "out_of_range"]


@pytest.mark.parametrize(
    ("variable", "freq"),
    [("soil_moisture", "15min"), ("air_temperature", "15min"), ("light", "15min"), ("soil_moisture", "1h")],
)
def test_a_stuck_value_is_flagged_over_its_span(variable, freq):
    frame = clean(freq=freq)
    start, end = window(2.5, 30)
    frame.loc[start:end, variable] = frame.loc[start, variable] if frame.loc[start, variable] > 1 else 12.3
    flags = check_stuck(frame[variable], variable, ignore_below=0.5 if variable == "light" else None)
    flag = assert_one_flag_inside(flags, "stuck", start, end)
    assert flag.end - flag.start >= pd.Timedelta(hours=29)
    assert "stuck at" in flag.explanation


def test_light_at_zero_all_night_is_not_stuck():
    assert check_stuck(clean(days=3)["light"], "light", ignore_below=0.5) == []
    # Nor without the exemption: each night holds no longer than the nights around it. Judged by an
    # absolute duration alone, every night would be stuck.
    assert check_stuck(clean(days=3)["light"], "light") == []
    assert check_stuck(clean(days=3)["light"], "light", usual_factor=0.0, rest_factor=0.0) != []


def test_light_at_zero_through_a_day_is_stuck():
    frame = clean()
    start, end = window(2, 30)  # from midnight, through the next day
    frame.loc[start:end, "light"] = 0.0
    flags = check_stuck(frame["light"], "light", ignore_below=0.5)
    flag = assert_one_flag_inside(flags, "stuck", start - pd.Timedelta(hours=6), end + pd.Timedelta(hours=6))
    assert "light stuck at 0.0" in flag.explanation


def test_a_short_pause_is_not_stuck():
    frame = clean()
    start, end = window(2, 6)
    frame.loc[start:end, "soil_moisture"] = 25.0
    assert check_stuck(frame["soil_moisture"], "soil_moisture") == []


@pytest.mark.parametrize("variable", ["air_temperature", "soil_moisture"])
def test_spikes_are_flagged_and_the_rest_is_not(variable):
    frame = clean()
    hits = [START + pd.Timedelta(days=4, hours=h) for h in (1, 3.5, 5)]
    for t in hits:
        frame.loc[t, variable] += 20
    flags = check_spikes(frame[variable], variable, threshold=8 if variable == "air_temperature" else 10)
    flag = assert_one_flag_inside(flags, "spike", hits[0], hits[-1], slack=pd.Timedelta(0))
    assert (flag.start, flag.end) == (hits[0], hits[-1])
    assert flag.explanation.startswith("3 ")


def test_a_rain_shower_is_not_a_spike():
    frame = clean()
    assert check_spikes(frame["soil_moisture"], "soil_moisture", threshold=10) == []


@pytest.mark.parametrize("freq", ["15min", "1h"])
def test_a_sudden_break_is_flagged_where_it_happened(freq):
    frame = clean(freq=freq)
    when = START + pd.Timedelta(days=3, hours=10)
    frame.loc[when:, "air_temperature"] += 9  # the sensor was moved onto a warm wall
    flags = check_sensor(frame)
    breaks = [f for f in flags if f.kind == "break"]
    assert [(f.variable, f.start) for f in breaks] == [("air_temperature", when)]
    assert "stayed there" in breaks[0].explanation and breaks[0].score > 1


def test_snow_melting_off_a_sensor_is_no_break_but_the_same_jump_from_moving_air_is():
    frame = clean()
    hours = (frame.index - START) / HOUR
    frame["air_temperature"] = 4 + 3 * np.sin((hours % 24 - 9) / 24 * 2 * np.pi)  # a winter's day
    night = (frame.index >= START + pd.Timedelta(days=3)) & (
        frame.index < START + pd.Timedelta(days=3, hours=9)
    )
    rng = np.random.default_rng(6)
    # Buried overnight: held within a few tenths of 0 °C; melted off at 09:00, it reads the air again.
    frame.loc[night, "air_temperature"] = 0.1 + rng.normal(0, 0.1, night.sum())
    after = (frame.index >= START + pd.Timedelta(days=3, hours=9)) & (
        frame.index < START + pd.Timedelta(days=3, hours=16)
    )
    frame.loc[after, "air_temperature"] = 8.0 + rng.normal(0, 0.3, after.sum())
    assert check_break(frame["air_temperature"], "air_temperature", 6.0) == []
    frame.loc[night, "air_temperature"] = 0.5 + rng.normal(0, 0.8, night.sum())  # moving air: a break
    assert len(check_break(frame["air_temperature"], "air_temperature", 6.0)) == 1


def test_snow_that_fell_a_few_hours_before_it_melted_off_is_no_break_either():
    """Seeds 30803 and 30804's false alarms: sleet at 1-2 °C turns to snow at 03:00 and buries a sensor,
    which holds 0.0 °C until the morning sun melts it off at 08:00 and it reads the air's 6 °C again.
    The hours before the jump still hold the sleety air of before the snow; what says snow is the
    plateau just before the jump, as long as snow must lie to be snow cover. A sensor that held near
    0 °C for an hour only, in air moving about it, jumped."""
    frame = clean()
    hours = (frame.index - START) / HOUR
    frame["air_temperature"] = 4 + 3 * np.sin((hours % 24 - 9) / 24 * 2 * np.pi)  # a winter's day
    rng = np.random.default_rng(6)
    night = START + pd.Timedelta(days=3)

    def between(first: float, last: float) -> np.ndarray:
        return (frame.index >= night + first * HOUR) & (frame.index < night + last * HOUR)

    frame.loc[between(-6, 3), "air_temperature"] = 1.5 + rng.normal(0, 0.4, between(-6, 3).sum())  # sleet
    frame.loc[between(3, 8), "air_temperature"] = 0.0 + rng.normal(0, 0.05, between(3, 8).sum())  # snow
    frame.loc[between(8, 16), "air_temperature"] = 6.5 + rng.normal(0, 0.3, between(8, 16).sum())
    assert check_break(frame["air_temperature"], "air_temperature", 6.0) == []
    frame.loc[between(3, 7), "air_temperature"] = 1.5 + rng.normal(0, 0.4, between(3, 7).sum())  # an hour
    assert len(check_break(frame["air_temperature"], "air_temperature", 6.0)) == 1


def test_a_spike_or_a_rain_shower_is_not_a_break():
    frame = clean()
    frame.loc[START + pd.Timedelta(days=4, hours=1), "air_temperature"] += 20  # back at the next sample
    assert check_break(frame["air_temperature"], "air_temperature", 6.0) == []
    frame.loc[START + pd.Timedelta(days=2, hours=14) :, "soil_moisture"] += 12  # a shower: a rise
    assert check_break(frame["soil_moisture"], "soil_moisture", 8.0, direction=-1) == []
    frame.loc[START + pd.Timedelta(days=5) :, "soil_moisture"] -= 20  # but a sudden fall is
    assert [f.start for f in check_break(frame["soil_moisture"], "soil_moisture", 8.0, direction=-1)] == [
        START + pd.Timedelta(days=5)
    ]


def test_a_probe_pulled_out_of_the_soil_is_flagged_from_when_it_fell():
    frame = clean()
    start = START + pd.Timedelta(days=4)
    frame.loc[start:, "soil_moisture"] = 1.2
    flags = check_probe_out_of_soil(frame["soil_moisture"])
    flag = assert_one_flag_inside(flags, "probe_out_of_soil", start, frame.index[-1])
    assert flag.start == start
    assert "probe out of the soil" in flag.explanation


def test_dry_soil_that_was_always_dry_is_not_a_pulled_probe():
    frame = clean()
    frame["soil_moisture"] = 2.0 + np.random.default_rng(2).normal(0, 0.1, len(frame))
    assert check_probe_out_of_soil(frame["soil_moisture"]) == []


def test_a_probe_pulled_out_of_dry_mediterranean_soil_is_flagged_and_soil_drying_slowly_is_not():
    frame = clean()
    days = np.arange(len(frame)) / 96
    frame["soil_moisture"] = 8.0 - 0.8 * days + np.random.default_rng(5).normal(0, 0.1, len(frame))
    drying = frame["soil_moisture"].copy()
    start = START + pd.Timedelta(days=2)
    frame.loc[start:, "soil_moisture"] = 2.3  # out of soil that was at 7 %: a fall within hours
    assert_one_flag_inside(
        check_probe_out_of_soil(frame["soil_moisture"]), "probe_out_of_soil", start, frame.index[-1]
    )
    # The same garden drying on its own, down to 3.5 % over days, is no pulled probe.
    assert check_probe_out_of_soil(drying.clip(lower=3.5)) == []


def test_soil_pinned_at_saturation_is_flagged():
    frame = clean()
    start, end = window(1, 40)
    frame.loc[start:end, "soil_moisture"] = 52.0 + np.random.default_rng(4).normal(
        0, 0.05, len(frame.loc[start:end])
    )
    flag = assert_one_flag_inside(check_saturation(frame["soil_moisture"]), "saturation", start, end)
    assert "saturated" in flag.explanation


def test_an_exhausted_battery_is_flagged():
    frame = clean()
    start = START + pd.Timedelta(days=5)
    frame.loc[start:, "battery_level"] = np.floor(np.linspace(4, 0, len(frame.loc[start:])))
    flag = assert_one_flag_inside(
        check_battery(frame["battery_level"]), "battery_exhausted", start, frame.index[-1]
    )
    assert flag.start == start


def test_out_of_range_limits_are_parameters():
    series = clean()["air_temperature"]
    assert check_range(series, "air_temperature") == []
    assert check_range(series, "air_temperature", limits=(10, 15)) != []


def test_intervals_merge_close_flags_and_split_distant_ones():
    index = pd.date_range(START, periods=20, freq="15min")
    mask = pd.Series(False, index=index)
    mask.iloc[[1, 2, 4, 15]] = True
    assert intervals(mask) == [(index[1], index[4]), (index[15], index[15])]


def test_on_the_simulated_network_rules_spare_clean_sensors_and_catch_the_faults_they_are_for(network):
    labels = network.labels().set_index("sensor_id")
    readings = network.visible_readings(
        list(network.sensors["sensor_id"]), network.start, network.end, network.end
    )
    caught, clean_flagged = {}, []
    for code, own in readings.groupby("sensor_id"):
        flags = check_sensor(own.set_index("ts").drop(columns="sensor_id"))
        if code in labels.index:
            caught[code] = bool(flags)
        elif flags:
            clean_flagged.append((code, flags[0].explanation))
    assert clean_flagged == []
    for kind in ("spike", "out_of_range", "dying_battery", "probe_out_of_soil"):
        codes = labels.index[labels["kind"] == kind]
        assert len(codes) and all(caught[c] for c in codes), kind


def test_the_rules_keep_no_copy_of_the_vocabulary():
    import detection.rules as rules

    for copy in ("UNITS", "NAMES", "PHYSICAL_RANGE", "SPIKE_THRESHOLDS", "BREAKS"):
        assert not hasattr(rules, copy), copy


def test_flags_carry_the_kinds_of_the_vocabulary():
    frame = clean()
    frame.loc[START + pd.Timedelta(days=3) : START + pd.Timedelta(days=3, hours=2), "light"] = 400.0
    flags = check_sensor(frame)
    assert [type(f.kind) for f in flags] == [AnomalyKind]
    assert flags[0].kind is AnomalyKind.OUT_OF_RANGE
    assert "400.0 mol/m²/d" in flags[0].explanation and "outside 0 to 150 mol/m²/d" in flags[0].explanation


def test_the_functions_default_to_the_thresholds_of_the_registry():
    series = clean()["soil_moisture"]
    start, end = window(2, 13)
    series[start:end] = 31.0
    defaults = StuckThresholds()
    assert check_stuck(series, "soil_moisture") == check_stuck(
        series, "soil_moisture", defaults.min_duration, defaults.tolerance
    )
    # Soil moisture's own: a probe never holds exactly 0 %, soil never falls in a jump after a hold, and
    # soil at rest moves off a step at a time.
    assert CHECKS["stuck.soil_moisture"].defaults == replace(
        defaults, impossible=0.0, hidden_fall=1.0, leap_ratio=3.0, air_dry=10.0
    )


def test_a_rule_switched_off_no_longer_flags_its_fault_and_the_other_rules_still_run():
    frame = clean()
    start, end = window(2.5, 30)
    frame.loc[start:end, "soil_moisture"] = 31.0  # stuck
    frame.loc[START + pd.Timedelta(days=5), "air_temperature"] += 20  # a spike
    assert {f.kind for f in check_sensor(frame)} == {"stuck", "spike"}
    assert {f.kind for f in check_sensor(frame, configure("-stuck"))} == {"spike"}
    assert {f.kind for f in check_sensor(frame, configure("-stuck.air_temperature"))} == {"stuck", "spike"}
    assert {f.kind for f in check_sensor(frame, configure("stuck.soil_moisture"))} == {"stuck"}
    assert check_sensor(frame, configure("probe_out_of_soil,saturation")) == []


def test_a_shorter_stuck_duration_flags_a_pause_the_default_leaves_alone():
    frame = clean()
    start, end = window(2, 6)
    frame.loc[start:end, "soil_moisture"] = 25.0
    assert check_sensor(frame) == []
    shorter = configure("all", {"stuck.soil_moisture": {"min_duration": "4h"}})
    assert_one_flag_inside(check_sensor(frame, shorter), "stuck", start, end)


def test_a_lower_spike_threshold_finds_a_smaller_spike():
    frame = clean()
    when = START + pd.Timedelta(days=4, hours=2)
    frame.loc[when, "soil_moisture"] += 7  # under the default 10 %
    assert check_sensor(frame) == []
    lower = configure("all", {"spike.soil_moisture": {"threshold": 5}})
    flag = assert_one_flag_inside(check_sensor(frame, lower), "spike", when, when, slack=pd.Timedelta(0))
    assert flag.score == pytest.approx(7 / 5, rel=0.1)


def test_a_sensor_sampled_every_four_hours_can_be_stuck():
    index = pd.date_range(START, periods=16, freq="4h")
    series = pd.Series(21.5, index=index)  # the same value for 60 hours, sampled sparsely
    assert [f.kind for f in check_stuck(series, "air_temperature")] == ["stuck"]


def test_the_plausible_range_is_the_sensor_models_an_opensensemap_light_reads_full_sun():
    from core.vocabulary import LIGHT_PER_LUX
    from detection.rules import Samples, range_flags

    times = pd.date_range(START, periods=8, freq="15min", tz="UTC")
    sun = 200.0  # full sun: 125,000 lx on a senseBox; no Flower Power reads that
    ids = np.array(["0a1b2c3d", "osem:5ee91626dc1438001b473b52", "osem:5ee92557dc1438001b4d3eee"])
    blinding = 230_000 * LIGHT_PER_LUX + 10  # more than the TSL45315 can read at all
    values = np.concatenate([np.full(8, sun), np.full(8, sun), np.full(8, blinding)])
    ns = np.tile(times.asi8, 3)
    samples = Samples("light", np.repeat(np.arange(3), 8), ns, values, ids, times[:0])
    flagged = {int(sensor): flag for sensor, flag in range_flags(samples, 0.0, 150.0)}
    assert sorted(flagged) == [0, 2]  # the GROW sensor and the impossible reading, not the sunny box
    assert "outside 0 to 150" in flagged[0].explanation
    assert f"outside 0 to {220_000 * LIGHT_PER_LUX:g}" in flagged[2].explanation
