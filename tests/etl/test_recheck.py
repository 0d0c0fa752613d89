"""Detection looks again: at days whose readings arrived late (detection_state.recheck_from, set by
extraction), and, weekly, at the last weeks of every sensor (`--recheck-days`, deploy/crontab's Sunday
line), which is how the soil drift check, needing weeks, sees a drift the nightly runs cannot."""

import logging
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner
from sqlalchemy import select, update

from core.load import bulk_upsert
from core.schema import anomalies, detection_state, readings, sensors, wow_observations
from etl import detect_anomalies
from etl.loaders import set_recheck_marks
from etl.settings import load_settings
from etl.shard import Shard
from etl.step import StepContext
from tests.detection.test_reference import garden
from tests.factories import START, clean

CRONTAB = Path(__file__).resolve().parents[2] / "deploy" / "crontab"
DAY = pd.Timedelta(days=1)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def stored_anomalies(engine) -> pd.DataFrame:
    columns = [anomalies.c[name] for name in ("sensor_id", "variable", "kind", "start_at", "end_at")]
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(select(*columns)).all(), columns=[c.name for c in columns])
    return frame.sort_values(["sensor_id", "variable", "kind", "start_at"], ignore_index=True)


def recheck_marks(engine) -> dict:
    with engine.connect() as connection:
        return dict(
            connection.execute(select(detection_state.c.sensor_id, detection_state.c.recheck_from)).all()
        )


def nightly(engine, database_url, now: pd.Timestamp, **settings) -> None:
    """The nightly detection, default settings unless given, as the runner calls it."""
    settings = load_settings(database_url=database_url, **settings)
    detect_anomalies.run(StepContext(settings, engine, Shard(), now.to_pydatetime()))


# --- which sensors are checked, from when -------------------------------------------------------------


def test_a_sensor_is_checked_from_its_watermark_its_late_readings_or_the_days_asked_again():
    latest = {s: ts("2019-06-30") for s in ("new", "fresh", "current", "late", "quiet")}
    latest["quiet"] = ts("2019-05-01")  # silent for weeks
    done = {s: ts("2019-06-30") for s in ("current", "late", "quiet")} | {"fresh": ts("2019-06-29")}
    late = {"late": ts("2019-06-20")}
    two_days = pd.Timedelta(days=2)

    nightly_starts = detect_anomalies.check_starts([*latest, "no readings"], latest, done, late, two_days)
    assert nightly_starts == {"new": None, "fresh": ts("2019-06-27"), "late": ts("2019-06-18")}

    weekly = detect_anomalies.check_starts(
        list(latest), latest, done, late, two_days, pd.Timedelta(days=45), ts("2019-07-01")
    )
    assert weekly == {
        "new": None,  # never checked: all of it
        "fresh": ts("2019-05-16"),
        "current": ts("2019-05-16"),
        "late": ts("2019-05-16"),
        # "quiet" read nothing in the last 45 days: nothing to look at again
    }


def test_an_anomaly_found_again_from_an_earlier_start_replaces_the_stored_one():
    from etl.detect_anomalies import continue_stored, superseded

    key = {"sensor_id": "s", "variable": "soil_moisture", "kind": "drift"}
    stored = pd.DataFrame([{**key, "start_at": ts("2019-06-21"), "end_at": ts("2019-07-15")}])
    found = pd.DataFrame(
        [{**key, "start_at": ts("2019-06-20"), "end_at": ts("2019-07-22"), "score": 2.0, "explanation": "x"}]
    )
    merged = continue_stored(found, stored)
    assert merged[["start_at", "end_at"]].values.tolist() == [[ts("2019-06-20"), ts("2019-07-22")]]
    assert superseded(merged, stored)["start_at"].tolist() == [ts("2019-06-21")]
    # The same finding again changes nothing and replaces nothing.
    again = continue_stored(found, merged[[*key, "start_at", "end_at"]])
    assert again[["start_at", "end_at"]].values.tolist() == [[ts("2019-06-20"), ts("2019-07-22")]]
    assert superseded(again, merged).empty


def test_an_owners_answer_goes_with_the_anomaly_when_it_is_found_again_from_an_earlier_start(engine):
    """Review of issue 33: the answer is keyed on the anomaly's start; when a second look finds it began
    earlier, the answer moves to the new start rather than being left behind (and the owner alerted
    again)."""
    from core import answers
    from core.load import bulk_upsert
    from core.schema import anomalies, anomaly_answers
    from etl.detect_anomalies import carry_answers, continue_stored, superseded

    key = {"sensor_id": "s", "variable": "soil_moisture", "kind": "drift"}
    stored = pd.DataFrame([{**key, "start_at": ts("2019-06-21"), "end_at": ts("2019-07-15")}])
    with engine.begin() as connection:
        bulk_upsert(connection, anomalies, stored.assign(detector="reference"))
        now = ts("2019-07-16").to_pydatetime()
        first = {**key, "start_at": ts("2019-06-21").to_pydatetime()}
        answers.record_answer(connection, first, "not_a_fault", "moved", None, None, "olive", now)
    found = pd.DataFrame(
        [{**key, "start_at": ts("2019-06-20"), "end_at": ts("2019-07-22"), "score": 2.0, "explanation": "x"}]
    )
    gone = superseded(continue_stored(found, stored), stored)
    with engine.begin() as connection:
        assert carry_answers(connection, gone) == 1
        moved = connection.execute(select(anomaly_answers.c.start_at, anomaly_answers.c.reason)).all()
    assert [(start, reason) for start, reason in moved] == [(ts("2019-06-20"), "moved")]


# --- late readings --------------------------------------------------------------------------------------

GAP = (START + pd.Timedelta(days=2, hours=10), START + pd.Timedelta(days=2, hours=16))  # uploaded late
RULES = {"detect_checks": "-unusual_day"}  # the rules find the fault; no TensorFlow to load: a fast test


def garden_readings(sensor: str, seed: int) -> pd.DataFrame:
    return clean(days=7, seed=seed).rename_axis("ts").reset_index().assign(sensor_id=sensor)


def mark_late(engine, marks: dict) -> None:
    with engine.begin() as connection:
        for sensor, since in marks.items():
            connection.execute(
                update(detection_state)
                .where(detection_state.c.sensor_id == sensor)
                .values(recheck_from=since.to_pydatetime())
            )


def test_late_readings_marked_for_a_recheck_are_checked_and_a_clean_late_day_stays_clean(
    engine, database_url
):
    faulty, healthy = garden_readings("faulty", seed=1), garden_readings("healthy", seed=2)
    in_gap = faulty["ts"].between(*GAP, inclusive="left")
    faulty.loc[in_gap & (faulty["ts"] < GAP[0] + pd.Timedelta(hours=2)), "air_temperature"] = 90.0
    both = pd.concat([faulty, healthy], ignore_index=True)
    late = both["ts"].between(*GAP, inclusive="left")
    with engine.begin() as connection:
        bulk_upsert(connection, sensors, pd.DataFrame({"sensor_id": ["faulty", "healthy"]}))
    # Two nights: days 0-4, then days 5 and 6; the phones had not sent day 2's afternoon yet.
    for night_end in (START + 5 * DAY, START + 7 * DAY):
        with engine.begin() as connection:
            bulk_upsert(connection, readings, both[~late & (both["ts"] < night_end)])
        nightly(engine, database_url, night_end, **RULES)
    assert stored_anomalies(engine).empty

    with engine.begin() as connection:
        bulk_upsert(connection, readings, both[late])
    nightly(engine, database_url, START + 7 * DAY, **RULES)
    assert stored_anomalies(engine).empty  # no mark: nothing new past the watermark, nothing checked

    mark_late(engine, {"faulty": GAP[0], "healthy": GAP[0]})  # what extraction does
    nightly(engine, database_url, START + 7 * DAY, **RULES)
    found = stored_anomalies(engine)
    assert set(found["sensor_id"]) == {"faulty"}  # the clean late afternoon is not flagged
    spike = found[found["kind"] == "out_of_range"]
    assert spike[["variable", "start_at"]].values.tolist() == [["air_temperature", GAP[0]]]
    assert recheck_marks(engine) == {"faulty": None, "healthy": None}

    # The same days checked again: the same anomalies, not a second copy of them.
    mark_late(engine, {"faulty": GAP[0] - DAY, "healthy": GAP[0]})
    nightly(engine, database_url, START + 7 * DAY, **RULES)
    pd.testing.assert_frame_equal(stored_anomalies(engine), found)


def test_a_mark_moved_earlier_while_detection_ran_is_kept_for_the_next_run(engine):
    with engine.begin() as connection:
        bulk_upsert(
            connection,
            detection_state,
            pd.DataFrame(
                {
                    "sensor_id": ["moved", "same"],
                    "analysed_until": [ts("2019-06-30")] * 2,
                    "recheck_from": [ts("2019-06-10"), ts("2019-06-20")],
                }
            ),
        )
        # Detection read 20 June for both; extraction has since moved "moved" to 10 June.
        set_recheck_marks(
            connection, {"moved": (ts("2019-06-20"), None), "same": (ts("2019-06-20"), None)}, earlier=False
        )
    assert recheck_marks(engine) == {"moved": ts("2019-06-10"), "same": None}


# --- the weekly look back, as deploy/crontab runs it --------------------------------------------------------


def weekly_command() -> tuple[dict[str, str], list[str]]:
    """The variables and arguments deploy/crontab's Sunday line gives `python -m etl.detect_anomalies`."""
    lines = [line for line in CRONTAB.read_text().splitlines() if "-m etl.detect_anomalies" in line]
    assert len(lines) == 1
    schedule, command = lines[0].split(maxsplit=5)[:5], lines[0].split(maxsplit=5)[5]
    assert schedule == ["30", "5", "*", "*", "0"]  # Sundays, after the nightly run
    assert re.search(r"-m etl\.detect_anomalies[^&]*&& \S*python -m etl\.analyse_anomalies", command)
    words = shlex.split(command)
    python = next(i for i in range(len(words)) if words[i + 1 : i + 3] == ["-m", "etl.detect_anomalies"])
    first = python
    while first > 0 and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[first - 1]):
        first -= 1  # VARIABLE=value words set for this command alone
    return dict(word.split("=", 1) for word in words[first:python]), one_command(words[python + 3 :])


def one_command(words: list[str]) -> list[str]:
    """The words up to the shell's next operator or redirection."""
    operators = {"&&", "||", ";", "|", "}"}
    end = next((i for i, word in enumerate(words) if word in operators or word.startswith(">")), len(words))
    return words[:end]


def run_weekly(database_url: str, now: pd.Timestamp) -> None:
    env, arguments = weekly_command()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # the step configures logging for itself
    try:
        result = CliRunner().invoke(
            detect_anomalies.main,
            arguments,
            env={**env, "DATABASE_URL": database_url, "ETL_NOW": now.isoformat()},
        )
    finally:
        root.handlers[:], root.level = handlers, level
    assert result.exit_code == 0, result.output


def test_the_days_to_check_again_are_a_whole_number_from_one():
    for bad in ("0", "-3", "two"):
        result = CliRunner().invoke(detect_anomalies.main, ["--recheck-days", bad])
        assert result.exit_code == 2 and "--recheck-days" in result.output


TOWN = "abcde"  # five gardens by one station; c's probe starts drifting on day 20


def town_data(days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames = []
    for i, sensor in enumerate(TOWN):
        soil, rain = garden(days=days, seed=20 + i, gain=1.5 + 0.3 * i, wilting=6 + i, showers=6)
        if sensor == "c":
            since = soil.index >= START + 20 * DAY
            soil[since] += 0.6 * np.arange(since.sum()) / 96  # 0.6 % a day
        frames.append(pd.DataFrame({"sensor_id": sensor, "ts": soil.index, "soil_moisture": soil.to_numpy()}))
    station = pd.DataFrame({"site_id": "900123", "ts": rain.index, "rainfall": rain.to_numpy()})
    return pd.concat(frames, ignore_index=True), station


def add_day(engine, town: pd.DataFrame, station: pd.DataFrame, day: int) -> pd.Timestamp:
    first, end = START + (day - 1) * DAY, START + day * DAY
    with engine.begin() as connection:
        bulk_upsert(connection, readings, town[town["ts"].between(first, end, inclusive="left")])
        bulk_upsert(
            connection, wow_observations, station[station["ts"].between(first, end, inclusive="left")]
        )
    return end


def drifts(engine) -> list[tuple[str, pd.Timestamp, pd.Timestamp]]:
    found = stored_anomalies(engine)
    found = found[found["kind"] == "drift"]
    return list(zip(found["sensor_id"], found["start_at"], found["end_at"]))
