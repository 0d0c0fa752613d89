"""Each finished month of the archive again, by sensor: the back end reads a sensor's year from 12 files,
not 365 (`core.archive.files_to_read`). A day's file of a large network is sorted by sensor in hundreds
of row groups; finding one sensor in 365 of them took seconds. So once a month is over (its last day
archived), its days are written again as a few files of about SENSOR_FILE_ROWS readings, each holding the
sensors of one bucket of their ids' hash, sorted by sensor and time: one small file a month for a sensor.

They are made from the month's day files (DuckDB sorts them, spilling to disk past its memory), not from
the database: retention may have dropped the month there already. A month whose days changed since (a
late reading rewrote one) is written again; the manifest keeps each month's files with their checksums,
under `months`, and `verify` checks them too. The day files stay what the open data is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import json
import logging
import math
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.archive import (
    BUCKET_SQL,
    ROW_GROUP,
    ArchiveStore,
    month_key,
    month_path,
    parquet_options,
    write_manifest,
)

log = logging.getLogger(__name__)

SENSOR_FILE_ROWS = 2_000_000  # a few hundred sensors' month: a hundred row groups, a footer read in a blink
DUCKDB_MEMORY = "1GB"  # what the sort may hold before it spills to disk


def finished_months(manifest: dict, before: dt.date) -> dict[tuple[dt.date, str], list[str]]:
    """The archived days of each month and source whose last day is before `before`: (month, source) to
    the day files' paths, in order."""
    months: dict[tuple[dt.date, str], list[str]] = {}
    for path, entry in sorted(manifest["files"].items()):
        day = dt.date.fromisoformat(entry["day"])
        month = day.replace(day=1)
        if (month + dt.timedelta(days=32)).replace(day=1) <= before:
            months.setdefault((month, entry["source"]), []).append(path)
    return months


def days_fingerprint(manifest: dict, paths: list[str]) -> str:
    """What a month's by-sensor files were made from: its day files' checksums."""
    pairs = [(path, manifest["files"][path]["sha256"]) for path in paths]
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:32]


def write_sensor_months(store: ArchiveStore, manifest: dict, before: dt.date) -> int:
    """Write by sensor each finished month not written yet, or whose days changed since: how many."""
    written = 0
    for (month, source), paths in sorted(finished_months(manifest, before).items()):
        key = month_key(month, source)
        made_from = days_fingerprint(manifest, paths)
        entry = manifest["months"].get(key)
        if entry and entry["days"] == made_from and all(store.exists(path) for path in entry["files"]):
            continue
        rows = sum(manifest["files"][path]["rows"] for path in paths)
        buckets = max(1, math.ceil(rows / SENSOR_FILE_ROWS))
        files = _write_buckets(store, [store.path(path) for path in paths], month, source, buckets)
        for stale in set(entry["files"]) - set(files) if entry else ():  # the month split another way before
            store.delete(stale)
        manifest["months"][key] = {"buckets": buckets, "days": made_from, "rows": rows, "files": files}
        write_manifest(store, manifest)
        written += 1
        log.info("archived %s by sensor: %d readings in %d files", key, rows, len(files))
    return written


def _write_buckets(store: ArchiveStore, days: list[str], month, source, buckets: int) -> dict:
    """Sort a month's day files by bucket, sensor and time, and write each bucket's run as one file."""
    import duckdb
    import pyarrow.dataset as ds

    schema = pq.read_schema(days[0], filesystem=store.filesystem)
    names = ", ".join(f'"{name}"' for name in schema.names)
    files: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="grow-wow-archive-") as spill, duckdb.connect() as connection:
        connection.execute(f"SET memory_limit = '{DUCKDB_MEMORY}'")
        connection.execute(f"SET temp_directory = '{spill}'")
        connection.register("days", ds.dataset(days, format="parquet", filesystem=store.filesystem))
        bucket = BUCKET_SQL.format(buckets=int(buckets))
        batches = connection.sql(  # (no parameters: the names are the files' own, the count an int)
            f"SELECT {names}, {bucket} AS bucket FROM days ORDER BY bucket, sensor_id, ts"
        ).to_arrow_reader(ROW_GROUP)
        current, parts = None, []
        for batch in batches:
            of_bucket = batch.column("bucket").to_numpy()
            cuts = [0, *(np.flatnonzero(np.diff(of_bucket)) + 1), len(of_bucket)]  # where a bucket begins
            for begin, end in itertools.pairwise(cuts):
                if of_bucket[begin] != current:
                    if parts:
                        _finish(store, files, month_path(month, source, int(current), buckets), parts, schema)
                    current, parts = of_bucket[begin], []
                parts.append(batch.slice(begin, end - begin).drop_columns(["bucket"]))
        if parts:
            _finish(store, files, month_path(month, source, int(current), buckets), parts, schema)
    return files


def _finish(store: ArchiveStore, files: dict, path: str, parts: list, schema: pa.Schema) -> None:
    table = pa.Table.from_batches(parts).cast(schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **parquet_options())
    data = buffer.getvalue()
    store.write_bytes(path, data)
    files[path] = {"rows": table.num_rows, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
