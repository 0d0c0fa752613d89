"""The schema: created or upgraded by init-db, the same on SQLite and PostgreSQL, UTC throughout."""

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    CheckConstraint,
    MetaData,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from core.db import MIGRATIONS_DIR, check_connection, head_revision, init_db, make_engine, read_frame
from core.errors import DatabaseUnavailable
from core.load import bulk_upsert
from core.reading_store import alembic_filter
from core.schema import etl_runs, metadata, sensor_health, sensors, users
from etl.settings import load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def schema_snapshot(engine) -> dict:
    """Tables with their columns, keys, indexes and constraints, as the database reports them."""
    inspector = inspect(engine)
    snapshot = {}
    for table in sorted(inspector.get_table_names()):
        snapshot[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)
            ),
            "foreign_keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(table)
            ),
        }
    return snapshot


def test_init_db_twice_gives_the_same_schema(settings):
    engine = make_engine(settings)
    first = init_db(engine)
    after_first = schema_snapshot(engine)
    second = init_db(engine)
    assert first.startswith("created schema")
    assert second.startswith("schema already at revision")
    assert schema_snapshot(engine) == after_first
    if engine.dialect.name == "sqlite":
        assert set(metadata.tables) | {"alembic_version"} == set(after_first)
        assert after_first["readings"]["primary_key"] == ["sensor_id", "ts"]
    else:  # readings are a view over the store (core.reading_store), with no month made yet
        assert set(metadata.tables) - {"readings"} | {
            "alembic_version",
            "reading_rows",
            "reading_series",
        } == set(after_first)
        assert inspect(engine).get_view_names() == ["readings"]
    assert after_first["wow_observations"]["primary_key"] == ["site_id", "ts"]


def schema_differences(connection) -> list:
    """What Alembic would draft to bring the database to the code's schema (the store standing for the
    readings table on PostgreSQL)."""
    context = MigrationContext.configure(
        connection, opts={"include_object": alembic_filter(connection.dialect.name)}
    )
    return compare_metadata(context, metadata)


def test_the_created_schema_matches_the_code_so_migrations_draft_cleanly(engine):
    with engine.connect() as connection:
        assert schema_differences(connection) == []


def test_migrations_form_one_line_ending_at_the_stamped_revision(engine):
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    assert len(script.get_heads()) == 1
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == script.get_current_head()


def test_timestamps_come_back_as_the_same_instant_in_utc(engine):
    cest = dt.timezone(dt.timedelta(hours=2))
    started = dt.datetime(2019, 6, 1, 3, 30, 15, 123456, tzinfo=cest)
    with engine.begin() as connection:
        connection.execute(insert(etl_runs).values(step="store_sensor_info", started_at=started, status="ok"))
        stored = connection.scalar(select(etl_runs.c.started_at))
    assert stored == started
    assert stored.utcoffset() == dt.timedelta(0)
    assert stored.hour == 1


def test_read_frame_gives_the_same_frame_on_both_engines(engine):
    # On PostgreSQL it comes by COPY as CSV: ids of digits stay text, NULL stays missing, quotes and
    # commas survive, the IN list and the time bound are bound parameters.
    rows = pd.DataFrame(
        {
            "sensor_id": ["0042", 'we"ird,id', "abc"],
            "name": ["a, b", None, ""],
            "latitude": [51.5, None, -0.25],
            "first_sample_at": pd.to_datetime(
                ["2019-06-01T03:30:15.123456Z", None, "2019-06-02T00:00:00Z"], format="ISO8601"
            ),
        }
    )
    with engine.begin() as connection:
        bulk_upsert(connection, sensors, rows)
        query = (
            select(sensors.c.sensor_id, sensors.c.name, sensors.c.latitude, sensors.c.first_sample_at)
            .where(sensors.c.sensor_id.in_(["0042", 'we"ird,id']))
            .order_by(sensors.c.sensor_id)
        )
        frame = read_frame(connection, query)
    assert frame["sensor_id"].tolist() == ["0042", 'we"ird,id']
    assert frame["name"].iloc[0] == "a, b" and pd.isna(frame["name"].iloc[1])
    assert frame["latitude"].iloc[0] == 51.5 and pd.isna(frame["latitude"].iloc[1])
    assert frame["first_sample_at"].iloc[0] == pd.Timestamp("2019-06-01T03:30:15.123456Z")
    assert str(frame["first_sample_at"].dt.tz) == "UTC" and pd.isna(frame["first_sample_at"].iloc[1])


def test_naive_timestamps_are_refused(engine):
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as connection:
        connection.execute(insert(etl_runs).values(step="x", started_at=dt.datetime(2019, 6, 1), status="ok"))


def test_an_unreachable_database_is_named_in_one_line(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody:pw1234@127.0.0.1:1/x")  # port 1: nothing listens
    with pytest.raises(DatabaseUnavailable) as caught:
        check_connection(make_engine(load_settings()))
    message = str(caught.value)
    assert "postgresql+psycopg2://nobody:***@127.0.0.1:1/x" in message
    assert "pw1234" not in message
    assert "\n" not in message


def run_cli(*args, env=None, cwd=PROJECT_ROOT):
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    environment["PYTHONPATH"] = str(PROJECT_ROOT)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "etl", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.slow  # three subprocesses
def test_cli_init_db_twice_then_status(database_url):
    env = {"DATABASE_URL": database_url}
    first = run_cli("init-db", env=env)
    second = run_cli("init-db", env=env)
    status = run_cli("status", env=env)
    assert first.returncode == 0, first.stderr
    assert f"created schema at revision {head_revision()}" in first.stdout
    assert second.returncode == 0, second.stderr
    assert f"schema already at revision {head_revision()}" in second.stdout
    assert "readings" in status.stdout and "0 rows" in status.stdout
    # Nothing has run yet: monitoring must hear about it.
    assert status.returncode == 1 and "NEVER RUN" in status.stdout, status.stdout


def test_cli_with_a_wrong_database_fails_in_one_line():
    result = run_cli("init-db", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"})
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "postgresql+psycopg2://nobody@127.0.0.1:1/x" in result.stderr
    assert "Traceback" not in result.stderr


# The command line with its default SQLite file (var/grow_wow.sqlite, see test_settings.py) moved to the
# path given first, so that a test never touches the developer's own database.
WITH_DEFAULT_AT = (
    "import pathlib, sys, core.settings; core.settings.DEFAULT_SQLITE_PATH = pathlib.Path(sys.argv.pop(1)); "
    "from etl.cli import cli; cli(prog_name='python -m etl')"
)


@pytest.mark.slow  # two subprocesses
def test_cli_without_database_url_uses_the_sqlite_default(tmp_path):
    default = tmp_path / "var" / "grow_wow.sqlite"
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    runs = [
        subprocess.run(
            [sys.executable, "-c", WITH_DEFAULT_AT, str(default), command],
            capture_output=True,
            text=True,
            env={**environment, "PYTHONPATH": str(PROJECT_ROOT)},
            cwd=PROJECT_ROOT,
            timeout=120,
        )
        for command in ("init-db", "status")
    ]
    assert runs[0].returncode == 0, runs[0].stderr
    assert default.exists()  # the folder is made too
    assert f"database  sqlite:///{default}" in runs[1].stdout, runs[1].stderr
    assert "Traceback" not in runs[1].stderr and "NEVER RUN" in runs[1].stdout


@pytest.mark.slow  # a subprocess each
@pytest.mark.parametrize("command", ["init-db", "status", "new-migration"])
def test_every_command_has_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert "Usage: python -m etl" in result.stdout


UPGRADE_TEST = '''"""Add sensors.elevation (a test revision).

Revision ID: 9001
Revises: {head}
"""

import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sensors") as batch:
        batch.add_column(sa.Column("elevation", sa.Float()))


def downgrade() -> None:
    with op.batch_alter_table("sensors") as batch:
        batch.drop_column("elevation")
'''


def test_a_later_revision_upgrades_a_database_without_losing_its_rows(settings, tmp_path):
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    engine = make_engine(settings)
    head = head_revision()
    assert init_db(engine, migrations) == f"created schema at revision {head}"
    with engine.begin() as connection:
        connection.execute(insert(sensors).values(sensor_id="zg9xr321", name="Flower Power", owner_id="u1"))

    (migrations / "versions" / "9001_sensor_elevation.py").write_text(UPGRADE_TEST.replace("{head}", head))
    assert init_db(engine, migrations) == f"upgraded schema from revision {head} to 9001"
    assert init_db(engine, migrations) == "schema already at revision 9001"

    columns = {c["name"] for c in inspect(engine).get_columns("sensors")}
    assert "elevation" in columns
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT sensor_id, name, owner_id FROM sensors")).all()
    assert kept == [("zg9xr321", "Flower Power", "u1")]


# What later revisions added, so a test can build the schema as revision 0001 had it.
ADDED_TABLES = {
    "detection_state",
    "fetch_state",
    "fetch_gaps",
    "quarantine",
    "login_sessions",
    "mail_ledger",
    "anomaly_answers",
    "sensor_pauses",
    "readings_days",
}
ADDED_COLUMNS = {
    "etl_runs": {"counts"},
    "users": {"session_version", "email", "alerts", "alert_schedule", "language"},
    "sensors": {"address_2019"},
    "anomalies": {"updated_at"},
}
STATUSES_AT_0001 = ("healthy", "faulty", "recovered")


def schema_at_first_revision() -> MetaData:
    first = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        if table.name in ADDED_TABLES:
            continue
        copy = table.to_metadata(first)
        for name in ADDED_COLUMNS.get(table.name, ()):
            copy._columns.remove(copy.c[name])
        if table.name == "sensor_health":
            status = next(c for c in copy.constraints if isinstance(c, CheckConstraint))
            copy.constraints.remove(status)
            copy.append_constraint(CheckConstraint(f"status IN {STATUSES_AT_0001!r}", name=status.name))
        if table.name == "users":  # every owner account had its owner id until self-service sign-up
            schedule = next(c for c in copy.constraints if "alert_schedule" in str(getattr(c, "sqltext", "")))
            copy.constraints.remove(schedule)
            copy.append_constraint(
                CheckConstraint("role = 'admin' OR owner_id IS NOT NULL", name="owner_has_owner_id")
            )
    return first


def test_a_database_from_the_first_revision_upgrades_to_the_current_schema(settings):
    """Build the schema as revision 0001 had it, holding data, and let init-db upgrade it."""
    engine = make_engine(settings)
    schema_at_first_revision().create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        )
        connection.execute(text("INSERT INTO alembic_version VALUES ('0001')"))
        connection.execute(insert(sensors).values(sensor_id="zg9xr321", name="Flower Power"))
        for name in ("Ada ", "Olive", "olive"):  # the last two fold into one: the first keeps its name
            connection.execute(insert(users).values(username=name, password_hash="x", role="admin"))
        with pytest.raises(IntegrityError), connection.begin_nested():  # 0001 knew three statuses
            connection.execute(insert(sensor_health).values(sensor_id="zg9xr321", status="silent"))
    assert init_db(engine) == f"upgraded schema from revision 0001 to {head_revision()}"
    with engine.begin() as connection:
        assert schema_differences(connection) == []
        assert connection.execute(text("SELECT sensor_id FROM sensors")).scalars().all() == ["zg9xr321"]
        names = connection.execute(text("SELECT username FROM users ORDER BY user_id")).scalars().all()
        assert names == ["ada", "Olive", "olive"]
        connection.execute(insert(sensor_health).values(sensor_id="zg9xr321", status="silent"))
        with pytest.raises(IntegrityError), connection.begin_nested():
            connection.execute(insert(sensor_health).values(sensor_id="zg9xr321", status="asleep"))
