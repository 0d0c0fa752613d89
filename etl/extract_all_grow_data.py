"""Step 3 of 5, `python -m etl.extract_all_grow_data`: new readings of every sensor, and new observations
of every linked WOW station, into the database.

Incremental and complete: each sensor is read from where the GROW API last answered fully for it
(`fetch_state`, see `etl.fetch_state`) less EXTRACT_REREAD_DAYS, because phones upload days late; a
sensor whose GROW record shows no sample since then is not asked at all. Requests carry 10 sensors × at
most 10 days and run in a bounded pool. Each answer is held against its request (`check_answer`): a
sensor left out, a variable missing, a failed request, or a record that had to be refused or repaired
leaves the sensor *held* at that window, to be asked again on the next runs; nothing past a hole moves
its watermark. Readings that arrive for days detection has already checked mark those days for a
re-check (`detection_state.recheck_from`). WOW stations are read per site from their own watermark, as
WOW's rate limits want. What went wrong is counted in the run's etl_runs row; the step fails only when
its own work does, never because upstream answered badly.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from dataclasses import replace

import pandas as pd
from sqlalchemy import select
from tqdm import tqdm

from core.db import latest_times, read_frame
from core.schema import detection_state, readings, sensor_wow, sensors, wow_observations, wow_sites
from core.vocabulary import source_of
from etl.commands import step_command
from etl.fetch_state import WOW, Progress, next_state, read_state, save_state
from etl.forked import Forked
from etl.loaders import Loader, ReadingsLoader, mark_unsure, store_history
from etl.shard import owned, sensor_sites
from etl.sources import sensor_sources
from etl.sources.http import SourceError, in_order
from etl.sources.wow import STORED_COLUMNS, WowClient
from etl.step import StepContext, Tally

log = logging.getLogger(__name__)

NAME = "extract_all_grow_data"


def fetch_plan(
    sensor_frame: pd.DataFrame,
    watermarks: dict,
    now: dt.datetime,
    reread: dt.timedelta,
    history: dt.timedelta,
    held: set = frozenset(),
) -> pd.DataFrame:
    """Which sensors to read and from when: (sensor_id, start), earliest first.

    A sensor is read from its watermark less the re-read span; a sensor never read, from its first
    sample (at most `history` back). A sensor that announces nothing after its watermark, and nothing
    in the re-read span before now either, is not asked at all (a dead sensor costs no requests),
    unless it is `held` by an incomplete answer.
    """
    plan = []
    oldest = pd.Timestamp(now - history)
    recent = pd.Timestamp(now - reread)
    for row in sensor_frame.itertuples():
        mark = watermarks.get(row.sensor_id)
        last = row.last_sample_at
        if mark is not None:
            if pd.notna(last) and last <= mark and last < recent and row.sensor_id not in held:
                continue
            start = mark - pd.Timedelta(reread)
        else:
            start = row.first_sample_at if pd.notna(row.first_sample_at) else oldest
        plan.append((row.sensor_id, max(pd.Timestamp(start), oldest).floor("s")))
    frame = pd.DataFrame(plan, columns=["sensor_id", "start"])
    return frame.sort_values(["start", "sensor_id"], ignore_index=True)


def windows_of(
    plan: pd.DataFrame, now: dt.datetime, client
) -> list[tuple[tuple[str, ...], dt.datetime, dt.datetime]]:
    """Requests for a plan: sensors with close starts in groups of as many as the source takes in one
    request (GROW's 10), each group read from its earliest start."""
    windows, size = [], client.max_sensors
    for i in range(0, len(plan), size):
        group = plan.iloc[i : i + size]
        windows += client.request_windows(list(group["sensor_id"]), group["start"].min().to_pydatetime(), now)
    return windows


def count_problems(context: StepContext, batch) -> None:
    tally = context.tally
    tally.add("failed_requests", batch.error is not None)
    tally.add("gaps", len(batch.incomplete) if batch.error is None else 0)
    for name, n in batch.counts.items():
        tally.add(f"{name}_samples", n)


def extract_readings(context: StepContext, client) -> int:
    """New readings of the sensors of one source (`client`, see etl.sources.sensor_sources)."""
    with context.engine.connect() as connection:
        sensor_frame = read_frame(
            connection, select(sensors.c.sensor_id, sensors.c.first_sample_at, sensors.c.last_sample_at)
        )
        sites = sensor_sites(connection)
        mine = owned(context.shard, sensor_frame["sensor_id"], sites)
        sensor_frame = sensor_frame.loc[mine & (sensor_frame["sensor_id"].map(source_of) == client.name)]
        stored = read_state(connection, client.state_key)
        newest = latest_times(connection, readings, sensors, "sensor_id")
        checked = dict(
            connection.execute(select(detection_state.c.sensor_id, detection_state.c.analysed_until)).all()
        )
    for column in ("first_sample_at", "last_sample_at"):
        sensor_frame[column] = pd.to_datetime(sensor_frame[column], utc=True)
    # A database from before fetch_state: the newest reading is the best watermark it has.
    watermarks = {**newest, **{s: state.fetched_through for s, state in stored.items()}}
    settings = context.settings
    reread = dt.timedelta(days=settings.extract_reread_days)
    history = dt.timedelta(days=settings.extract_history_days)
    held = {s for s, state in stored.items() if state.held_since is not None}
    plan = fetch_plan(sensor_frame, watermarks, context.now, reread, history, held=held)
    windows = windows_of(plan, context.now, client)
    log.info(
        "%s: %d of %d sensors have readings to fetch: %d requests",
        client.name,
        len(plan),
        len(sensor_frame),
        len(windows),
    )
    parts = split_by_sensors(windows, _processes(context))
    if len(parts) <= 1:
        progress, written = fetch_readings(context, client, windows, newest, checked)
    else:
        progress, written = _fetch_apart(context, client.name, parts, newest, checked)
    # An answer up to now says nothing of samples after the sensor's last announced one: its phone may
    # upload those days late. So a sensor's watermark goes no further than that.
    announced = sensor_frame.set_index("sensor_id")["last_sample_at"].dropna().to_dict()
    for code, through in list(progress.through.items()):
        if code in announced and announced[code] < through:
            progress.through[code] = announced[code]
    # Only now that every load is committed may the watermarks move.
    _save_progress(context, client.state_key, progress, stored)
    return written


def split_by_sensors(windows: list, parts: int) -> list[list]:
    """The requests in `parts` lists, each sensor's requests all in one of them, in their order."""
    part_of: dict[tuple, int] = {}
    groups = len({tuple(window[0]) for window in windows})
    split: list[list] = [[] for _ in range(max(1, min(parts, groups)))]
    for window in windows:
        codes = tuple(window[0])
        part = part_of.setdefault(codes, len(part_of) % len(split))
        split[part].append(window)
    return split


def _processes(context: StepContext) -> int:
    """How many processes check GROW's answers: SQLite takes one writer at a time, so one there; and
    no more than there may be requests under way (FETCH_WORKERS), shared among them."""
    settings = context.settings
    return (
        1 if context.engine.dialect.name == "sqlite" else min(settings.grow_processes, settings.fetch_workers)
    )


def fetch_readings(
    context: StepContext, client, windows: list, newest: dict, checked: dict, bar: bool = True
) -> tuple[Progress, int]:
    """Ask for each window, check the answers and load their readings; what the answers covered and the
    rows written. A progress bar on a terminal, unless `bar` is False."""
    progress, failed_before = Progress(), False  # the first failure is logged whole, then only counted
    histories = []
    with ReadingsLoader(context, newest, checked) as loader:
        for batch in tqdm(
            client.iter_windows(windows),
            total=len(windows),
            desc="readings",
            unit="req",
            disable=not (bar and context.progress),
        ):
            failed = str(batch.error) if batch.error is not None else None
            for code in batch.codes:
                progress.answered(code, batch.start, batch.end, failed or batch.incomplete.get(code))
            count_problems(context, batch)
            if batch.error is None:
                loader.add(mark_unsure(batch.readings, batch.incomplete), batch.quarantined)
                if batch.history is not None and len(batch.history):
                    histories.append(batch.history)
            elif not failed_before:
                failed_before = True
                log.warning("%s (the sensors of failed requests are asked again next run)", batch.error)
    if not histories:
        return progress, loader.written
    with context.engine.begin() as connection:  # after the readings it describes
        return progress, loader.written + store_history(connection, pd.concat(histories, ignore_index=True))


def _fetch_apart(
    context: StepContext, source: str, parts: list[list], newest: dict, checked: dict
) -> tuple[Progress, int]:
    """fetch_readings of each part in a forked process of its own, side by side: checking answers holds
    the interpreter, so one process checks only as fast as one core. A part that fails does not stop
    the others (what they load is kept); its error is raised once they are done. FETCH_WORKERS still
    bounds the requests under way, all parts together."""
    workers = max(1, context.settings.fetch_workers // len(parts))
    forked = [
        Forked(
            _fetch_part,
            context,
            source,
            part,
            newest,
            checked,
            workers,
            engine=context.engine,
            name=f"extract-{source}",
        )
        for part in parts
    ]
    progress, written, errors = Progress(), 0, []
    try:
        for each in forked:
            each.go()
        for each in forked:
            try:
                part_progress, part_written, counts = each.result()
            except Exception as exc:
                errors.append(exc)
                continue
            progress.merge(part_progress)  # the parts' sensors are apart
            written += part_written
            context.tally.add_all(counts)
    except BaseException:
        for each in forked:
            each.cancel()
        raise
    if errors:
        raise errors[0]
    return progress, written


def _fetch_part(
    context: StepContext, source: str, windows: list, newest: dict, checked: dict, workers: int
) -> tuple[Progress, int, dict]:
    """fetch_readings in a process `_fetch_apart` forked: with a client and a count of its own."""
    context = replace(context, tally=Tally())
    client = sensor_sources.client(source, context.settings)
    client.workers = workers
    # The bars of several processes would overwrite each other on a terminal.
    progress, written = fetch_readings(context, client, windows, newest, checked, bar=False)
    return progress, written, context.tally.as_dict()


def _save_progress(context: StepContext, source: str, progress: Progress, stored: dict) -> None:
    states, gaps = next_state(
        source, progress, stored, context.now, dt.timedelta(days=context.settings.gap_give_up_days)
    )
    with context.engine.begin() as connection:
        save_state(connection, states, gaps)
    held = int(states["held_since"].notna().sum())
    context.tally.add(f"{source}_held_back", held)
    context.tally.add(f"{source}_given_up", len(gaps))
    if held:
        log.warning("%d %s entities held back by incomplete answers; asked again next run", held, source)


def station_plan(
    first_needed: pd.Series,
    watermarks: dict,
    now: dt.datetime,
    overlap: dt.timedelta,
    history: dt.timedelta,
) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    """Which stations to read, from when to when: from each station's watermark less the overlap up to
    now, or, for a station never read, from the first sample of the sensors it serves (at most
    `history` back). A station whose reports find_nearest_wow_live already stored up to now is not read."""
    now = pd.Timestamp(now)
    oldest, overlap = now - pd.Timedelta(history), pd.Timedelta(overlap)
    plan = {}
    for site, first in first_needed.items():
        mark = watermarks.get(site)
        if mark is not None and mark >= now:
            continue
        start = mark - overlap if mark is not None else (first if pd.notna(first) else oldest)
        plan[site] = (max(start, oldest), now)
    return plan


def extract_observations(context: StepContext, client: WowClient) -> int:
    settings = context.settings
    with context.engine.connect() as connection:
        links = pd.DataFrame(
            connection.execute(
                select(sensor_wow.c.sensor_id, sensor_wow.c.site_id, sensors.c.first_sample_at)
                .join(sensors, sensors.c.sensor_id == sensor_wow.c.sensor_id)
                .where(sensor_wow.c.site_id.is_not(None))
            ).all(),
            columns=["sensor_id", "site_id", "first_sample_at"],
        )
        # The stations of this shard: a station goes with its sensors, so each is read by one shard.
        links = links.loc[[context.shard.contains(str(site)) for site in links["site_id"]]]
        stored = read_state(connection, WOW)
        # A station without a fetch_state row (new, or from before it existed) may hold the reports
        # find_nearest_wow_live just stored from the live window: its history is what came before those.
        covered_since = context.now - dt.timedelta(hours=settings.wow_live_hours)
        older = latest_times(connection, wow_observations, wow_sites, "site_id", before=covered_since)
    watermarks = {**older, **{s: state.fetched_through for s, state in stored.items()}}
    first_needed = pd.to_datetime(links["first_sample_at"], utc=True).groupby(links["site_id"]).min()
    overlap = dt.timedelta(hours=settings.extract_overlap_hours)
    history = dt.timedelta(days=settings.extract_history_days)
    plan = station_plan(first_needed, watermarks, context.now, overlap, history)
    log.info("%d of %d linked stations have observations to fetch", len(plan), len(first_needed))

    def fetch(site: str):
        start, end = plan[site]
        try:
            return site, client.get_site_observations(site, start.to_pydatetime(), end.to_pydatetime()), None
        except SourceError as exc:
            return site, getattr(exc, "answer", None), exc  # the windows before the failure still count

    progress, failed_before = Progress(), False
    with Loader(context, wow_observations) as loader:
        results = in_order(fetch, sorted(plan), settings.fetch_workers, "wow")
        for site, answer, error in tqdm(
            results, total=len(plan), desc="stations", unit="site", disable=not context.progress
        ):
            start, end = plan[site]
            if error is not None:
                context.tally.add("failed_station_requests")
                if not failed_before:
                    failed_before = True
                    log.warning("%s (stations of failed requests are asked again next run)", error)
                failed_from = getattr(error, "failed_from", None)
                if failed_from is not None and failed_from > start:  # the windows before it count
                    progress.answered(site, start, failed_from, answer.incomplete.get(site))
                    start = failed_from
                progress.answered(site, start, end, str(error))
                if answer is None:
                    continue
            else:
                progress.answered(site, start, end, answer.incomplete.get(site))
            context.tally.add("station_gaps", len(answer.incomplete))
            for name, n in answer.counts.items():
                context.tally.add(f"{name}_observations", n)
            loader.add(answer.observations[STORED_COLUMNS], answer.quarantined)
    _save_progress(context, WOW, progress, stored)
    return loader.written


def run(context: StepContext) -> int:
    # The two sources are independent: fetched side by side, the stations in a process of their own, so
    # that checking their answers does not queue behind GROW's for the interpreter.
    stations = Forked(_observations, context, engine=context.engine, name="extract-wow")
    stations.go()
    try:
        readings_written = sum(
            extract_readings(context, client) for client in sensor_sources.clients(context.settings)
        )
    except Exception:
        with contextlib.suppress(Exception):  # what the stations' side loads and counts is kept all the same
            context.tally.add_all(stations.result()[1])
        raise
    except BaseException:
        stations.cancel()
        raise
    observations_written, counts = stations.result()
    context.tally.add_all(counts)
    log.info("%d readings and %d station observations written", readings_written, observations_written)
    return readings_written + observations_written


def _observations(context: StepContext) -> tuple[int, dict]:
    """extract_observations in the process `run` forks for it: the rows written and what it counted."""
    context = replace(context, tally=Tally())
    return extract_observations(context, WowClient(context.settings)), context.tally.as_dict()


main = step_command(
    NAME,
    run,
    "Fetch new readings (GROW) and station observations (WOW) since each watermark.",
)

if __name__ == "__main__":
    main(prog_name=f"python -m etl.{NAME}")
