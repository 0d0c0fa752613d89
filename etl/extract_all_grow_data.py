"""Step 3 of 5, `python -m etl.extract_all_grow_data`: new readings of every sensor, and new observations
of every linked WOW station, into the database.

Incremental: each sensor is read from its watermark (its latest stored reading) less a short overlap, so
late uploads are caught; a sensor whose GROW record shows no sample after its watermark is not asked at
all. Requests carry 10 sensors × at most 10 days and run in a bounded pool. Batches are loaded in the
order their windows follow each other, and once a window fails, the later windows of the same sensors
are not loaded: a watermark never jumps a gap, so a crashed or failed run is resumed by the next one.
WOW stations are read per site from their own watermark, as WOW's rate limits want.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import pandas as pd
from sqlalchemy import Table, select
from tqdm import tqdm

from core.db import latest_times
from core.load import bulk_upsert
from core.schema import readings, sensor_wow, sensors, wow_observations, wow_sites
from etl.sources.grow import MAX_LOCATIONS, Batch, GrowClient, request_windows
from etl.sources.http import SourceError
from etl.sources.wow import STORED_COLUMNS, WowClient
from etl.step import StepContext, StepFailed, step_command

log = logging.getLogger(__name__)

NAME = "extract_all_grow_data"
GAP_TOLERANCE = pd.Timedelta(hours=2)  # stations report every 5 to 60 minutes


def fetch_plan(
    sensor_frame: pd.DataFrame,
    watermarks: dict,
    now: dt.datetime,
    overlap: dt.timedelta,
    history: dt.timedelta,
) -> pd.DataFrame:
    """Which sensors to read and from when: (sensor_id, start), earliest first.

    A sensor is read from its watermark less the overlap; a sensor never read, from its first sample
    (at most `history` back); a sensor whose last announced sample is not after its watermark, not at all.
    """
    plan = []
    oldest = pd.Timestamp(now - history)
    for row in sensor_frame.itertuples():
        mark = watermarks.get(row.sensor_id)
        last = row.last_sample_at
        if mark is not None:
            if pd.notna(last) and last <= mark:
                continue
            start = mark - pd.Timedelta(overlap)
        else:
            start = row.first_sample_at if pd.notna(row.first_sample_at) else oldest
        plan.append((row.sensor_id, max(pd.Timestamp(start), oldest).floor("s")))
    frame = pd.DataFrame(plan, columns=["sensor_id", "start"])
    return frame.sort_values(["start", "sensor_id"], ignore_index=True)


def windows_of(
    plan: pd.DataFrame, now: dt.datetime
) -> list[tuple[tuple[str, ...], dt.datetime, dt.datetime]]:
    """Requests for a plan: sensors with close starts in groups of 10, each read from its earliest start."""
    windows = []
    for i in range(0, len(plan), MAX_LOCATIONS):
        group = plan.iloc[i : i + MAX_LOCATIONS]
        windows += request_windows(list(group["sensor_id"]), group["start"].min().to_pydatetime(), now)
    return windows


class Loader:
    """Collect batches and load them in bulk on a thread of its own, one transaction at a time in the
    order they came, while the next requests are fetched. Use it as a context manager: leaving waits
    for the last load and raises its error, if any."""

    def __init__(self, context: StepContext, table: Table):
        self.context, self.table = context, table
        self.frames: list[pd.DataFrame] = []
        self.rows = 0
        self.written = 0
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"load-{table.name}")
        self._loading: Future | None = None

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            if exc_info[0] is None:
                self.flush()
            self._wait()
        finally:
            self._thread.shutdown(wait=True)

    def add(self, frame: pd.DataFrame) -> None:
        if len(frame):
            self.frames.append(frame)
            self.rows += len(frame)
        if self.rows >= self.context.settings.load_batch_rows:
            self.flush()

    def flush(self) -> None:
        if not self.frames:
            return
        batch = pd.concat(self.frames, ignore_index=True)
        self.frames, self.rows = [], 0
        self._wait()  # one load at a time keeps the order, and memory bounded
        self._loading = self._thread.submit(self._load, batch)

    def _load(self, batch: pd.DataFrame) -> int:
        with self.context.engine.begin() as connection:
            return bulk_upsert(connection, self.table, batch)

    def _wait(self) -> None:
        if self._loading is not None:
            loading, self._loading = self._loading, None
            self.written += loading.result()


def extract_readings(context: StepContext, client: GrowClient) -> tuple[int, list[SourceError]]:
    with context.engine.connect() as connection:
        sensor_frame = pd.DataFrame(
            connection.execute(
                select(sensors.c.sensor_id, sensors.c.first_sample_at, sensors.c.last_sample_at)
            ).all(),
            columns=["sensor_id", "first_sample_at", "last_sample_at"],
        )
        sensor_frame = sensor_frame[sensor_frame["sensor_id"].map(context.shard.contains)]
        watermarks = latest_times(connection, readings, sensors, "sensor_id")
    for column in ("first_sample_at", "last_sample_at"):
        sensor_frame[column] = pd.to_datetime(sensor_frame[column], utc=True)
    settings = context.settings
    plan = fetch_plan(
        sensor_frame,
        watermarks,
        context.now,
        dt.timedelta(hours=settings.extract_overlap_hours),
        dt.timedelta(days=settings.extract_history_days),
    )
    windows = windows_of(plan, context.now)
    log.info(
        "%d of %d sensors have new readings to fetch: %d requests", len(plan), len(sensor_frame), len(windows)
    )
    failures, broken = [], set()
    batches: Iterable[Batch] = client.iter_windows(windows)
    with Loader(context, readings) as loader:
        for batch in tqdm(
            batches, total=len(windows), desc="readings", unit="req", disable=not context.progress
        ):
            if batch.codes in broken:
                continue  # an earlier window of these sensors failed: loading this one would skip the gap
            if batch.error is not None:
                failures.append(batch.error)
                broken.add(batch.codes)
                continue
            loader.add(batch.readings)
    return loader.written, failures


def station_plan(
    first_needed: pd.Series,
    latest: dict,
    latest_before: dict,
    now: dt.datetime,
    covered_since: dt.datetime,
    overlap: dt.timedelta,
    history: dt.timedelta,
) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    """Which stations to read, from when to when.

    find_nearest_wow_live stores the linked stations' reports since `covered_since` (the live window).
    A station holding those is read only across the gap before them, if there is one; a station without
    them, from its watermark less the overlap up to now. A station never read starts from the first
    sample of the sensors it serves, at most `history` back.
    """
    now, covered_since = pd.Timestamp(now), pd.Timestamp(covered_since)
    oldest, overlap = now - pd.Timedelta(history), pd.Timedelta(overlap)
    plan = {}
    for site, first in first_needed.items():
        fresh_start = max(first if pd.notna(first) else oldest, oldest)
        if site in latest and latest[site] >= covered_since:
            before = latest_before.get(site)
            if before is not None and before >= covered_since - GAP_TOLERANCE:
                continue  # contiguous with what find_nearest_wow_live stored
            start, end = (before - overlap if before is not None else fresh_start), covered_since
        else:
            start, end = (latest[site] - overlap if site in latest else fresh_start), now
        plan[site] = (max(start, oldest), end)
    return plan


def extract_observations(context: StepContext, client: WowClient) -> tuple[int, list[SourceError]]:
    settings = context.settings
    covered_since = context.now - dt.timedelta(hours=settings.wow_live_hours)
    with context.engine.connect() as connection:
        links = pd.DataFrame(
            connection.execute(
                select(sensor_wow.c.sensor_id, sensor_wow.c.site_id, sensors.c.first_sample_at)
                .join(sensors, sensors.c.sensor_id == sensor_wow.c.sensor_id)
                .where(sensor_wow.c.site_id.is_not(None))
            ).all(),
            columns=["sensor_id", "site_id", "first_sample_at"],
        )
        # The stations of this shard's own sensors: what another shard links is its own business, and a
        # station two shards share is read by both (the upsert makes that harmless).
        links = links[links["sensor_id"].map(context.shard.contains)]
        latest = latest_times(connection, wow_observations, wow_sites, "site_id")
        latest_before = latest_times(connection, wow_observations, wow_sites, "site_id", before=covered_since)
    first_needed = pd.to_datetime(links["first_sample_at"], utc=True).groupby(links["site_id"]).min()
    plan = station_plan(
        first_needed,
        latest,
        latest_before,
        context.now,
        covered_since,
        dt.timedelta(hours=settings.extract_overlap_hours),
        dt.timedelta(days=settings.extract_history_days),
    )
    log.info("%d of %d linked stations have observations to fetch", len(plan), len(first_needed))

    def fetch(site: str):
        start, end = plan[site]
        try:
            return site, client.get_site_observations(site, start.to_pydatetime(), end.to_pydatetime()), None
        except SourceError as exc:
            return site, None, exc

    failures = []
    with (
        ThreadPoolExecutor(max_workers=settings.fetch_workers, thread_name_prefix="wow") as pool,
        Loader(context, wow_observations) as loader,
    ):
        results = pool.map(fetch, sorted(plan))
        for _, observations, error in tqdm(
            results, total=len(plan), desc="stations", unit="site", disable=not context.progress
        ):
            if error is not None:
                failures.append(error)
                continue
            loader.add(observations[STORED_COLUMNS])
    return loader.written, failures


def run(context: StepContext) -> int:
    # The two sources are independent: fetch them side by side.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="extract") as pool:
        grow = pool.submit(extract_readings, context, GrowClient(context.settings))
        wow = pool.submit(extract_observations, context, WowClient(context.settings))
        readings_written, reading_failures = grow.result()
        observations_written, station_failures = wow.result()
    log.info("%d readings and %d station observations written", readings_written, observations_written)
    failures = reading_failures + station_failures
    if failures:
        raise StepFailed(
            f"{len(reading_failures)} reading requests and {len(station_failures)} station requests failed "
            f"(loaded what came; the next run resumes): first: {failures[0]}"
        )
    return readings_written + observations_written


main = step_command(
    NAME,
    run,
    "Fetch new readings (GROW) and station observations (WOW) since each watermark.",
)

if __name__ == "__main__":
    main(prog_name=f"python -m etl.{NAME}")
