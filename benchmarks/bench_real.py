"""How well detection finds faults on real probes, beside the peers, all scored the same way (issue 30).

Reads the real corpus in REALDATA_DIR (default ../shared/realdata; `devtools.realdata`), never copied here.

1. Clean real windows: every shallow (≤ 10 cm) ISMN series of TAHMO, AMMA-CATCH, SCAN Hawaii and COSMOS cut
   into 30-day windows of 720 hourly samples all flagged G; the share of windows with any fault anomaly
   (conditions such as frozen soil and imported history do not count), per network and per kind, and the
   worst windows with what was said of them.
2. Injected faults: the catalogue of `devtools.faults` (spike, noise burst, stuck, negative break, drift,
   disconnected, saturated plateau, loss of contact, out of range) injected into those windows resampled
   to 3 min, 15 min, 1 h and 1 day, each injection into a different window at a random time with a random
   size; found when a fault anomaly overlaps the injected span (give or take a step; a day for the
   kinds a station must witness). Drift and loss of contact need a station: they go into SCAN Hawaii
   windows whose own station recorded the rain, and are reported apart.
3. ISMN agreement: our fault anomalies on the whole shallow ISMN series against ISMN's own flags D06-D10
   and C01-C03 (an event is a run of samples carrying the flag): recall per flag family, and the share
   of our anomalies that overlap any such event. A D flag means "questionable": reported, not a target.
4. Real GROW: the daily means of Vale da Lama's Flower Power sensors; sensors with ≥ 3 days in a row at
   exactly 0.0 % are faulty, those with ≥ 7 days of one repeated value apart, the rest "others".
5. The peers (benchmarks/peers.py: flagit, ioos_qc, SaQC), given the same series in the same run: a clean
   window is flagged when any sample is; an injection found when a flagged sample lies in its span (the
   same slack). Balanced F1 from the recall on the kinds a sensor alone shows (15 min and hourly, daily
   where the kind survives daily means) and the clean windows' false-alarm rate: P = R / (R + FA). The
   peers take far longer than detect(), so everyone is scored here on `--peer-windows` clean windows drawn
   at random (0: all of them; part 1's rate is always over all).
6. flagit's own test frame: which of its four injected events we find, with its station beside it.

A SCAN Hawaii series whose own station recorded the rain through it is given to `detect()` with that
station (air temperature and rain, 0 km); so are the peers, as columns beside the soil moisture.
Each part prints a table; the run ends with one line of JSON.

    python benchmarks/bench_real.py --injections-per-kind 40 --steps 3min,15min,1h,1d --seed 7 \\
        --peers flagit,ioos_qc,saqc --peer-windows 500
    python benchmarks/bench_real.py --max-windows 300 --injections-per-kind 5 --peers none   # quicker
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness
from core.times import DAY, HOUR, epoch_ns, moment_ns
from core.vocabulary import NOT_FAULTS, Detector
from detection.detect import detect
from devtools import realdata
from devtools.faults import (
    CATALOGUE,
    DAILY_KINDS,
    NEEDS_STATION,
    SENSOR_ALONE,
    STEPS,
    Label,
    inject,
    resample,
)

MAX_ROWS = 1_500_000  # readings in one detect() call: its memory stays within a small machine's
STATION_PAD = pd.Timedelta(days=3)  # station data given either side of a series, for checks that look back
STATION_COVER = 0.9  # share of a window's hours its station must report rain in to stand beside it
FAMILIES = {
    "D06": "spike",
    "D07": "negative jump",
    "D08": "positive jump",
    "D09": "low constant",
    "D10": "saturated plateau",
    "C01": "below 0",
    "C02": "above 0.6 m³/m³",
    "C03": "above saturation",
}
EVENT_COLUMNS = ["sensor_id", "family", "start", "end"]
NOT_FAULT_KINDS = frozenset(str(kind) for kind in NOT_FAULTS)
F1_STEPS = ("15min", "1h", "1d")  # the steps the balanced F1 takes recall from


@dataclass(frozen=True)
class Case:
    """One series given to detect() and to the peers: ts (UTC), soil_moisture (%) at its step; the
    station it stands beside, if any; what was injected into it, if anything."""

    sensor_id: str
    frame: pd.DataFrame
    network: str
    step: str = "1h"
    site_id: str | None = None
    label: Label | None = None


# --- running detect() on many series at once ---------------------------------------------------------------


def batches(cases: Sequence[Case], max_rows: int = MAX_ROWS) -> Iterator[list[Case]]:
    """The cases in groups for one detect() call each: by the year they start in (the station checks
    lay their stations' hours out on one grid from the first to the last, so a call spanning twenty
    years of stations costs twenty times one spanning one), then by at most `max_rows` readings."""
    by_year: dict[int, list[Case]] = defaultdict(list)
    for case in cases:
        by_year[case.frame["ts"].iloc[0].year].append(case)
    for year in sorted(by_year):
        batch, rows = [], 0
        for case in by_year[year]:
            if batch and rows + len(case.frame) > max_rows:
                yield batch
                batch, rows = [], 0
            batch.append(case)
            rows += len(case.frame)
        if batch:
            yield batch


def detect_batch(batch: Sequence[Case], stations: pd.DataFrame | None) -> pd.DataFrame:
    """detect() on one batch: every case its own sensor; those beside a station linked to it at 0 km, with
    the station's data over their span."""
    readings = pd.concat(
        [case.frame[["ts", "soil_moisture"]].assign(sensor_id=case.sensor_id) for case in batch],
        ignore_index=True,
    )
    links = pd.DataFrame(
        [(case.sensor_id, case.site_id, 0.0) for case in batch if case.site_id],
        columns=["sensor_id", "site_id", "distance_km"],
    )
    if links.empty or stations is None:
        return detect(readings)
    first, last = readings["ts"].min() - STATION_PAD, readings["ts"].max() + STATION_PAD
    near = stations[stations["site_id"].isin(set(links["site_id"])) & stations["ts"].between(first, last)]
    return detect(readings, stations=near.reset_index(drop=True), links=links)


def detect_cases(cases: Sequence[Case], stations: pd.DataFrame | None) -> pd.DataFrame:
    """Every anomaly detect() finds in the cases, batched."""
    found = [detect_batch(batch, stations) for batch in batches(cases)]
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame()


def fault_anomalies(anomalies: pd.DataFrame) -> pd.DataFrame:
    """The anomalies that say a sensor is faulty: not a condition of the garden, not imported history."""
    if anomalies.empty:
        return anomalies
    keep = (anomalies["detector"] != Detector.CONDITION.value) & ~anomalies["kind"].isin(NOT_FAULT_KINDS)
    return anomalies[keep].reset_index(drop=True)


# --- scoring, the same for us and the peers ----------------------------------------------------------


def slack_of(label: Label) -> pd.Timedelta:
    """How far from the injected span a finding may lie and still count: one step; a day for the kinds
    only a station can witness, whose checks judge whole days."""
    step = STEPS[label.step]
    return max(step, DAY) if label.kind in NEEDS_STATION else step


def spans_by_sensor(anomalies: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """sensor_id → (start_at, end_at) of its anomalies, as arrays of times."""
    if anomalies.empty:
        return {}
    return {
        str(sensor): (
            epoch_ns(group["start_at"]),
            epoch_ns(group["end_at"]),
        )
        for sensor, group in anomalies.groupby("sensor_id", observed=True)
    }


def overlaps(spans: tuple[np.ndarray, np.ndarray] | None, start, end, slack: pd.Timedelta) -> bool:
    """Whether any of a sensor's anomaly spans meets [start - slack, end + slack]."""
    if spans is None:
        return False
    starts, ends = spans
    return bool(np.any((starts <= moment_ns(end + slack)) & (ends >= moment_ns(start - slack))))


def found_by_anomalies(case: Case, spans: dict[str, tuple[np.ndarray, np.ndarray]]) -> bool:
    """Ours: a fault anomaly of the case's sensor overlaps its injected span."""
    label = case.label
    return overlaps(spans.get(case.sensor_id), label.start, label.end, slack_of(label))


def found_by_mask(case: Case, mask: np.ndarray) -> bool:
    """A peer's: a sample it flagged lies in the case's injected span."""
    label, slack = case.label, slack_of(case.label)
    ts = case.frame["ts"]
    inside = ((ts >= label.start - slack) & (ts <= label.end + slack)).to_numpy()
    return bool(np.any(np.asarray(mask, dtype=bool) & inside))


def balanced_f1(recall: float, false_alarm_rate: float) -> float:
    """F1 of a recall and a precision that balances it against the clean windows' false alarms:
    P = R / (R + FA), as if faulty and clean windows came in equal numbers."""
    if recall + false_alarm_rate == 0:
        return 0.0
    precision = recall / (recall + false_alarm_rate)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


# --- the windows ---------------------------------------------------------------------------------------


def station_beside(window: realdata.Window, stations: pd.DataFrame) -> str | None:
    """The site of the window's own station, if it recorded the rain through the window."""
    if window.collection != realdata.SCAN_HAWAII or stations.empty:
        return None
    site = realdata.site_id_of(window.station)
    rows = stations[(stations["site_id"] == site) & stations["ts"].between(window.start, window.end)]
    covered = rows["rainfall"].notna().sum() >= STATION_COVER * len(window.frame)
    return site if covered else None


def clean_cases(
    series: Sequence[realdata.SoilSeries], stations: pd.DataFrame, max_windows: int | None, seed: int
) -> list[Case]:
    """Every clean 30-day window of the series as a case (at most `max_windows`, drawn at random)."""
    windows = [window for one in series for window in realdata.clean_windows(one)]
    if max_windows and len(windows) > max_windows:
        chosen = np.sort(np.random.default_rng(seed).choice(len(windows), max_windows, replace=False))
        windows = [windows[i] for i in chosen]
    return [Case(w.window_id, w.frame, w.network, "1h", station_beside(w, stations)) for w in windows]


def injected_cases(clean: Sequence[Case], step: str, per_kind: int, seed: int) -> list[Case]:
    """`per_kind` injections of every kind into the clean cases resampled to `step`, each into a window
    no other injection at this step uses; the kinds a station must witness only where one stands."""
    rng = np.random.default_rng([seed, list(STEPS).index(step)])
    order = [clean[i] for i in rng.permutation(len(clean))]
    used: set[str] = set()
    cases = []
    # The station kinds first: their windows are few, the others may take any.
    for kind in sorted(CATALOGUE, key=lambda name: name not in NEEDS_STATION):
        done = 0
        for window in order:
            if done == per_kind:
                break
            if window.sensor_id in used or (kind in NEEDS_STATION and not window.site_id):
                continue
            injected = inject(resample(window.frame, step), kind, step, rng)
            if injected is None:
                continue
            used.add(window.sensor_id)
            cases.append(
                Case(
                    f"{window.sensor_id}|{kind}|{step}",
                    injected.frame,
                    window.network,
                    step,
                    window.site_id,
                    injected.label,
                )
            )
            done += 1
    return cases


def year_cases(series: Sequence[realdata.SoilSeries], stations: pd.DataFrame) -> list[Case]:
    """Whole series cut into calendar years (so that each detect() call spans one year of stations);
    SCAN Hawaii's beside their station where it recorded weather."""
    sites = set(stations["site_id"])
    cases = []
    for one in series:
        site = realdata.site_id_of(one.station) if one.collection == realdata.SCAN_HAWAII else None
        site = site if site in sites else None
        for _, part in one.frame.groupby(one.frame["ts"].dt.year):
            frame = part[["ts", "soil_moisture"]].reset_index(drop=True)
            cases.append(Case(one.series_id, frame, one.network, "1h", site))
    return cases


# --- part 1: clean windows ------------------------------------------------------------------------------


def clean_report(cases: Sequence[Case], faults: pd.DataFrame) -> dict:
    """Per window whether it was flagged; per network the rate and the kinds that fired; the worst."""
    by_sensor = {str(s): g for s, g in faults.groupby("sensor_id", observed=True)} if len(faults) else {}
    networks: dict[str, Counter] = defaultdict(Counter)
    for case in cases:
        found = by_sensor.get(case.sensor_id)
        networks[case.network]["windows"] += 1
        if found is not None:
            networks[case.network]["flagged"] += 1
            for kind in set(found["kind"]):
                networks[case.network][f"kind:{kind}"] += 1
    flagged = sum(counts["flagged"] for counts in networks.values())
    return {
        "windows": len(cases),
        "flagged": flagged,
        "flagged_ids": {case.sensor_id for case in cases if case.sensor_id in by_sensor},
        "rate": flagged / len(cases) if cases else 0.0,
        "networks": networks,
        "kinds": kinds_said(faults),
        "worst": worst_windows(cases, by_sensor),
    }


def kinds_said(faults: pd.DataFrame) -> dict[str, dict]:
    """Per kind that fired: its anomalies, the windows they fell in, and a typical explanation (that of
    its anomaly of median length)."""
    said = {}
    for kind, group in faults.groupby("kind"):
        lengths = (group["end_at"] - group["start_at"]).sort_values()
        typical = group.loc[lengths.index[len(lengths) // 2], "explanation"]
        said[str(kind)] = {
            "anomalies": len(group),
            "windows": group["sensor_id"].nunique(),
            "typical": typical,
        }
    return dict(sorted(said.items(), key=lambda item: -item[1]["windows"]))


def worst_windows(cases: Sequence[Case], by_sensor: dict[str, pd.DataFrame], most: int = 8) -> list[dict]:
    """The windows with the most fault anomalies (then the longest), each with its longest anomaly."""
    start_of = {case.sensor_id: case.frame["ts"].iloc[0] for case in cases}
    ranked = sorted(
        by_sensor.items(),
        key=lambda item: (len(item[1]), (item[1]["end_at"] - item[1]["start_at"]).sum()),
        reverse=True,
    )
    worst = []
    for sensor, found in ranked[:most]:
        longest = found.loc[(found["end_at"] - found["start_at"]).idxmax()]
        worst.append(
            {
                "window": sensor,
                "from": f"{start_of[sensor]:%Y-%m-%d}",
                "anomalies": len(found),
                "kind": longest["kind"],
                "at": f"{longest['start_at']:%Y-%m-%d %H:%M}",
                "explanation": longest["explanation"],
            }
        )
    return worst


def print_clean(report: dict) -> None:
    print(f"\n1. Clean real windows (30 days, 720 hourly samples all flagged G): {report['windows']} windows")
    kinds = sorted(
        {key[5:] for counts in report["networks"].values() for key in counts if key.startswith("kind:")}
    )
    rows = []
    for network, counts in sorted(report["networks"].items()):
        rate = counts["flagged"] / counts["windows"]
        cells = (counts[f"kind:{kind}"] for kind in kinds)
        rows.append((network, counts["windows"], counts["flagged"], rate, *cells))
    rows.append(("all", report["windows"], report["flagged"], report["rate"]))
    columns = {"network": "<12", "windows": ">8", "flagged": ">8", "rate": ">7.3f"}
    harness.table(rows, columns | {kind: ">14" for kind in kinds})
    print("(kind columns: windows in which that kind fired)")
    for kind, row in report["kinds"].items():
        print(f'  {kind}: {row["anomalies"]} anomalies in {row["windows"]} windows, e.g. "{row["typical"]}"')
    if report["worst"]:
        print("worst windows:")
        for row in report["worst"]:
            print(
                f"  {row['window']}  {row['anomalies']} anomalies; {row['kind']} at {row['at']}: "
                f"{row['explanation']}"
            )


# --- part 2: injected faults ------------------------------------------------------------------------------


def injected_report(cases: Sequence[Case], faults: pd.DataFrame) -> dict:
    """Per step and kind: injections, found, recall; per step the share of injected windows with a fault
    anomaly away from the injected span (false alarms on the rest of the window)."""
    spans = spans_by_sensor(faults)
    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    elsewhere: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    found_of = {}
    for case in cases:
        found = found_by_anomalies(case, spans)
        found_of[case.sensor_id] = found
        cell = counts[case.step][case.label.kind]
        cell[0] += 1
        cell[1] += found
        elsewhere[case.step][0] += 1
        elsewhere[case.step][1] += _alarm_away(spans.get(case.sensor_id), case)
    recall = {
        step: {kind: round(kinds[kind][1] / kinds[kind][0], 3) for kind in CATALOGUE if kinds[kind][0]}
        for step, kinds in counts.items()
    }
    return {
        "counts": counts,
        "recall": recall,
        "found": found_of,
        "alarm_away": {step: round(hit / total, 3) for step, (total, hit) in elsewhere.items() if total},
    }


def _alarm_away(spans, case: Case) -> bool:
    """Whether a fault anomaly lies wholly outside the injected span (and its slack)."""
    if spans is None:
        return False
    starts, ends = spans
    label, slack = case.label, slack_of(case.label)
    return bool(np.any((starts > moment_ns(label.end + slack)) | (ends < moment_ns(label.start - slack))))


def min_recall(recall: dict, step: str, kinds: Sequence[str]) -> float | None:
    values = [recall.get(step, {}).get(kind) for kind in kinds]
    values = [v for v in values if v is not None]
    return min(values) if values else None


def print_injected(report: dict, steps: Sequence[str]) -> None:
    print("\n2. Injected faults: recall per kind and step (found / injected)")
    rows = []
    for kind in CATALOGUE:
        cells = []
        for step in steps:
            total, hit = report["counts"].get(step, {}).get(kind, [0, 0])
            cells.append(f"{hit:>4}/{total:<3} {hit / total:>4.2f}" if total else "-")
        rows.append((kind, *cells, " (station)" if kind in NEEDS_STATION else ""))
    away = report["alarm_away"]
    rows.append(("alarm elsewhere", *(away.get(step, float("nan")) for step in steps)))
    harness.table(rows, {"kind": "<18"} | {step: ">12.3f" for step in steps})
    print("(alarm elsewhere: share of injected windows with a fault anomaly away from the injected span)")


# --- part 3: ISMN agreement --------------------------------------------------------------------------------


def flag_events(series: realdata.SoilSeries) -> pd.DataFrame:
    """ISMN's flag events of one series: family, start, end of every run of consecutive samples whose flag
    holds that family (a sample flagged "D06,D07" is in both)."""
    flags = series.frame["ismn_flag"].astype(str)
    ts = series.frame["ts"]
    rows = []
    for family in FAMILIES:
        has = flags.str.contains(family, regex=False).to_numpy()
        if not has.any():
            continue
        edges = np.diff(np.concatenate([[0], has.astype(np.int8), [0]]))
        for first, after in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            rows.append((series.series_id, family, ts.iloc[first], ts.iloc[after - 1]))
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def agreement(events: pd.DataFrame, faults: pd.DataFrame, slack: pd.Timedelta = HOUR) -> dict:
    """Per family: events and the share of them one of our fault anomalies overlaps; and the share of our
    fault anomalies that overlap any event (give or take `slack`)."""
    ours = spans_by_sensor(faults)
    theirs = spans_by_sensor(events.rename(columns={"start": "start_at", "end": "end_at"}))
    families = {}
    for family, group in events.groupby("family"):
        hit = sum(overlaps(ours.get(row.sensor_id), row.start, row.end, slack) for row in group.itertuples())
        families[family] = {"events": len(group), "found": hit, "recall": round(hit / len(group), 3)}
    matched = sum(
        overlaps(theirs.get(str(row.sensor_id)), row.start_at, row.end_at, slack)
        for row in faults.itertuples()
    )
    return {
        "families": families,
        "ours": len(faults),
        "ours_on_an_event": matched,
        "precision": round(matched / len(faults), 3) if len(faults) else None,
    }


def print_agreement(report: dict, series_count: int, seconds: float) -> None:
    print(
        f"\n3. ISMN agreement: {series_count} whole shallow series, {report['ours']} fault anomalies of ours"
    )
    families = report["families"]
    harness.table(
        [
            (family, meaning, row["events"], row["found"], row["recall"])
            if (row := families.get(family))
            else (family, meaning, 0, "-", "-")
            for family, meaning in FAMILIES.items()
        ],
        {"flag": "<5", "meaning": "<18", "events": ">7", "found": ">6", "recall": ">7.3f"},
    )
    print(
        f"precision: {report['ours_on_an_event']} of our {report['ours']} fault anomalies overlap a "
        f"D06-D10 or C01-C03 event ({report['precision']}); detect() took {seconds:.0f} s"
    )


# --- part 4: real GROW, daily -----------------------------------------------------------------------------


def equal_runs(daily: pd.DataFrame) -> pd.DataFrame:
    """Every run of consecutive days (each present) at one exactly repeated value: sensor_id, value, days."""
    daily = daily.sort_values(["sensor_id", "ts"])
    sensor = daily["sensor_id"].astype(str).to_numpy()
    value = daily["soil_moisture"].to_numpy()
    next_day = np.diff(daily["ts"].to_numpy()) == np.timedelta64(1, "D")
    continues = np.concatenate([[False], (sensor[1:] == sensor[:-1]) & next_day & (value[1:] == value[:-1])])
    runs = pd.DataFrame({"sensor_id": sensor, "run": np.cumsum(~continues), "value": value})
    return (
        runs.groupby(["sensor_id", "run"]).agg(value=("value", "first"), days=("value", "size")).reset_index()
    )


def grow_groups(daily: pd.DataFrame) -> dict[str, set[str]]:
    """Vale da Lama's sensors by what their own data shows: "fault" (≥ 3 days in a row at exactly 0.0 %),
    "repeat" (else ≥ 7 days of one repeated non-zero value), "other"."""
    runs = equal_runs(daily)
    everyone = set(daily["sensor_id"].astype(str))
    fault = set(runs.loc[(runs["value"] == 0.0) & (runs["days"] >= 3), "sensor_id"])
    repeat = set(runs.loc[(runs["value"] != 0.0) & (runs["days"] >= 7), "sensor_id"]) - fault
    return {"fault": fault, "repeat": repeat, "other": everyone - fault - repeat}


def grow_report(daily: pd.DataFrame, faults: pd.DataFrame) -> dict:
    groups = grow_groups(daily)
    flagged = set(faults["sensor_id"].astype(str)) if len(faults) else set()
    zeros = daily[daily["soil_moisture"] == 0.0].groupby("sensor_id").size()
    runs = equal_runs(daily)
    runs = runs[runs["value"] == 0.0]
    kinds = Counter(faults["kind"]) if len(faults) else Counter()
    return {
        "groups": {name: len(members) for name, members in groups.items()},
        "found": {
            name: round(len(members & flagged) / len(members), 3) if members else None
            for name, members in groups.items()
        },
        "sensors": int(daily["sensor_id"].nunique()),
        "sensors_with_zero_days": len(zeros),
        "median_zero_days": float(zeros.median()) if len(zeros) else 0.0,
        "zero_runs_of_a_week": int((runs["days"] >= 7).sum()),
        "kinds": dict(kinds),
    }


def print_grow(report: dict) -> None:
    print(
        f"\n4. Real GROW, Vale da Lama daily means: {report['sensors']} sensors; "
        f"{report['sensors_with_zero_days']} with days at exactly 0.0 % "
        f"(median {report['median_zero_days']:.1f} such days), "
        f"{report['zero_runs_of_a_week']} runs of 0.0 % lasting a week or more"
    )
    meaning = {
        "fault": "fault: ≥ 3 days in a row at exactly 0.0 %",
        "repeat": "repeat: ≥ 7 days of one repeated value",
        "other": "other",
    }
    harness.table(
        [
            (
                meaning[name],
                report["groups"][name],
                "-" if report["found"][name] is None else report["found"][name],
            )
            for name in ("fault", "repeat", "other")
        ],
        {"group": "<44", "sensors": ">8", "flagged": ">8.3f"},
    )
    print(f"kinds found: {report['kinds']}")


# --- part 5: the peers ------------------------------------------------------------------------------------


def weather_beside(case: Case, stations: pd.DataFrame) -> pd.DataFrame:
    """The case's frame with its station's air temperature and rain at its samples, for the peers that
    use them: hourly values at the hour of each finer sample (rain shared among them), daily means and
    sums at a daily step. The frame as it is without a station."""
    frame = case.frame[["ts", "soil_moisture"]]
    if not case.site_id:
        return frame
    rows = stations[stations["site_id"] == case.site_id].set_index("ts")
    step = STEPS[case.step]
    if step >= DAY:
        days = rows.index.floor("D") + pd.Timedelta(hours=12)
        air = rows["air_temperature"].groupby(days).mean()
        rain = rows["rainfall"].groupby(days).sum(min_count=1)
        at = frame["ts"]
        return frame.assign(
            air_temperature=air.reindex(at).to_numpy(), precipitation=rain.reindex(at).to_numpy()
        )
    hours = frame["ts"].dt.floor("h")
    share = step / HOUR
    return frame.assign(
        air_temperature=rows["air_temperature"].reindex(hours).to_numpy(),
        precipitation=rows["rainfall"].reindex(hours).to_numpy() * share,
    )


def f1_cases(injected: Sequence[Case]) -> list[Case]:
    """The injections the balanced F1 takes its recall from: the kinds a sensor alone shows at 15 min and
    hourly, and those daily means still show at a daily step."""
    return [
        case
        for case in injected
        if case.label.kind in SENSOR_ALONE
        and case.step in F1_STEPS
        and (case.step != "1d" or case.label.kind in DAILY_KINDS)
    ]


def score_peer(masks_clean: Sequence[np.ndarray], injected: Sequence[Case], masks_injected) -> dict:
    false_alarm = float(np.mean([np.asarray(m).any() for m in masks_clean])) if masks_clean else 0.0
    found = [found_by_mask(case, mask) for case, mask in zip(injected, masks_injected)]
    recall = float(np.mean(found)) if found else 0.0
    return {
        "false_alarm_rate": round(false_alarm, 3),
        "recall": round(recall, 3),
        "balanced_f1": round(balanced_f1(recall, false_alarm), 3),
    }


def run_peers(
    names: Sequence[str], clean: Sequence[Case], injected: Sequence[Case], stations: pd.DataFrame
) -> dict[str, dict]:
    """Each peer's figures on the clean windows and the F1 injections, or the reason it could not run."""
    try:
        from benchmarks import peers  # written beside this benchmark; loaded only when peers are asked for
    except ImportError as error:
        return {name: {"error": f"benchmarks/peers.py cannot be imported: {error}"} for name in names}
    clean_frames = [weather_beside(case, stations) for case in clean]
    injected_frames = [weather_beside(case, stations) for case in injected]
    results = {}
    for name in names:
        started = time.perf_counter()
        try:
            masks = peers.flag_series(name, clean_frames + injected_frames)
        except Exception as error:  # a peer that fails is reported, and the others still run
            results[name] = {"error": str(error).splitlines()[0][:300]}
            continue
        results[name] = score_peer(masks[: len(clean)], injected, masks[len(clean) :])
        results[name]["seconds"] = round(time.perf_counter() - started, 1)
    return results


def print_peers(
    ours: dict, results: dict[str, dict], skipped: str | None, windows: int, injections: int
) -> None:
    print(
        f"\n5. Peers: same series, same scorer: false alarms on {windows} clean windows, recall on "
        f"{injections} injections of the kinds a sensor alone shows (15 min, 1 h; daily: stuck, "
        "disconnected, out of range)"
    )
    rows = [("ours", ours["false_alarm_rate"], ours["recall"], ours["balanced_f1"])]
    if skipped:
        rows.append(f"(peers skipped: {skipped})")
    for name, row in results.items():
        if "error" in row:
            rows.append(f"{name:<10} failed: {row['error']}")
        else:
            scores = (row["false_alarm_rate"], row["recall"], row["balanced_f1"])
            rows.append((name, *scores, f"  ({row['seconds']:.0f} s)"))
    harness.table(
        rows, {"detector": "<10", "false alarms": ">13.3f", "recall": ">8.3f", "balanced F1": ">12.3f"}
    )


# --- part 6: flagit's test frame ------------------------------------------------------------------------


def flagit_report() -> dict:
    """Which of flagit's four injected events our fault anomalies overlap (an hour's slack), with its
    air temperature and rain given as the probe's station."""
    test = realdata.flagit_frame()
    frame = test.frame
    readings = frame[["ts", "soil_moisture"]].assign(sensor_id="flagit")
    station = frame[["ts"]].assign(
        site_id="flagit-station", air_temperature=frame["air_temperature"], rainfall=frame["precipitation"]
    )
    links = pd.DataFrame({"sensor_id": ["flagit"], "site_id": ["flagit-station"], "distance_km": [0.0]})
    anomalies = detect(readings, stations=station, links=links)
    spans = spans_by_sensor(fault_anomalies(anomalies))
    found = {
        row.kind: overlaps(spans.get("flagit"), row.start, row.end, HOUR) for row in test.events.itertuples()
    }
    conditions = anomalies[anomalies["detector"] == Detector.CONDITION.value]
    return {"found": found, "conditions": sorted(set(conditions["kind"])), "anomalies": anomalies}


def print_flagit(report: dict) -> None:
    found = report["found"]
    print(f"\n6. flagit's test frame: {sum(found.values())} of its {len(found)} injected events found")
    for kind, hit in found.items():
        print(f"  {kind:<18} {'found' if hit else 'missed'}")
    faults = fault_anomalies(report["anomalies"])
    for row in faults.itertuples():
        print(f"  ours: {row.kind} {row.start_at:%m-%d %H:%M}..{row.end_at:%m-%d %H:%M}: {row.explanation}")
    if report["conditions"]:
        print(f"  conditions: {', '.join(report['conditions'])}")


# --- the run --------------------------------------------------------------------------------------------


def parse_steps(text: str) -> list[str]:
    steps = [step.strip() for step in text.split(",") if step.strip()]
    unknown = [step for step in steps if step not in STEPS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown step {', '.join(unknown)}: use {', '.join(STEPS)}")
    return steps


def parse_peers(text: str) -> list[str]:
    return (
        [] if text.strip().lower() == "none" else [name.strip() for name in text.split(",") if name.strip()]
    )


def arguments() -> argparse.Namespace:
    parser = harness.options(
        __doc__,
        database=False,
        max_windows=(0, "clean windows at most (0: all)"),
        injections_per_kind=(40, "injections of each kind at each step"),
        seed=7,
        max_series=(0, "whole ISMN series in part 3 at most (0: all)"),
        peer_windows=(500, "clean windows part 5 scores on (0: all of them)"),
    )
    parser.add_argument(
        "--steps", type=parse_steps, default=list(STEPS), help="steps to inject at: 3min,15min,1h,1d"
    )
    parser.add_argument(
        "--peers", type=parse_peers, default=["flagit", "ioos_qc", "saqc"], help="peers to run, or none"
    )
    return parser.parse_args()


def part_clean(clean: Sequence[Case], stations: pd.DataFrame) -> dict:
    started = time.perf_counter()
    report = clean_report(clean, fault_anomalies(detect_cases(clean, stations)))
    print_clean(report)
    print(f"(detect() on the clean windows: {time.perf_counter() - started:.0f} s)")
    return report


def part_injected(clean: Sequence[Case], stations: pd.DataFrame, args) -> tuple[list[Case], dict]:
    started = time.perf_counter()
    injected = [
        case
        for step in args.steps
        for case in injected_cases(clean, step, args.injections_per_kind, args.seed)
    ]
    report = injected_report(injected, fault_anomalies(detect_cases(injected, stations)))
    print_injected(report, args.steps)
    print(f"({len(injected)} injected series; {time.perf_counter() - started:.0f} s)")
    return injected, report


def part_agreement(series: Sequence[realdata.SoilSeries], stations: pd.DataFrame) -> dict:
    started = time.perf_counter()
    events = [flag_events(one) for one in series]
    events = (
        pd.concat(events, ignore_index=True) if events else flag_events(realdata.SoilSeries(*[""] * 7, None))
    )
    report = agreement(events, fault_anomalies(detect_cases(year_cases(series, stations), stations)))
    print_agreement(report, len(series), time.perf_counter() - started)
    return report


def part_grow() -> dict:
    daily = realdata.vdl_daily()
    report = grow_report(daily, fault_anomalies(detect(daily)))
    print_grow(report)
    return report


def part_peers(names, clean, injected, clean_result: dict, injected_result: dict, stations, args) -> dict:
    """Ours and each peer's figures on the same clean windows (all, or `--peer-windows` of them drawn
    at random) and the same F1 injections; whether ours beats every peer (None unless every peer ran)."""
    chosen = f1_cases(injected)
    windows = peer_windows(clean, args.peer_windows, args.seed)
    found = [injected_result["found"][case.sensor_id] for case in chosen]
    recall = float(np.mean(found)) if found else 0.0
    false_alarm = float(np.mean([case.sensor_id in clean_result["flagged_ids"] for case in windows]))
    ours = {
        "false_alarm_rate": round(false_alarm, 3),
        "recall": round(recall, 3),
        "balanced_f1": round(balanced_f1(recall, false_alarm), 3),
    }
    results = run_peers(names, windows, chosen, stations) if names else {}
    skipped = "--peers none" if not names else None
    if names and all("error" in row for row in results.values()):
        skipped = "no peer could run"
    print_peers(ours, results, skipped, len(windows), len(chosen))
    every_peer_ran = bool(results) and all("error" not in row for row in results.values())
    beats = (
        all(ours["balanced_f1"] > row["balanced_f1"] for row in results.values()) if every_peer_ran else None
    )
    return {"ours": ours, "peers": results, "beats_every_peer": beats, "clean_windows": len(windows)}


def peer_windows(clean: Sequence[Case], most: int, seed: int) -> list[Case]:
    """The clean windows part 5 scores everyone on: all, or `most` of them drawn at random (the peers
    take far longer than detect() on the same samples)."""
    if not most or most >= len(clean):
        return list(clean)
    chosen = np.sort(np.random.default_rng([seed, 5]).choice(len(clean), most, replace=False))
    return [clean[i] for i in chosen]


def summary(clean, injected, agreed, grow, compared, flagit, seconds: float) -> dict:
    """The run's one line of JSON."""
    recall = injected["recall"]
    return {
        "real_clean_false_alarm_rate": round(clean["rate"], 3),
        "clean_windows": clean["windows"],
        "injected_recall": recall,
        "injected_min_kind_recall_15min": min_recall(recall, "15min", SENSOR_ALONE),
        "injected_min_kind_recall_hourly": min_recall(recall, "1h", SENSOR_ALONE),
        "injected_min_kind_recall_daily": min_recall(recall, "1d", DAILY_KINDS),
        "injected_station_kind_recall": {
            step: {kind: kinds[kind] for kind in NEEDS_STATION if kind in kinds}
            for step, kinds in recall.items()
        },
        "injected_alarm_elsewhere": injected["alarm_away"],
        "ismn_agreement": {
            "recall": {family: row["recall"] for family, row in agreed["families"].items()},
            "events": {family: row["events"] for family, row in agreed["families"].items()},
            "precision": agreed["precision"],
        },
        "grow_daily_fault_sensors_found": grow["found"]["fault"],
        "grow_daily_other_sensors_flagged": grow["found"]["other"],
        "grow_daily_repeat_sensors_found": grow["found"]["repeat"],
        "grow_daily_groups": grow["groups"],
        "ours_balanced_f1": compared["ours"]["balanced_f1"],
        "ours_false_alarm_rate_part5": compared["ours"]["false_alarm_rate"],
        "part5_clean_windows": compared["clean_windows"],
        "ours_recall": compared["ours"]["recall"],
        "peers": compared["peers"],
        "beats_every_peer": compared["beats_every_peer"],
        "flagit_frame_events_found": flagit["found"],
        "seconds": round(seconds),
    }


def main() -> None:
    args = arguments()
    realdata.require()
    started = time.perf_counter()
    series = realdata.ismn_soil_series()
    stations = realdata.scan_hawaii_stations()
    clean = clean_cases(series, stations, args.max_windows or None, args.seed)
    print(
        f"real corpus {realdata.realdata_dir()}: {len(series)} shallow ISMN series, {len(clean)} clean "
        f"windows ({sum(1 for case in clean if case.site_id)} beside their own SCAN station)"
    )
    clean_result = part_clean(clean, stations)
    injected, injected_result = part_injected(clean, stations, args)
    agreed = part_agreement(list(series)[: args.max_series or None], stations)
    grow = part_grow()
    compared = part_peers(args.peers, clean, injected, clean_result, injected_result, stations, args)
    flagit = flagit_report()
    print_flagit(flagit)
    seconds = time.perf_counter() - started
    print(f"\n{seconds:.0f} s in all")
    harness.finish(summary(clean_result, injected_result, agreed, grow, compared, flagit, seconds))


if __name__ == "__main__":
    main()
