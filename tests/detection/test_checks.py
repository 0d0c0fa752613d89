"""The registry of checks: which run is configuration (DETECT_CHECKS), thresholds are typed and
overridden by name (DETECT_THRESHOLDS); a misspelt check or threshold is an error, never ignored."""

import dataclasses
import re

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from core.db import init_db, make_engine
from core.errors import SettingsError
from core.load import bulk_upsert
from core.schema import anomalies, readings, sensors
from core.vocabulary import IMPORTED, SENSOR_VARIABLES, AnomalyKind, Detector
from detection.checks import (
    CHECKS,
    DEFAULT,
    NOTHING,
    SOAKING,
    WET,
    WINTER,
    Source,
    SpikeThresholds,
    StuckThresholds,
    configure,
    override_thresholds,
    parse_thresholds,
    register,
    select_checks,
)
from detection.detect import detect
from etl.cli import cli
from etl.detect_anomalies import detection_config
from etl.settings import load_settings
from etl.shard import Shard
from etl.step import StepContext
from tests.factories import START, clean

# --- the registry -------------------------------------------------------------------------------------


def test_every_check_names_its_detector_kinds_variable_and_typed_thresholds():
    assert len(CHECKS) >= 17
    for name, check in CHECKS.items():
        assert check.name == name and check.group == name.split(".")[0]
        assert check.kinds and all(kind.detector == check.detector for kind in check.kinds), name
        assert check.variable in SENSOR_VARIABLES, name
        assert dataclasses.is_dataclass(check.defaults) and check.defaults.__dataclass_params__.frozen
    emitted = {kind for check in CHECKS.values() for kind in check.kinds}
    assert emitted == set(AnomalyKind) - IMPORTED  # every kind has a check that can find it, but history


def test_the_checks_of_the_brief_are_registered_under_clear_names():
    for name in (
        "range.air_temperature",
        "spike.soil_moisture",
        "stuck.light",
        "break.air_temperature",
        "probe_out_of_soil",
        "saturation",
        "battery_exhausted",
        "temperature",
        "rising_without_rain",
        "drift",
        "unusual_day.soil_moisture",
    ):
        assert name in CHECKS, name
    assert CHECKS["range.light"].defaults.high == SENSOR_VARIABLES["light"].high
    assert CHECKS["spike.air_temperature"].defaults == SpikeThresholds(threshold=8.0)
    assert CHECKS["stuck.light"].defaults.ignore_below == 0.5
    assert {c.detector for c in CHECKS.values()} == set(Detector)


def test_thresholds_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CHECKS["spike.air_temperature"].defaults.threshold = 1.0


# --- which checks run ------------------------------------------------------------------------------------


def test_all_selects_every_check_and_the_default_all_but_the_models():
    assert select_checks("all") == set(CHECKS)
    assert DEFAULT.selected == {name for name in CHECKS if not name.startswith("unusual_day.")}
    assert not any(DEFAULT.runs(f"unusual_day.{v}") for v in ("soil_moisture", "light", "air_temperature"))
    assert load_settings().detect_checks == "all,-unusual_day"


def test_a_group_is_the_name_before_the_dot():
    assert select_checks("spike") == {"spike.air_temperature", "spike.soil_moisture"}
    assert select_checks(" spike , stuck.light ") == {
        "spike.air_temperature",
        "spike.soil_moisture",
        "stuck.light",
    }
    assert select_checks("drift") == {"drift"}


def test_a_leading_minus_leaves_checks_out():
    assert select_checks("-spike") == set(CHECKS) - {"spike.air_temperature", "spike.soil_moisture"}
    assert select_checks("all,-unusual_day,-stuck.light") == {
        n for n in CHECKS if not n.startswith("unusual_day.") and n != "stuck.light"
    }
    assert select_checks("spike,-spike.soil_moisture") == {"spike.air_temperature"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("spikes", "unknown check or group 'spikes': did you mean 'spike'"),
        ("all,-stuck.lihgt", "unknown check or group 'stuck.lihgt': did you mean 'stuck.light'"),
        ("range,xyz", r"unknown check or group 'xyz' \(groups: range, spike, "),
        ("", "no check named"),
        ("spike,-spike", "selects no check"),
    ],
)
def test_a_bad_selection_is_a_clear_error(spec, message):
    with pytest.raises(ValueError, match=message):
        select_checks(spec)


# --- thresholds --------------------------------------------------------------------------------------------


def test_a_threshold_is_overridden_by_name_and_the_rest_keep_their_defaults():
    changed = override_thresholds("stuck.light", CHECKS["stuck.light"].defaults, {"min_duration": "6h"})
    assert changed == StuckThresholds(min_duration=pd.Timedelta(hours=6), ignore_below=0.5)
    spike = override_thresholds("spike.soil_moisture", SpikeThresholds(10.0), {"threshold": 6})
    assert spike.threshold == 6.0 and isinstance(spike.threshold, float)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"treshold": 6}, "spike.air_temperature has no threshold 'treshold'.*threshold, window"),
        ({"threshold": "high"}, "spike.air_temperature: threshold must be a number"),
        ({"threshold": True}, "spike.air_temperature: threshold must be a number"),
        ({"window": 3}, r"spike.air_temperature: window must be a duration such as '2h'"),
        ({"window": "soon"}, r"spike.air_temperature: window must be a duration"),
        ({"window": "-2h"}, r"spike.air_temperature: window must be a duration"),
    ],
)
def test_an_unknown_threshold_or_a_wrong_value_is_a_clear_error(changes, message):
    with pytest.raises(ValueError, match=message):
        override_thresholds("spike.air_temperature", CHECKS["spike.air_temperature"].defaults, changes)


def test_configure_applies_overrides_to_the_named_check_only():
    config = configure("all", {"spike.air_temperature": {"threshold": 4}})
    assert config.thresholds["spike.air_temperature"].threshold == 4.0
    assert config.thresholds["spike.soil_moisture"] == CHECKS["spike.soil_moisture"].defaults
    with pytest.raises(ValueError, match=r"unknown check 'spike\.air' in the thresholds"):
        configure("all", {"spike.air": {"threshold": 4}})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"spike.air_temperature": {"threshold": 4}', "not valid JSON"),
        ("[1, 2]", "a JSON object"),
        ('{"spike.air_temperature": 4}', "a JSON object"),
    ],
)
def test_bad_threshold_json_is_a_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        parse_thresholds(text)


def test_empty_threshold_json_means_the_defaults():
    assert parse_thresholds("") == {} and parse_thresholds("  ") == {}
    assert parse_thresholds('{"drift": {"min_days": 30}}') == {"drift": {"min_days": 30}}


# --- configuration changes what detection finds ------------------------------------------------------------


def faulty() -> pd.DataFrame:
    """A clean sensor with a spike in its soil moisture and its air temperature out of range."""
    frame = clean()
    frame.loc[START + pd.Timedelta(days=4, hours=2), "soil_moisture"] += 25
    frame.loc[START + pd.Timedelta(days=2) : START + pd.Timedelta(days=2, hours=4), "air_temperature"] = 85.0
    return frame


def kinds(anomalies: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(anomalies["variable"], anomalies["kind"]))


def test_a_check_switched_off_no_longer_flags_its_fault_and_the_others_still_run():
    assert kinds(detect(faulty(), models=None)) == {
        ("soil_moisture", "spike"),
        ("air_temperature", "out_of_range"),
    }
    assert kinds(detect(faulty(), models=None, config=configure("-spike"))) == {
        ("air_temperature", "out_of_range")
    }
    assert kinds(detect(faulty(), models=None, config=configure("spike"))) == {("soil_moisture", "spike")}


def test_a_lower_spike_threshold_finds_a_spike_the_default_misses():
    frame = clean()
    frame.loc[START + pd.Timedelta(days=4, hours=2), "air_temperature"] += 6  # under the default 8 °C
    assert detect(frame, models=None).empty
    lower = configure("all", {"spike.air_temperature": {"threshold": 4}})
    found = detect(frame, models=None, config=lower)
    assert found[["variable", "kind"]].values.tolist() == [["air_temperature", "spike"]]
    assert found["score"].iloc[0] > 1


# --- the settings and the command line ---------------------------------------------------------------------


def test_the_settings_build_the_configuration():
    settings = load_settings(detect_checks="-unusual_day", detect_thresholds='{"drift": {"min_days": 30}}')
    config = detection_config(settings)
    assert not config.runs("unusual_day.light") and config.runs("drift")
    assert config.thresholds["drift"].min_days == 30


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("detect_checks", "spikes", "setting DETECT_CHECKS: unknown check or group 'spikes'"),
        ("detect_thresholds", "{oops", "setting DETECT_THRESHOLDS: not valid JSON"),
        (
            "detect_thresholds",
            '{"drift": {"min_dayz": 3}}',
            "setting DETECT_THRESHOLDS: drift has no threshold",
        ),
        (
            "detect_thresholds",
            '{"drfit": {"min_days": 3}}',
            "setting DETECT_THRESHOLDS: unknown check 'drfit'",
        ),
    ],
)
def test_a_bad_setting_is_a_settings_error_naming_it(field, value, message):
    with pytest.raises(SettingsError, match=re.escape(message)) as raised:
        detection_config(load_settings(**{field: value}))
    assert "\n" not in str(raised.value)


def test_the_checks_command_lists_every_check_with_its_stand_downs_and_its_thresholds_with_their_sources():
    env = {"DETECT_CHECKS": "-spike", "DETECT_THRESHOLDS": '{"stuck.light": {"min_duration": "6h"}}'}
    result = CliRunner().invoke(cli, ["checks"], env=env)
    assert result.exit_code == 0, result.output
    matrix, thresholds = result.output.split("\nThresholds")
    rows = {line.split()[0]: line for line in matrix.splitlines()[2:] if line.split()}
    listed = {line.split(":")[0].strip(): line for line in thresholds.splitlines()[1:]}
    assert set(CHECKS) <= set(rows) and set(CHECKS) == set(listed)
    # The matrix: runs, then frost, snow, watering and soaking.
    assert rows["spike.air_temperature"].split()[-5:] == ["no", ".", ".", ".", "."]
    assert rows["stuck.soil_moisture"].split()[-5:] == ["yes", "x", "x", ".", "."]
    assert rows["drift"].split()[-5:] == ["yes", "x", "x", "x", "x"]
    assert re.search(
        r"reference.*temperature_bias, hot_spot, no_daily_cycle.*air_temperature", rows["temperature"]
    )
    assert f"{len(CHECKS) - 2} of {len(CHECKS)} checks run" in matrix
    # Each value with its source, the overrides applied.
    assert "[e] fitted on real data" in thresholds and "[f] fitted on the simulator" in thresholds
    assert "min_duration=6h[c]" in listed["stuck.light"] and "ignore_below=0.5[a]" in listed["stuck.light"]
    assert "threshold=4[e]" in listed["break.soil_moisture"]


def test_every_check_runs_a_registered_function_and_every_threshold_says_where_it_comes_from():
    for name, check in CHECKS.items():
        assert callable(check.function), name
        sources = check.provenance()
        assert set(sources) == {f.name for f in dataclasses.fields(check.defaults)}, name
        assert all(isinstance(source, Source) for source in sources.values()), (name, sources)
    with pytest.raises(ValueError, match="no check of group 'sharpness'"):
        register("sharpness")


def test_each_check_stands_down_for_the_conditions_it_declares():
    assert CHECKS["range.soil_moisture"].stands_down == NOTHING  # a frozen probe cannot read 200 %
    assert CHECKS["saturation"].stands_down == NOTHING  # ice reads dry: no frozen probe leaps to 45 %
    assert CHECKS["stuck.soil_moisture"].stands_down == WINTER
    assert CHECKS["rising_without_rain"].stands_down == WET and SOAKING in WET


def test_the_checks_command_fails_with_one_line_on_a_bad_setting():
    result = CliRunner().invoke(cli, ["checks"], env={"DETECT_THRESHOLDS": '{"spike": {"threshold": 4}}'})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: setting DETECT_THRESHOLDS: unknown check 'spike' in the thresholds: "
        "did you mean 'spike.air_temperature' or 'spike.soil_moisture'?"
    ]


# --- the detection step ------------------------------------------------------------------------------------


def stored_kinds(engine) -> set[tuple[str, str]]:
    with engine.connect() as connection:
        return set(connection.execute(select(anomalies.c.variable, anomalies.c.kind)).all())


def test_the_detection_step_runs_the_checks_the_settings_select(engine, database_url):
    from etl import detect_anomalies

    with engine.begin() as connection:
        bulk_upsert(connection, sensors, pd.DataFrame({"sensor_id": ["s1"]}))
        bulk_upsert(connection, readings, faulty().rename_axis("ts").reset_index().assign(sensor_id="s1"))
    settings = load_settings(database_url=database_url, detect_checks="-unusual_day,-spike")
    detect_anomalies.run(StepContext(settings, engine, Shard(), START))
    assert stored_kinds(engine) == {("air_temperature", "out_of_range")}


def test_the_detection_step_fails_with_one_line_naming_a_bad_setting(tmp_path):
    from etl.detect_anomalies import main

    database_url = f"sqlite:///{tmp_path / 'bad.sqlite'}"
    init_db(make_engine(load_settings(database_url=database_url)))
    env = {"DATABASE_URL": database_url, "DETECT_CHECKS": "all,-spikes"}
    result = CliRunner().invoke(main, [], env=env)
    assert result.exit_code == 1
    # The log lines (the run's start and failure) come first; the error is the last line.
    assert result.output.strip().splitlines()[-1] == (
        "Error: setting DETECT_CHECKS: unknown check or group 'spikes': did you mean 'spike'?"
    )
