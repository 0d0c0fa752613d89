"""Step 4 of 5, `python -m etl.detect_anomalies [--recheck-days N]`: check the readings not yet checked.

Incremental: each sensor has a watermark (detection_state.analysed_until, its latest reading already
checked); only sensors with newer readings are checked, over the readings since the watermark plus
DETECT_CONTEXT_DAYS (2) before it, so the rules' windows, the daily models and the station comparison
see whole days. Readings that arrive late, older than the watermark (GROW phones upload days late), are
marked by extraction in detection_state.recheck_from: such a sensor is checked from there (less the
context days) even with nothing newer, and the mark is cleared with the watermark's move.

The soil drift check needs weeks: it runs on a sensor's first check (all its history) and on runs given
--recheck-days N, which check again the last N days (back from each sensor's latest reading) of every
sensor that has readings in the N days before now, whatever its watermark; deploy/crontab runs one
weekly with 45. An anomaly that continues one already stored extends it rather than starting a second
one, so checking the same days again adds no rows.

Detection itself is `detection.detect.detect` (rules, the autoencoders shipped in models/ or those in
MODELS_DIR, and the station checks); this step is database I/O around it. Which checks run is
DETECT_CHECKS, their thresholds DETECT_THRESHOLDS (`python -m etl checks` lists both).
"""

from __future__ import annotations

import itertools
import logging
from functools import partial

import click
import pandas as pd
from sqlalchemy import bindparam, delete, func, select, update

from core.db import latest_times, read_frame
from core.errors import SettingsError
from core.load import bulk_upsert
from core.schema import anomalies, detection_state, readings, sensor_wow, sensors, wow_observations
from core.vocabulary import Detector
from detection.autoencoder import load_all, shipped
from detection.checks import Configuration, parse_thresholds, select_checks, with_thresholds
from detection.detect import ANOMALY_COLUMNS, detect
from etl.settings import EtlSettings
from etl.step import Command, StepContext, run_alone, shard_option

log = logging.getLogger(__name__)

NAME = "detect_anomalies"
CHUNK = 500  # sensors checked together: one model batch, and memory stays well under 1 GB
TOUCHING = pd.Timedelta(hours=1)
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
        return pd.DataFrame(columns=[*ANOMALY_KEY, "start_at"])
    runs = merged[[*ANOMALY_KEY, "start_at", "end_at"]].rename(
        columns={"start_at": "run_start", "end_at": "run_end"}
    )
    pairs = stored[[*ANOMALY_KEY, "start_at"]].merge(runs, on=ANOMALY_KEY)
    inside = (pairs["start_at"] > pairs["run_start"]) & (pairs["start_at"] <= pairs["run_end"])
    return pairs.loc[inside, [*ANOMALY_KEY, "start_at"]].drop_duplicates(ignore_index=True)


def station_chunks(todo: list[str], site_of: dict[str, str], size: int) -> list[list[str]]:
    """Chunks of about `size` sensors that never split the sensors of one station: they witness each
    other's weather (the soil drift check), so they must be checked together."""
    ordered = sorted(todo, key=lambda sensor: (site_of.get(sensor, ""), sensor))
    chunks: list[list[str]] = [[]]
    for _, members in itertools.groupby(ordered, key=lambda sensor: site_of.get(sensor) or sensor):
        members = list(members)
        if chunks[-1] and len(chunks[-1]) + len(members) > size:
            chunks.append([])
        chunks[-1].extend(members)
    return [chunk for chunk in chunks if chunk]


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
    last that many days of every sensor that has readings in them (what the soil drift check needs)."""
    config = detection_config(context.settings)  # before any work: a bad setting fails at once
    with context.engine.connect() as connection:
        links = pd.DataFrame(
            connection.execute(
                select(sensor_wow.c.sensor_id, sensor_wow.c.site_id, sensor_wow.c.distance_km)
            ).all(),
            columns=["sensor_id", "site_id", "distance_km"],
        )
        site_of = {
            sensor: str(site) for sensor, site in zip(links["sensor_id"], links["site_id"]) if pd.notna(site)
        }
        # A shard takes whole stations (a sensor without one goes by its own id), so a sharded run
        # checks each sensor beside the same neighbours as a whole run.
        sensor_ids = [
            s
            for s in connection.execute(select(sensors.c.sensor_id)).scalars()
            if context.shard.contains(site_of.get(s, s))
        ]
        latest = latest_times(connection, readings, sensors, "sensor_id")
        state = connection.execute(
            select(
                detection_state.c.sensor_id, detection_state.c.analysed_until, detection_state.c.recheck_from
            )
        ).all()
    done = {sensor: pd.Timestamp(until) for sensor, until, _ in state}
    late = {sensor: pd.Timestamp(since) for sensor, _, since in state if since is not None}
    starts = check_starts(
        sensor_ids,
        latest,
        done,
        late,
        pd.Timedelta(days=context.settings.detect_context_days),
        None if recheck_days is None else pd.Timedelta(days=recheck_days),
        pd.Timestamp(context.now),
    )
    rechecked = sum(1 for s in starts if s in done and done[s] >= latest[s])
    log.info(
        "%d of %d sensors to check: %d with readings not checked yet, %d again",
        len(starts),
        len(sensor_ids),
        len(starts) - rechecked,
        rechecked,
    )
    if not starts:
        return 0  # nothing to check: not even TensorFlow to load
    if not config.running(Detector.MODEL):
        models = {}  # no model check runs: TensorFlow is not even loaded
    elif context.settings.models_dir:
        models = load_all(context.settings.models_dir)
    else:
        models = shipped()
    written = 0
    for chunk in station_chunks(list(starts), site_of, CHUNK):
        chunk_starts = {s: starts[s] for s in chunk}
        chunk_late = {s: late[s] for s in chunk if s in late}
        written += _check_chunk(context, chunk_starts, latest, chunk_late, links, models, config)
    return written


def _check_chunk(
    context: StepContext,
    starts: dict[str, pd.Timestamp | None],
    latest: dict,
    late: dict,
    links: pd.DataFrame,
    models: dict,
    config: Configuration,
) -> int:
    chunk = list(starts)
    earliest = min((t for t in starts.values() if t is not None), default=None)
    own_links = links[links["sensor_id"].isin(chunk) & links["site_id"].notna()]
    with context.engine.connect() as connection:
        query = select(readings).where(readings.c.sensor_id.in_(chunk))
        if earliest is not None and all(t is not None for t in starts.values()):
            query = query.where(readings.c.ts >= earliest.to_pydatetime())
        frame = read_frame(connection, query)
        since = pd.to_datetime(frame["sensor_id"].map(starts), utc=True)  # NaT: never checked, all of it
        frame = frame[since.isna() | (frame["ts"] >= since)]
        station_query = select(
            wow_observations.c.site_id,
            wow_observations.c.ts,
            wow_observations.c.air_temperature,
            wow_observations.c.rainfall,
        ).where(wow_observations.c.site_id.in_(list(own_links["site_id"].unique())))
        if len(frame):
            # A day earlier than the readings: the rain check looks at the day before each day.
            station_query = station_query.where(
                wow_observations.c.ts >= (frame["ts"].min() - pd.Timedelta(days=1)).to_pydatetime()
            )
        stations = read_frame(connection, station_query)
        stored = read_frame(
            connection,
            select(
                anomalies.c.sensor_id,
                anomalies.c.variable,
                anomalies.c.kind,
                anomalies.c.start_at,
                anomalies.c.end_at,
            ).where(anomalies.c.sensor_id.in_(chunk)),
        )
    found = continue_stored(
        detect(frame, stations, own_links, models=models, config=config)
        if len(frame)
        else pd.DataFrame(columns=ANOMALY_COLUMNS),
        stored,
    )
    gone = superseded(found, stored)
    state = pd.DataFrame({"sensor_id": chunk, "analysed_until": [latest[s] for s in chunk]})
    with context.engine.begin() as connection:
        written = _delete_anomalies(connection, gone)
        written += bulk_upsert(connection, anomalies, found[ANOMALY_COLUMNS]) if len(found) else 0
        bulk_upsert(connection, detection_state, state)  # the watermark moves with the anomalies, atomically
        _clear_recheck(connection, late)
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


def _clear_recheck(connection, late: dict) -> None:
    """The late readings of these sensors are checked: clear their marks, but not one that extraction
    moved earlier meanwhile (it keeps the earliest), whose readings this run may not have read."""
    if not late:
        return
    connection.execute(
        update(detection_state)
        .where(
            detection_state.c.sensor_id == bindparam("checked_sensor"),
            detection_state.c.recheck_from >= bindparam("checked_since"),
        )
        .values(recheck_from=None, updated_at=func.now()),
        [{"checked_sensor": s, "checked_since": t.to_pydatetime()} for s, t in late.items()],
    )


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
