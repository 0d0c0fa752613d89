"""`python -m etl archive` (to ARCHIVE_DIR, or `--to`: a folder or s3://bucket/prefix): the network's
history as open data. Each finished day's readings,
one Parquet file a day and source (`readings/day=YYYY-MM-DD/source=grow/readings.parquet`), each reading
with the kinds of anomaly over it and its sensor's health that day; beside them `manifest.json` (each
file's SHA-256, rows and bytes) and the data's licence.

- A finished day is one before today (UTC) by `ARCHIVE_AFTER_DAYS` or more, late uploads having had
  their time.
- Idempotent and resumable: each day and source is written whole (a folder's file under a temporary name,
  then renamed; an S3 object appears only once uploaded whole), then entered in the manifest (itself
  replaced whole). A day whose readings or anomalies changed since it was archived
  (late readings, a recheck) is written again; the others are left as they are, byte for byte.
- Files are sorted by sensor and time and compressed with zstd, floats split by byte stream: a reading
  costs a few bytes (`benchmarks/bench_scale.py` measures it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Date, cast, func, select
from sqlalchemy.exc import OperationalError

from core import reading_store
from core.archive import (
    SCHEMA,
    ArchiveStore,
    as_store,
    day_path,
    parquet_options,
    read_manifest,
    write_manifest,
)
from core.db import describe_error, earliest_reading, read_frame
from core.schema import anomalies, readings
from core.vocabulary import NOT_FAULTS, SENSOR_VARIABLES, SOURCE_PREFIXES, source_of
from etl.archive_months import write_sensor_months

log = logging.getLogger(__name__)

LICENCE = "LICENCE.txt"
VARIABLES = list(SENSOR_VARIABLES)


@dataclass(frozen=True)
class DayFile:
    day: dt.date
    source: str

    @property
    def path(self) -> str:
        return day_path(self.day, self.source)


def day_fingerprints(connection, since: dt.date, before: dt.date) -> dict[DayFile, str]:
    """What each day and source holds, in a few numbers per day: readings, the sums of their values, and
    the anomalies over the day (how many, the latest found). Equal fingerprints: nothing to write again.
    One pass over the range, grouped, rather than a query a day."""
    start, end = _midnight(since), _midnight(before)
    # The UTC day: PostgreSQL's sessions are in UTC (core.db), SQLite stores UTC text.
    day = func.date(readings.c.ts) if connection.dialect.name == "sqlite" else cast(readings.c.ts, Date)
    source = _source_case()
    sums = [func.sum(readings.c[name]) for name in VARIABLES]
    rows = connection.execute(
        select(day, source, func.count(), *sums)
        .where(readings.c.ts >= start, readings.c.ts < end)
        .group_by(day, source)
    ).all()
    found = read_frame(
        connection,
        select(
            anomalies.c.sensor_id, anomalies.c.start_at, anomalies.c.end_at, anomalies.c.detected_at
        ).where(anomalies.c.end_at >= start, anomalies.c.start_at < end),
    )
    marks = {}
    for when, source_name, count, *values in rows:
        key = DayFile(_as_date(when), source_name)
        over = _over_day(found, key)
        latest = str(over["detected_at"].max()) if len(over) else "-"
        numbers = [count, *(round(float(v), 3) if v is not None else None for v in values), len(over), latest]
        marks[key] = hashlib.sha256(json.dumps(numbers, default=str).encode()).hexdigest()[:32]
    return marks


def _source_case():
    """Each reading's source from its sensor id's prefix, in SQL (core.vocabulary.source_of in Python)."""
    from sqlalchemy import case

    return case(
        *((readings.c.sensor_id.startswith(prefix), name) for prefix, name in SOURCE_PREFIXES.items()),
        else_="grow",
    ).label("source")


def _over_day(found: pd.DataFrame, key: DayFile) -> pd.DataFrame:
    if found.empty:
        return found
    start, end = pd.Timestamp(_midnight(key.day)), pd.Timestamp(_midnight(key.day + dt.timedelta(days=1)))
    ends, starts = pd.to_datetime(found["end_at"], utc=True), pd.to_datetime(found["start_at"], utc=True)
    same_source = found["sensor_id"].map(source_of) == key.source
    return found[same_source & (ends >= start) & (starts < end)]


def day_table(connection, key: DayFile) -> pa.Table:
    """One day and source's readings, sorted by sensor and time, each with the kinds of anomaly over it
    and its sensor's health that day (faulty: a fault over any of its readings that day)."""
    start, end = _midnight(key.day), _midnight(key.day + dt.timedelta(days=1))
    frame = read_frame(
        connection,
        select(readings.c.sensor_id, readings.c.ts, *(readings.c[name] for name in VARIABLES))
        .where(readings.c.ts >= start, readings.c.ts < end, _source_case() == key.source)
        .order_by(readings.c.sensor_id, readings.c.ts),
    )
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    over = read_frame(
        connection,
        select(anomalies.c.sensor_id, anomalies.c.kind, anomalies.c.start_at, anomalies.c.end_at).where(
            anomalies.c.end_at >= start, anomalies.c.start_at < end
        ),
    )
    kinds, faulty = _anomaly_columns(frame, over)
    frame["anomalies"] = kinds
    frame["health"] = np.where(frame["sensor_id"].isin(faulty), "faulty", "healthy")
    return pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)


def _anomaly_columns(frame: pd.DataFrame, over: pd.DataFrame) -> tuple[list, set]:
    """Per reading, the kinds of anomaly whose span holds it (None: none); and the sensors with a fault
    over one of their readings."""
    kinds: list = [None] * len(frame)
    faulty = set()
    if over.empty or frame.empty:
        return kinds, faulty
    not_faults = {kind.value for kind in NOT_FAULTS}
    rows_of = frame.groupby("sensor_id").indices
    ts = frame["ts"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()  # datetime64, UTC
    for row in over.itertuples():
        rows = rows_of.get(row.sensor_id)
        if rows is None:
            continue
        start, end = (_utc(moment).tz_localize(None).to_datetime64() for moment in (row.start_at, row.end_at))
        inside = rows[(ts[rows] >= start) & (ts[rows] <= end)]
        for index in inside:
            kinds[index] = row.kind if kinds[index] is None else f"{kinds[index]};{row.kind}"
        if len(inside) and row.kind not in not_faults:
            faulty.add(row.sensor_id)
    return kinds, faulty


def write_day(table: pa.Table, store: ArchiveStore, relative: str) -> tuple[str, int]:
    """Write the table to the archive, whole or not at all (a crash leaves no half file): its SHA-256 and
    size. A day's file is a few bytes a reading (48 MB for a day of 100,000 sensors), made in memory."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **parquet_options())
    data = buffer.getvalue()
    store.write_bytes(relative, data)
    return hashlib.sha256(data).hexdigest(), len(data)


def archive(engine, root, now: dt.datetime, after_days: int, licence: str) -> dict:
    """Archive every finished day not archived yet, or changed since, into `root` (an ArchiveStore, a
    folder or an s3:// address): what was written and kept."""
    root = as_store(root)
    manifest = read_manifest(root)
    before = (now - dt.timedelta(days=after_days)).date()
    with engine.connect() as connection:
        first = earliest_reading(connection)
        if first is None:
            return {"written": 0, "kept": 0, "days": 0}
        marks = day_fingerprints(connection, pd.Timestamp(first).date(), before)
        written = kept = 0
        for key in sorted(marks, key=lambda k: (k.day, k.source)):
            entry = manifest["files"].get(key.path)
            if entry and entry["fingerprint"] == marks[key] and root.exists(key.path):
                kept += 1
                continue
            table = day_table(connection, key)
            digest, size = write_day(table, root, key.path)
            manifest["files"][key.path] = {
                "day": key.day.isoformat(),
                "source": key.source,
                "rows": table.num_rows,
                "bytes": size,
                "sha256": digest,
                "fingerprint": marks[key],
                "archived_at": now.isoformat(),
            }
            write_manifest(root, manifest)  # after each file: a killed run resumes from here
            written += 1
            log.info("archived %s: %d readings, %d bytes", key.path, table.num_rows, size)
    months = write_sensor_months(root, manifest, before)
    root.write_bytes(LICENCE, licence_text(licence).encode())
    write_manifest(root, manifest)
    return {"written": written, "kept": kept, "days": len({k.day for k in marks}), "months": months}


def verify(root) -> list[str]:
    """What is wrong with an archive: files missing or whose bytes are not the ones the manifest names."""
    root = as_store(root)
    wrong = []
    manifest = read_manifest(root)
    listed = dict(manifest["files"])
    for month in manifest["months"].values():
        listed.update(month["files"])
    for path, entry in sorted(listed.items()):
        if not root.exists(path):
            wrong.append(f"{path}: missing")
        elif root.sha256(path) != entry["sha256"]:
            wrong.append(f"{path}: its bytes changed since it was archived")
    return wrong


def licence_text(licence: str) -> str:
    return (
        f"The readings in this archive are published under {licence}.\n\n"
        "They were measured by the volunteers' sensors of the networks named in each file's path "
        "(source=grow: the GROW Observatory's; source=opensensemap: openSenseMap's; source=files: "
        "gardeners' own loggers). Columns: sensor_id, ts (UTC), soil_moisture (%), air_temperature (°C), "
        "light (mol/m²/d), battery_level (%), anomalies (the kinds GROW-WOW found over the reading, "
        "';'-joined), health (the sensor that day). manifest.json gives each file's SHA-256.\n"
    )


def _utc(value) -> pd.Timestamp:
    moment = pd.Timestamp(value)
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def _as_date(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def drop_archived_months(engine, root, now: dt.datetime, keep_months: int) -> list[str]:
    """Delete from the database the readings of each whole month older than `keep_months`, once every
    day and source of it is in the archive, its file's bytes are the ones the manifest names, and it holds
    as many readings as the database; a month that is not is kept, and said why. What was done, a line a
    month."""
    if keep_months <= 0:
        return []
    root = as_store(root)
    manifest = read_manifest(root)["files"]
    this_month = dt.date(now.year, now.month, 1)
    cutoff = _months_before(this_month, keep_months)
    said = []
    with engine.connect() as connection:
        first = earliest_reading(connection)
    if first is None:
        return said
    month = dt.date(pd.Timestamp(first).year, pd.Timestamp(first).month, 1)
    while month < cutoff:
        following = _months_before(month, -1)
        with engine.connect() as connection:
            counts = _day_counts(connection, month, following)
        unsure = _not_archived(root, manifest, counts)
        if unsure:
            said.append(f"{month:%Y-%m}: kept, {unsure}")
        elif counts:
            try:
                with engine.begin() as connection:
                    gone = _drop_month(connection, month, following)
            except OperationalError as exc:  # PostgreSQL's lock_timeout: readers held on (core.reading_store)
                said.append(f"{month:%Y-%m}: kept this time, the readings were busy ({describe_error(exc)})")
            else:
                said.append(f"{month:%Y-%m}: {gone:,} readings dropped, archived and verified")
        month = following
    return said


def _drop_month(connection, month: dt.date, following: dt.date) -> int:
    """Delete a month's readings: on PostgreSQL its partition goes whole (core.reading_store)."""
    if reading_store.is_store(connection):
        return reading_store.drop_month(connection, month)
    where = (readings.c.ts >= _midnight(month), readings.c.ts < _midnight(following))
    return connection.execute(readings.delete().where(*where)).rowcount


def _day_counts(connection, month: dt.date, following: dt.date) -> dict[DayFile, int]:
    day = func.date(readings.c.ts) if connection.dialect.name == "sqlite" else cast(readings.c.ts, Date)
    rows = connection.execute(
        select(day, _source_case(), func.count())
        .where(readings.c.ts >= _midnight(month), readings.c.ts < _midnight(following))
        .group_by(day, _source_case())
    )
    return {DayFile(_as_date(when), source): count for when, source, count in rows}


def _not_archived(root: ArchiveStore, manifest: dict, counts: dict[DayFile, int]) -> str | None:
    """Why a month's days may not be dropped, or None: each must be archived, intact, and whole."""
    for key, count in sorted(counts.items(), key=lambda item: (item[0].day, item[0].source)):
        entry = manifest.get(key.path)
        if entry is None or not root.exists(key.path):
            return f"{key.path} is not archived"
        if root.sha256(key.path) != entry["sha256"]:
            return f"{key.path} is not as archived (its checksum differs)"
        if entry["rows"] != count:
            return f"{key.path} holds {entry['rows']:,} readings, the database {count:,}: archive it again"
    return None


def _months_before(month: dt.date, months: int) -> dt.date:
    index = month.year * 12 + month.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)
