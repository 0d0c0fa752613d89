"""The real corpus's readers (devtools.realdata), the fault catalogue's injections (devtools.faults) and the
scorer of benchmarks/bench_real.py.

The readers and injections are tried on small files and windows written here in each layout; the tests
that read the corpus itself skip with the reason where REALDATA_DIR is absent, and fail under CI.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from benchmarks.bench_real import (
    Case,
    balanced_f1,
    batches,
    flag_events,
    found_by_anomalies,
    found_by_mask,
    grow_groups,
    part_peers,
    slack_of,
    spans_by_sensor,
)
from devtools import faults, realdata
from devtools.faults import CATALOGUE, STEPS, Label, inject, resample, resolution

HEADER = (
    "TAHMO      TAHMO      Atebubu_SHS,_Atebubu 7.74029 -0.97168                 147.0 0.1000 0.1000 TEROS12"
)
TAHMO_NAME = "TAHMO_TAHMO_AtebubuSHS,Atebubu_sm_0.100000_0.100000_TEROS12_20170105_20250105.stm"
CSE_LINE = (
    "{date} {time} {date} {time} COSMOS     COSMOS          ARM-1             36.60540   -97.48780  322.00"
    "    0.00    0.19   {value} {flag} M"
)


def need_realdata() -> None:
    if not realdata.available():
        message = f"the real corpus is not at {realdata.realdata_dir()} (REALDATA_DIR names it)"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run the real-data tests)")
        pytest.skip(message)


# --- reading ISMN files ----------------------------------------------------------------------------------


def test_header_values_layout(tmp_path):
    path = tmp_path / TAHMO_NAME
    path.write_text(
        HEADER
        + "\n2021/04/12 00:00 0.075 G 1\n2021/04/12 01:00 -9999 M M\n2021/04/12 02:00 0.076 D06,D07 1\n"
        "2021/04/12 03:00 0.074 M 1\n"
    )
    ismn = realdata.read_stm(path)
    assert (ismn.network, ismn.station, ismn.variable, ismn.sensor) == (
        "TAHMO",
        "AtebubuSHS,Atebubu",
        "sm",
        "TEROS12",
    )
    assert (ismn.depth_from, ismn.depth_to) == (0.1, 0.1)
    frame = ismn.frame
    assert str(frame["ts"].dt.tz) == "UTC" and frame["ts"].iloc[2] == pd.Timestamp(
        "2021-04-12 02:00", tz="UTC"
    )
    assert frame["value"].isna().tolist() == [False, True, False, True]  # -9999 and flag M are missing
    assert frame["ismn_flag"].tolist()[2] == "D06,D07"

    series = realdata.soil_series_of(ismn, "ismn_tahmo_ammacatch_smps")
    assert series.series_id == "ismn:TAHMO/AtebubuSHS,Atebubu/0.10/TEROS12"
    assert series.frame["soil_moisture"].tolist() == [7.5, 7.6]  # m³/m³ as %, missing left out
    assert series.frame["ismn_flag"].tolist() == ["G", "D06,D07"]


def test_sensor_names_with_spaces_come_from_the_file_name(tmp_path):
    path = tmp_path / "SCAN_SCAN_ManaHouse_sm_0.050800_0.050800_Hydraprobe-Analog-A_19500101_20250617.stm"
    path.write_text(
        "SCAN  SCAN  Mana_House  19.95658 -155.53517  1291.0 0.0508 0.0508 Hydraprobe Analog_A\n"
        "2005/02/19 06:00 0.28 G V\n"
    )
    ismn = realdata.read_stm(path)
    assert (ismn.station, ismn.sensor, ismn.depth_from) == ("ManaHouse", "Hydraprobe-Analog-A", 0.0508)


@pytest.mark.parametrize("separator", ["\n", " "], ids=["a record a line", "all on one line"])
def test_cse_layout(tmp_path, separator):
    records = [
        CSE_LINE.format(date="2017/08/10", time="00:00", value="0.1410", flag="G"),
        CSE_LINE.format(date="2017/08/10", time="01:00", value="0.1390", flag="D03,D05"),
        CSE_LINE.format(date="2017/08/10", time="02:00", value="-9999", flag="M"),
    ]
    path = tmp_path / "ismn_cosmos_arm1.stm"
    path.write_text(separator.join(records) + "\n")
    ismn = realdata.read_stm(path)
    assert (ismn.network, ismn.station, ismn.variable, ismn.depth_from, ismn.depth_to) == (
        "COSMOS",
        "ARM-1",
        "sm",
        0.0,
        0.19,
    )
    assert ismn.frame["ismn_flag"].tolist() == ["G", "D03,D05", "M"]
    assert realdata.soil_series_of(ismn, "x").frame["soil_moisture"].tolist() == [14.1, 13.9]


def test_cr_only_line_endings(tmp_path):
    path = tmp_path / "SOILSCAPE_SOILSCAPE_node414_sm_0.050000_0.050000_EC5_20070101_20131231.stm"
    lines = [
        "SOILSCAPE  SOILSCAPE  node414     38.43003  -120.96750    155.00  0.05   0.05  EC5    ",
        "2012/08/17 15:00    0.1218 U 0    ",
        "2012/08/17 21:00    0.1349 D10 0    ",
    ]
    path.write_bytes("\r".join(lines).encode() + b"\r")
    ismn = realdata.read_stm(path)
    assert (ismn.network, ismn.station, ismn.sensor) == ("SOILSCAPE", "node414", "EC5")
    assert ismn.frame["value"].tolist() == [0.1218, 0.1349]
    assert ismn.frame["ismn_flag"].tolist() == ["U", "D10"]


# --- clean windows -----------------------------------------------------------------------------------


def hourly_series(days: float, start="2021-04-01 07:00", flags=None) -> realdata.SoilSeries:
    ts = pd.date_range(start, periods=int(days * 24), freq="h", tz="UTC")
    values = np.round(20 + 5 * np.sin(np.arange(len(ts)) / 50), 1)
    frame = pd.DataFrame({"ts": ts, "soil_moisture": values, "ismn_flag": flags or ["G"] * len(ts)})
    return realdata.SoilSeries("ismn:T/S/0.10/X", "T", "S", 0.1, 0.1, "X", "test", frame)


def test_clean_windows_are_whole_days_all_good_and_apart():
    series = hourly_series(100)  # from 1 April 07:00
    flags = series.frame["ismn_flag"].copy()
    flags.iloc[24 * 33] = "D06"  # a questionable hour on 4 May
    frame = series.frame.assign(ismn_flag=flags).drop(index=24 * 70)  # a missing one on 10 June
    windows = realdata.clean_windows(replace(series, frame=frame))
    assert [w.start for w in windows] == [
        pd.Timestamp("2021-04-02", tz="UTC"),  # the first midnight
        pd.Timestamp("2021-05-05", tz="UTC"),  # after the questionable hour; none fits after the gap
    ]
    for window in windows:
        assert len(window.frame) == 720 and window.frame["ts"].diff().dropna().eq(pd.Timedelta(hours=1)).all()
        assert window.end - window.start == pd.Timedelta(days=30) - pd.Timedelta(hours=1)
    assert windows[0].window_id == "ismn:T/S/0.10/X@2021-04-02"


# --- resampling and injecting ---------------------------------------------------------------------------


def real_like_window(seed: int = 1) -> pd.DataFrame:
    """30 days hourly in 0.1 % steps: drying, with three wettings by rain."""
    rng = np.random.default_rng(seed)
    hours = np.arange(720)
    values = 25 * np.exp(-hours / 900.0)
    for at in (150, 380, 560):
        values[at:] += 6 * np.exp(-(hours[at:] - at) / 120.0)
    values += rng.normal(0, 0.05, 720)
    ts = pd.date_range("2021-06-01", periods=720, freq="h", tz="UTC")
    return pd.DataFrame({"ts": ts, "soil_moisture": np.round(values, 1)})


def test_resolution_and_resampling():
    window = real_like_window()
    assert resolution(window["soil_moisture"].to_numpy()) == pytest.approx(0.1)
    fine = resample(window, "15min")
    assert len(fine) == 719 * 4 + 1 and fine["ts"].diff().dropna().eq(pd.Timedelta(minutes=15)).all()
    assert np.allclose(fine["soil_moisture"].iloc[::4].to_numpy(), window["soil_moisture"].to_numpy())
    steps = fine["soil_moisture"].to_numpy() / 0.1
    assert np.allclose(steps, np.round(steps))  # still reports in its own steps
    daily = resample(window, "1d")
    assert len(daily) == 30 and (daily["ts"].dt.hour == 12).all()
    assert daily["soil_moisture"].iloc[0] == pytest.approx(window["soil_moisture"].iloc[:24].mean())


@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("kind", list(CATALOGUE))
def test_each_injection_changes_only_its_span(kind, step):
    series = resample(real_like_window(), step)
    injected = inject(series, kind, step, np.random.default_rng(3))
    assert injected is not None
    label = injected.label
    assert (label.kind, label.step) == (kind, step)
    ts, before = series["ts"], series["soil_moisture"].to_numpy()
    after = injected.frame["soil_moisture"].to_numpy()
    changed = np.flatnonzero(np.abs(after - before) > 1e-9)
    inside = ((ts >= label.start) & (ts <= label.end)).to_numpy()
    assert inside[changed].all(), "a sample changed outside the label's span"
    assert len(changed) >= (1 if kind == "spike" else 3), "not visible at its step"
    span = after[inside]
    if kind == "spike":
        assert inside.sum() == 1 and 10 <= abs(label.size) <= 30
    if kind == "stuck":
        assert (span == span[0]).all() and inside.sum() >= (4 if step == "1d" else 3)
        assert label.end - label.start >= (pd.Timedelta(days=3) if step == "1d" else pd.Timedelta(hours=23))
    if kind == "disconnected":
        assert (span >= 0).all() and (span <= 0.5).all()
    if kind == "saturated_plateau":
        assert (
            45 <= label.size <= 60 and np.abs(span - label.size).max() <= 0.2 + 1e-3
        )  # size kept to 3 decimals
    if kind == "out_of_range":
        assert ((span > 100) | (span < 0)).all()
    if kind in ("negative_break", "drift", "loss_of_contact"):
        assert label.end == ts.iloc[-1]
    if kind == "loss_of_contact":
        assert (np.diff(span) <= 1e-9).all()  # never answers a wetting again
    if kind == "negative_break":
        assert (span < before[inside]).all()


def test_a_window_that_cannot_show_a_fault_gives_none():
    wet = real_like_window().assign(soil_moisture=55.0)  # a plateau of 45-60 % would be no jump here
    assert inject(wet, "saturated_plateau", "1h", np.random.default_rng(1)) is None
    dry = real_like_window().assign(soil_moisture=1.0)  # a probe in soil this dry reads about 0 anyway
    assert inject(dry, "disconnected", "1h", np.random.default_rng(1)) is None


def test_the_catalogue_cites_a_source_for_every_kind():
    assert set(faults.INJECTORS) == set(CATALOGUE)
    assert all(kind.source and kind.what for kind in CATALOGUE.values())
    assert set(faults.NEEDS_STATION) == {"drift", "loss_of_contact"}


# --- scoring --------------------------------------------------------------------------------------------


def injected_case(kind="stuck", step="1h") -> Case:
    ts = pd.date_range("2021-06-01", periods=720, freq="h", tz="UTC")
    frame = pd.DataFrame({"ts": ts, "soil_moisture": 20.0})
    label = Label(kind, ts[100], ts[140], step, 40.0)
    return Case("w|stuck|1h", frame, "TAHMO", step, None, label)


def anomalies_at(start, end, sensor="w|stuck|1h") -> pd.DataFrame:
    return pd.DataFrame({"sensor_id": [sensor], "start_at": [start], "end_at": [end]})


def test_an_anomaly_overlapping_the_injected_span_counts_and_one_outside_does_not():
    case = injected_case()
    ts = case.frame["ts"]
    assert found_by_anomalies(case, spans_by_sensor(anomalies_at(ts[130], ts[200])))
    assert found_by_anomalies(case, spans_by_sensor(anomalies_at(ts[141], ts[150])))  # a step's slack
    assert not found_by_anomalies(case, spans_by_sensor(anomalies_at(ts[143], ts[150])))
    assert not found_by_anomalies(case, spans_by_sensor(anomalies_at(ts[130], ts[200], sensor="other")))
    mask = np.zeros(720, dtype=bool)
    assert not found_by_mask(case, mask)
    mask[300] = True
    assert not found_by_mask(case, mask)
    mask[120] = True
    assert found_by_mask(case, mask)


def test_station_kinds_have_a_day_of_slack():
    assert slack_of(injected_case("drift").label) == pd.Timedelta(days=1)
    assert slack_of(injected_case("stuck", "15min").label) == pd.Timedelta(minutes=15)
    assert slack_of(injected_case("stuck", "1d").label) == pd.Timedelta(days=1)


def test_balanced_f1():
    assert balanced_f1(1.0, 0.0) == 1.0
    assert balanced_f1(0.0, 0.0) == 0.0
    assert balanced_f1(0.9, 0.1) == pytest.approx(0.9)


def test_without_peers_part_5_scores_ours_alone(capsys):
    clean = [replace(injected_case(), sensor_id=f"clean{i}", label=None) for i in range(4)]
    injected = [injected_case("stuck", "15min"), injected_case("drift", "15min")]  # drift needs a station
    args = argparse.Namespace(peer_windows=0, seed=7)
    compared = part_peers(
        [], clean, injected, {"flagged_ids": {"clean0"}}, {"found": {"w|stuck|1h": True}}, None, args
    )
    assert compared["ours"] == {
        "false_alarm_rate": 0.25,
        "recall": 1.0,
        "balanced_f1": 0.889,
    }
    assert compared["beats_every_peer"] is None and compared["peers"] == {}
    assert "peers skipped: --peers none" in capsys.readouterr().out


def test_batches_keep_a_call_within_one_year():
    cases = [
        Case(
            str(i),
            pd.DataFrame({"ts": [pd.Timestamp(f"{year}-12-20", tz="UTC")], "soil_moisture": [1.0]}),
            "X",
        )
        for i, year in enumerate([2010, 2011, 2010, 2012])
    ]
    assert [[c.sensor_id for c in batch] for batch in batches(cases)] == [["0", "2"], ["1"], ["3"]]


def test_flag_events_are_runs_of_a_family():
    series = hourly_series(1, flags=["G", "D06", "D06,D07", "G"] + ["C03"] * 2 + ["G"] * 18)
    events = flag_events(series)
    assert events.groupby("family").size().to_dict() == {"C03": 1, "D06": 1, "D07": 1}
    d06 = events[events["family"] == "D06"].iloc[0]
    assert (d06["start"], d06["end"]) == (series.frame["ts"].iloc[1], series.frame["ts"].iloc[2])


def test_grow_groups():
    days = pd.date_range("2019-01-01 12:00", periods=10, freq="D", tz="UTC")
    rows = [("zeros", t, 0.0 if 2 <= i < 5 else 10.0 + i) for i, t in enumerate(days)]
    rows += [("repeat", t, 7.5 if i < 8 else 9.0) for i, t in enumerate(days)]
    rows += [("two_zeros", t, 0.0 if i in (3, 4) else 12.0 + i) for i, t in enumerate(days)]
    rows += [("gap", t, 0.0) for i, t in enumerate(days) if i % 2 == 0]  # zeros, but no two days in a row
    daily = pd.DataFrame(rows, columns=["sensor_id", "ts", "soil_moisture"])
    assert grow_groups(daily) == {"fault": {"zeros"}, "repeat": {"repeat"}, "other": {"two_zeros", "gap"}}


# --- the corpus itself ----------------------------------------------------------------------------------


def corpus_file(pattern: str):
    return next(realdata.realdata_dir().rglob(pattern))


def test_the_corpus_in_each_of_its_layouts():
    need_realdata()
    atebubu = realdata.soil_series_of(
        realdata.read_stm(corpus_file("TAHMO_TAHMO_AtebubuSHS,Atebubu_sm_0.1*.stm")), "tahmo"
    )
    assert atebubu.series_id == "ismn:TAHMO/AtebubuSHS,Atebubu/0.10/TEROS12"
    assert 1 < atebubu.frame["soil_moisture"].median() < 70  # in %, not m³/m³
    windows = realdata.clean_windows(atebubu)
    assert windows and all(len(w.frame) == 720 for w in windows)
    arm = realdata.read_stm(corpus_file("ismn_cosmos_arm1.stm"))  # a CSE record a line
    assert (arm.network, arm.station, arm.depth_to) == ("COSMOS", "ARM-1", 0.19) and len(arm.frame) > 6000
    narbonne = realdata.read_stm(corpus_file("ismn_smosmania_narbonne.stm"))  # all records on one line
    assert narbonne.station == "Narbonne" and "U" in set(narbonne.frame["ismn_flag"])
    node = realdata.read_stm(corpus_file("SOILSCAPE_SOILSCAPE_node414_*.stm"))  # CR-only line endings
    assert node.sensor == "EC5" and "D10" in set(node.frame["ismn_flag"]) and len(node.frame) > 10_000


def test_a_scan_station_beside_its_probes():
    need_realdata()
    rain = realdata.read_stm(corpus_file("SCAN_SCAN_ManaHouse_p_*.stm"))
    air = realdata.read_stm(corpus_file("SCAN_SCAN_ManaHouse_ta_*.stm"))
    assert (rain.variable, air.variable, rain.station) == ("p", "ta", "ManaHouse")
    assert rain.frame["value"].dropna().ge(0).all() and air.frame["value"].dropna().between(-5, 40).all()


def test_vale_da_lama_daily():
    need_realdata()
    daily = realdata.vdl_daily()
    assert daily["sensor_id"].nunique() == 218
    assert (daily["ts"].dt.hour == 12).all() and daily["soil_moisture"].notna().all()
    assert daily.groupby("sensor_id")["ts"].apply(lambda ts: ts.is_unique).all()


def test_flagit_frame_and_its_events():
    need_realdata()
    test = realdata.flagit_frame()
    assert len(test.frame) == 696 and str(test.frame["ts"].dt.tz) == "UTC"
    events = test.events.set_index("kind")
    assert test.frame["soil_moisture"].iloc[30] == -1.0  # the spike
    assert (test.frame["soil_moisture"].iloc[40:60] == 1.0).all()  # the negative break
    assert test.frame["soil_moisture"].iloc[70] == 70.0  # above saturation
    assert (test.frame["soil_moisture"].iloc[80:100] == 45.0).all()  # the plateau
    assert events.loc["saturated_plateau", "start"] == test.frame["ts"].iloc[80]
    assert events.loc["saturated_plateau", "end"] == test.frame["ts"].iloc[99]
