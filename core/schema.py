"""The one database schema, shared by the ETL steps and both web apps (SQLAlchemy Core).

It holds on SQLite (the embedded default) and PostgreSQL (Aurora/RDS in production). Timestamps are
always timezone-aware UTC in Python. Readings are floats in their natural units:
soil moisture %, air temperature °C, light mol/m²/d, battery %, rainfall mm, humidity %.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

from core.times import as_utc
from core.vocabulary import Answer, Health

# Named constraints, so migrations can refer to them on both engines.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

HEALTH_STATUSES = tuple(status.value for status in Health)
USER_ROLES = ("admin", "owner")
RUN_STATUSES = ("running", "ok", "failed")
ALERT_SCHEDULES = ("nightly", "weekly")
QUARANTINE_ACTIONS = ("refused", "repaired")

# GROW location codes are short ("zg9xr321"); WOW site ids are numbers or GUIDs, up to 36 characters.
SensorId = String(64)
# What a sensor or owner id may look like in a URL or parameter (GROW codes such as "02krq5q5", owner
# UUIDs): the web apps check ids against it before any query. Never "." or "..": an id may end up as a
# path segment (a back-end URL, a file name) and must stay data.
ID_PATTERN = r"(?!\.\.?(?:/|$))[A-Za-z0-9_.:@\-]{1,64}"
ID_RULE = "1 to 64 letters, digits or . _ - : @, not . or .. alone"


def is_id(text: object) -> bool:
    """Whether `text` may be a sensor or owner id (ID_PATTERN): checked wherever an id enters."""
    return isinstance(text, str) and re.fullmatch(ID_PATTERN, text) is not None


SiteId = String(36)


class UTCDateTime(TypeDecorator):
    """A timestamp stored as UTC on every engine and always returned timezone-aware.

    PostgreSQL keeps `timestamptz`; SQLite keeps SQLAlchemy's text form of the UTC time, which sorts
    in time order. Naive datetimes are refused: guessing their zone is how data gets shifted by an hour.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give timestamps a time zone (UTC)")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        return None if value is None else as_utc(value)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")


def _updated_at() -> Column:
    # A server default, so bulk loads that do not send it still fill it (core.load refreshes it on update).
    return Column("updated_at", UTCDateTime, nullable=False, server_default=func.now())


sensors = Table(
    "sensors",
    metadata,
    Column("sensor_id", SensorId, primary_key=True, comment="GROW location Code"),
    Column("identifier", String(128), comment="GROW location Identifier, Grow.Thingful#<code>"),
    Column("name", String(256)),
    Column("serial_number", String(64)),
    Column("owner_id", String(64), index=True, comment="GROW UserUid of the owner"),
    Column("latitude", Float),
    Column("longitude", Float),
    Column("first_sample_at", UTCDateTime),
    Column("last_sample_at", UTCDateTime),
    Column("days_active", Integer),
    Column("address", String(512)),
    Column(
        "address_2019",
        String(512),
        comment="the address as 2019 wrote it: Google's address components' long names joined by spaces",
    ),
    Column("place", String(128)),
    Column("country", String(64)),
    # Where the address was looked up, so only new or moved sensors are geocoded again.
    Column("address_latitude", Float),
    Column("address_longitude", Float),
    _updated_at(),
)

wow_sites = Table(
    "wow_sites",
    metadata,
    Column("site_id", SiteId, primary_key=True),
    Column("name", String(256)),
    Column("latitude", Float, nullable=False),
    Column("longitude", Float, nullable=False),
    Column("is_official", Boolean),
    Column("last_report_at", UTCDateTime, comment="latest report with air temperature and rainfall"),
    Column("is_live", Boolean, nullable=False, server_default=false()),
    _updated_at(),
)

sensor_wow = Table(
    "sensor_wow",
    metadata,
    Column("sensor_id", SensorId, ForeignKey("sensors.sensor_id"), primary_key=True),
    Column("site_id", SiteId, ForeignKey("wow_sites.site_id"), index=True),
    Column("distance_km", Float),
    Column("reason", String(256), comment="why no station is linked, when none is"),
    _updated_at(),
)

# The two big tables carry no foreign keys: a per-row check would cost a large share of load speed,
# and sensors and sites are never deleted.
readings = Table(
    "readings",
    metadata,
    Column("sensor_id", SensorId, primary_key=True),
    Column("ts", UTCDateTime, primary_key=True),
    Column("soil_moisture", Float, comment="calibrated soil moisture, %"),
    Column("air_temperature", Float, comment="°C"),
    Column("light", Float, comment="mol/m²/d"),
    Column("battery_level", Float, comment="%"),
)

# When each day's readings of each source last changed (new readings, late ones, corrections): what a
# mirror fetches again (`/api/v1/changes`) and what the archive writes again (`etl.archive`).
readings_days = Table(
    "readings_days",
    metadata,
    Column("day", UTCDateTime, primary_key=True, comment="the UTC day, as its midnight"),
    Column("source", String(16), primary_key=True, comment="grow, opensensemap or files"),
    Column("changed_at", UTCDateTime, nullable=False),
    Index(None, "changed_at"),
)

wow_observations = Table(
    "wow_observations",
    metadata,
    Column("site_id", SiteId, primary_key=True),
    Column("ts", UTCDateTime, primary_key=True),
    Column("air_temperature", Float, comment="dry bulb, °C"),
    Column("rainfall", Float, comment="mm since the previous report"),
    Column("relative_humidity", Float, comment="%"),
)

anomalies = Table(
    "anomalies",
    metadata,
    Column("anomaly_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("sensor_id", SensorId, nullable=False),
    Column("variable", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("start_at", UTCDateTime, nullable=False),
    Column("end_at", UTCDateTime, nullable=False),
    Column("score", Float),
    Column("detector", String(16), nullable=False, comment="model, rule or reference"),
    Column("explanation", Text),
    Column("detected_at", UTCDateTime, nullable=False, server_default=func.now()),
    _updated_at(),  # a re-detection that moves its end or score changes it: the changes feed says so
    UniqueConstraint("sensor_id", "variable", "kind", "start_at"),
    Index(None, "sensor_id", "end_at"),
)

detection_state = Table(
    "detection_state",
    metadata,
    Column("sensor_id", SensorId, primary_key=True),
    Column("analysed_until", UTCDateTime, nullable=False, comment="the latest reading already checked"),
    Column(
        "recheck_from",
        UTCDateTime,
        comment="readings this old or newer arrived late, after their days were checked: check again",
    ),
    _updated_at(),
)

# How far each source has answered for each sensor (source 'grow') and station ('wow'): the extraction
# watermark. It is not the newest reading: an answer that left a sensor out, failed, or held a record
# that had to be refused does not move it, so the next run asks again from there.
fetch_state = Table(
    "fetch_state",
    metadata,
    Column("source", String(8), primary_key=True, comment="grow or wow"),
    Column("entity_id", SensorId, primary_key=True, comment="sensor_id or site_id"),
    Column("fetched_through", UTCDateTime, nullable=False, comment="the source answered fully up to here"),
    Column("held_since", UTCDateTime, comment="when an incomplete answer first held it back; null: none"),
    Column("held_reason", Text, comment="what was missing from the latest incomplete answer"),
    Column("held_runs", Integer, nullable=False, server_default="0", comment="runs it has been held back"),
    _updated_at(),
)

# Spans a source never answered for, given up after GAP_GIVE_UP_DAYS of asking: the readings that are
# missing for good, and why.
fetch_gaps = Table(
    "fetch_gaps",
    metadata,
    Column("source", String(8), primary_key=True),
    Column("entity_id", SensorId, primary_key=True),
    Column("start_at", UTCDateTime, primary_key=True),
    Column("end_at", UTCDateTime, nullable=False),
    Column("held_since", UTCDateTime, nullable=False),
    Column("reason", Text),
    Column("given_up_at", UTCDateTime, nullable=False),
)

# Records from a source that could not be taken as they came: refused (an id outside ID_PATTERN, a sample
# stamped in the future) or repaired (a name cut to its column or stripped of NUL, a value that cannot be
# a reading stored as missing). `record` is the record as it came, as JSON text; one row per distinct
# record, however often the source sends it again.
quarantine = Table(
    "quarantine",
    metadata,
    Column(
        "quarantine_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("source", String(32), nullable=False, comment="grow sensors, grow readings, wow observations"),
    Column("fingerprint", String(64), nullable=False, comment="sha256 of the record"),
    Column("entity_id", String(64), comment="sensor or site, cut and cleaned, when the record names one"),
    Column("action", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("record", Text, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False, server_default=func.now()),
    Column("last_seen_at", UTCDateTime, nullable=False, server_default=func.now()),
    CheckConstraint(f"action IN {QUARANTINE_ACTIONS!r}", name="action"),
    UniqueConstraint("source", "fingerprint"),
    Index(None, "last_seen_at"),
)

sensor_health = Table(
    "sensor_health",
    metadata,
    Column("sensor_id", SensorId, ForeignKey("sensors.sensor_id"), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("last_anomaly_at", UTCDateTime),
    Column("latest_reading_at", UTCDateTime),
    Column("days_since_anomaly", Float),
    Column("counts", JSONDocument, comment="anomaly counts by kind and by variable"),
    Column("reason", Text),
    _updated_at(),
    CheckConstraint(f"status IN {HEALTH_STATUSES!r}", name="status"),
    Index(None, "status"),
)

etl_runs = Table(
    "etl_runs",
    metadata,
    Column("run_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("step", String(64), nullable=False),
    Column("shard", String(16), comment="i/n when the step ran on one shard"),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("status", String(16), nullable=False),
    Column("rows", Integer),
    Column("error", Text),
    Column("counts", JSONDocument, comment="what went wrong upstream: gaps, quarantined records, ..."),
    CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
    Index(None, "step", "started_at"),
)

users = Table(
    "users",
    metadata,
    Column("user_id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("role", String(16), nullable=False),
    Column("owner_id", String(64), comment="the GROW owner whose sensors an owner account sees"),
    Column("is_active", Boolean, nullable=False, server_default=true()),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
    Column(
        "session_version",
        Integer,
        nullable=False,
        server_default="0",
        comment="bumped when the password changes or the account is disabled: older sessions end",
    ),
    Column("email", String(254), comment="where the account's alerts go; none: no mail"),
    Column("alerts", Boolean, nullable=False, server_default=true(), comment="mail when a sensor turns bad"),
    Column(
        "alert_schedule",
        String(8),
        nullable=False,
        server_default="nightly",
        comment="nightly: a mail the night a sensor turns bad; weekly: one mail a week at most",
    ),
    Column("language", String(8), comment="the language of its pages and mails; none: the browser's"),
    CheckConstraint(f"role IN {USER_ROLES!r}", name="role"),
    CheckConstraint(f"alert_schedule IN {ALERT_SCHEDULES!r}", name="alert_schedule"),
)

# One row per login: the session and remember cookies carry a random token, stored here only as its
# SHA-256, so a login ends when its row is revoked (logout, a password change, a disable, "log out
# everywhere") or grows older than its lifetime (the front end's settings), whatever the cookie says.
login_sessions = Table(
    "login_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True, comment="SHA-256 of the cookie's token, in hex"),
    Column("user_id", Integer, ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False, index=True),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("remember", Boolean, nullable=False, comment='"stay logged in": lives REMEMBER_DAYS, not hours'),
    Column("revoked_at", UTCDateTime, comment="when it was ended; it answers nothing after"),
)


# What the nightly alerts told whom: one row per account and episode of a sensor gone bad (faulty since
# its last anomaly, or silent since its latest reading), queued, then marked sent, or stale when the
# sensor was well again before any mail could go. A night run twice, or a mail server down for a night,
# so sends each alert once: the queued rows go with the next mail.
mail_ledger = Table(
    "mail_ledger",
    metadata,
    Column("mail_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
    Column("sensor_id", SensorId, nullable=False),
    Column("status", String(16), nullable=False, comment="faulty or silent"),
    Column(
        "since", UTCDateTime, nullable=False, comment="the episode: the last anomaly, or the latest reading"
    ),
    Column("reason", Text),
    Column("queued_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("outcome", String(8), comment="sent, or stale (well again before it went)"),
    Column("reminded_at", UTCDateTime, comment="when a week still bad was told"),
    Column("recovered_at", UTCDateTime, comment="when being well again was told"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text, comment="the mail server's last refusal, in one line"),
    UniqueConstraint("user_id", "sensor_id", "status", "since"),
)


# What owners said of their sensors' anomalies: one answer per anomaly (the latest replaces the one
# before), keyed by the anomaly's own key so it survives a re-detection of the same span. Who answered
# is kept by name too, so an answer outlives its account.
anomaly_answers = Table(
    "anomaly_answers",
    metadata,
    Column("answer_id", Integer, primary_key=True, autoincrement=True),
    Column("sensor_id", SensorId, nullable=False),
    Column("variable", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("start_at", UTCDateTime, nullable=False, comment="the anomaly's start: with the rest, its key"),
    Column("answer", String(16), nullable=False, comment="real_fault, not_a_fault or fixed"),
    Column("reason", String(16), comment="why not a fault: watering, gardening, moved, winter, other"),
    Column("note", Text),
    Column("user_id", Integer, ForeignKey("users.user_id", ondelete="SET NULL")),
    Column("answered_by", String(64), nullable=False),
    Column("answered_at", UTCDateTime, nullable=False),
    Column(
        "excuses_until",
        UTCDateTime,
        nullable=False,
        comment="what the answer speaks for ends here: the anomaly's end when answered; a fix, its day",
    ),
    CheckConstraint(f"answer IN {tuple(a.value for a in Answer)!r}", name="answer"),
    UniqueConstraint("sensor_id", "variable", "kind", "start_at"),
)

# Spans an owner paused a sensor for maintenance: anomalies inside one never make it faulty, no mail
# goes about it, and while one lasts the sensor is `paused`. They stay as history.
sensor_pauses = Table(
    "sensor_pauses",
    metadata,
    Column("pause_id", Integer, primary_key=True, autoincrement=True),
    Column("sensor_id", SensorId, nullable=False, index=True),
    Column("start_at", UTCDateTime, nullable=False),
    Column("end_at", UTCDateTime, nullable=False),
    Column("note", Text),
    Column("user_id", Integer, ForeignKey("users.user_id", ondelete="SET NULL")),
    Column("paused_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("end_at > start_at", name="span"),
)
