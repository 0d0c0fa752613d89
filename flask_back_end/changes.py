"""What changed since a cursor, for mirrors (`/api/v1/changes`): days whose readings changed, anomalies
found or changed, and sensors whose health changed; oldest first, one page at a time.

Each change has its time (`readings_days.changed_at`, `anomalies.updated_at`, `sensor_health.updated_at`),
its kind and a key within the kind; the three sort together by (time, kind, key), and the cursor is the
last change of a page in that order. Many rows share a time (one night's health is written in one
statement), so each table is read past the cursor by the whole triple, not by the time alone: a page
never skips a change nor repeats one.

A change is listed once it is `CHANGES_SETTLE_S` old (10 minutes): rows are dated when their
transaction began, so a write still going on when a mirror reads would otherwise be passed over.

An anomaly withdrawn by a recheck is not listed (it has no row left); the days whose readings changed
are, and a mirror reads a sensor's anomalies again over them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json

from sqlalchemy import String, and_, bindparam, case, func, literal, or_, select, type_coerce

from core.schema import UTCDateTime, anomalies, readings_days, sensor_health
from core.times import as_utc

KINDS = ("anomaly", "health", "readings")  # their order among changes of the same time


class BadCursor(ValueError):
    """A cursor this API did not give."""


def encode(at: dt.datetime, kind: str, key) -> str:
    raw = json.dumps([as_utc(at).isoformat(), kind, key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[dt.datetime, str, object]:
    try:
        at, kind, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if kind not in KINDS:
            raise ValueError(kind)
        return as_utc(dt.datetime.fromisoformat(at)), kind, key
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadCursor("since: not a cursor this API gave (pass `cursor` from the previous page)") from None


def _comparable(column, connection):
    """The time as the comparisons need it. SQLite keeps times as text, SQLAlchemy's to the microsecond
    but a server default's (CURRENT_TIMESTAMP) to the second: the latter gets its six zeros, so equal
    times compare equal and text order is time order."""
    if connection.dialect.name != "sqlite":
        return column
    text = type_coerce(column, String)
    return case((func.length(text) == 19, text.op("||")(literal(".000000", String))), else_=text)


def _after(connection, at_column, key_columns: list, kind: str, cursor, until: dt.datetime) -> object:
    """Rows of one kind past the cursor in (time, kind, key) order, and older than `until`."""
    at_column = _comparable(at_column, connection)
    settled = at_column < bindparam(None, until, type_=UTCDateTime)
    if cursor is None:
        return settled
    return and_(settled, _past(at_column, key_columns, kind, cursor))


def _past(at_column, key_columns: list, kind: str, cursor) -> object:
    at, cursor_kind, key = cursor
    at = bindparam(None, at, type_=UTCDateTime)
    if KINDS.index(kind) < KINDS.index(cursor_kind):
        return at_column > at
    if KINDS.index(kind) > KINDS.index(cursor_kind):
        return at_column >= at
    keys = key if isinstance(key, list) else [key]
    past_key = or_(
        *(
            and_(
                *(column == value for column, value in zip(key_columns[:i], keys[:i])),
                key_columns[i] > keys[i],
            )
            for i in range(len(key_columns))
        )
    )
    return or_(at_column > at, and_(at_column == at, past_key))


def _readings(connection, cursor, limit: int, until: dt.datetime) -> list[tuple]:
    if cursor is not None and cursor[1] == "readings":  # its key: the day (a time, in the cursor's text)
        day, source = cursor[2]
        cursor = (cursor[0], cursor[1], [as_utc(dt.datetime.fromisoformat(day)), source])
    rows = connection.execute(
        select(readings_days)
        .where(
            _after(
                connection,
                readings_days.c.changed_at,
                [readings_days.c.day, readings_days.c.source],
                "readings",
                cursor,
                until,
            )
        )
        .order_by(
            _comparable(readings_days.c.changed_at, connection), readings_days.c.day, readings_days.c.source
        )
        .limit(limit)
    )
    return [
        (
            row.changed_at,
            "readings",
            [as_utc(row.day).isoformat(), row.source],
            {"day": as_utc(row.day).date().isoformat(), "source": row.source},
        )
        for row in rows
    ]


def _anomalies(connection, cursor, limit: int, until: dt.datetime) -> list[tuple]:
    fields = ("variable", "kind", "start_at", "end_at", "score", "detector", "explanation")
    rows = connection.execute(
        select(anomalies)
        .where(_after(connection, anomalies.c.updated_at, [anomalies.c.anomaly_id], "anomaly", cursor, until))
        .order_by(_comparable(anomalies.c.updated_at, connection), anomalies.c.anomaly_id)
        .limit(limit)
    )
    return [
        (
            row.updated_at,
            "anomaly",
            row.anomaly_id,
            {"sensor_id": row.sensor_id, "anomaly": {name: getattr(row, name) for name in fields}},
        )
        for row in rows
    ]


def _health(connection, cursor, limit: int, until: dt.datetime) -> list[tuple]:
    rows = connection.execute(
        select(sensor_health.c.sensor_id, sensor_health.c.status, sensor_health.c.updated_at)
        .where(
            _after(
                connection, sensor_health.c.updated_at, [sensor_health.c.sensor_id], "health", cursor, until
            )
        )
        .order_by(_comparable(sensor_health.c.updated_at, connection), sensor_health.c.sensor_id)
        .limit(limit)
    )
    return [
        (row.updated_at, "health", row.sensor_id, {"sensor_id": row.sensor_id, "status": row.status})
        for row in rows
    ]


def page(connection, since: str | None, limit: int, settle_s: float = 600) -> dict:
    """The changes past `since` (a cursor, or None for all) and `settle_s` old, at most `limit`, with the
    next cursor."""
    cursor = decode(since) if since else None
    until = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settle_s)
    found = [
        change
        for read in (_readings, _anomalies, _health)
        for change in read(connection, cursor, limit + 1, until)
    ]
    found.sort(key=lambda change: (as_utc(change[0]), KINDS.index(change[1]), change[2]))
    shown = found[:limit]
    changes = [{"kind": kind, "changed_at": as_utc(at), **body} for at, kind, _, body in shown]
    last = shown[-1] if shown else None
    return {
        "changes": changes,
        "cursor": encode(last[0], last[1], last[2]) if last else since,
        "more": len(found) > limit,
    }
