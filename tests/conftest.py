"""Shared fixtures: every database test runs on SQLite and on a real PostgreSQL.

PostgreSQL comes from TEST_DATABASE_URL (default: the local server on 127.0.0.1:5432, database test).
Each test gets its own PostgreSQL schema, dropped afterwards, so tests never see each other's rows.
Outside CI an unreachable PostgreSQL skips its tests with the reason; in CI (CI=true) it fails them.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from etl.db import init_db, make_engine
from etl.settings import load_settings, parse_database_url

POSTGRES_URL = parse_database_url(
    os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
)


def _postgres_unreachable() -> str | None:
    try:
        with create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3}).connect():
            return None
    except OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0]


@pytest.fixture(scope="session")
def postgres_url():
    reason = _postgres_unreachable()
    if reason:
        message = f"PostgreSQL at {POSTGRES_URL.render_as_string()} is unreachable: {reason}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run the PostgreSQL tests)")
        pytest.skip(message)
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A URL to an empty database of each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'grow_wow.sqlite'}"
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
                hide_password=False
            )
        )
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def settings(database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    return load_settings()


@pytest.fixture
def engine(settings):
    """An engine on a fresh database with the schema created."""
    engine = make_engine(settings)
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Tests see only the settings they set themselves, never the developer's shell."""
    from etl.settings import Settings

    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
