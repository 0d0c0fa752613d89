"""Bulk upsert: the one way every loader writes rows, keyed on each table's natural key.

Loading the same rows twice changes nothing: a row is written only when it is new or one of its
values changed, so any step can be re-run or resumed after a crash.

PostgreSQL (engine-specific, because speed needs it):
- Time series (readings, wow_observations: key = entity + timestamp): rows later than the entity's
  latest stored timestamp are certainly new and go by binary COPY straight into the table, the
  fastest way PostgreSQL takes rows. A nightly extract is mostly such rows.
- Every other row goes by binary COPY into a temporary staging table; then changed rows are updated
  and new rows inserted with an anti-join and a plain INSERT. INSERT … ON CONFLICT is kept only for
  when a concurrent writer adds one of the same keys meanwhile: it inserts row by row with
  speculative insertion and ran at about a third of COPY speed here (benchmarks/bench_load.py).
- If the direct COPY meets a key that exists after all (a concurrent writer, or a key repeated in
  the batch), it is rolled back to a savepoint and those rows take the staging path.
SQLite: executemany of INSERT … ON CONFLICT DO UPDATE.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg2.errors
from sqlalchemy import BigInteger, Boolean, Connection, Float, Integer, String, Table, Text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import JSON

from core import reading_store
from core.errors import LoadError
from core.schema import UTCDateTime
from core.times import PG_EPOCH_US

log = logging.getLogger(__name__)

PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
PGCOPY_TRAILER = b"\xff\xff"
NULL = -1

# Binary layout of each fixed-width kind; text-like kinds are variable.
FIXED_FORMATS = {"float": ">f8", "int4": ">i4", "int8": ">i8", "bool": "u1", "timestamp": ">i8"}


@dataclass(frozen=True)
class _Column:
    """One column of a batch in a form both engines take: values, byte widths (-1 for NULL) and text."""

    name: str
    kind: str  # float, int4, int8, bool, timestamp, text or json
    values: np.ndarray  # fixed kinds: float64/int64/uint8 (timestamps in µs since 1970); text kinds: bytes
    widths: np.ndarray  # bytes of each field in binary COPY, NULL (-1) for a missing value
    texts: np.ndarray | None = None  # text kinds: the str values, None for NULL

    @property
    def null(self) -> np.ndarray:
        return self.widths == NULL


def natural_key(table: Table, columns: Sequence[str]) -> list[str]:
    """The key an upsert matches on: the primary key, or the first unique constraint when the
    primary key is a surrogate the caller does not send (as for anomalies)."""
    primary = [column.name for column in table.primary_key.columns]
    if set(primary) <= set(columns):
        return primary
    for constraint in table.constraints:
        names = [column.name for column in getattr(constraint, "columns", [])]
        if constraint.__class__.__name__ == "UniqueConstraint" and set(names) <= set(columns):
            return names
    raise LoadError(f"{table.name}: rows must carry its key ({', '.join(primary)})")


def bulk_upsert(connection: Connection, table: Table, frame: pd.DataFrame) -> int:
    """Insert the new rows of `frame` into `table` and update the changed ones; return rows written.

    `frame` has one column per table column to write (others keep their defaults). Timestamps must
    be timezone-aware; NaN and None are NULL. When the same key appears twice, the last row wins.
    Runs inside the caller's transaction.
    """
    unknown = [name for name in frame.columns if name not in table.columns]
    if unknown:
        raise LoadError(f"{table.name} has no column {', '.join(map(str, unknown))}")
    key = natural_key(table, list(frame.columns))
    if frame[key].isna().any().any():
        raise LoadError(f"{table.name}: key columns {', '.join(key)} must not be empty")
    if frame.empty:
        return 0
    if connection.dialect.name == "postgresql":
        if table.name == reading_store.VIEW and reading_store.is_store(connection):  # from revision 0011
            return _upsert_reading_store(connection, _last_per_key(frame, key))
        return _upsert_postgresql(connection, table, frame, key)
    return _upsert_sqlite(connection, table, _prepare_frame(table, _last_per_key(frame, key)), key)


def _last_per_key(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    return frame.drop_duplicates(subset=key, keep="last")


def _prepare_frame(table: Table, frame: pd.DataFrame) -> list[_Column]:
    return [_prepare(table, name, frame[name]) for name in frame.columns]


def copy_payload(table: Table, frame: pd.DataFrame) -> bytes:
    """The rows of `frame` as a PostgreSQL binary COPY stream for `table`'s columns of the same names."""
    return encode_copy_binary(_prepare_frame(table, frame))


# --- preparing columns -------------------------------------------------------------------------------


# Our storage kind of each schema column type, the first that matches (BigInteger before Integer, which
# it extends).
COLUMN_KINDS = (
    (UTCDateTime, "timestamp"),
    (Boolean, "bool"),
    (BigInteger, "int8"),
    (Integer, "int4"),
    (Float, "float"),
    (JSON, "json"),
    (String | Text, "text"),
)


def column_kind(sql_type) -> str:
    """Our storage kind for a schema column type."""
    for kind_of, kind in COLUMN_KINDS:
        if isinstance(sql_type, kind_of):
            return kind
    raise LoadError(f"bulk loads do not handle columns of type {sql_type!r}")


def _prepare(table: Table, name: str, series: pd.Series) -> _Column:
    kind = column_kind(table.columns[name].type)
    null = series.isna().to_numpy()
    if kind in ("text", "json"):
        return _prepare_text(name, kind, series, null)
    if kind == "timestamp":
        values = utc_microseconds(series, f"{table.name}.{name}")
    elif kind == "float":
        values = pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    elif kind == "bool":
        values = series.astype("boolean").to_numpy(dtype=np.uint8, na_value=0)
    else:
        values = series.astype("Int64").to_numpy(dtype=np.int64, na_value=0)
    width = np.dtype(FIXED_FORMATS[kind]).itemsize
    return _Column(name, kind, values, np.where(null, NULL, width))


def _prepare_text(name: str, kind: str, series: pd.Series, null: np.ndarray) -> _Column:
    # Encode each distinct value once: a batch of readings repeats a few sensor ids a million times.
    if kind == "json":
        series = pd.Series(
            [None if isnull else json.dumps(v) for v, isnull in zip(series, null)], dtype=object
        )
    codes, uniques = pd.factorize(series.astype(object).where(~null, None))
    prefix = b"\x01" if kind == "json" else b""  # jsonb's binary form starts with a version byte
    encoded = [prefix + str(u).encode() for u in uniques] + [b""]  # the last one serves code -1 (NULL)
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    widest = max(1, int(lengths.max()))
    texts = np.array([str(u) for u in uniques] + [None], dtype=object)[codes]
    values = np.array(encoded, dtype=f"S{widest}")[codes]
    return _Column(name, kind, values, np.where(null, NULL, lengths[codes]), texts)


def utc_microseconds(series: pd.Series, label: str) -> np.ndarray:
    """Timezone-aware timestamps as int64 microseconds since 1970-01-01 UTC."""
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        try:
            series = pd.to_datetime(series)
        except (TypeError, ValueError) as exc:
            raise LoadError(f"{label}: not timestamps ({exc})") from None
        if not isinstance(series.dtype, pd.DatetimeTZDtype):
            raise LoadError(f"{label}: timestamps must be timezone-aware (UTC)")
    utc = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return utc.to_numpy(dtype="datetime64[us]", na_value=np.datetime64("NaT")).astype(np.int64)


# --- PostgreSQL ---------------------------------------------------------------------------------------


def encode_copy_binary(columns: list[_Column]) -> bytes:
    """Encode the rows, in order, in PostgreSQL's binary COPY format.

    Rows that share a shape (the byte width of every field, or NULL) are laid out at once with a numpy
    structured array. A batch of readings is mostly one shape; the few rows with a missing value form
    other shapes, and the runs of each are stitched back in the original order, which keeps the
    primary-key index appending instead of splitting pages.
    """
    chunks = [PGCOPY_HEADER]
    if all((column.widths == column.widths[0]).all() for column in columns):
        shape = np.array([column.widths[0] for column in columns])
        chunks.append(_encode_shape(columns, shape, slice(None)).tobytes())
    else:
        chunks.extend(_encode_mixed_shapes(columns))
    chunks.append(PGCOPY_TRAILER)
    return b"".join(chunks)


def _encode_mixed_shapes(columns: list[_Column]) -> list[memoryview]:
    shape_of_row = np.zeros(len(columns[0].widths), dtype=np.int64)
    for column in columns:  # one small integer per distinct combination of widths
        if (column.widths != column.widths[0]).any():
            width_code, distinct = pd.factorize(column.widths)
            shape_of_row = pd.factorize(shape_of_row * len(distinct) + width_code)[0]
    shape_count = int(shape_of_row.max()) + 1
    by_shape = np.argsort(shape_of_row, kind="stable")
    first_of_shape = np.searchsorted(shape_of_row[by_shape], np.arange(shape_count))
    first_row = by_shape[first_of_shape]
    rank_in_shape = np.empty(len(shape_of_row), dtype=np.int64)
    rank_in_shape[by_shape] = np.arange(len(by_shape)) - first_of_shape[shape_of_row[by_shape]]
    blocks, row_bytes = [], []
    for g in range(shape_count):
        shape = np.array([column.widths[first_row[g]] for column in columns])
        block = _encode_shape(columns, shape, np.flatnonzero(shape_of_row == g))
        blocks.append(memoryview(block.tobytes()))
        row_bytes.append(block.dtype.itemsize)
    # Runs of consecutive rows of one shape are consecutive in that shape's block too.
    run_starts = np.flatnonzero(np.diff(shape_of_row, prepend=-1))
    run_ends = np.append(run_starts[1:], len(shape_of_row))
    chunks = []
    for start, end in zip(run_starts.tolist(), run_ends.tolist()):
        g = shape_of_row[start]
        size, first = row_bytes[g], rank_in_shape[start]
        chunks.append(blocks[g][first * size : (first + end - start) * size])
    return chunks


def _encode_shape(columns: list[_Column], shape: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
    fields = [("count", ">i2")]
    for i, (column, width) in enumerate(zip(columns, shape)):
        fields.append((f"len{i}", ">i4"))
        if width > 0:
            fields.append((f"val{i}", FIXED_FORMATS.get(column.kind, f"S{width}")))
    block = np.empty(len(columns[0].values[rows]), dtype=np.dtype(fields))
    block["count"] = len(columns)
    for i, (column, width) in enumerate(zip(columns, shape)):
        block[f"len{i}"] = width
        if width <= 0:
            continue
        values = column.values[rows]
        if column.kind == "timestamp":
            values = values - PG_EPOCH_US
        block[f"val{i}"] = values
    return block


def _upsert_postgresql(connection: Connection, table: Table, frame: pd.DataFrame, key: list[str]) -> int:
    # In key order the primary-key index grows at its right edge instead of splitting pages: twice as fast.
    frame = frame.sort_values(key, kind="stable")
    written = 0
    if _time_series_key(table, key):
        newer = _newer_than_stored(connection, table, frame, key)
        if newer.any():
            appended = _append(connection, table, frame[newer])
            if appended is not None:
                written, frame = appended, frame[~newer]
    if not frame.empty:
        written += _merge(connection, table, _prepare_frame(table, _last_per_key(frame, key)), key)
    return written


def _time_series_key(table: Table, key: list[str]) -> bool:
    return len(key) == 2 and isinstance(table.columns[key[1]].type, UTCDateTime)


def _newer_than_stored(
    connection: Connection, table: Table, frame: pd.DataFrame, key: list[str]
) -> np.ndarray:
    """Which rows are later than the latest stored row of their entity (sensor or site)."""
    entity, time = key
    quote = connection.dialect.identifier_preparer.quote
    entity_type = table.columns[entity].type.compile(dialect=connection.dialect)
    # One index descent per entity: a correlated max() on the (entity, time) primary key.
    latest_of_entity = (
        f"SELECT max(t.{quote(time)}) FROM {quote(table.name)} AS t WHERE t.{quote(entity)} = e.id"
    )
    latest = connection.exec_driver_sql(
        f"SELECT e.id, ({latest_of_entity}) FROM unnest(CAST(%(ids)s AS {entity_type}[])) AS e(id)",
        {"ids": [str(v) for v in frame[entity].unique()]},
    ).all()
    # Timestamp.value is in nanoseconds whatever the unit: the instants go through utc_microseconds too.
    found = [(entity_id, stamp) for entity_id, stamp in latest if stamp is not None]
    stamps = pd.Series(pd.to_datetime([stamp for _, stamp in found], utc=True))
    latest_us = dict(
        zip([entity_id for entity_id, _ in found], utc_microseconds(stamps, table.name).tolist())
    )
    stored = frame[entity].astype(str).map(latest_us).to_numpy(dtype=np.float64, na_value=-np.inf)
    return utc_microseconds(frame[time], f"{table.name}.{time}") > stored


def _append(connection: Connection, table: Table, frame: pd.DataFrame) -> int | None:
    """COPY rows straight into the table; None (and nothing written) if any key exists already."""
    try:
        with connection.begin_nested():
            _copy(connection, table.name, _prepare_frame(table, frame))
    except psycopg2.errors.UniqueViolation:
        log.info("%s: some rows were not new after all; merging them instead", table.name)
        return None
    return len(frame)


def _copy(connection: Connection, table_name: str, columns: list[_Column]) -> None:
    quote = connection.dialect.identifier_preparer.quote
    names = ", ".join(quote(column.name) for column in columns)
    payload = io.BytesIO(encode_copy_binary(columns))
    cursor = connection.connection.cursor()
    try:
        cursor.copy_expert(f"COPY {quote(table_name)} ({names}) FROM STDIN WITH (FORMAT binary)", payload)
    finally:
        cursor.close()


def _merge(connection: Connection, table: Table, columns: list[_Column], key: list[str]) -> int:
    """Stage the rows, update the changed ones, insert the new ones; return rows written."""
    quote = connection.dialect.identifier_preparer.quote
    target = quote(table.name)
    stage_name = f"_stage_{table.name}"
    stage = quote(stage_name)
    names = [column.name for column in columns]
    cols = ", ".join(quote(name) for name in names)
    values = [name for name in names if name not in key]
    on_key = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in key)

    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {stage}")
    connection.exec_driver_sql(
        f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {target} WITH NO DATA"
    )
    _copy(connection, stage_name, columns)
    connection.exec_driver_sql(f"ANALYZE {stage}")  # the planner's row estimate for the joins below

    written = 0
    if values:
        assignments = [f"{quote(v)} = s.{quote(v)}" for v in values] + _touch(table, names, quote)
        changed = _row(values, "t", quote) + " IS DISTINCT FROM " + _row(values, "s", quote)
        update = f"UPDATE {target} AS t SET {', '.join(assignments)} FROM {stage} AS s"
        written += connection.exec_driver_sql(f"{update} WHERE {on_key} AND {changed}").rowcount
    plain_insert = (
        f"INSERT INTO {target} ({cols}) SELECT {', '.join('s.' + quote(n) for n in names)} FROM {stage} AS s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {on_key})"
    )
    try:
        with connection.begin_nested():
            written += connection.exec_driver_sql(plain_insert).rowcount
    except IntegrityError:
        # Another writer inserted some of these keys after our UPDATE; let PostgreSQL arbitrate.
        log.info("%s: a concurrent writer added some of these keys; merging with ON CONFLICT", table.name)
        on_conflict = _on_conflict(
            table, names, key, values, quote, excluded="excluded", distinct="IS DISTINCT FROM"
        )
        written += connection.exec_driver_sql(
            f"INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM {stage} {on_conflict}"
        ).rowcount
    connection.exec_driver_sql(f"DROP TABLE {stage}")
    return written


def _upsert_reading_store(connection: Connection, frame: pd.DataFrame) -> int:
    """Readings into PostgreSQL's store (core.reading_store): the same rows written as into a table keyed
    on (sensor_id, ts), with the sensor's key for its id. The store has no unique index, so the lock
    keeps writers apart while each finds what is stored: rows later than their sensor's last stored time
    are new and go by COPY; the others are merged against what is stored, within the batch's months."""
    store = reading_store.reading_rows
    stamps = utc_microseconds(frame["ts"], "readings.ts")  # refuses naive times before anything is done
    frame = frame.assign(ts=pd.to_datetime(stamps, unit="us", utc=True))
    reading_store.lock_readings(connection)
    reading_store.ensure_months(connection, reading_store.months_of(frame["ts"]))
    keys, last = _series_of(connection, frame["sensor_id"].astype(str).unique().tolist())
    rows = frame.drop(columns="sensor_id").assign(sensor_key=frame["sensor_id"].astype(str).map(keys))
    rows = rows[["sensor_key", *(name for name in frame.columns if name != "sensor_id")]]
    rows = rows.sort_values(["sensor_key", "ts"], kind="stable")
    stored_until = rows["sensor_key"].map(last).to_numpy(dtype=np.float64, na_value=-np.inf)
    newer = utc_microseconds(rows["ts"], "readings.ts") > stored_until
    written = 0
    if newer.any():
        _copy(connection, reading_store.ROWS, _prepare_frame(store, rows[newer]))
        written += int(newer.sum())
    if not newer.all():
        written += _merge_store(connection, rows[~newer])
    _widen_series(connection, rows)
    return written


def _series_of(connection: Connection, ids: list[str]) -> tuple[dict, dict]:
    """Each sensor id's key (made for a new one) and its last stored time in µs since 1970, if any."""
    series = reading_store.SERIES
    # Only the missing ones are inserted: an INSERT … ON CONFLICT would spend an identity value on each
    # existing id, every batch of every night.
    connection.exec_driver_sql(
        f"INSERT INTO {series} (sensor_id) SELECT e.id FROM unnest(CAST(%(ids)s AS varchar[])) AS e(id) "
        f"WHERE NOT EXISTS (SELECT 1 FROM {series} AS s WHERE s.sensor_id = e.id) ON CONFLICT DO NOTHING",
        {"ids": ids},
    )
    found = connection.exec_driver_sql(
        f"SELECT sensor_id, sensor_key, last_at FROM {series} WHERE sensor_id = ANY(%(ids)s)", {"ids": ids}
    ).all()
    keys = {sensor_id: key for sensor_id, key, _ in found}
    lasts = [(key, stamp) for _, key, stamp in found if stamp is not None]
    stamps = pd.Series(pd.to_datetime([stamp for _, stamp in lasts], utc=True))
    return keys, dict(zip([key for key, _ in lasts], utc_microseconds(stamps, "reading_series").tolist()))


def _merge_store(connection: Connection, rows: pd.DataFrame) -> int:
    """Stage rows that may be stored already; update the changed ones and insert the new ones, joining
    only the batch's time span so the store reads only those months."""
    store, stage = reading_store.ROWS, "_stage_reading_rows"
    names = list(rows.columns)
    values = [name for name in names if name not in ("sensor_key", "ts")]
    cols = ", ".join(names)
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {stage}")
    connection.exec_driver_sql(
        f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {store} WITH NO DATA"
    )
    _copy(connection, stage, _prepare_frame(reading_store.reading_rows, rows))
    connection.exec_driver_sql(f"ANALYZE {stage}")
    span = {"first": rows["ts"].min().to_pydatetime(), "last": rows["ts"].max().to_pydatetime()}
    within = "t.sensor_key = s.sensor_key AND t.ts = s.ts AND t.ts >= %(first)s AND t.ts <= %(last)s"
    written = 0
    if values:
        changed = f"{_row(values, 't', str)} IS DISTINCT FROM {_row(values, 's', str)}"
        assignments = ", ".join(f"{v} = s.{v}" for v in values)
        written += connection.exec_driver_sql(
            f"UPDATE {store} AS t SET {assignments} FROM {stage} AS s WHERE {within} AND {changed}", span
        ).rowcount
    written += connection.exec_driver_sql(
        f"INSERT INTO {store} ({cols}) SELECT {', '.join('s.' + n for n in names)} FROM {stage} AS s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {store} AS t WHERE {within})",
        span,
    ).rowcount
    connection.exec_driver_sql(f"DROP TABLE {stage}")
    return written


def _widen_series(connection: Connection, rows: pd.DataFrame) -> None:
    """Each series' first and last time take in the batch's."""
    edges = rows.groupby("sensor_key")["ts"].agg(["min", "max"])
    connection.exec_driver_sql(
        f"UPDATE {reading_store.SERIES} AS s SET first_at = LEAST(s.first_at, e.first), "
        "last_at = GREATEST(s.last_at, e.last) FROM unnest(CAST(%(keys)s AS integer[]), "
        "CAST(%(firsts)s AS timestamptz[]), CAST(%(lasts)s AS timestamptz[])) AS e(k, first, last) "
        "WHERE s.sensor_key = e.k AND (s.first_at IS NULL OR e.first < s.first_at OR e.last > s.last_at)",
        {
            "keys": [int(k) for k in edges.index],
            "firsts": list(edges["min"].dt.to_pydatetime()),
            "lasts": list(edges["max"].dt.to_pydatetime()),
        },
    )


def _row(names: list[str], alias: str, quote) -> str:
    return "(" + ", ".join(f"{alias}.{quote(n)}" for n in names) + ")"


def _touch(table: Table, names: list[str], quote) -> list[str]:
    """Keep updated_at true: refresh it on every changed row unless the caller sends it."""
    if "updated_at" in table.columns and "updated_at" not in names:
        return [f"{quote('updated_at')} = CURRENT_TIMESTAMP"]
    return []


def _on_conflict(table, names, key, values, quote, *, excluded: str, distinct: str) -> str:
    conflict = f"ON CONFLICT ({', '.join(quote(k) for k in key)})"
    if not values:
        return f"{conflict} DO NOTHING"
    assignments = [f"{quote(v)} = {excluded}.{quote(v)}" for v in values] + _touch(table, names, quote)
    changed = " OR ".join(f"t.{quote(v)} {distinct} {excluded}.{quote(v)}" for v in values)
    return f"{conflict} DO UPDATE SET {', '.join(assignments)} WHERE {changed}"


# --- SQLite -------------------------------------------------------------------------------------------


def _sqlite_values(column: _Column) -> list:
    """Python values as SQLAlchemy stores them in SQLite (UTC timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff')."""
    if column.kind == "timestamp":
        text_form = np.datetime_as_string(column.values.astype("datetime64[us]"), unit="us").astype("S26")
        text_form.view(np.uint8).reshape(-1, 26)[:, 10] = ord(" ")
        values = text_form.astype(str).astype(object)
    elif column.texts is not None:
        return column.texts.tolist()
    elif column.kind == "float":
        values = column.values.astype(object)
    else:
        values = column.values.astype(np.int64).astype(object)
    values[column.null] = None
    return values.tolist()


def _upsert_sqlite(connection: Connection, table: Table, columns: list[_Column], key: list[str]) -> int:
    """executemany of INSERT … ON CONFLICT: SQLite has no COPY, and this is its fast way."""
    quote = connection.dialect.identifier_preparer.quote
    names = [column.name for column in columns]
    values = [name for name in names if name not in key]
    on_conflict = _on_conflict(table, names, key, values, quote, excluded="excluded", distinct="IS NOT")
    sql = (
        f"INSERT INTO {quote(table.name)} AS t ({', '.join(quote(n) for n in names)}) "
        f"VALUES ({', '.join('?' for _ in names)}) {on_conflict}"
    )
    rows = list(zip(*(_sqlite_values(column) for column in columns)))
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(sql, rows)
        return cursor.rowcount
    finally:
        cursor.close()
