"""Loading what the steps and the imports read into the database, in bulk: a `Loader` upserts batches on a
thread of its own, with their quarantined records, while the next are fetched; a `ReadingsLoader` writes
only readings that are new or changed and marks days detection has checked for a re-check; imported
history (anomalies that come with the data, as ISMN's flags) is written where it is new or changed.
"""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pandas as pd
from sqlalchemy import Table, bindparam, func, or_, select, update

from core import reading_store
from core.db import latest_times, read_frame
from core.load import bulk_upsert
from core.schema import anomalies, detection_state, readings, readings_days, sensors
from core.vocabulary import SENSOR_VARIABLES, source_of
from etl.quarantine import Quarantined, write_quarantine
from etl.step import StepContext

log = logging.getLogger(__name__)

VALUE_COLUMNS = list(SENSOR_VARIABLES)
UNSURE = "_unsure"  # a batch column: the row comes from an incomplete answer


class Loader:
    """Collect batches and load them in bulk on a thread of its own, one transaction at a time in the
    order they came, while the next requests are fetched; quarantined records go in the same
    transaction as the rows of their batch. Use it as a context manager: leaving waits for the last
    load and raises its error, if any."""

    def __init__(self, context: StepContext, table: Table):
        self.context, self.table = context, table
        self.frames: list[pd.DataFrame] = []
        self.records: list[Quarantined] = []
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

    def add(self, frame: pd.DataFrame, quarantined: list[Quarantined] = ()) -> None:
        if len(frame):
            self.frames.append(frame)
            self.rows += len(frame)
        self.records += quarantined
        if self.rows >= self.context.settings.load_batch_rows:
            self.flush()

    def flush(self) -> None:
        if not self.frames and not self.records:
            return
        batch = pd.concat(self.frames, ignore_index=True) if self.frames else None
        records, self.frames, self.records, self.rows = self.records, [], [], 0
        self._wait()  # one load at a time keeps the order, and memory bounded
        self._loading = self._thread.submit(self._load, batch, records)

    def _load(self, batch: pd.DataFrame | None, records: list[Quarantined]) -> int:
        if batch is not None and self.table is readings and self.context.engine.dialect.name == "postgresql":
            # A new month's partition locks the readings a moment: made before, not inside, the batch's
            # transaction, which holds its lock to the end.
            reading_store.ensure_months_apart(self.context.engine, reading_store.months_of(batch["ts"]))
        with self.context.engine.begin() as connection:
            written = self.write(connection, batch) if batch is not None else 0
            seen = dt.datetime.now(dt.UTC)
            self.context.tally.add("quarantined", write_quarantine(connection, records, seen))
        return written

    def write(self, connection, batch: pd.DataFrame) -> int:
        return bulk_upsert(connection, self.table, batch)

    def _wait(self) -> None:
        if self._loading is not None:
            loading, self._loading = self._loading, None
            self.written += loading.result()


class ReadingsLoader(Loader):
    """Readings are re-read for days (late uploads): only rows that are new or changed are written, and
    those older than what detection has checked mark their sensor's days for a re-check."""

    def __init__(self, context: StepContext, newest: dict, checked: dict):
        super().__init__(context, readings)
        self.newest, self.checked = newest, checked

    @classmethod
    def on_stored(cls, context: StepContext) -> ReadingsLoader:
        """A loader that knows each sensor's newest stored reading and how far detection has checked it,
        as the database holds them now (for the imports, which load outside the nightly extract)."""
        with context.engine.connect() as connection:
            newest = latest_times(connection, readings, sensors, "sensor_id")
            checked = connection.execute(
                select(detection_state.c.sensor_id, detection_state.c.analysed_until)
            )
            return cls(context, newest, dict(checked.all()))

    def write(self, connection, batch: pd.DataFrame) -> int:
        if reading_store.is_store(connection):
            reading_store.lock_readings(connection)  # before reading what is stored (core.reading_store)
        batch = changed_rows(connection, batch, self.newest).drop(columns=UNSURE, errors="ignore")
        if batch.empty:
            return 0
        written = bulk_upsert(connection, readings, batch)
        mark_for_recheck(connection, late_starts(batch, self.checked))
        mark_days_changed(connection, batch)
        return written


def mark_days_changed(connection, batch: pd.DataFrame) -> None:
    """Note the days and sources whose readings this batch wrote, as changed now (`readings_days`)."""
    # source_of per sensor, not per reading: a batch holds a day of each sensor
    sources = {sensor: source_of(sensor) for sensor in batch["sensor_id"].unique()}
    days = pd.DataFrame(
        {
            "day": pd.to_datetime(batch["ts"], utc=True).dt.floor("D"),
            "source": batch["sensor_id"].map(sources),
        }
    ).drop_duplicates()
    now = dt.datetime.now(dt.UTC)
    bulk_upsert(connection, readings_days, days.assign(changed_at=now))


def changed_rows(connection, batch: pd.DataFrame, newest: dict) -> pd.DataFrame:
    """The rows of a batch not already stored as they are. Rows later than their sensor's newest
    stored reading (at the start of the run) are new; the others are compared with what is stored. A row
    marked UNSURE is written only where nothing is stored."""
    stored_until = pd.to_datetime(batch["sensor_id"].map(newest), utc=True)
    maybe = (stored_until.notna() & (batch["ts"] <= stored_until)).to_numpy()
    if not maybe.any():
        return batch
    candidates = batch[maybe]
    query = select(readings).where(
        readings.c.sensor_id.in_(list(candidates["sensor_id"].unique())),
        readings.c.ts >= candidates["ts"].min().to_pydatetime(),
        readings.c.ts <= candidates["ts"].max().to_pydatetime(),
    )
    stored = read_frame(connection, query)
    merged = candidates.merge(
        stored, on=["sensor_id", "ts"], how="left", suffixes=("", "_stored"), indicator=True
    )
    stored_already = merged["_merge"].eq("both").to_numpy(copy=True)
    same = stored_already.copy()
    for column in VALUE_COLUMNS:
        new, old = merged[column].to_numpy(dtype=float), merged[f"{column}_stored"].to_numpy(dtype=float)
        same &= (new == old) | (np.isnan(new) & np.isnan(old))
    if UNSURE in merged:
        same |= stored_already & merged[UNSURE].fillna(False).to_numpy(dtype=bool)
    changed = candidates[~same]
    return pd.concat([changed, batch[~maybe]], ignore_index=True)


def late_starts(written: pd.DataFrame, checked: dict) -> dict[str, pd.Timestamp]:
    """Per sensor, the earliest of the written readings that detection had already passed."""
    checked_until = pd.to_datetime(written["sensor_id"].map(checked), utc=True)
    late = written[checked_until.notna() & (written["ts"] <= checked_until)]
    return late.groupby("sensor_id")["ts"].min().to_dict()


def mark_for_recheck(connection, starts: dict[str, pd.Timestamp]) -> None:
    """Tell detection to check these sensors again from these times (the earliest mark stays)."""
    set_recheck_marks(connection, {sensor: (since, since) for sensor, since in starts.items()}, earlier=True)
    if starts:
        log.info("late readings: %d sensors have days to check again", len(starts))


def set_recheck_marks(
    connection, marks: dict[str, tuple[pd.Timestamp, pd.Timestamp | None]], earlier: bool
) -> None:
    """`detection_state.recheck_from`, the one place extraction and detection meet: each sensor's mark
    becomes `(since, mark)`'s mark (None: cleared) where it is unset or later than `since`: strictly
    later with `earlier` (extraction only ever moves a mark earlier), or not earlier (detection, having
    checked from `since`, clears or moves it unless extraction moved it earlier meanwhile)."""
    if not marks:
        return
    stored, since = detection_state.c.recheck_from, bindparam("since")
    connection.execute(
        update(detection_state)
        .where(
            detection_state.c.sensor_id == bindparam("sensor"),
            or_(stored.is_(None), stored > since if earlier else stored >= since),
        )
        .values(recheck_from=bindparam("mark"), updated_at=func.now()),
        [
            {
                "sensor": sensor,
                "since": since.to_pydatetime(),
                "mark": None if mark is None else mark.to_pydatetime(),
            }
            for sensor, (since, mark) in marks.items()
        ],
    )


def mark_unsure(batch: pd.DataFrame, incomplete: dict) -> pd.DataFrame:
    """The rows of an answer, those of sensors it did not fully answer for marked `UNSURE`: they may hold
    values stored as missing (impossible readings), so they fill in what is not stored yet but never
    overwrite a stored row. The sensor is asked again, and a full answer then writes the true values."""
    return batch.assign(**{UNSURE: batch["sensor_id"].isin(list(incomplete)).to_numpy()})


# --- imported history ---------------------------------------------------------------------------------

KEY = ["sensor_id", "variable", "kind", "start_at"]  # the anomalies' natural key


def store_history(connection, history: pd.DataFrame) -> int:
    """Write the stretches of `history` (ANOMALY_COLUMNS) that are new or changed: the same files read
    again write nothing. A stretch is never removed by a later read, which may hold only part of a
    station's years."""
    if history.empty:
        return 0
    stored = read_frame(
        connection,
        select(*(anomalies.c[name] for name in [*KEY, "end_at", "explanation"])).where(
            anomalies.c.sensor_id.in_(sorted(history["sensor_id"].unique())),
            anomalies.c.kind.in_(sorted(history["kind"].unique())),
        ),
    )
    if len(stored):
        stored["start_at"] = pd.to_datetime(stored["start_at"], utc=True)
        stored["end_at"] = pd.to_datetime(stored["end_at"], utc=True)
        merged = history.merge(stored, on=KEY, how="left", suffixes=("", "_stored"))
        same = (merged["end_at"] == merged["end_at_stored"]) & (
            merged["explanation"] == merged["explanation_stored"]
        )
        history = history[~same.to_numpy()]
    return bulk_upsert(connection, anomalies, history) if len(history) else 0
