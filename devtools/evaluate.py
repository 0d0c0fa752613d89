"""`python -m devtools.evaluate --data DIR`: how well detection finds the faults injected into a generated
network.

The network's readings and stations are read straight from its folder (no database, no API), through
the same functions the simulator serves them with, so they are what the ETL would store; each sensor is
linked to its nearest live station as `find_nearest_wow_live` would, and `detect` runs on all
of it. Its anomalies are scored against labels.csv, and so is the 2019 rule re-implemented:

- sensor level: is this sensor faulty? A faulty sensor counts as found when an anomaly overlaps its
  fault (give or take a day, as several checks work in whole UTC days); a clean sensor with any anomaly is
  a false positive. Per fault kind, the sensors of that kind are scored against all clean sensors.
- day level: every UTC day of every sensor, faulty if it overlaps a fault, flagged if it overlaps an
  anomaly.
- a fault that frozen soil hides from every check while it lasts (a probe stuck in ice until before the
  thaw: labels.csv's hidden_by_frost) is counted apart, its sensor neither faulty nor clean.
- conditions (frozen soil, snow, a watering system) are no anomalies here: they are counted apart, and
  the false alarms on clean sensors are given for the winter months (December to February) alone too.
- per fault kind, the sensors each detector finds, finds alone, and what is found without each model:
  the models run (as with DETECT_CHECKS=all) even though the figures are those of the default checks,
  which leave them out, unless --score-models.

The 2019 rule called a day anomalous when its reconstruction error exactly equalled the next day's. A
model gives equal errors to equal inputs and (for real-valued data) different errors to different ones,
so the rule flags exactly the pairs of consecutive days whose 96 values are identical: that is how the
baseline is computed here, for the three modelled variables, with no model needed.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import click
import numpy as np
import pandas as pd

from core.load import bulk_upsert
from core.schema import readings, sensor_wow, sensors, wow_observations, wow_sites
from core.times import DAY
from core.vocabulary import LIGHT_PER_LUX, Detector
from detection.checks import DEFAULT, EVERY
from detection.detect import detect
from detection.model import VARIABLES, daily_windows, load_all
from devtools.simulator import osem
from devtools.simulator.network import Network
from etl.find_nearest_wow_live import link_sensors
from etl.settings import load_settings

SLACK = DAY  # a daily check flags the whole day a fault begins on


def network_frames(network: Network) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """All readings as the API would serve them at the end, the linked stations' reports as the WOW API
    serves them, and the links."""
    codes = list(network.sensors["sensor_id"])
    readings = network.visible_readings(codes, network.start, network.end, now=network.end)
    live = network.stations[network.stations["state"] == "live"].reset_index(drop=True)
    links = link_sensors(network.sensors, live, load_settings().link_max_km)
    linked = sorted(set(links["site_id"].dropna()))
    stations = network.station_observations(linked, network.start, network.end)
    return readings, stations, links


def as_opensensemap(
    network: Network, readings: pd.DataFrame, links: pd.DataFrame, labels: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The network as openSenseMap serves it and the client stores it (devtools.simulator.osem): each
    sensor a box (`osem:<box id>`), readings on the quarter hour, light sent in lux to the hundredth,
    no battery. Its readings, links and labels under those ids, and the labels of faults no openSenseMap
    box can show (a battery's: a senseBox reports none), set apart."""
    ids = {code: f"osem:{osem.box_id(code)}" for code in network.sensors["sensor_id"]}
    served = readings.assign(
        sensor_id=readings["sensor_id"].map(ids),
        ts=readings["ts"].dt.floor("15min"),
        light=np.round(readings["light"] / LIGHT_PER_LUX, 2) * LIGHT_PER_LUX,
        battery_level=np.nan,
    )
    links = links.assign(sensor_id=links["sensor_id"].map(ids))
    labels = labels.assign(sensor_id=labels["sensor_id"].map(ids))
    unseen = labels["variable"] == "battery_level"
    return served, links, labels[~unseen], labels[unseen]


def store_network(engine, network: Network, until: dt.datetime | None = None) -> int:
    """Sensors, linked live stations, links, readings and reports of a generated network, written
    as the pipeline would have written them (readings up to `until`, if given)."""
    frame, stations, links = network_frames(network)
    if until is not None:
        frame = frame[frame["ts"] < until]
        stations = stations[stations["ts"] < until]
    meta = network.sensors
    linked = network.stations[network.stations["site_id"].isin(set(links["site_id"].dropna()))]
    with engine.begin() as connection:
        bulk_upsert(connection, sensors, meta[["sensor_id", "name", "owner_id", "latitude", "longitude"]])
        bulk_upsert(
            connection,
            wow_sites,
            linked[["site_id", "name", "latitude", "longitude", "is_official"]].assign(is_live=True),
        )
        bulk_upsert(connection, sensor_wow, links)
        bulk_upsert(connection, readings, frame)
        bulk_upsert(connection, wow_observations, stations)
    return len(frame)


def baseline_2019(readings: pd.DataFrame) -> pd.DataFrame:
    """Days whose window equals the next day's exactly (the 2019 equal-error rule), as anomalies."""
    rows = []
    for variable in VARIABLES:
        windows = daily_windows(readings, variable)
        keys = windows.keys
        same_sensor = keys["sensor_id"].to_numpy()[1:] == keys["sensor_id"].to_numpy()[:-1]
        next_day = (keys["day"].diff().iloc[1:] == DAY).to_numpy()
        equal = (windows.values[1:] == windows.values[:-1]).all(axis=1)
        for i in np.flatnonzero(same_sensor & next_day & equal):
            rows.append((keys.at[i, "sensor_id"], variable, keys.at[i, "day"], keys.at[i + 1, "day"] + DAY))
    return pd.DataFrame(rows, columns=["sensor_id", "variable", "start_at", "end_at"])


def _days_of(frame: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    """(sensor_id, day) for every UTC day each interval touches."""
    if frame.empty:
        return pd.DataFrame({"sensor_id": [], "day": pd.to_datetime([], utc=True)})
    first = frame[start].dt.floor("D")
    count = (frame[end].dt.floor("D") - first) // DAY + 1  # ends are inclusive
    count = count.clip(lower=1).astype(int)
    repeat = np.repeat(np.arange(len(frame)), count)
    offset = np.concatenate([np.arange(n) for n in count])
    return pd.DataFrame(
        {
            "sensor_id": frame["sensor_id"].to_numpy()[repeat],
            "day": first.iloc[repeat].reset_index(drop=True) + pd.to_timedelta(offset, unit="D"),
        }
    ).drop_duplicates()


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def sensor_outcome(found: pd.DataFrame, labels: pd.DataFrame, sensor_ids: list[str]) -> pd.DataFrame:
    """Per sensor: its fault kind ('clean' if none) and whether detection found it (for a clean sensor:
    whether anything was flagged)."""
    table = pd.DataFrame({"sensor_id": sensor_ids}).merge(labels, on="sensor_id", how="left")
    table["kind"] = table["kind"].fillna("clean")
    joined = table.merge(found[["sensor_id", "start_at", "end_at"]], on="sensor_id", how="inner")
    hits = joined[_counts(joined)]
    table["flagged"] = table["sensor_id"].isin(set(hits["sensor_id"]))
    return table[["sensor_id", "kind", "flagged"]]


def sensor_scores(outcome: pd.DataFrame) -> pd.DataFrame:
    """Precision, recall and F1 per fault kind (its sensors against the clean ones) and overall."""
    clean = outcome[outcome["kind"] == "clean"]
    false_alarms = int(clean["flagged"].sum())
    rows = {}
    for kind, own in outcome[outcome["kind"] != "clean"].groupby("kind"):
        tp = int(own["flagged"].sum())
        rows[kind] = (len(own), *prf(tp, false_alarms, len(own) - tp))
    faulty = outcome[outcome["kind"] != "clean"]
    tp = int(faulty["flagged"].sum())
    rows["all"] = (len(faulty), *prf(tp, false_alarms, len(faulty) - tp))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["sensors", "precision", "recall", "f1"])


def day_scores(
    found: pd.DataFrame, labels: pd.DataFrame, readings: pd.DataFrame, kinds: pd.Series
) -> pd.DataFrame:
    """F1 over sensor-days, overall and per fault kind (that kind's sensors and the clean ones)."""
    days = readings[["sensor_id"]].assign(day=readings["ts"].dt.floor("D")).drop_duplicates()
    truth = _days_of(labels, "start", "end").assign(faulty=True)
    flagged = _days_of(found, "start_at", "end_at").assign(flagged=True)
    days = days.merge(truth, how="left").merge(flagged, how="left")
    days = days.fillna({"faulty": False, "flagged": False}).infer_objects()
    days["kind"] = days["sensor_id"].map(kinds)
    rows = {}
    for kind in sorted(set(kinds) - {"clean"}):
        own = days[days["kind"].isin([kind, "clean"])]
        rows[kind] = _day_prf(own)
    rows["all"] = _day_prf(days)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["precision", "recall", "f1"])


def _day_prf(days: pd.DataFrame) -> tuple[float, float, float]:
    tp = int((days["faulty"] & days["flagged"]).sum())
    fp = int((~days["faulty"] & days["flagged"]).sum())
    fn = int((days["faulty"] & ~days["flagged"]).sum())
    return prf(tp, fp, fn)


def _counts(joined: pd.DataFrame) -> pd.Series:
    """Anomaly rows that count for their sensor: any on a clean sensor, and on a faulty one those that
    overlap its fault (give or take SLACK)."""
    overlaps = (joined["start_at"] <= joined["end"] + SLACK) & (joined["end_at"] >= joined["start"] - SLACK)
    return (joined["kind"] == "clean") | overlaps


WINTER_MONTHS = (12, 1, 2)
DETECTORS = (Detector.RULE, Detector.REFERENCE, Detector.MODEL)


def winter_false_alarms(found: pd.DataFrame, readings: pd.DataFrame, clean_ids: list[str]) -> dict:
    """False alarms on clean sensors in winter (December to February) and in the rest of the year: the
    share of clean sensors flagged on a winter day (of those with winter days), and the share of clean
    sensor-days flagged in each part of the year."""
    days = readings.loc[readings["sensor_id"].isin(clean_ids), ["sensor_id"]]
    days = days.assign(day=readings["ts"].dt.floor("D")).drop_duplicates()
    flagged = _days_of(found[found["sensor_id"].isin(clean_ids)], "start_at", "end_at").assign(flagged=True)
    days = days.merge(flagged, how="left").fillna({"flagged": False}).infer_objects()
    days["winter"] = days["day"].dt.month.isin(WINTER_MONTHS)
    winter = days[days["winter"]]
    rest = days[~days["winter"]]
    per_sensor = winter.groupby("sensor_id")["flagged"].any()
    return {
        "clean_fp_rate_winter": round(float(per_sensor.mean()), 4) if len(per_sensor) else None,
        "clean_day_fp_winter": round(float(winter["flagged"].mean()), 5) if len(winter) else None,
        "clean_day_fp_rest": round(float(rest["flagged"].mean()), 5) if len(rest) else None,
    }


def detector_table(found: pd.DataFrame, labels: pd.DataFrame, sensor_ids: list[str]) -> pd.DataFrame:
    """Per fault kind (and clean), how many of its sensors each detector finds, how many it alone finds,
    and for each model how many are found with and without it: a model that adds nothing shows."""
    kinds = sensor_outcome(found, labels, sensor_ids).set_index("sensor_id")["kind"]
    columns = {"sensors": kinds.value_counts(), "all": _found_per_kind(found, labels, sensor_ids, kinds)}
    for detector in DETECTORS:
        own = found[found["detector"] == detector.value]
        others = found[found["detector"] != detector.value]
        by_own = _flagged(own, labels, sensor_ids)
        by_others = _flagged(others, labels, sensor_ids)
        columns[detector.value] = by_own.groupby(kinds).sum()
        columns[f"{detector.value} alone"] = (by_own & ~by_others).groupby(kinds).sum()
    for variable in sorted(set(found.loc[found["detector"] == Detector.MODEL.value, "variable"])):
        model = (found["detector"] == Detector.MODEL.value) & (found["variable"] == variable)
        columns[f"without {variable} model"] = _found_per_kind(found[~model], labels, sensor_ids, kinds)
    table = pd.DataFrame(columns).fillna(0).astype(int)
    order = [k for k in sorted(table.index) if k != "clean"] + ["clean"]
    return table.reindex([k for k in order if k in table.index])


def _flagged(found: pd.DataFrame, labels: pd.DataFrame, sensor_ids: list[str]) -> pd.Series:
    return sensor_outcome(found, labels, sensor_ids).set_index("sensor_id")["flagged"]


def _found_per_kind(found, labels, sensor_ids, kinds) -> pd.Series:
    return _flagged(found, labels, sensor_ids).groupby(kinds).sum()


def models_that_help(table: pd.DataFrame) -> dict[str, list[str]]:
    """Per model, the fault kinds on which more sensors are found with it than without it."""
    helps = {}
    for column in table.columns:
        if column.startswith("without "):
            variable = column.removeprefix("without ").removesuffix(" model")
            faults = table.drop(index="clean", errors="ignore")
            helps[variable] = [
                kind for kind in faults.index if faults.at[kind, "all"] > faults.at[kind, column]
            ]
    return helps


def confusion(found: pd.DataFrame, outcome: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Sensors by true fault kind (rows) and by the kinds of anomaly found on them (columns); a sensor
    with several kinds of evidence counts in each, one with none under 'nothing'."""
    table = outcome.merge(labels[["sensor_id", "start", "end"]], on="sensor_id", how="left")
    joined = table.merge(
        found[["sensor_id", "kind", "start_at", "end_at"]], on="sensor_id", suffixes=("", "_found")
    )
    relevant = joined[_counts(joined)]
    pairs = relevant[["sensor_id", "kind", "kind_found"]].drop_duplicates()
    matrix = pd.crosstab(pairs["kind"], pairs["kind_found"])
    unflagged = outcome[~outcome["flagged"]].groupby("kind").size().rename("nothing")
    matrix = matrix.join(unflagged, how="outer").fillna(0).astype(int)
    order = [k for k in sorted(matrix.index) if k != "clean"] + ["clean"]
    return matrix.reindex([k for k in order if k in matrix.index])


def plot_confusion(matrix: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = matrix.div(matrix.sum(axis=1).clip(lower=1), axis=0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * matrix.shape[1], 1.0 + 0.5 * matrix.shape[0]))
    ax.imshow(shares.to_numpy(), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (r, c), value in np.ndenumerate(matrix.to_numpy()):
        if value:
            ax.text(
                c,
                r,
                str(value),
                ha="center",
                va="center",
                color="white" if shares.iat[r, c] > 0.6 else "black",
            )
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=40, ha="right")
    ax.set_yticks(range(matrix.shape[0]), matrix.index)
    ax.set_xlabel("anomaly kinds found on the sensor (sensors counted once per kind)")
    ax.set_ylabel("injected fault")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate(
    folder: Path,
    plot: Path | None = None,
    models="shipped",
    score_models: bool = False,
    source: str = "grow",
) -> dict:
    """Score detection on a generated network, read as `source` serves it (grow, or opensensemap). The
    figures are those of the checks that run by default (the models off), or with the models on too if
    `score_models`; the models run either way (unless `models` is None), so that the table of what each
    detector finds shows what they would add."""
    network = Network(folder)
    labels = network.labels()
    readings, stations, links = network_frames(network)
    unseen = labels[:0]
    if source == "opensensemap":
        readings, links, labels, unseen = as_opensensemap(network, readings, links, labels)
    all_ids = list(readings["sensor_id"].unique()) if source != "grow" else list(network.sensors["sensor_id"])
    began = time.perf_counter()
    detected = detect(
        readings, stations, links, models=models, config=EVERY if models is not None else DEFAULT
    )
    seconds = time.perf_counter() - began
    # Conditions (frozen soil, snow, a watering system) are not faults: they are scored apart.
    is_condition = detected["detector"] == Detector.CONDITION.value
    everything, conditions = detected[~is_condition], detected[is_condition]
    found = everything if score_models else everything[everything["detector"] != Detector.MODEL.value]
    baseline = baseline_2019(readings)
    # A fault that frozen soil hides from every check while it lasts is scored apart, its sensor neither
    # faulty nor clean: the checks stand down in ice by design, and this fault is over before the thaw.
    # So is a fault the source cannot show (a battery's, on openSenseMap).
    frost = labels[labels["hidden_by_frost"]]
    hidden_found = sensor_outcome(found, frost, list(frost["sensor_id"]))["flagged"] if len(frost) else []
    hidden = pd.concat([frost, unseen], ignore_index=True)
    labels = labels[~labels["hidden_by_frost"]]
    hidden_ids = set(hidden["sensor_id"])
    sensor_ids = [s for s in all_ids if s not in hidden_ids]
    readings = readings[readings["sensor_id"].isin(sensor_ids)]

    ours, theirs = sensor_outcome(found, labels, sensor_ids), sensor_outcome(baseline, labels, sensor_ids)
    kinds = ours.set_index("sensor_id")["kind"]
    table = pd.concat(
        {
            "ours": sensor_scores(ours),
            "2019": sensor_scores(theirs),
            "ours_day": day_scores(found, labels, readings, kinds),
            "2019_day": day_scores(baseline, labels, readings, kinds),
        },
        axis=1,
    )
    clean = ours[ours["kind"] == "clean"]
    figures = {
        "sensor_f1": round(float(table.at["all", ("ours", "f1")]), 3),
        "min_kind_f1": round(float(table[("ours", "f1")].drop("all").min()), 3),
        "clean_fp_rate": round(float(clean["flagged"].mean()), 4),
        "day_f1": round(float(table.at["all", ("ours_day", "f1")]), 3),
        "baseline_sensor_f1": round(float(table.at["all", ("2019", "f1")]), 3),
        "baseline_day_f1": round(float(table.at["all", ("2019_day", "f1")]), 3),
        "sensors": len(sensor_ids),
        "days": round(network.steps / 96),
        "readings": len(readings),
        "detect_seconds": round(seconds, 1),
        "models_scored": bool(score_models and models is not None),
        "source": source,
        "hidden_by_frost": len(frost),
        "not_visible_on_source": len(unseen),
        "hidden_by_frost_found": int(sum(hidden_found)),
    }
    figures.update(winter_false_alarms(found, readings, list(clean["sensor_id"])))
    by_detector = detector_table(everything, labels, sensor_ids)
    figures["models_help"] = models_that_help(by_detector)
    figures["conditions"] = conditions["kind"].value_counts().sort_index().to_dict()
    matrix = confusion(found, ours, labels)
    if plot is not None:
        plot_confusion(matrix, plot, f"{folder.name}: {len(sensor_ids)} sensors, {figures['days']} days")
    return {
        "table": table,
        "figures": figures,
        "matrix": matrix,
        "by_detector": by_detector,
        "clean_flagged": int(clean["flagged"].sum()),
        "clean_sensors": len(clean),
    }


def report(result: dict) -> str:
    table, figures = result["table"], result["figures"]
    lines = [
        "sensor level (is this sensor faulty?) and day level (is this sensor-day faulty?); "
        "per kind: that kind's sensors against the clean ones",
        f"{'fault kind':18} {'n':>4} | {'ours P':>6} {'R':>5} {'F1':>5} | {'2019 P':>6} {'R':>5} {'F1':>5} "
        f"| {'day F1':>6} {'2019':>5}",
    ]
    for kind, row in table.iterrows():
        lines.append(
            f"{kind:18} {int(row[('ours', 'sensors')]):4d} | {row[('ours', 'precision')]:6.3f} "
            f"{row[('ours', 'recall')]:5.3f} {row[('ours', 'f1')]:5.3f} | {row[('2019', 'precision')]:6.3f} "
            f"{row[('2019', 'recall')]:5.3f} {row[('2019', 'f1')]:5.3f} | {row[('ours_day', 'f1')]:6.3f} "
            f"{row[('2019_day', 'f1')]:5.3f}"
        )
    lines.append(
        f"clean sensors flagged: {result['clean_flagged']} of {result['clean_sensors']}"
        f" ({figures['clean_fp_rate']:.1%});"
        f" detect() took {figures['detect_seconds']} s for {figures['readings']:,} readings"
    )
    if figures.get("clean_day_fp_winter") is not None:
        lines.append(
            f"winter (Dec-Feb): clean sensors flagged {figures['clean_fp_rate_winter']:.1%}, "
            f"clean sensor-days flagged {figures['clean_day_fp_winter']:.3%} "
            f"(rest of the year {figures['clean_day_fp_rest']:.3%})"
        )
    if figures["hidden_by_frost"]:
        lines.append(
            f"faults hidden by frozen soil (over before the thaw; not scored): {figures['hidden_by_frost']},"
            f" of which found anyway {figures['hidden_by_frost_found']}"
        )
    conditions = ", ".join(f"{kind} {n}" for kind, n in figures["conditions"].items()) or "none"
    lines.append(f"conditions recognised (not faults): {conditions}")
    lines += [
        "",
        "sensors found per fault kind by each detector, by it alone, and without each model:",
        result["by_detector"].to_string(),
        "models that find a kind better than without them: "
        + "; ".join(f"{v}: {', '.join(k) or 'none'}" for v, k in figures["models_help"].items()),
        "",
        "sensors by injected fault (rows) and kinds of anomaly found (columns):",
        result["matrix"].to_string(),
    ]
    return "\n".join(lines)


def feedback_report(table: pd.DataFrame) -> str:
    lines = [
        "What owners said of our anomalies (precision: a real fault or fixed, over answered)",
        f"{'kind':<22} {'answered':>8} {'real':>6} {'not':>6} {'precision':>9}  not a fault because",
    ]
    for kind, row in table.iterrows():
        counts = f"{row.answered:>8} {row.real:>6} {row.not_a_fault:>6}"
        lines.append(f"{kind:<22} {counts} {row.precision:>9.2f}  {row.reasons}")
    if table.empty:
        lines.append("(no answers yet)")
    return "\n".join(lines)


def feedback(database_url: str) -> None:
    """Precision per kind on what owners said (`python -m devtools.evaluate --feedback URL`)."""
    from core.answers import labels, precision_by_kind
    from core.db import make_engine

    settings = load_settings(database_url=database_url, log_level="WARNING")
    with make_engine(settings).connect() as connection:
        table = precision_by_kind(labels(connection))
    click.echo(feedback_report(table))
    figures = {
        "answered": int(table["answered"].sum()),
        "precision_by_kind": {kind: round(float(p), 4) for kind, p in table["precision"].items()},
    }
    click.echo(json.dumps(figures))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="a generated network with labels.csv")  # fmt: skip
@click.option("--feedback", "feedback_url", metavar="DATABASE_URL",
              help="instead: precision per kind on what owners answered in this database")  # fmt: skip
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="confusion-matrix PNG [default: DATA/confusion.png]")  # fmt: skip
@click.option("--models", "models_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="trained autoencoders to use [default: those shipped in models/]")  # fmt: skip
@click.option("--no-models", is_flag=True, help="do not even run the models (faster; no model columns)")
@click.option("--score-models", is_flag=True, help="score with the models on, as DETECT_CHECKS=all runs")
@click.option("--source", type=click.Choice(["grow", "opensensemap"]), default="grow", show_default=True,
              help="read the network as this source serves it")  # fmt: skip
def main(
    data: Path | None,
    feedback_url: str | None,
    plot: Path | None,
    models_dir: Path | None,
    no_models: bool,
    score_models: bool,
    source: str,
) -> None:
    """Score detection against the labelled faults of a generated network, beside the 2019 rule; or
    (--feedback) against what owners answered."""
    from core.logs import configure_logging

    if feedback_url:
        return feedback(feedback_url)
    if data is None:
        raise click.UsageError("give --data DIR (a generated network) or --feedback DATABASE_URL")
    configure_logging(load_settings(log_level="WARNING"))
    plot = plot or data / "confusion.png"
    models = None if no_models else (load_all(models_dir) if models_dir else "shipped")
    result = evaluate(data, plot, models=models, score_models=score_models, source=source)
    click.echo(report(result))
    click.echo(f"confusion matrix: {plot}")
    click.echo(json.dumps(result["figures"]))


if __name__ == "__main__":
    main(prog_name="python -m devtools.evaluate")
