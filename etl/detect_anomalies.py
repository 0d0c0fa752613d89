"""Step 4 of 5, `python -m etl.detect_anomalies`: check the readings not checked before.

Incremental: each sensor has a watermark (detection_state.analysed_until, its latest reading already
checked); only sensors with newer readings are checked, over the readings since the watermark plus
DETECT_CONTEXT_DAYS (2) before it, so the rules' windows, the daily models and the station comparison
see whole days. The soil drift check needs weeks: it runs on a sensor's first check (all its history)
and on runs given a longer context (deploy/crontab runs one weekly with 45 days). An anomaly that
continues one already stored extends it rather than starting a second one.

Detection itself is `detection.detect.detect` (rules, the autoencoders shipped in models/ or those in
MODELS_DIR, and the station checks); this step is database I/O around it. Which checks run is
DETECT_CHECKS, their thresholds DETECT_THRESHOLDS (`python -m etl checks` lists both).
"""

from __future__ import annotations

import itertools
import logging

import pandas as pd
from sqlalchemy import select

from core.db import latest_times, read_frame
from core.errors import SettingsError
from core.load import bulk_upsert
from core.schema import anomalies, detection_state, readings, sensor_wow, sensors, wow_observations
from core.vocabulary import Detector
from detection.autoencoder import load_all, shipped
from detection.checks import Configuration, parse_thresholds, select_checks, with_thresholds
from detection.detect import ANOMALY_COLUMNS, detect
from etl.settings import EtlSettings
from etl.step import StepContext, step_command

log = logging.getLogger(__name__)

NAME = "detect_anomalies"
CHUNK = 500  # sensors checked together: one model batch, and memory stays well under 1 GB
TOUCHING = pd.Timedelta(hours=1)


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
    """Give a new anomaly the start of a stored one it continues (same sensor, variable and kind,
    overlapping or within TOUCHING), so the upsert extends that one instead of adding another."""
    if found.empty or stored.empty:
        return found
    found = found.copy()
    key = ["sensor_id", "variable", "kind"]
    merged = found.reset_index().merge(stored[[*key, "start_at", "end_at"]], on=key, suffixes=("", "_stored"))
    continues = (merged["end_at_stored"] >= merged["start_at"] - TOUCHING) & (
        merged["start_at_stored"] <= merged["start_at"]
    )
    earliest = merged[continues].groupby("index")["start_at_stored"].min()
    found.loc[earliest.index, "start_at"] = earliest
    # Two new pieces of one stored anomaly become one row: the later end wins.
    return found.sort_values("end_at").drop_duplicates([*key, "start_at"], keep="last")


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


def run(context: StepContext) -> int:
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
        done = dict(
            connection.execute(select(detection_state.c.sensor_id, detection_state.c.analysed_until)).all()
        )
    todo = [s for s in sensor_ids if s in latest and (s not in done or pd.Timestamp(done[s]) < latest[s])]
    log.info("%d of %d sensors have readings not checked yet", len(todo), len(sensor_ids))
    if not config.running(Detector.MODEL):
        models = {}  # no model check runs: TensorFlow is not even loaded
    elif context.settings.models_dir:
        models = load_all(context.settings.models_dir)
    else:
        models = shipped()
    written = 0
    for chunk in station_chunks(todo, site_of, CHUNK):
        written += _check_chunk(context, chunk, latest, done, links, models, config)
    return written


def _check_chunk(
    context: StepContext,
    chunk: list[str],
    latest: dict,
    done: dict,
    links: pd.DataFrame,
    models: dict,
    config: Configuration,
) -> int:
    context_days = pd.Timedelta(days=context.settings.detect_context_days)
    starts = {s: (pd.Timestamp(done[s]) - context_days if s in done else None) for s in chunk}
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
    state = pd.DataFrame({"sensor_id": chunk, "analysed_until": [latest[s] for s in chunk]})
    with context.engine.begin() as connection:
        written = bulk_upsert(connection, anomalies, found[ANOMALY_COLUMNS]) if len(found) else 0
        bulk_upsert(connection, detection_state, state)  # the watermark moves with the anomalies, atomically
    return written


main = step_command(
    NAME,
    run,
    "Check the readings not checked before (rules, and the nearest station where linked).",
)

if __name__ == "__main__":
    main(prog_name=f"python -m etl.{NAME}")
