"""Database access shared by the ETL and the web apps: the engine, schema creation and upgrades."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    LargeBinary,
    Select,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    func,
    inspect,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.exc import DBAPIError, OperationalError

from core import reading_store
from core.errors import DatabaseUnavailable, GrowWowError
from core.schema import UTCDateTime, metadata, readings
from core.settings import CoreSettings
from core.times import PG_EPOCH_US

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def make_engine(settings: CoreSettings, statement_timeout_s: float | None = None) -> Engine:
    """Create the engine for the configured database (SQLite file under var/ by default). With
    `statement_timeout_s`, PostgreSQL cancels any statement that runs longer (the web apps' requests);
    SQLite has no such limit."""
    url = settings.database
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # Every session speaks UTC, so timestamps never depend on the server's zone. Options given in the
    # URL (say `?options=-csearch_path%3Dstaging`) are kept.
    timeout = f"-c statement_timeout={round(statement_timeout_s * 1000)}" if statement_timeout_s else None
    options = " ".join(filter(None, [url.query.get("options"), "-c timezone=UTC", timeout]))
    return create_engine(url, pool_pre_ping=True, connect_args={"options": options, "connect_timeout": 10})


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the web apps read while a nightly step writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def describe_error(exc: DBAPIError) -> str:
    """The driver's first line of an error: enough to act on, without a traceback."""
    original = exc.orig if exc.orig is not None else exc
    lines = [line.strip() for line in str(original).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(original).__name__


def check_connection(engine: Engine) -> None:
    """Connect once, raising DatabaseUnavailable with a one-line reason when that fails."""
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        label = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnavailable(f"cannot use database {label}: {describe_error(exc)}") from None


# Alembic is imported where it is used: it costs half a second at start-up, and most commands never need it.


def alembic_config(connection, migrations: Path = MIGRATIONS_DIR):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.attributes["connection"] = connection
    return config


def head_revision(migrations: Path = MIGRATIONS_DIR) -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations))
    return script.get_current_head()


def current_revision(connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def init_db(engine: Engine, migrations: Path = MIGRATIONS_DIR) -> str:
    """Create the schema, or upgrade it to the newest revision; safe to run any number of times.

    A database without a revision gets the current tables at once and is stamped with the newest
    revision (Alembic's recipe for a new database); one with a revision runs the pending migrations.
    Returns what was done, for the command to print.
    """
    from alembic import command

    check_connection(engine)
    with engine.begin() as connection:
        config = alembic_config(connection, migrations)
        before = current_revision(connection)
        if before is None:
            create_schema(connection)
            command.stamp(config, "head")
            return f"created schema at revision {head_revision(migrations)}"
        command.upgrade(config, "head")
        after = current_revision(connection)
    done = "schema already at revision" if after == before else f"upgraded schema from revision {before} to"
    if engine.dialect.name == "postgresql":
        moved = reading_store.move_legacy(engine)
        if moved:
            return f"{done} {after}; moved {moved:,} readings into monthly partitions"
    return f"{done} {after}"


def create_schema(connection: Connection) -> None:
    """The current tables on an empty database; on PostgreSQL readings go in the store of
    `core.reading_store` instead of a table."""
    if connection.dialect.name != "postgresql":
        metadata.create_all(connection)
        return
    metadata.create_all(connection, tables=[t for t in metadata.sorted_tables if t is not readings])
    reading_store.create_store(connection)


class SchemaOutdated(GrowWowError):
    """The database's schema is not the one this code expects."""


def ensure_schema(engine: Engine) -> None:
    """Refuse to run steps on a database whose schema is missing or behind the code."""
    check_connection(engine)
    with engine.connect() as connection:
        current = current_revision(connection)
        moving = engine.dialect.name == "postgresql" and current and reading_store.legacy_left(connection)
    head = head_revision()
    label = engine.url.render_as_string(hide_password=True)
    if current != head:
        state = "has no schema" if current is None else f"is at schema revision {current}, the code at {head}"
        raise SchemaOutdated(f"{label} {state}: run 'python -m etl init-db' first")
    if moving:
        raise SchemaOutdated(
            f"{label} is still moving its readings into monthly partitions: run 'python -m etl init-db' "
            "to finish"
        )


def latest_times(
    connection: Connection, table: Table, entities: Table, key: str, before: dt.datetime | None = None
) -> dict:
    """Each entity's latest stored timestamp in `table` (earlier than `before`, when given): one index
    descent per entity (sensor or station), never a scan of the big table."""
    return _edge_times(connection, table, entities, key, before, latest=True)


def earliest_reading(connection: Connection):
    """The time of the oldest reading stored, or None: on PostgreSQL from the store's series, never a
    scan of the readings."""
    if reading_store.is_store(connection):
        return connection.scalar(select(func.min(reading_store.reading_series.c.first_at)))
    return connection.scalar(select(func.min(readings.c.ts)))


def reading_span(connection: Connection, sensor_id: str) -> tuple:
    """The times of a sensor's first and last stored readings, (None, None) if it has none: on PostgreSQL
    from the store's series, without reading its rows."""
    if reading_store.is_store(connection):
        series = reading_store.reading_series
        found = connection.execute(
            select(series.c.first_at, series.c.last_at).where(series.c.sensor_id == sensor_id)
        ).first()
        return tuple(found) if found else (None, None)
    where = readings.c.sensor_id == sensor_id
    return tuple(
        connection.execute(select(func.min(readings.c.ts), func.max(readings.c.ts)).where(where)).one()
    )


def earliest_times(connection: Connection, table: Table, entities: Table, key: str) -> dict:
    """Each entity's earliest stored timestamp in `table`, as `latest_times` finds the latest."""
    return _edge_times(connection, table, entities, key, None, latest=False)


def _edge_times(connection, table, entities, key, before, latest: bool) -> dict:
    import pandas as pd  # here, not at the top: every command imports this module, few need pandas

    if table.name == reading_store.VIEW and before is None and reading_store.is_store(connection):
        # The store keeps each sensor's first and last time: its readings have no (sensor, time) index.
        series = reading_store.reading_series
        edge = series.c.last_at if latest else series.c.first_at
        joined = entities.join(series, series.c.sensor_id == entities.c[key])
        rows = connection.execute(select(entities.c[key], edge).select_from(joined)).all()
        return {entity: pd.Timestamp(stamp) for entity, stamp in rows if stamp is not None}
    ts = table.c.ts
    edge = select(ts).where(table.c[key] == entities.c[key])
    if before is not None:
        edge = edge.where(ts < before)
    edge = edge.order_by(ts.desc() if latest else ts.asc()).limit(1).scalar_subquery()
    rows = connection.execute(select(entities.c[key], edge)).all()
    return {entity: pd.Timestamp(stamp) for entity, stamp in rows if stamp is not None}


def table_counts(engine: Engine) -> dict[str, int | None]:
    """Rows in each table of the schema; None for a table that does not exist yet."""
    counts: dict[str, int | None] = {}
    with engine.connect() as connection:
        inspector = inspect(connection)
        existing = set(inspector.get_table_names()) | set(inspector.get_view_names())
        for name, table in metadata.tables.items():
            if name in existing:
                counts[name] = connection.scalar(select(func.count()).select_from(table))
            else:
                counts[name] = None
    return counts


def read_frame(connection: Connection, query: Select) -> pd.DataFrame:
    """The rows of a Core SELECT as a DataFrame, timestamps as UTC. On PostgreSQL the rows come by
    `COPY (query) TO STDOUT` as CSV, several times faster than fetching row objects for the millions
    of readings detection reads; psycopg2 binds the query's parameters (mogrify), as it would for
    execute. Elsewhere, an ordinary fetch."""
    names = [c.name for c in query.selected_columns]
    times = [c.name for c in query.selected_columns if isinstance(c.type, UTCDateTime)]
    if connection.dialect.name != "postgresql":
        frame = pd.DataFrame(connection.execute(query).all(), columns=names)
        for name in times:
            frame[name] = pd.to_datetime(frame[name], utc=True)
        return frame
    compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        sql = cursor.mogrify(str(compiled), compiled.params).decode()
        buffer = io.BytesIO()
        cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER false)", buffer)
    finally:
        cursor.close()
    buffer.seek(0)
    frame = pd.read_csv(
        buffer, names=names, header=None, dtype=_csv_types(query), keep_default_na=False, na_values=[""]
    )
    for name in times:
        frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
    return frame


def _csv_types(query: Select) -> dict:
    """Text columns stay text (a sensor id of digits must not become a number)."""
    return {c.name: str for c in query.selected_columns if isinstance(c.type, String | Text)}


# --- time series packed by PostgreSQL ---------------------------------------------------------------------


def packed_series(table: Table, key: str, columns: list[str], spans) -> Select:
    """PostgreSQL: per window of `spans` (a selectable of key, since, until), its key and the rows of
    `table` inside it as one bytea of records in time order: the time (int64 microseconds since 2000)
    and each column as a float64, NULL as NaN (pandas reads both as NaN). One aggregate packs whole
    records, so times and values cannot fall out of step; an index range scan per window and no text
    to parse. `unpack_series` reads what it sends."""
    nan = literal_column("'NaN'::float8")
    record = func.timestamptz_send(table.c.ts)
    for c in columns:
        record = record.op("||")(func.float8send(func.coalesce(table.c[c], nan)))
    in_order = aggregate_order_by(literal(b"", LargeBinary), table.c.ts)
    packed = func.string_agg(record, in_order, type_=LargeBinary)
    inside = and_(table.c[key] == spans.c.key, table.c.ts >= spans.c.since, table.c.ts <= spans.c.until)
    return select(spans.c.key, select(packed).where(inside).scalar_subquery())


def unpack_series(parts: list[bytes], columns: list[str]) -> tuple[pd.DatetimeIndex, dict, list[int]]:
    """The windows `packed_series` sent, one after another: their times (UTC), each column's values, and
    how many rows each window held."""
    record = np.dtype([("ts", ">i8")] + [(c, ">f8") for c in columns])  # big-endian, as PostgreSQL sends
    arrays = [np.frombuffer(part, dtype=record) for part in parts]
    rows = np.concatenate(arrays) if arrays else np.empty(0, dtype=record)
    ts = (rows["ts"].astype(np.int64) + PG_EPOCH_US).view("datetime64[us]")
    values = {c: rows[c].astype(np.float64) for c in columns}
    return pd.DatetimeIndex(ts).tz_localize("UTC"), values, [len(a) for a in arrays]
