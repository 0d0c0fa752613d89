"""Shared fixtures: every database test runs on SQLite and on a real PostgreSQL.

PostgreSQL comes from TEST_DATABASE_URL (default: the local server on 127.0.0.1:5432, database test).
Each test gets its own PostgreSQL schema, dropped afterwards, so tests never see each other's rows.
Outside CI an unreachable PostgreSQL skips its tests with the reason; in CI (CI=true) it fails them.

No test writes under var/ (the developer's own database, demo network and Airflow live there): after each
test the guard below compares a listing of var/ with the one before and fails the test that changed it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError

from core.db import init_db, make_engine
from core.settings import VAR_DIR, parse_database_url
from etl.settings import load_settings
from tests.factories import SIMULATED_END, seed, var_changes, var_listing

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def pytest_configure(config):
    """pytest-xdist hands out the files of `--dist loadfile` in the order collected (below) only with its
    own reordering off: on by default, it puts the files with the most tests first, so the scenarios of
    one or two long tests came last (seen: the browser tests and the three shard processes still running
    8 minutes into a run of 8.5)."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    """Whole-system scenarios (tests/scenarios: nights of chaos, browsers, pipelines, deployments) are
    slow by their folder; `make test-fast` leaves them out, `make test` runs them, first: pytest-xdist
    hands out files in the order collected, so the long ones start at once and the many short ones fill
    in beside them, rather than one long file running alone at the end. The other files follow by their
    number of tests, most first: the few with a hundred tests and more take a minute each."""
    files = {id(item): Path(item.fspath).resolve() for item in items}
    scenario = {id(item): SCENARIOS in files[id(item)].parents for item in items}
    for item in items:
        if scenario[id(item)]:
            item.add_marker(pytest.mark.slow)
    tests_in = Counter(files.values())
    items.sort(
        key=lambda item: (not scenario[id(item)], -tests_in[files[id(item)]] * (not scenario[id(item)]))
    )


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


@pytest.fixture(scope="session")
def postgres_admin(postgres_url):
    """One connection pool for making and dropping the tests' schemas."""
    admin = create_engine(postgres_url)
    yield admin
    admin.dispose()


def _new_schema(admin, base) -> tuple[str, str]:
    """A fresh schema: its name, and the URL of the database with the schema as its search path."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, url.render_as_string(hide_password=False)


def _drop_schemas(admin, schemas) -> None:
    with admin.begin() as connection:
        for schema in schemas:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))  # `engine` may keep it


@pytest.fixture
def postgres_schemas(request):
    """Make fresh PostgreSQL schemas on demand (a URL each); all are dropped after the test."""
    base = request.getfixturevalue("postgres_url")
    admin = request.getfixturevalue("postgres_admin")
    made = []

    def make() -> str:
        schema, url = _new_schema(admin, base)
        made.append(schema)
        return url

    yield make
    _drop_schemas(admin, made)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A URL to an empty database of each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'grow_wow.sqlite'}"
    return request.getfixturevalue("postgres_schemas")()


@pytest.fixture
def settings(database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    return load_settings()


@pytest.fixture
def engine(settings, request):
    """An engine on a fresh database with the schema created: each test's own database, filled from a
    template this worker made once with init_db (a copy of its SQLite file; on PostgreSQL the statements
    init_db ran, replayed in one round trip, or a schema another test left and ReadySchemas emptied), in
    a fraction of the time init_db takes in each test (the fast tests' 394 databases: 26 s, then 2 s with
    the schemas emptied, against 52 s). tests/core/test_db.py checks that what the tests get matches the
    code and is stamped with the newest revision; init_db itself is tested there and by the CLI tests."""
    url = settings.database
    if url.get_backend_name() == "sqlite":
        shutil.copyfile(request.getfixturevalue("sqlite_template"), url.database)
        engine = make_engine(settings)
        yield engine
        engine.dispose()
        return
    schema = url.query["options"].removeprefix("-csearch_path=")  # as database_url made it
    admin, ready = request.getfixturevalue("postgres_admin"), request.getfixturevalue("postgres_ready")
    with admin.begin() as connection:
        if ready.schemas:  # an emptied one, under this test's name
            connection.execute(text(f'DROP SCHEMA "{schema}"'))
            connection.execute(text(f'ALTER SCHEMA "{ready.schemas.pop()}" RENAME TO "{schema}"'))
        else:
            connection.execute(text(f'SET LOCAL search_path TO "{schema}"'))
            with connection.connection.cursor() as cursor:
                cursor.execute(request.getfixturevalue("postgres_schema_script"))  # as is: no parameters
            ready.fingerprint = ready.fingerprint or _fingerprint(connection, schema)
    engine = make_engine(settings)
    yield engine
    engine.dispose()
    ready.recycle(admin, schema)


class ReadySchemas:
    """PostgreSQL schemas holding init_db's tables and nothing else, for the next tests' `engine`: after a
    test its schema is emptied and kept, unless its tables, columns, constraints, indexes or comments are
    no longer the template's (a test that altered them), or a lock held elsewhere stops the emptying;
    then postgres_schemas drops it. A test gets a schema under a name of its own all the same (renamed).
    Checked and emptied in two round trips: 0.1 s a test less than replaying init_db's statements and
    dropping the schema after, and no tables made and dropped to swell PostgreSQL's catalogs."""

    def __init__(self):
        self.schemas: list[str] = []
        self.fingerprint: str | None = None

    def recycle(self, admin, schema: str) -> None:
        from psycopg2 import Error as DriverError

        from core.db import head_revision
        from core.schema import metadata

        kept = f"ready_{uuid.uuid4().hex[:12]}"
        # Readings are a view over the store there (core.reading_store): its series and rows are emptied;
        # a schema that got a month's partition is not the template's any more, and is dropped.
        tables = [table.name for table in reversed(metadata.sorted_tables) if table.name != "readings"]
        tables += ["reading_rows", "reading_series", "alembic_version"]
        emptying = [f'DELETE FROM "{schema}"."{table}"' for table in tables] + [
            f"INSERT INTO \"{schema}\".alembic_version VALUES ('{head_revision()}')",
            # The ids start at 1 again, as in a new table.
            "SELECT setval(c.oid, 1, false) FROM pg_depend d JOIN pg_class c ON c.oid = d.objid"
            " WHERE d.refclassid = 'pg_namespace'::regclass AND d.classid = 'pg_class'::regclass"
            f" AND d.refobjid = '\"{schema}\"'::regnamespace AND c.relkind = 'S'",
            f'ALTER SCHEMA "{schema}" RENAME TO "{kept}"',
        ]
        try:
            with admin.begin() as connection:
                connection.execute(text("SET LOCAL lock_timeout = '5s'"))
                if _fingerprint(connection, schema) != self.fingerprint:
                    return
                with connection.connection.cursor() as cursor:
                    cursor.execute(";\n".join(emptying))  # one round trip
        except (DBAPIError, DriverError):  # a lock held elsewhere, or a connection gone: not kept
            return
        self.schemas.append(kept)


# What a schema's tables are, whatever its name: a hash of each object in it (found through pg_depend, so
# by index: PostgreSQL's catalogs grow large where autovacuum is off), and of each relation's columns
# (type, null, default, comment), constraints and indexes as PostgreSQL defines them.
_FINGERPRINT = text("""
WITH objects AS (
  SELECT classid, objid FROM pg_depend
  WHERE refclassid = 'pg_namespace'::regclass AND refobjid = CAST(:schema AS regnamespace)
), relations AS (
  SELECT c.oid, c.relname, c.relkind FROM objects o JOIN pg_class c ON c.oid = o.objid
  WHERE o.classid = 'pg_class'::regclass
)
SELECT md5(replace(string_agg(item, '|' ORDER BY item), :prefix, '')) FROM (
  SELECT 'o ' || o.classid::regclass::text || ' '
         || coalesce(t.typname, p.proname, r.relname || ' ' || r.relkind::text, o.objid::text) AS item
  FROM objects o
  LEFT JOIN pg_type t ON o.classid = 'pg_type'::regclass AND t.oid = o.objid
  LEFT JOIN pg_proc p ON o.classid = 'pg_proc'::regclass AND p.oid = o.objid
  LEFT JOIN relations r ON r.oid = o.objid
  UNION ALL
  SELECT 'c ' || r.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
         || a.attnotnull::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' '
         || coalesce(col_description(r.oid, a.attnum), '')
  FROM relations r JOIN pg_attribute a ON a.attrelid = r.oid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'k ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
  FROM relations r JOIN pg_constraint k ON k.conrelid = r.oid
  UNION ALL
  SELECT 'i ' || pg_get_indexdef(i.indexrelid) FROM relations r JOIN pg_index i ON i.indrelid = r.oid
) items
""")


def _fingerprint(connection, schema: str) -> str:
    return connection.execute(_FINGERPRINT, {"schema": schema, "prefix": f"{schema}."}).scalar()


@pytest.fixture(scope="session")
def postgres_ready(postgres_admin):
    """This worker's ReadySchemas; those left at the end are dropped."""
    ready = ReadySchemas()
    yield ready
    _drop_schemas(postgres_admin, ready.schemas)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file holding what init_db creates, made once a worker, for `engine` to copy."""
    path = tmp_path_factory.mktemp("template") / "grow_wow.sqlite"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _forget_the_shell(monkeypatch)
        template = make_engine(load_settings(database_url=f"sqlite:///{path}"))
    init_db(template)
    template.dispose()  # the last connection closed: the WAL is checkpointed into the file and removed
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(scope="session")
def postgres_schema_script(postgres_admin, postgres_url) -> str:
    """The statements init_db runs on an empty PostgreSQL schema (its tables, indexes, comments and the
    alembic_version row: all but its reads), recorded once a worker, as one script for `engine`."""
    schema, url = _new_schema(postgres_admin, postgres_url)
    with pytest.MonkeyPatch.context() as monkeypatch:
        _forget_the_shell(monkeypatch)
        template = make_engine(load_settings(database_url=url))
    statements = []

    def record(_connection, cursor, statement, parameters, _context, _executemany):
        if not statement.lstrip().upper().startswith(("SELECT", "SHOW")):
            statements.append(cursor.mogrify(statement, parameters).decode())

    event.listen(template, "before_cursor_execute", record)
    init_db(template)
    template.dispose()
    _drop_schemas(postgres_admin, [schema])
    return ";\n".join(statements)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def seeded_url(request, tmp_path_factory):
    """A URL to a database of each engine holding factories.seed's rows, made once for the tests of a
    module that only read it (a test that writes asks for `engine` and seeds its own)."""
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('seeded') / 'grow_wow.sqlite'}"
    else:
        admin = request.getfixturevalue("postgres_admin")
        schema, url = _new_schema(admin, request.getfixturevalue("postgres_url"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        _forget_the_shell(monkeypatch)
        engine = make_engine(load_settings(database_url=url))
    init_db(engine)
    seed(engine)
    engine.dispose()
    yield url
    if schema:
        _drop_schemas(request.getfixturevalue("postgres_admin"), [schema])


# --- nothing written under var/ -------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def var_baseline():
    """What var/ held when the tests started (taken before any other fixture runs); each change a test
    makes fails that test, then is accepted. A change left by the teardown of a module's or the
    session's fixtures fails the last test."""
    baseline = {"listing": var_listing(VAR_DIR)}
    yield baseline
    changes = var_changes(baseline["listing"], var_listing(VAR_DIR))
    if changes:
        pytest.fail(f"a fixture's teardown wrote under {VAR_DIR}: " + "; ".join(changes), pytrace=False)


@pytest.fixture(autouse=True)
def nothing_written_under_var(var_baseline):
    """Fail the test (at its teardown) if it, or a fixture it set up, added, changed or removed anything
    under var/. Set up before the test's other fixtures and torn down after them, so their writes count."""
    yield
    now = var_listing(VAR_DIR)
    changes = var_changes(var_baseline["listing"], now)
    var_baseline["listing"] = now  # blame each change once
    if changes:
        where = f"written under {VAR_DIR} by this test or the fixtures set up or torn down around it"
        pytest.fail(f"{where}: " + "; ".join(changes), pytrace=False)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Tests see only the settings they set themselves, never the developer's shell."""
    _forget_the_shell(monkeypatch)


def _forget_the_shell(monkeypatch) -> None:
    from etl.settings import EtlSettings
    from flask_back_end.settings import BackendSettings
    from flask_front_end.settings import FrontendSettings

    for role in (EtlSettings, BackendSettings, FrontendSettings):
        for name in role.model_fields:
            monkeypatch.delenv(name.upper(), raising=False)


# --- the simulated network and its live server --------------------------------------------------------


@pytest.fixture(scope="session")
def network_dir(tmp_path_factory):
    """A generated network of 50 sensors × 30 days (seed 7), shared by the tests that only read it."""
    import datetime as dt

    from devtools.simulator.generate import generate

    folder = tmp_path_factory.mktemp("network")
    generate(folder, sensors=50, days=30, seed=7, end=dt.datetime.fromisoformat(SIMULATED_END))
    return folder


@pytest.fixture(scope="session")
def network(network_dir):
    from devtools.simulator.network import Network

    return Network(network_dir)


@pytest.fixture(scope="session")
def small_network(tmp_path_factory):
    """A generated network of 20 sensors × 12 days (seed 11), for the pipeline tests."""
    import datetime as dt

    from devtools.simulator.generate import generate
    from devtools.simulator.network import Network

    folder = tmp_path_factory.mktemp("small-network")
    generate(folder, sensors=20, days=12, seed=11, end=dt.datetime.fromisoformat(SIMULATED_END))
    return Network(folder)


@pytest.fixture
def simulator(network):
    """Start the simulator on a free loopback port; call it with misbehaviour options, get its URL."""
    from devtools.loopback import serve_on_loopback
    from devtools.simulator.server import Misbehaviour, create_app

    servers = []

    def start(now=None, wow_bare_list=False, serving=None, **misbehaviour) -> str:
        app = create_app(serving or network, now=now, misbehaviour=Misbehaviour(**misbehaviour))
        app.config["WOW_BARE_LIST"] = wow_bare_list
        servers.append(serve_on_loopback(app))
        return f"http://127.0.0.1:{servers[-1].port}"

    yield start
    for server in servers:
        server.shutdown()


@pytest.fixture
def source_settings():
    """Settings pointing the clients at a simulator URL, with fast retries."""

    def make(url: str, **overrides):
        values = {
            "grow_api_url": f"{url}/grow/api",
            "grow_api_key": "sim-grow-key",
            "wow_api_url": f"{url}/wow/api",
            "wow_api_key": "sim-wow-key",
            "google_api_url": url,
            "osem_api_url": f"{url}/osem",
            "http_backoff_s": 0.01,
            "http_timeout_s": 10,
        }
        values.update(overrides)
        return load_settings(**values)

    return make


# --- the web apps, served on loopback ------------------------------------------------------------------


@pytest.fixture
def serve():
    """Serve a WSGI app on a free loopback port in a thread; call it with the app, get its URL."""
    from devtools.loopback import serve_on_loopback

    servers = []

    def start(app) -> str:
        servers.append(serve_on_loopback(app))
        return f"http://127.0.0.1:{servers[-1].port}"

    yield start
    for server in servers:
        server.shutdown()


# --- a real SMTP server on loopback ---------------------------------------------------------------------


class Inbox:
    """What an SMTP server on loopback (aiosmtpd) received; `refusing` makes it answer 451 to every
    message, as a server down for the night would."""

    def __init__(self):
        self.messages = []
        self.refusing = False

    async def handle_DATA(self, server, session, envelope):
        if self.refusing:
            return "451 4.3.0 try again later"
        from email import message_from_bytes, policy

        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp_server():
    """A real SMTP server on a free loopback port: (port, inbox)."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


# --- an S3 service on loopback (moto's server): the archive's bucket --------------------------------------


@pytest.fixture
def s3_bucket(monkeypatch):
    """A real S3 API on a free loopback port (moto's server) holding an empty bucket: (endpoint URL,
    bucket). The AWS credentials are the simulator's, in the environment, as an instance role's would be."""
    import boto3
    from moto.server import ThreadedMotoServer

    for name, value in {
        "AWS_ACCESS_KEY_ID": "sim-access-key",
        "AWS_SECRET_ACCESS_KEY": "sim-secret-key",
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask for an instance's role: there is none here
    }.items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1")
    bucket = f"grow-archive-{uuid.uuid4().hex[:12]}"  # moto keeps its buckets in the process, server or not
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    yield endpoint, bucket
    server.stop()
