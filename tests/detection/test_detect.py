"""The notebook-friendly `detect`: many sensors in one frame, with or without stations, any sampling."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detection.checks import configure
from detection.detect import ANOMALY_COLUMNS, detect
from tests.factories import HOUR, START, clean, pair


def many(faulty: dict[str, str]) -> pd.DataFrame:
    frames = []
    for i, code in enumerate(["a", "b", "c", "d"]):
        frame = clean(seed=i + 1).rename_axis("ts").reset_index().assign(sensor_id=code)
        if faulty.get(code) == "out_of_range":
            frame.loc[200:260, "soil_moisture"] = 150.0 + np.random.default_rng(5).normal(0, 2, 61)
        if faulty.get(code) == "stuck":
            frame.loc[300:420, "air_temperature"] = 17.25
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.mark.slow
def test_anomalies_of_many_sensors_come_back_in_the_table_columns():
    anomalies = detect(many({"b": "out_of_range", "d": "stuck"}), config=configure("all"))
    assert list(anomalies.columns) == ANOMALY_COLUMNS
    by_rules = anomalies[anomalies["detector"] == "rule"]
    # d's air temperature jumps 8 °C at 03:00 to the value it then sticks at: a break, then stuck.
    assert sorted(set(zip(by_rules["sensor_id"], by_rules["kind"]))) == [
        ("b", "out_of_range"),
        ("d", "break"),
        ("d", "stuck"),
    ]
    # The models see b's jump out of range (a flat day is the stuck rule's business), nothing on a or c.
    by_models = anomalies[anomalies["detector"] == "model"]
    assert ("b", "soil_moisture") in set(zip(by_models["sensor_id"], by_models["variable"]))
    assert set(by_models["sensor_id"]) <= {"b", "d"}
    assert (anomalies["start_at"] >= START).all()
    assert detect(many({}), models=None).empty and detect(many({}), config=configure("all")).empty
    # Unless asked for, the models do not run: they found nothing the rules and stations missed.
    by_default = detect(many({"b": "out_of_range", "d": "stuck"}))
    assert "model" not in set(by_default["detector"])
    assert by_default.to_dict("records") == anomalies[anomalies["detector"] != "model"].to_dict("records")


def test_a_single_sensor_with_times_as_the_index_and_hourly_samples():
    frame = clean(freq="1h")
    frame.loc[frame.index[50:80], "soil_moisture"] = 22.22  # 5 % down from where it was, and held
    anomalies = detect(frame)
    assert anomalies[["sensor_id", "variable", "kind"]].values.tolist() == [
        ["sensor", "soil_moisture", "break"],
        ["sensor", "soil_moisture", "stuck"],
    ]


def test_stations_add_the_reference_check():
    sensor, station = pair()
    sensor[sensor.index >= START + pd.Timedelta(days=6)] = 20 + np.random.default_rng(2).normal(0, 0.2, 384)
    readings = sensor.rename("air_temperature").rename_axis("ts").reset_index().assign(sensor_id="s1")
    stations = station.rename("air_temperature").rename_axis("ts").reset_index().assign(site_id="900123")
    links = pd.DataFrame({"sensor_id": ["s1"], "site_id": ["900123"], "distance_km": [3.2]})
    anomalies = detect(readings, stations, links)
    assert anomalies[["kind", "detector"]].values.tolist() == [["no_daily_cycle", "reference"]]
    assert detect(readings).empty  # without the station the flat sensor looks fine to the rules


class EveryDayUnusual:
    """A stand-in for a trained model (no TensorFlow): every day's error is twice its threshold."""

    threshold = 0.5

    def errors(self, values: np.ndarray) -> np.ndarray:
        return np.full(len(values), 1.0)


def test_each_detector_is_switched_off_by_configuration_and_the_others_still_run():
    sensor, station = pair()
    sensor[sensor.index >= START + pd.Timedelta(days=6)] = 20 + np.random.default_rng(2).normal(0, 0.2, 384)
    readings = sensor.rename("air_temperature").rename_axis("ts").reset_index().assign(sensor_id="s1")
    readings.loc[100:110, "air_temperature"] = 90.0  # out of range too
    stations = station.rename("air_temperature").rename_axis("ts").reset_index().assign(site_id="900123")
    links = pd.DataFrame({"sensor_id": ["s1"], "site_id": ["900123"], "distance_km": [3.2]})
    models = {"air_temperature": EveryDayUnusual()}

    def found(checks: str = "all", thresholds: dict | None = None) -> set[tuple[str, str]]:
        anomalies = detect(readings, stations, links, models, configure(checks, thresholds))
        return set(zip(anomalies["kind"], anomalies["detector"]))

    everything = found()
    assert {("out_of_range", "rule"), ("no_daily_cycle", "reference"), ("unusual_day", "model")} <= everything
    assert found("-temperature") == {found for found in everything if found[1] != "reference"}
    assert found("-range") == {found for found in everything if found[1] != "rule"}
    assert found("-unusual_day") == {found for found in everything if found[1] != "model"}
    assert found("temperature") == {found for found in everything if found[1] == "reference"}
    # The model's days are twice its threshold: asking for three times as much spares them.
    stricter = found(thresholds={"unusual_day.air_temperature": {"min_error_ratio": 3}})
    assert stricter == {found for found in everything if found[1] != "model"}


def test_detection_answers_plain_strings_of_the_vocabulary():
    anomalies = detect(many({"b": "out_of_range"}), models=None)
    assert {type(v) for v in anomalies["kind"]} == {str} and {type(v) for v in anomalies["detector"]} == {str}


def test_naive_timestamps_are_refused_with_a_clear_error():
    frame = clean()
    frame.index = frame.index.tz_localize(None)
    with pytest.raises(ValueError, match="timezone-aware"):
        detect(frame)


def test_detection_chunks_never_split_a_station():
    from etl.detect_anomalies import station_chunks

    site_of = {"a1": "S1", "a2": "S1", "a3": "S1", "b1": "S2", "b2": "S2", "c1": "S3"}
    todo = ["lone", "a1", "a2", "a3", "b1", "b2", "c1"]
    chunks = station_chunks(todo, site_of, budget=3, weight=dict.fromkeys(todo, 1))  # S1 would be split
    assert sorted(sensor for chunk in chunks for sensor in chunk) == sorted(todo)
    for station in ("S1", "S2"):
        holding = [i for i, chunk in enumerate(chunks) if any(site_of.get(s) == station for s in chunk)]
        assert len(holding) == 1, (station, chunks)
    assert all(len(chunk) <= 3 for chunk in chunks)


def test_detection_chunks_are_sized_by_readings_not_sensors():
    from etl.detect_anomalies import station_chunks

    site_of = {"a1": "S1", "a2": "S1", "b1": "S2"}
    readings = {"a1": 4_000, "a2": 4_000, "b1": 9_000, "old": 35_000, "new": 96, "newer": 96}
    chunks = station_chunks(list(readings), site_of, budget=10_000, weight=readings)
    assert sorted(s for chunk in chunks for s in chunk) == sorted(readings)
    assert ["a1", "a2"] in chunks  # a station stays whole
    assert ["old"] in chunks  # a sensor heavier than the budget is checked alone
    assert all(sum(readings[s] for s in chunk) <= 10_000 for chunk in chunks if chunk != ["old"])
    assert any(chunk[-2:] == ["new", "newer"] for chunk in chunks)  # light sensors share a chunk


def test_with_the_models_off_tensorflow_is_not_even_imported():
    script = (
        "import sys\n"
        "from detection.detect import detect\n"
        "from tests.detection.test_detect import many\n"
        "detect(many({'b': 'out_of_range'}))\n"
        "print('tensorflow' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# --- real probes: checks defined in time, stuck judged against the probe's own steps ---------------------


def probe(days: int, freq: str, level: float = 20.0, seed: int = 4) -> pd.DataFrame:
    """A soil probe as real ones report: in 0.1 % steps, drying a little by day and holding still at
    night, one shower on the third day."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(START, periods=int(pd.Timedelta(days=days) / pd.Timedelta(freq)), freq=freq)
    hours = ((index - START) / pd.Timedelta(hours=1)).to_numpy()
    sun = np.clip(np.sin((hours % 24 - 6) / 12 * np.pi), 0, None)
    drying = np.cumsum(sun) * (0.15 / max(sun.sum() / days, 1e-9))  # 0.15 % a day, by day only
    shower = np.where(hours >= 60, 6.0 * np.exp(-(hours - 60) / 48), 0.0)
    soil = level - drying + shower + rng.normal(0, 0.02, len(index))
    return pd.DataFrame({"ts": index, "soil_moisture": np.round(soil, 1)})


def faults(anomalies: pd.DataFrame) -> pd.DataFrame:
    return anomalies[anomalies["detector"] != "condition"]


@pytest.mark.parametrize("freq", ["3min", "15min", "1h"])
def test_a_spike_of_one_sample_is_found_at_any_step(freq):
    frame = probe(14, freq)
    when = START + pd.Timedelta(days=8, hours=10)
    assert faults(detect(frame)).empty
    frame.loc[frame["ts"] == when, "soil_moisture"] = 50.0  # from about 20 % to 50 % and back
    found = faults(detect(frame))
    assert found[["variable", "kind"]].values.tolist() == [["soil_moisture", "spike"]]
    assert found["start_at"].iloc[0] == when


@pytest.mark.parametrize("freq", ["15min", "1h"])
def test_a_dry_season_probe_moving_one_step_a_day_is_not_stuck(freq):
    """TAHMO Atebubu at 10 cm in April 2021: 7.5 % in 0.1 % steps, one step a day, flagged good by ISMN."""
    index = pd.date_range(START, periods=int(pd.Timedelta(days=30) / pd.Timedelta(freq)), freq=freq)
    days = ((index - START) / pd.Timedelta(days=1)).to_numpy()
    soil = np.round(9.0 - 0.1 * np.floor(days + 0.4), 1)  # one 0.1 % step each day, at about 14:00
    frame = pd.DataFrame({"ts": index, "soil_moisture": soil})
    assert faults(detect(frame)).empty


def test_weeks_of_exactly_zero_in_daily_means_are_found():
    """Vale da Lama's Flower Powers: daily means of exactly 0.0 % for days on end."""
    rng = np.random.default_rng(7)
    days = pd.date_range(START + pd.Timedelta(hours=12), periods=90, freq="1D")
    soil = 11 + np.cumsum(rng.normal(0, 0.1, 90))
    soil[40:54] = 0.0  # two weeks at exactly zero, then back
    frame = pd.DataFrame({"ts": days, "soil_moisture": soil})
    found = faults(detect(frame))
    assert not found.empty
    assert (found["start_at"] <= days[41]).any() and (found["end_at"] >= days[52]).any()
    assert set(found["kind"]) <= {"stuck", "probe_out_of_soil"}
    clean_days = frame.assign(soil_moisture=11 + np.cumsum(rng.normal(0, 0.1, 90)))
    assert faults(detect(clean_days)).empty


def test_a_value_held_while_the_station_records_rain_is_stuck():
    frame = probe(20, "1h").assign(sensor_id="s")
    held = (frame["ts"] >= START + pd.Timedelta(days=12)) & (frame["ts"] < START + pd.Timedelta(days=12.75))
    frame.loc[held, "soil_moisture"] = frame.loc[held, "soil_moisture"].iloc[0]  # 18 h, as a night can
    hours = pd.date_range(START, periods=20 * 24, freq="1h")
    night = START + pd.Timedelta(days=12)
    showers = (hours >= night + 2 * HOUR) & (hours < night + 8 * HOUR)
    rain = np.where(showers, 4.0, 0.0)  # 24 mm over six hours of the night it held
    rain[(hours >= START + 57 * HOUR) & (hours < START + 60 * HOUR)] = 5.0  # the probe's shower
    stations = pd.DataFrame({"site_id": "w", "ts": hours, "rainfall": rain, "air_temperature": 15.0})
    links = pd.DataFrame({"sensor_id": ["s"], "site_id": ["w"], "distance_km": [2.0]})
    found = faults(detect(frame, stations=stations, links=links))
    assert found[["variable", "kind"]].values.tolist() == [["soil_moisture", "stuck"]]
    assert "rain" in found["explanation"].iloc[0]
    # The same hold on a dry night is a probe at rest.
    dry = stations.assign(rainfall=np.where(showers, 0.0, rain))
    assert faults(detect(frame, stations=dry, links=links)).empty


def realdata(name: str) -> Path:
    """A folder of the real corpus (REALDATA_DIR, default ../shared/realdata); absent, the test skips,
    except under CI, where it fails."""
    root = Path(os.environ.get("REALDATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "realdata"))
    if not (root / name).is_dir():
        message = f"the real data {root / name} is not here"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root / name


def test_flagits_saturated_plateau_in_frost_is_found_with_its_spike_and_its_value_above_saturation():
    """ISMN's own QC test frame: a January of frozen soil with four injected events. A frozen probe reads
    ice, which reads dry: it does not leap to 45 % and hold it for twenty hours."""
    frame = pd.read_csv(realdata("flagit_test_frame") / "flagit_test_dataframe.csv")
    readings = pd.DataFrame(
        {
            "ts": pd.to_datetime(frame["utc"], utc=True),
            "soil_moisture": frame["soil_moisture"],
            "air_temperature": frame["air_temperature"],
        }
    )
    found = detect(readings)
    assert "frozen_soil" in set(found["kind"])  # the frost is recognised ...
    at = readings["ts"]
    for row, kinds in ((30, {"out_of_range", "spike"}), (70, {"out_of_range"}), (90, {"saturation"})):
        hits = found[(found["start_at"] <= at[row]) & (found["end_at"] >= at[row])]
        assert kinds & set(hits["kind"]), (row, hits[["kind", "explanation"]])


# Each rule's fault at each step a sensor may report in: found there, and the clean probe is not flagged.
# Daily means show what lasts days (a spike of a day, a probe stuck, pulled out or out of range); a break
# or a burst of noise lasts hours.
FAULTS_AT_EVERY_STEP = {
    "spike": ("3min", "15min", "1h", "1D"),
    "noise": ("3min", "15min", "1h"),
    "break": ("3min", "15min", "1h"),
    "stuck": ("3min", "15min", "1h", "1D"),
    "probe_out_of_soil": ("3min", "15min", "1h", "1D"),
    "saturation": ("3min", "15min", "1h"),
    "out_of_range": ("3min", "15min", "1h", "1D"),
}


def daily_means(days: int = 60, seed: int = 3) -> pd.DataFrame:
    """A probe's daily means: a slow random walk about 25 %, never two days alike."""
    index = pd.date_range(START + pd.Timedelta(hours=12), periods=days, freq="1D")
    walk = 25 + np.cumsum(np.random.default_rng(seed).normal(0, 0.3, days))
    return pd.DataFrame({"ts": index, "soil_moisture": walk})


def with_fault(kind: str, freq: str) -> tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]:
    days = 60 if freq == "1D" else 20
    frame = daily_means(days) if freq == "1D" else probe(days, freq, level=25.0)
    ts, soil = frame["ts"], frame["soil_moisture"].to_numpy().copy()
    rng = np.random.default_rng(2)
    start = START + pd.Timedelta(days=days // 2, hours=12 if freq == "1D" else 10)
    length = {"noise": 12, "break": 24 * 30, "stuck": 24 * 4, "saturation": 20}.get(kind, 24 * 5)
    end = start if kind == "spike" else start + pd.Timedelta(hours=length)
    if freq == "1D":
        end = start + pd.Timedelta(days=0 if kind == "spike" else 8)
    inside = ((ts >= start) & (ts <= end)).to_numpy()
    if kind == "spike":
        soil[inside] += 20
    elif kind == "noise":
        soil[inside] += rng.uniform(-6, 6, inside.sum())
    elif kind == "break":
        soil[(ts >= start).to_numpy()] -= 8
    elif kind == "stuck":
        soil[inside] = soil[np.argmax(inside) - 1] + 2  # held as the soil dries and wets below it
    elif kind == "probe_out_of_soil":
        soil[inside] = 0.3
    elif kind == "saturation":
        soil[inside] = 52.0
    elif kind == "out_of_range":
        soil[inside] = 120.0
    return frame.assign(soil_moisture=soil), start, end


@pytest.mark.parametrize(
    ("kind", "freq"), [(kind, freq) for kind, steps in FAULTS_AT_EVERY_STEP.items() for freq in steps]
)
def test_each_rule_finds_its_fault_at_each_step(kind, freq):
    frame, start, end = with_fault(kind, freq)
    step = pd.Timedelta(freq)
    found = faults(detect(frame))
    near = found[(found["start_at"] <= end + step) & (found["end_at"] >= start - step)]
    assert not near.empty, found
    expected = {"noise": "spike"}.get(kind, kind)
    assert expected in set(near["kind"]), near[["kind", "explanation"]]


@pytest.mark.parametrize("freq", ["3min", "15min", "1h", "1D"])
def test_a_clean_probe_is_not_flagged_at_any_step(freq):
    assert faults(detect(daily_means() if freq == "1D" else probe(20, freq, level=25.0))).empty


def held_then(level: float, hold_hours: float, then: np.ndarray, freq: str = "15min") -> pd.DataFrame:
    """Eight days of a probe drying by day and holding by night, then a hold of `hold_hours` at `level`,
    then `then` (one value a sample)."""
    step = pd.Timedelta(freq)
    before = probe(8, freq, level=level + 1.0)
    before["soil_moisture"] = before["soil_moisture"] - before["soil_moisture"].iloc[-1] + level
    held = int(pd.Timedelta(hours=hold_hours) / step)
    values = np.concatenate([before["soil_moisture"].to_numpy(), np.full(held, level), then])
    index = pd.date_range(START, periods=len(values), freq=freq)
    return pd.DataFrame({"ts": index, "soil_moisture": np.round(values, 1)})


def test_a_hold_the_soil_moves_off_gradually_is_at_rest_and_one_that_jumps_away_is_stuck():
    """A winter night at field capacity holds 15 h, then the soil freezes and the reading falls a step
    each quarter hour (the seed-30301 network's false alarms): the probe answered the frost. A probe that
    held while the soil fell, and then jumps to where the soil got in one sample, hid the fall."""
    ramp = 18.0 - 0.2 * np.arange(1, 41)  # 8 % over ten hours, 0.2 % a sample
    assert faults(detect(held_then(18.0, 15, ramp))).empty
    jump = np.full(40, 16.0)  # 2 % down in one sample, and on from there
    found = faults(detect(held_then(18.0, 15, jump)))
    assert found[["variable", "kind"]].values.tolist() == [["soil_moisture", "stuck"]]


def dithering(level: float, days: float, step: float = 0.5, seed: int = 7) -> np.ndarray:
    """A calm soil sitting on the boundary between two of its probe's coarse steps: the reading flicks
    between `level` and a step above every hour or three, 15-minute samples."""
    rng = np.random.default_rng(seed)
    values, upper = [], True
    while len(values) < days * 96:
        values += [level + step * upper] * int(rng.integers(4, 13))
        upper = not upper
    return np.array(values[: int(days * 96)])


def test_a_calm_hold_between_days_of_flicking_across_a_step_is_at_rest_and_one_that_hid_a_fall_is_stuck():
    """Seed 30408's false alarms: a winter probe in 0.5 % steps flicks between 29.5 and 29.0 for a week
    (its soil sits on the boundary), holds 29.0 for 44 h as the soil sits mid-step, and flicks again
    between 29.0 and 28.5. Exact holds on the days around last a few hours, but the soil rested within
    one step all along: nothing was hidden. A probe that held while the soil fell 3 % and came back
    there hid that fall."""
    hold = np.full(44 * 4, 29.0)
    calm = np.concatenate([dithering(29.0, 7), hold, dithering(28.5, 6, seed=8)])
    index = pd.date_range(START, periods=len(calm), freq="15min")
    assert faults(detect(pd.DataFrame({"ts": index, "soil_moisture": calm}))).empty
    fell = np.concatenate([dithering(29.0, 7), hold, dithering(26.0, 6, seed=8)])
    found = faults(detect(pd.DataFrame({"ts": index, "soil_moisture": fell})))
    assert found[["variable", "kind"]].values.tolist() == [["soil_moisture", "stuck"]]


def station(hours: pd.DatetimeIndex, rain: np.ndarray, air: float | np.ndarray = 15.0) -> tuple:
    stations = pd.DataFrame({"site_id": "w", "ts": hours, "rainfall": rain, "air_temperature": air})
    return stations, pd.DataFrame({"sensor_id": ["sensor"], "site_id": ["w"], "distance_km": [2.0]})


def test_a_dry_hold_that_ends_in_a_rise_as_the_rain_comes_is_at_rest_and_one_without_rain_is_stuck():
    """Seed 30403's false alarms: a dry probe in coarse steps holds 40 h, then leaps a step and on as
    a shower reaches the station. A probe at rest answers rain; a stuck one comes back at any time."""
    rise = np.concatenate([[5.5, 7.0, 7.0], np.full(37, 7.5)])  # coarse steps: a ramp comes in leaps
    frame = held_then(5.0, 40, rise)
    hours = pd.date_range(START, frame["ts"].iloc[-1], freq="1h")
    end = frame["ts"].iloc[-41]  # the hold's last sample
    early = np.where((hours >= START + 57 * HOUR) & (hours < START + 60 * HOUR), 5.0, 0.0)  # day 3's
    shower = np.where((hours > end - 2 * HOUR) & (hours <= end + 2 * HOUR), 4.0, 0.0)
    assert faults(detect(frame, *station(hours, early + shower))).empty
    found = faults(detect(frame, *station(hours, early)))
    assert found[["variable", "kind"]].values.tolist() == [["soil_moisture", "stuck"]]


def test_a_hold_of_a_week_that_ends_as_a_shower_comes_is_stuck_whatever_the_shower():
    """Seed 30406's miss: a June probe, drying a step or two a day, held 14.0 % for a week and its fault
    ended as a shower came. A probe at rest answers rain; one that held far longer than it ever rests
    was stuck, and that the rain came as it ended is chance (soil at its air-dry floor aside: it waits
    for rain however long)."""
    rise = np.concatenate([[15.5, 17.0, 17.0], np.full(37, 17.5)])
    frame = held_then(15.0, 7 * 24, rise)
    hours = pd.date_range(START, frame["ts"].iloc[-1], freq="1h")
    end = frame["ts"].iloc[-41]
    early = np.where((hours >= START + 57 * HOUR) & (hours < START + 60 * HOUR), 5.0, 0.0)
    shower = np.where((hours > end - 2 * HOUR) & (hours <= end + 2 * HOUR), 4.0, 0.0)
    found = faults(detect(frame, *station(hours, early + shower)))
    assert found[["variable", "kind"]].values.tolist() == [["soil_moisture", "stuck"]]


def test_a_hold_through_sleet_is_no_hold_through_rain():
    """Seed 30403's false alarms: wet soil holds a night while its station's gauge fills at 1.5 °C, with
    snow and sleet falling (or the snow guessed at the station melting): no witness that the probe should
    have moved. The same gauge's rain on a mild night is."""
    frame = probe(20, "1h").assign(sensor_id="sensor")
    night = START + pd.Timedelta(days=12)
    held = (frame["ts"] >= night) & (frame["ts"] < night + 18 * HOUR)
    frame.loc[held, "soil_moisture"] = frame.loc[held, "soil_moisture"].iloc[0]
    hours = pd.date_range(START, periods=20 * 24, freq="1h")
    showers = (hours >= night + 2 * HOUR) & (hours < night + 8 * HOUR)
    rain = np.where(showers, 4.0, 0.0)  # 24 mm over six hours of the night it held
    rain[(hours >= START + 57 * HOUR) & (hours < START + 60 * HOUR)] = 5.0  # the probe's shower
    cold = np.where((hours >= night - 6 * HOUR) & (hours < night + 18 * HOUR), 1.5, 15.0)
    assert faults(detect(frame, *station(hours, rain, cold))).empty
    found = faults(detect(frame, *station(hours, rain, 8.0)))
    assert found[["variable", "kind"]].values.tolist() == [["soil_moisture", "stuck"]]


def test_soil_dried_to_its_floor_holds_at_rest_while_its_station_stays_dry():
    """Seed 30502's false alarms: a summer probe dries to air-dry, 2.5 %, and holds there for 17 days,
    where on the days before it held at most a few. With a station that saw no rain, nothing should have
    moved it; without one, or with a station that saw a storm, it is stuck."""
    drying = np.round(2.5 + 1.5 * np.exp(-np.arange(8 * 96) / (2 * 96)), 1)  # slower as it dries
    frame = held_then(2.5, 17 * 24, np.full(8, 2.5))
    frame.loc[: len(drying) - 1, "soil_moisture"] = drying
    hours = pd.date_range(START, frame["ts"].iloc[-1], freq="1h")
    assert faults(detect(frame, *station(hours, np.zeros(len(hours))))).empty
    assert faults(detect(frame))["kind"].tolist() == ["stuck"]
    storm_at = START + pd.Timedelta(days=12)
    storm = np.where((hours >= storm_at) & (hours < storm_at + 5 * HOUR), 4.0, 0.0)
    assert faults(detect(frame, *station(hours, storm)))["kind"].tolist() == ["stuck"]


def first_night_then_frost(hold_hours: float, end_step: float) -> pd.DataFrame:
    """A record that opens on a winter morning: 15-minute samples in 0.2 % steps, the soil rising
    18.4 to 21.0 % by 13:00 as a shower soaks in, then holding `hold_hours` at 21.0, then going on from
    21.0 + `end_step` and wetting a step an hour for a day; then nothing for a fortnight (frozen, its
    readings blanked by the frost stand-down), and ten days drying a step every three hours."""
    steps = [18.4] * 32 + list(np.repeat(np.round(np.arange(18.6, 21.01, 0.2), 1), 2))  # to 13:00 (or so)
    held = [21.0] * int(hold_hours * 4)
    after = list(np.repeat(np.round(21.0 + end_step + 0.2 * np.arange(24), 1), 4))
    first = np.array(steps + held + after)
    later = np.round(24.0 - 0.2 * np.arange(80).repeat(12), 1)
    index = pd.date_range(START, periods=len(first), freq="15min")
    thaw = index[-1] + pd.Timedelta(days=14)
    index = index.append(pd.date_range(thaw, periods=len(later), freq="15min"))
    return pd.DataFrame({"ts": index, "soil_moisture": np.concatenate([first, later])})


def test_a_hold_judged_against_a_day_or_two_around_is_judged_as_one_with_none():
    """Seed 30806's false alarms (a network opening on 1 January): on the record's first night a probe
    held 21.0 % for 17 h; the fortnight after lay under frost, its readings blanked, but for the next
    day, when a shower moved the soil every hour or two. Against that one day, 17 h was four times
    the sensor's rest; one day tells what its weather did, not how long the sensor rests, so the hold
    is judged as one with no day around (a night and a day, twice over): at rest. A probe that held
    three days and leapt back to where the soil got is stuck all the same."""
    assert faults(detect(first_night_then_frost(17, end_step=0.2))).empty
    found = faults(detect(first_night_then_frost(72, end_step=3.0)))
    assert found[["variable", "kind"]].values.tolist() == [["soil_moisture", "stuck"]]
