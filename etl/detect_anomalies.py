"""Step 4 of 5, `python -m etl.detect_anomalies [--recheck-days N]`: check the readings not yet checked.

Incremental: each sensor has a watermark (detection_state.analysed_until, its latest reading already
checked); only sensors with newer readings are checked, over the readings since the watermark plus
DETECT_CONTEXT_DAYS (2) before it, so the rules' windows, the daily models and the station comparison
see whole days. Readings that arrive late, older than the watermark (GROW phones upload days late), are
marked by extraction in detection_state.recheck_from: such a sensor is checked from there (less the
context days) even with nothing newer, and the mark is cleared with the watermark's move.

A long history (a first run on a year) is checked in passes of windows of at most DETECT_WINDOW_DAYS,
overlapping by what the drift check needs at either end, in chunks of the readings ETL_MEMORY_MB
allows, each committed with its watermarks. The soil drift check needs weeks: it runs on those windows
and on runs given --recheck-days N, which check again the last N days (back from each sensor's latest
reading) of every sensor that has readings in the N days before now, whatever its watermark;
deploy/crontab runs one weekly with 45. An anomaly that continues one already stored extends it rather
than starting a second one, so checking the same days again adds no rows.

Detection itself is `detection.detect.detect` (rules, the autoencoders shipped in models/ or those in
MODELS_DIR, and the station checks); this step is database I/O around it. Which checks run is
DETECT_CHECKS, their thresholds DETECT_THRESHOLDS (`python -m etl checks` lists both).
"""

from __future__ import annotations

import itertools
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import click
import numpy as np
import pandas as pd
from sqlalchemy import (
    String,
    and_,
    bindparam,
    column,
    delete,
    exists,
    func,
    select,
    update,
    values,
)

from core.db import earliest_times, latest_times, packed_series, read_frame, unpack_series
from core.errors import SettingsError
from core.load import bulk_upsert
from core.schema import (
    UTCDateTime,
    anomalies,
    anomaly_answers,
    detection_state,
    readings,
    sensor_wow,
    sensors,
    wow_observations,
)
from core.vocabulary import Detector
from detection.checks import Configuration, parse_thresholds, select_checks, with_thresholds
from detection.detect import ANOMALY_COLUMNS, detect
from detection.model import ErrorMemo, load_all, shipped
from etl.commands import Command, run_alone, shard_option
from etl.loaders import set_recheck_marks
from etl.settings import EtlSettings
from etl.shard import owned_sensor_ids, sensor_sites
from etl.step import StepContext, StepFailed

log = logging.getLogger(__name__)

NAME = "detect_anomalies"
# A chunk's size in readings: ETL_MEMORY_MB less what the process holds before any reading, over what
# detection holds per reading at its peak (readings, station reports, the models' days, the rules'
# arrays). Measured with bench_nightly's backfill of a year of 1,000 sensors: at 800 bytes (chunks of
# 655,000 readings) the peak was 1,461-1,544 MB on a fast host (the next chunk read ahead while the
# models run), over ETL_MEMORY_MB's 1,500; at 1,000 bytes (524,000 readings) 1,261 and 1,268 MB, and
# detection 12 % slower.
BASE_MB = 1000  # the interpreter, pandas, TensorFlow and the three models
BYTES_PER_READING = 1000
MIN_CHUNK_READINGS = 20_000
WINDOWS_PER_QUERY = 5_000  # three parameters each: SQLite takes at most 32,766
TOUCHING = pd.Timedelta(hours=1)
FOREVER = pd.Timestamp("2200-01-01", tz="UTC")
STATION_COLUMNS = ["air_temperature", "rainfall"]  # what the station checks read of wow_observations
ANOMALY_KEY = ["sensor_id", "variable", "kind"]  # with start_at, the key of a stored anomaly


def detection_config(settings: EtlSettings) -> Configuration:
    """The checks DETECT_CHECKS selects with the thresholds DETECT_THRESHOLDS overrides; a bad value is
    a SettingsError of one line naming the setting."""
    try:
        selected = select_checks(settings.detect_checks)
    except ValueError as exc:
        raise SettingsError(f"setting DETECT_CHECKS: {exc}") from None
    try:
        thresholds = with_thresholds(parse_thresholds(settings.detect_thresholds))
    except ValueError as exc:
        raise SettingsError(f"setting DETECT_THRESHOLDS: {exc}") from None
    return Configuration(selected, thresholds)


def continue_stored(found: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """One row per run of anomalies of one sensor, variable and kind, new and stored, that overlap or
    touch (within TOUCHING), from the run's earliest start to its latest end, with the newest finding's
    score and explanation. The upsert (keyed on the start) then extends a stored anomaly instead of
    adding another, also when a second look finds it began earlier (`superseded` names the stored rows
    such a run takes in)."""
    if found.empty:
        return found
    both = pd.concat(
        [found.assign(new=True), stored[[*ANOMALY_KEY, "start_at", "end_at"]].assign(new=False)],
        ignore_index=True,
    ).sort_values([*ANOMALY_KEY, "start_at", "end_at"], ignore_index=True)
    same_key = (both[ANOMALY_KEY] == both[ANOMALY_KEY].shift()).all(axis=1)
    reach = both.groupby(ANOMALY_KEY, sort=False)["end_at"].cummax().shift()  # the run so far
    run = (~(same_key & (both["start_at"] <= reach + TOUCHING))).cumsum()
    start, end = both.groupby(run)["start_at"].min(), both.groupby(run)["end_at"].max()
    new = both[both["new"]]
    newest = new.loc[new.groupby(run[new.index])["end_at"].idxmax()]
    runs = run[newest.index]
    spans = {"start_at": start[runs].set_axis(newest.index), "end_at": end[runs].set_axis(newest.index)}
    return newest.assign(**spans)[found.columns]


def superseded(merged: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """The keys of stored anomalies that a row of `continue_stored` took in from an earlier start: they
    go with its upsert, or the anomaly would be stored twice."""
    if merged.empty or stored.empty:
        return pd.DataFrame(columns=[*ANOMALY_KEY, "start_at", "run_start"])
    runs = merged[[*ANOMALY_KEY, "start_at", "end_at"]].rename(
        columns={"start_at": "run_start", "end_at": "run_end"}
    )
    pairs = stored[[*ANOMALY_KEY, "start_at"]].merge(runs, on=ANOMALY_KEY)
    inside = (pairs["start_at"] > pairs["run_start"]) & (pairs["start_at"] <= pairs["run_end"])
    return pairs.loc[inside, [*ANOMALY_KEY, "start_at", "run_start"]].drop_duplicates(ignore_index=True)


def carry_answers(connection, gone: pd.DataFrame) -> int:
    """What owners said of the stored anomalies a run took in goes with the run's start, the anomaly's
    key from now on (an answer already there is kept)."""
    moved = 0
    for row in gone.itertuples(index=False):
        old = [anomaly_answers.c[name] == getattr(row, name) for name in ANOMALY_KEY]
        taken = exists().where(
            *(anomaly_answers.c[name] == getattr(row, name) for name in ANOMALY_KEY),
            anomaly_answers.c.start_at == row.run_start.to_pydatetime(),
        )
        moved += connection.execute(
            update(anomaly_answers)
            .where(*old, anomaly_answers.c.start_at == row.start_at.to_pydatetime(), ~taken)
            .values(start_at=row.run_start.to_pydatetime())
        ).rowcount
    return moved


def station_chunks(
    todo: list[str], site_of: dict[str, str], budget: int, weight: dict[str, int]
) -> list[list[str]]:
    """Chunks of sensors weighing (`weight`: their readings) about `budget` in all that never split the
    sensors of one station: they witness each other's weather (the soil drift check), so they must be
    checked together. A station heavier than the budget alone makes a chunk of its own."""
    ordered = sorted(todo, key=lambda sensor: (site_of.get(sensor, ""), sensor))
    chunks: list[list[str]] = [[]]
    load = 0
    for _, members in itertools.groupby(ordered, key=lambda sensor: site_of.get(sensor) or sensor):
        members = list(members)
        heft = sum(weight[s] for s in members)
        if chunks[-1] and load + heft > budget:
            chunks.append([])
            load = 0
        chunks[-1].extend(members)
        load += heft
    return [chunk for chunk in chunks if chunk]


def chunk_readings(memory_mb: int) -> int:
    """How many readings one detection chunk may hold within `memory_mb` (ETL_MEMORY_MB)."""
    return max(MIN_CHUNK_READINGS, (memory_mb - BASE_MB) * 2**20 // BYTES_PER_READING)


@dataclass(frozen=True)
class Window:
    """The readings of one sensor checked in one pass: `since` to `until`, both included."""

    since: pd.Timestamp
    until: pd.Timestamp


def plan_windows(
    starts: dict[str, pd.Timestamp | None], first: dict, latest: dict, most: pd.Timedelta
) -> dict[str, Window]:
    """Each sensor's window in this pass: from its start (its first reading when never checked) over at
    most `most`, up to its latest reading."""
    windows = {}
    for sensor, since in starts.items():
        since = first[sensor] if since is None else since
        windows[sensor] = Window(since, min(latest[sensor], since + most))
    return windows


def after_window(
    window: Window, latest: pd.Timestamp, done: pd.Timestamp | None, overlap: pd.Timedelta, context
) -> tuple[pd.Timestamp, pd.Timestamp | None]:
    """The sensor's watermark and recheck mark once `window` is checked. The watermark never moves
    back (a look again at earlier days leaves it). A window that stopped short of the latest reading
    leaves a mark so the next pass goes on from `overlap` before its end: passes overlap by what the
    drift check needs at either end of what it sees."""
    watermark = window.until if done is None else max(done, window.until)
    if window.until >= latest:
        return watermark, None
    return watermark, window.until - overlap + context


def check_starts(
    sensor_ids: list[str],
    latest: dict,
    done: dict,
    late: dict,
    context_days: pd.Timedelta,
    recheck: pd.Timedelta | None = None,
    now: pd.Timestamp | None = None,
) -> dict[str, pd.Timestamp | None]:
    """The sensors to check, each with the time its check starts from (None: all its readings).

    A sensor never checked is checked whole. Otherwise, the earliest of: its watermark (`done`) less
    the context days, when it has readings newer than that; its recheck mark (`late`) less the context
    days, when late readings came; its latest reading less `recheck`, when that is given and the sensor
    has readings in the `recheck` before `now` (a sensor long silent has nothing new to show)."""
    starts: dict[str, pd.Timestamp | None] = {}
    for sensor in sensor_ids:
        if sensor not in latest:
            continue  # no readings at all
        if sensor not in done:
            starts[sensor] = None
            continue
        newest = latest[sensor]
        candidates = []
        if done[sensor] < newest:
            candidates.append(done[sensor] - context_days)
        if sensor in late:
            candidates.append(late[sensor] - context_days)
        if recheck is not None and newest >= now - recheck:
            candidates.append(newest - recheck)
        if candidates:
            starts[sensor] = min(candidates)
    return starts


def run(context: StepContext) -> int:
    return run_with(context)


def run_with(context: StepContext, recheck_days: int | None = None) -> int:
    """Check the readings not checked yet and those that arrived late; with `recheck_days`, also the
    last that many days of every sensor that has readings in them (what the soil drift check needs).

    In passes: each sensor's window spans at most DETECT_WINDOW_DAYS, so a long history (a first run
    on a year) takes several passes, and each pass goes in chunks of at most the readings
    ETL_MEMORY_MB allows, each committed with its watermarks: a killed run resumes where it stopped."""
    settings = context.settings
    config = detection_config(settings)  # before any work: a bad setting fails at once
    context_days = pd.Timedelta(days=settings.detect_context_days)
    most = pd.Timedelta(days=settings.detect_window_days)
    overlap = max(context_days, 2 * pd.Timedelta(days=config.thresholds["drift"].edge_days))
    if most <= overlap:
        raise SettingsError(
            f"setting DETECT_WINDOW_DAYS: {settings.detect_window_days:g} days leave nothing new past "
            f"the {overlap.days} days that passes overlap by"
        )
    budget = chunk_readings(settings.etl_memory_mb)
    with context.engine.connect() as connection:
        links = read_frame(
            connection, select(sensor_wow.c.sensor_id, sensor_wow.c.site_id, sensor_wow.c.distance_km)
        )
        site_of = sensor_sites(connection)
        # A shard takes whole stations with their sensors (etl.shard), so a sharded run checks each
        # sensor beside the same neighbours as a whole run.
        sensor_ids = owned_sensor_ids(connection, context.shard, site_of)
        latest = latest_times(connection, readings, sensors, "sensor_id")
        first = earliest_times(connection, readings, sensors, "sensor_id")
    recheck = None if recheck_days is None else pd.Timedelta(days=recheck_days)
    models, written, previous = None, 0, None
    memo = ErrorMemo()  # the models' errors of the days where one pass's windows overlap the next's
    for number in itertools.count(1):
        done, late = _read_state(context.engine)
        starts = check_starts(
            sensor_ids,
            latest,
            done,
            late,
            context_days,
            recheck if number == 1 else None,
            pd.Timestamp(context.now),
        )
        if number == 1:
            rechecked = sum(1 for s in starts if s in done and done[s] >= latest[s])
            log.info(
                "%d of %d sensors to check: %d with readings not checked yet, %d again",
                len(starts),
                len(sensor_ids),
                len(starts) - rechecked,
                rechecked,
            )
        if not starts:
            return written
        windows = plan_windows(starts, first, latest, most)
        if windows == previous:
            raise StepFailed(f"detection made no progress in pass {number}: {len(windows)} sensors left")
        previous = windows
        memo.next_pass()
        if models is None:
            # Only once there is something to check; TensorFlow loads (seconds) while the first chunk
            # is read.
            models = _loading.submit(_models, settings, config)
        counts = _count_readings(context.engine, windows)
        chunks = station_chunks(list(windows), site_of, budget, counts)
        log.info(
            "pass %d: %d sensors, %d readings, in %d chunks of at most %d readings",
            number,
            len(windows),
            sum(counts.values()),
            len(chunks),
            budget,
        )
        # The next chunk is read on a thread while this one is checked: the database does most of
        # the reading in its own process, so the two overlap. That holds a second chunk's readings
        # (about 60 bytes each) beside the one being checked, a few percent of BYTES_PER_READING.
        owns = [{s: windows[s] for s in chunk} for chunk in chunks]
        with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as reader:
            ahead = reader.submit(_read_chunk, context.engine, owns[0], links)
            for i, own in enumerate(owns):
                data = ahead.result()
                if i + 1 < len(owns):
                    ahead = reader.submit(_read_chunk, context.engine, owns[i + 1], links)
                after = {
                    s: after_window(w, latest[s], done.get(s), overlap, context_days) for s, w in own.items()
                }
                watermarks = {s: watermark for s, (watermark, _) in after.items()}
                # Marks to clear (late readings now checked) or to set (a window that stopped short).
                marks = {
                    s: (own[s].since, mark) for s, (_, mark) in after.items() if s in late or mark is not None
                }
                # The next pass starts the context days before the mark (check_starts).
                memo.keep({s: mark - context_days for s, (_, mark) in after.items() if mark is not None})
                written += _check_chunk(context, own, watermarks, marks, data, models, config, memo)


_loading = ThreadPoolExecutor(1, thread_name_prefix="load-models")


def prepare(settings: EtlSettings) -> None:
    """Load and warm the models ahead of the step (the runner's StepProcess does it while the extract
    runs): TensorFlow's start takes seconds of CPU. The step finds them loaded."""
    _models(settings, detection_config(settings))


def _models(settings: EtlSettings, config: Configuration) -> dict:
    if not config.running(Detector.MODEL):
        return {}  # no model check runs: TensorFlow is not even loaded
    models = load_all(settings.models_dir) if settings.models_dir else shipped()
    for model in models.values():
        model.warm_up()  # TensorFlow traces each forward pass (seconds) here, not in the first chunk
    return models


def _read_state(engine) -> tuple[dict, dict]:
    """Each checked sensor's watermark, and the recheck marks."""
    with engine.connect() as connection:
        state = connection.execute(
            select(
                detection_state.c.sensor_id, detection_state.c.analysed_until, detection_state.c.recheck_from
            )
        ).all()
    done = {sensor: pd.Timestamp(until) for sensor, until, _ in state}
    late = {sensor: pd.Timestamp(since) for sensor, _, since in state if since is not None}
    return done, late


def _windows(windows: dict[str, Window], name: str = "windows"):
    """The windows as a table to join in SQL: (key, since, until)."""
    rows = [(key, w.since.to_pydatetime(), w.until.to_pydatetime()) for key, w in windows.items()]
    return (
        values(column("key", String), column("since", UTCDateTime), column("until", UTCDateTime), name=name)
        .data(rows)
        .cte(name)
    )


def _batches(windows: dict[str, Window]):
    keys = list(windows)
    for i in range(0, len(keys), WINDOWS_PER_QUERY):
        yield {k: windows[k] for k in keys[i : i + WINDOWS_PER_QUERY]}


def _count_readings(engine, windows: dict[str, Window]) -> dict[str, int]:
    """The readings in each sensor's window: an index range count per sensor (a subquery per window:
    a join of the windows would have the database scan the whole table)."""
    counts = dict.fromkeys(windows, 0)
    with engine.connect() as connection:
        for batch in _batches(windows):
            table = _windows(batch)
            inside = select(func.count()).where(_inside(readings, "sensor_id", table)).scalar_subquery()
            counts.update({sensor: int(n) for sensor, n in connection.execute(select(table.c.key, inside))})
    return counts


def _inside(table, key: str, windows, column: str = "ts"):
    return and_(
        table.c[key] == windows.c.key, table.c[column] >= windows.c.since, table.c[column] <= windows.c.until
    )


def _read_windows(connection, columns, table, key: str, windows: dict[str, Window], column: str = "ts"):
    """The rows of `table` inside each key's window, in batches of windows, as one frame."""
    parts = []
    for batch in _batches(windows):
        spans = _windows(batch)
        parts.append(read_frame(connection, select(*columns).join(spans, _inside(table, key, spans, column))))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _read_series(
    connection, table, key: str, columns: list[str], windows: dict[str, Window], categorical: bool = False
) -> pd.DataFrame:
    """The rows (key, ts and `columns`) of a time series table inside each key's window, as one frame
    with the types `read_frame` gives, or with the keys as categories if `categorical` (as detection
    takes them; `_as_categories`). On PostgreSQL each window's rows come as one binary value
    (`core.db.packed_series`): an index range scan per window and no text to parse, where joining the windows
    scans the whole table and parsing CSV took longer than the rules."""
    if connection.dialect.name != "postgresql":
        selected = [table.c[key], table.c.ts, *(table.c[c] for c in columns)]
        frame = _read_windows(connection, selected, table, key, windows)
        return frame.astype({key: "category"}) if categorical else frame
    keys, parts = [], []
    for batch in _batches(windows):
        for name, packed in connection.execute(packed_series(table, key, columns, _windows(batch))):
            if packed is not None:  # None: no rows in that window
                keys.append(name)
                parts.append(packed)
    ts, values, counts = unpack_series(parts, columns)
    if categorical:
        names = _as_categories(keys, counts)
    else:
        names = pd.array(np.array(keys, dtype=object).repeat(counts), dtype="str")
    return pd.DataFrame({key: names, "ts": ts, **values})


def _as_categories(keys: list[str], counts: list[int]) -> pd.Categorical:
    """Each key repeated `counts` times, as the categories `astype("category")` would make of those
    strings (sorted), built from the keys' positions: no string per row to make, nor to hash again."""
    order = sorted(name for name, count in zip(keys, counts) if count)
    rank = {name: i for i, name in enumerate(order)}
    codes = np.repeat(np.array([rank.get(name, -1) for name in keys], dtype=np.int32), counts)
    return pd.Categorical.from_codes(codes, categories=pd.Index(order, dtype="str"))


@dataclass(frozen=True)
class ChunkData:
    """What a chunk's check reads ahead: its sensors' readings, their links to stations and the
    stations' reports."""

    readings: pd.DataFrame
    links: pd.DataFrame
    observations: pd.DataFrame


def _read_chunk(engine, windows: dict[str, Window], links: pd.DataFrame) -> ChunkData:
    """The readings in the chunk's windows, and the reports of their stations over them from a day
    earlier (the rain check looks at the day before)."""
    own_links = links[links["sensor_id"].isin(list(windows)) & links["site_id"].notna()]
    stations = {}
    for sensor, site in zip(own_links["sensor_id"], own_links["site_id"]):
        w, seen = windows[sensor], stations.get(str(site))
        since = w.since - pd.Timedelta(days=1)
        stations[str(site)] = (
            Window(since, w.until)
            if seen is None
            else Window(min(seen.since, since), max(seen.until, w.until))
        )
    variables = [c.name for c in readings.columns if c.name not in ("sensor_id", "ts")]
    with engine.connect() as connection:
        # Detection groups by sensor and by station: the ids come as categories, as it would make them.
        frame = _read_series(connection, readings, "sensor_id", variables, windows, categorical=True)
        observations = (
            _read_series(connection, wow_observations, "site_id", STATION_COLUMNS, stations, categorical=True)
            if stations
            else pd.DataFrame(columns=["site_id", "ts", *STATION_COLUMNS])
        )
    return ChunkData(frame, own_links, observations)


def _check_chunk(
    context: StepContext,
    windows: dict[str, Window],
    watermarks: dict[str, pd.Timestamp],
    marks: dict[str, tuple[pd.Timestamp, pd.Timestamp | None]],
    data: ChunkData,
    models: Future,
    config: Configuration,
    memo: ErrorMemo | None = None,
) -> int:
    """Check one chunk's windows (`data`: what `_read_chunk` read of them), and store its anomalies,
    watermarks and recheck marks (each sensor's window start with its next mark, None to clear) in one
    transaction."""
    chunk = list(windows)
    frame = data.readings
    # The stored anomalies a finding can continue: those ending near or after the window's start (a
    # model's day may begin before it). Read now, not ahead: the chunk before may have just written.
    reach = {s: Window(w.since - pd.Timedelta(days=1) - TOUCHING, FOREVER) for s, w in windows.items()}
    with context.engine.connect() as connection:
        stored = _read_windows(
            connection,
            [
                anomalies.c.sensor_id,
                anomalies.c.variable,
                anomalies.c.kind,
                anomalies.c.start_at,
                anomalies.c.end_at,
            ],
            anomalies,
            "sensor_id",
            reach,
            column="end_at",
        )
    found = continue_stored(
        detect(frame, data.observations, data.links, models=models, config=config, memo=memo)
        if len(frame)
        else pd.DataFrame(columns=ANOMALY_COLUMNS),
        stored,
    )
    gone = superseded(found, stored)
    state = pd.DataFrame({"sensor_id": chunk, "analysed_until": [watermarks[s] for s in chunk]})
    with context.engine.begin() as connection:
        carry_answers(connection, gone)
        written = _delete_anomalies(connection, gone)
        written += bulk_upsert(connection, anomalies, found[ANOMALY_COLUMNS]) if len(found) else 0
        bulk_upsert(connection, detection_state, state)  # the watermark moves with the anomalies, atomically
        set_recheck_marks(connection, marks, earlier=False)
    return written


def _delete_anomalies(connection, keys: pd.DataFrame) -> int:
    if keys.empty:
        return 0
    rows = [
        {
            "gone_sensor": sensor,
            "gone_variable": variable,
            "gone_kind": kind,
            "gone_start": start.to_pydatetime(),
        }
        for sensor, variable, kind, start in keys[[*ANOMALY_KEY, "start_at"]].itertuples(index=False)
    ]
    connection.execute(
        delete(anomalies).where(
            anomalies.c.sensor_id == bindparam("gone_sensor"),
            anomalies.c.variable == bindparam("gone_variable"),
            anomalies.c.kind == bindparam("gone_kind"),
            anomalies.c.start_at == bindparam("gone_start"),
        ),
        rows,
    )
    return len(rows)


@click.command(NAME, cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--recheck-days",
    type=click.IntRange(min=1),
    metavar="N",
    help="also check again the last N days of every sensor with readings in them, whatever was "
    "checked before (the soil drift check needs weeks: deploy/crontab runs 45 weekly)",
)
@shard_option
def main(recheck_days: int | None, shard) -> None:
    """Check the readings not checked before and those that arrived late (rules, and the nearest
    station where linked)."""
    run_alone(NAME, partial(run_with, recheck_days=recheck_days), shard)


if __name__ == "__main__":
    main(prog_name=f"python -m etl.{NAME}")
