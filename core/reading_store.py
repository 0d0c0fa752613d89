"""How PostgreSQL keeps readings lean: monthly partitions keyed by a small integer (issue 34).

SQLite keeps the one `readings` table of `core.schema`. On PostgreSQL that name is a view, so every query
that reads readings is the same on both engines:

- `reading_series` gives each sensor with readings a 4-byte `sensor_key` and keeps the first and last
  time of its readings (what "a sensor's latest reading" asks, without touching the big table);
- `reading_rows` holds the readings by key, partitioned by UTC month (`reading_rows_y2026m01`, …), with
  a non-unique btree on the key (deduplicated: a few bytes a reading) and a BRIN index on the time;
- `readings` is the view joining the two. PostgreSQL pushes `sensor_id = …` and the time bounds through
  the join, so a query reads only its sensor's rows in the months it asks for.

A reading costs about 84 bytes this way, against 178 for the text-keyed table with its primary key
(1 M readings, measured by benchmarks/bench_scale.py). The price is that no unique index says a sensor
has one reading a time: every writer holds `READINGS_LOCK` (an advisory lock) while it checks and writes,
`core.load` in bulk and the view's INSTEAD OF triggers for a statement's rows.

A database from before revision 0011 keeps its old table as `readings_legacy` until `move_legacy`, run
by `etl init-db`, has moved it over a batch of sensors per transaction; meanwhile the view shows both,
so the web apps answer throughout, and the nightly steps wait (`core.db.ensure_schema`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re

import pandas as pd
from sqlalchemy import Column, Connection, Engine, Float, Integer, MetaData, Table, text

from core.schema import SensorId, UTCDateTime

log = logging.getLogger(__name__)

ROWS, SERIES, VIEW, LEGACY = "reading_rows", "reading_series", "readings", "readings_legacy"
# Any number, the same in every writer: pg_advisory_xact_lock(READINGS_LOCK) serialises readings writers.
READINGS_LOCK = 0x5245_4144  # "READ"
VALUES = ("soil_moisture", "air_temperature", "light", "battery_level")
DROP_WAIT_S = 10  # how long dropping a month waits for the readers of readings
MOVE_SENSORS = 200  # sensors a transaction when moving a legacy table: a year of 200 is about 7 M rows
SETTLE_DAYS = 7  # a month's indexes are rebuilt compact this long after it ends
COMPACTED = "grow-wow: indexes rebuilt after the month"  # the comment on a partition rebuilt

# The store's tables for SQLAlchemy Core queries (not in core.schema's metadata: SQLite never has them).
store_metadata = MetaData()
reading_series = Table(
    SERIES,
    store_metadata,
    Column("sensor_key", Integer, primary_key=True),
    Column("sensor_id", SensorId, nullable=False, unique=True),
    Column("first_at", UTCDateTime),
    Column("last_at", UTCDateTime),
)
reading_rows = Table(
    ROWS,
    store_metadata,
    Column("sensor_key", Integer, nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    *(Column(name, Float) for name in VALUES),
)

_VALUES = ", ".join(VALUES)
_JOINED = (
    f"SELECT s.sensor_id, r.ts, {', '.join('r.' + v for v in VALUES)} "
    f"FROM {ROWS} AS r JOIN {SERIES} AS s ON s.sensor_key = r.sensor_key"
)

# The view's writes, one row at a time (tests, hand-written SQL, a rare fix): what `core.load` does in
# bulk. A new month's partition is made on the way.
_FUNCTIONS = f"""
CREATE FUNCTION reading_key(id varchar) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE found integer;
BEGIN
  SELECT sensor_key INTO found FROM {SERIES} WHERE sensor_id = id;
  IF found IS NULL THEN
    INSERT INTO {SERIES} (sensor_id) VALUES (id) ON CONFLICT (sensor_id) DO NOTHING;
    SELECT sensor_key INTO found FROM {SERIES} WHERE sensor_id = id;
  END IF;
  RETURN found;
END $$;

CREATE FUNCTION reading_month(moment timestamptz) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  month_start timestamptz := date_trunc('month', moment AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  part text := to_char(moment AT TIME ZONE 'UTC', '"{ROWS}_y"YYYY"m"MM');
BEGIN
  IF to_regclass(quote_ident(part)) IS NULL THEN
    PERFORM pg_advisory_xact_lock({READINGS_LOCK});
    -- Made by another writer while this one waited for the lock: the cached catalog may not show it yet.
    BEGIN
      EXECUTE format('CREATE TABLE %I PARTITION OF {ROWS} FOR VALUES FROM (%L) TO (%L)',
                     part, month_start, month_start + interval '1 month');
    EXCEPTION WHEN duplicate_table THEN NULL;
    END;
  END IF;
END $$;

CREATE FUNCTION readings_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE k integer;
BEGIN
  PERFORM pg_advisory_xact_lock({READINGS_LOCK});
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    SELECT sensor_key INTO k FROM {SERIES} WHERE sensor_id = OLD.sensor_id;
    DELETE FROM {ROWS} WHERE sensor_key = k AND ts = OLD.ts;
    IF NOT FOUND THEN RETURN NULL; END IF;
    -- The series' first or last reading gone: find the next one in (a scan of this sensor's rows).
    UPDATE {SERIES} SET
        first_at = CASE WHEN first_at = OLD.ts
          THEN (SELECT min(ts) FROM {ROWS} WHERE sensor_key = k AND ts > OLD.ts) ELSE first_at END,
        last_at = CASE WHEN last_at = OLD.ts
          THEN (SELECT max(ts) FROM {ROWS} WHERE sensor_key = k AND ts < OLD.ts) ELSE last_at END
      WHERE sensor_key = k AND OLD.ts IN (first_at, last_at);
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  END IF;
  k := reading_key(NEW.sensor_id);
  IF EXISTS (SELECT 1 FROM {ROWS} WHERE sensor_key = k AND ts = NEW.ts) THEN
    RAISE unique_violation
      USING MESSAGE = format('a reading of %s at %s is stored already', NEW.sensor_id, NEW.ts);
  END IF;
  PERFORM reading_month(NEW.ts);
  INSERT INTO {ROWS} (sensor_key, ts, {_VALUES})
    VALUES (k, NEW.ts, NEW.soil_moisture, NEW.air_temperature, NEW.light, NEW.battery_level);
  UPDATE {SERIES} SET first_at = LEAST(first_at, NEW.ts), last_at = GREATEST(last_at, NEW.ts)
    WHERE sensor_key = k;
  RETURN NEW;
END $$;
"""

_TRIGGERS = f"""
CREATE TRIGGER readings_write INSTEAD OF INSERT OR UPDATE OR DELETE ON {VIEW}
  FOR EACH ROW EXECUTE FUNCTION readings_write();
"""


def create_store(connection: Connection, legacy: bool = False) -> None:
    """Create the series, the partitioned rows, the view and its triggers. With `legacy`, the view shows
    the rows of `readings_legacy` too, until `move_legacy` has moved them."""
    connection.exec_driver_sql(
        f"CREATE TABLE {SERIES} (sensor_key integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
        "sensor_id varchar(64) NOT NULL UNIQUE, first_at timestamptz, last_at timestamptz)"
    )
    floats = ", ".join(f"{v} double precision" for v in VALUES)
    connection.exec_driver_sql(
        f"CREATE TABLE {ROWS} (sensor_key integer NOT NULL, ts timestamptz NOT NULL, {floats}) "
        "PARTITION BY RANGE (ts)"
    )
    connection.exec_driver_sql(f"CREATE INDEX {ROWS}_sensor_key ON {ROWS} (sensor_key)")
    connection.exec_driver_sql(f"CREATE INDEX {ROWS}_ts ON {ROWS} USING brin (ts)")
    connection.exec_driver_sql(_view(legacy))
    connection.exec_driver_sql(_FUNCTIONS.replace("%", "%%"))  # the driver's placeholders are %s
    connection.exec_driver_sql(_TRIGGERS)


def _view(legacy: bool) -> str:
    union = f" UNION ALL SELECT sensor_id, ts, {_VALUES} FROM {LEGACY}" if legacy else ""
    return f"CREATE OR REPLACE VIEW {VIEW} AS {_JOINED}{union}"


def lock_readings(connection: Connection) -> None:
    """Hold the readings lock to the end of the transaction: taken first, before anything is read, so no
    writer waits for it while holding what another writer needs."""
    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({READINGS_LOCK})")


def is_store_table(name: str) -> bool:
    """Whether a table is the store's (the series, the rows, a month's partition, the table being moved)."""
    return name in (SERIES, ROWS, LEGACY) or re.fullmatch(rf"{ROWS}_y\d{{4}}m\d{{2}}", name) is not None


def alembic_filter(dialect_name: str):
    """Alembic's `include_object` for comparing a database with `core.schema`: on PostgreSQL the store's
    tables stand for the `readings` table, which is a view there."""

    def include(_object, name, type_, reflected, _compare_to) -> bool:
        if dialect_name != "postgresql" or type_ != "table":
            return True
        return not is_store_table(name) if reflected else name != VIEW

    return include


def is_store(connection: Connection) -> bool:
    """Whether readings are in the store: PostgreSQL from revision 0011 on (before `etl init-db` has run,
    the web apps of a new release still read the old table)."""
    if connection.dialect.name != "postgresql":
        return False
    return connection.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": ROWS})


def legacy_left(connection: Connection) -> bool:
    return connection.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": LEGACY})


# --- months -------------------------------------------------------------------------------------------


def month_of(moment: dt.datetime) -> dt.date:
    return dt.date(moment.year, moment.month, 1)


def months_of(times) -> set[dt.date]:
    """The months of a Series of UTC times."""
    firsts = pd.to_datetime(times, utc=True).dt.tz_localize(None).dt.to_period("M").unique()
    return {dt.date(p.year, p.month, 1) for p in firsts}


def next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_start(month: dt.date) -> dt.datetime:
    """A month's first moment, UTC: the partition's lower bound."""
    return dt.datetime.combine(month, dt.time(), dt.UTC)


def partitions(connection: Connection) -> dict[dt.date, str]:
    """The months that have a partition, oldest first, with its table's name."""
    names = connection.scalars(
        text(
            "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:rows)"
        ),
        {"rows": ROWS},
    ).all()
    months = {dt.date(int(name[-7:-3]), int(name[-2:]), 1): name for name in names}
    return dict(sorted(months.items()))


def ensure_months(connection: Connection, months) -> None:
    """Make the partitions of `months` that are missing. Creating one locks the whole table for a moment
    (readers wait), so `core.load`'s loaders make them in a transaction of their own before a batch."""
    missing = sorted(set(months) - set(partitions(connection)))
    for month in missing:
        connection.execute(text("SELECT reading_month(:moment)"), {"moment": month_start(month)})


def ensure_months_apart(engine: Engine, months) -> None:
    """`ensure_months` in a short transaction of its own (so it holds the table's lock only a moment)."""
    months = set(months)
    with engine.connect() as connection:
        if not is_store(connection) or not (months - set(partitions(connection))):
            return
    with engine.begin() as connection:
        ensure_months(connection, months)


def drop_month(connection: Connection, month: dt.date) -> int:
    """Drop a month's partition, then move each series' first time to its readings left; the readings
    the month held."""
    name = partitions(connection).get(month)
    if name is None:
        return 0
    lock_readings(connection)
    gone = _drop_partition(connection, name)
    _recount_first_times(connection, month_start(next_month(month)))
    return gone


def delete_before(connection: Connection, moment: dt.datetime) -> int:
    """Delete every reading older than `moment` straight from the store (whole months' partitions are
    dropped), not row by row through the view's trigger; the readings deleted."""
    lock_readings(connection)
    gone = 0
    for month, name in partitions(connection).items():
        if month_start(month) >= moment:
            break
        if month_start(next_month(month)) <= moment:
            gone += _drop_partition(connection, name)
        else:
            deleted = connection.execute(text(f'DELETE FROM "{name}" WHERE ts < :moment'), {"moment": moment})
            gone += deleted.rowcount
    _recount_first_times(connection, moment)
    return gone


def _drop_partition(connection: Connection, name: str) -> int:
    """Drop one month's partition; the readings it held. Dropping waits for every query reading the
    readings and queues every later one behind it: it gives up after DROP_WAIT_S (psycopg2's
    LockNotAvailable) rather than stall the web apps behind a long read."""
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{DROP_WAIT_S}s'")
    gone = connection.scalar(text(f'SELECT count(*) FROM "{name}"'))
    connection.exec_driver_sql(f'DROP TABLE "{name}"')
    return gone


def _recount_first_times(connection: Connection, kept_from: dt.datetime) -> None:
    """Series whose first reading was dropped start at their earliest reading left: found month by month
    from the oldest partition left (usually the first one holds them all), not in the whole table."""
    for name in partitions(connection).values():
        stale = connection.scalar(
            text(f"SELECT count(*) FROM {SERIES} WHERE first_at < :kept"), {"kept": kept_from}
        )
        if not stale:
            return
        connection.execute(
            text(
                f"UPDATE {SERIES} AS s SET first_at = m.first FROM "
                f'(SELECT sensor_key, min(ts) AS first FROM "{name}" GROUP BY sensor_key) AS m '
                "WHERE s.sensor_key = m.sensor_key AND s.first_at < :kept"
            ),
            {"kept": kept_from},
        )
    emptied = f"UPDATE {SERIES} SET first_at = NULL, last_at = NULL WHERE first_at < :kept"
    connection.execute(text(emptied), {"kept": kept_from})


def compact_finished_months(engine: Engine, now: dt.datetime, settle_days: int = SETTLE_DAYS) -> list[str]:
    """Rebuild the indexes of each month's partition once the month has been over `settle_days` (late
    readings have mostly come), without blocking readers or writers (REINDEX … CONCURRENTLY). A month's
    key index grows by splitting its pages as every night adds each sensor's readings to it: 12 bytes a
    reading as the month is written, 7.5 rebuilt (2,000 sensors × 14 days). Each partition is rebuilt
    once (its table's comment says so). What was done, a line a month."""
    with engine.connect() as connection:
        if not is_store(connection):
            return []
        months = partitions(connection)
        done = set(
            connection.scalars(
                text(
                    "SELECT c.relname FROM pg_class AS c JOIN pg_description AS d ON d.objoid = c.oid "
                    "AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0 WHERE d.description = :mark"
                ),
                {"mark": COMPACTED},
            )
        )
    settled = (now - dt.timedelta(days=settle_days)).date()
    said = []
    for month, name in months.items():
        if next_month(month) > settled or name in done:
            continue
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f'REINDEX TABLE CONCURRENTLY "{name}"')
            connection.exec_driver_sql(f"COMMENT ON TABLE \"{name}\" IS '{COMPACTED}'")
        said.append(f"{month:%Y-%m}: readings' indexes rebuilt compact")
    return said


# --- from the text-keyed table of revisions 0001-0010 -----------------------------------------------


def adopt_legacy(connection: Connection) -> None:
    """Revision 0011's step, in the migration's transaction: rename the old table, create the store beside
    it and let the view show both. Nothing is copied yet: that is `move_legacy`'s work."""
    connection.exec_driver_sql(f"ALTER TABLE {VIEW} RENAME TO {LEGACY}")
    connection.exec_driver_sql(f"ALTER TABLE {LEGACY} RENAME CONSTRAINT pk_readings TO pk_{LEGACY}")
    create_store(connection, legacy=True)


def move_legacy(engine: Engine, sensors_a_batch: int = MOVE_SENSORS, say=log.info) -> int:
    """Move `readings_legacy` into the store a batch of sensors per transaction (every reading of a
    batch moves at once, so the view shows each exactly once throughout), then drop it. Stopped
    anywhere, it goes on from there when run again. The readings moved."""
    with engine.begin() as connection:
        if not legacy_left(connection):
            return 0
        # Every month the old table spans gets its partition first (one scan), and every sensor its key.
        first, last = connection.execute(text(f"SELECT min(ts), max(ts) FROM {LEGACY}")).one()
        if first is not None:
            months, month = [], month_of(first.astimezone(dt.UTC))
            while month <= month_of(last.astimezone(dt.UTC)):
                months.append(month)
                month = next_month(month)
            ensure_months(connection, months)
        connection.exec_driver_sql(
            f"INSERT INTO {SERIES} (sensor_id) SELECT DISTINCT sensor_id FROM {LEGACY} ORDER BY sensor_id "
            "ON CONFLICT (sensor_id) DO NOTHING"
        )
        ids = connection.scalars(
            text(f"SELECT sensor_id FROM {SERIES} WHERE first_at IS NULL ORDER BY sensor_id")
        ).all()
    moved = 0
    for start in range(0, len(ids), sensors_a_batch):
        batch = list(ids[start : start + sensors_a_batch])
        with engine.begin() as connection:
            lock_readings(connection)
            count = connection.scalar(
                text(
                    f"WITH moved AS (INSERT INTO {ROWS} (sensor_key, ts, {_VALUES}) "
                    f"SELECT s.sensor_key, l.ts, {', '.join('l.' + v for v in VALUES)} FROM {LEGACY} AS l "
                    f"JOIN {SERIES} AS s ON s.sensor_id = l.sensor_id WHERE l.sensor_id = ANY(:ids) "
                    "ORDER BY s.sensor_key, l.ts RETURNING sensor_key, ts), "
                    "edges AS (SELECT sensor_key, min(ts) AS first, max(ts) AS last, count(*) AS n "
                    "FROM moved GROUP BY sensor_key), "
                    f"marked AS (UPDATE {SERIES} AS s SET first_at = e.first, last_at = e.last "
                    "FROM edges AS e WHERE s.sensor_key = e.sensor_key RETURNING e.n) "
                    "SELECT coalesce(sum(n), 0) FROM marked"
                ),
                {"ids": batch},
            )
            connection.execute(text(f"DELETE FROM {LEGACY} WHERE sensor_id = ANY(:ids)"), {"ids": batch})
        moved += int(count)
        say(f"moved the readings of {start + len(batch):,} of {len(ids):,} sensors ({moved:,} readings)")
    # The view is replaced first: that waits for the queries reading it, and the old table is read only
    # through it, so nothing holds the table by then (taking the table first deadlocked with a request
    # that had read the view and went on to the table).
    with engine.connect() as connection, connection.begin() as transaction:
        connection.exec_driver_sql(_view(legacy=False))
        left = connection.scalar(text(f"SELECT count(*) FROM {LEGACY}"))
        if left:  # written by hand during the move: never lost, moved next time
            transaction.rollback()
            say(f"{left:,} readings arrived in {LEGACY} during the move; run init-db again")
            return moved
        connection.exec_driver_sql(f"DROP TABLE {LEGACY}")
    return moved


# --- sizes ---------------------------------------------------------------------------------------------


def sizes(connection: Connection) -> dict[str, int]:
    """Bytes on disk of the readings: heap and indexes of every partition, and the series."""
    heap = index = 0
    for name in partitions(connection).values():
        heap += connection.scalar(text("SELECT pg_relation_size(to_regclass(:n))"), {"n": name})
        index += connection.scalar(text("SELECT pg_indexes_size(to_regclass(:n))"), {"n": name})
    series = connection.scalar(text("SELECT pg_total_relation_size(to_regclass(:n))"), {"n": SERIES})
    return {"heap": heap, "index": index, "series": series}
