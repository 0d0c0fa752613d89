"""Settings come from the environment or AWS Secrets Manager; bad ones stop with one clear line."""

import json
import logging

import boto3
import pytest
from moto import mock_aws

from core.aws_secrets import SecretStore, api_key_from_secret
from core.errors import SettingsError
from core.logs import configure_logging
from core.settings import DEFAULT_SQLITE_PATH
from etl.settings import load_settings
from flask_back_end.settings import load_settings as back_end_settings
from flask_front_end.settings import load_settings as front_end_settings
from tests.factories import GUIDE_SECRETS, RefusingSecrets, var_changes, var_listing

DB_SECRET = {
    "host": "grow.cluster-abc.eu-west-1.rds.amazonaws.com",
    "port": 5432,
    "engine": "growdb",
    "username": "grow_etl",
    "password": "s3cr3t-p@ss",
}


def test_unset_database_url_means_the_embedded_sqlite_file():
    settings = load_settings()
    assert settings.database.get_backend_name() == "sqlite"
    assert settings.database.database == str(DEFAULT_SQLITE_PATH)
    assert DEFAULT_SQLITE_PATH.parent.name == "var"


def test_the_var_guard_sees_a_file_added_changed_or_removed(tmp_path):
    """conftest.py fails any test that writes under var/ (where the default database lives) by this
    listing; it must see every kind of write, and let the Airflow environment and a demo's files be."""
    var = tmp_path / "var"
    (var / "airflow-venv" / "bin").mkdir(parents=True)
    (var / "eval").mkdir()
    (var / "kept.txt").write_text("a")
    (var / "gone.txt").write_text("b")
    before = var_listing(var)
    (var / "screenshots").mkdir()
    (var / "screenshots" / "login.png").write_bytes(b"png")
    (var / "kept.txt").write_text("longer")
    (var / "gone.txt").unlink()
    (var / "airflow-venv" / "bin" / "python").write_text("")  # `make test` installing Airflow
    (var / "eval" / "report.csv").write_text("")  # a developer's evaluation
    (var / "grow_wow.sqlite").write_bytes(b"")  # but a test must not create the default database
    assert var_changes(before, var_listing(var)) == [
        "added grow_wow.sqlite",
        "added screenshots",
        "added screenshots/login.png",
        "changed kept.txt",
        "removed gone.txt",
    ]
    assert var_changes(before, before) == []


def test_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://grow:pw@db.example:5433/grow")
    monkeypatch.setenv("GROW_API_URL", "http://127.0.0.1:8000/grow/api/")
    monkeypatch.setenv("WOW_API_KEY", "wow-key-123")
    settings = load_settings()
    assert settings.database.host == "db.example"
    assert settings.database.port == 5433
    assert settings.database.drivername == "postgresql+psycopg2"
    assert settings.grow_api_url == "http://127.0.0.1:8000/grow/api"
    assert settings.wow_api_key.get_secret_value() == "wow-key-123"


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("DATABASE_URL", "not a url at all", "DATABASE_URL"),
        ("DATABASE_URL", "mysql://root:hunter2@localhost/grow", "DATABASE_URL"),
        ("GROW_API_URL", "grow.thingful.net/api", "GROW_API_URL"),
        ("WOW_API_URL", "ftp://example.org", "WOW_API_URL"),
        ("USE_AWS_SECRETS", "maybe", "USE_AWS_SECRETS"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
    ],
)
def test_a_malformed_setting_is_named_in_one_line_without_its_value(monkeypatch, name, value, named):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert named in message
    assert "\n" not in message
    assert "hunter2" not in message


def test_secrets_never_show_in_repr_or_labels(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://grow:topsecretpw@db.example/grow")
    monkeypatch.setenv("GROW_API_KEY", "grow-key-xyz")
    settings = load_settings()
    for shown in (repr(settings), str(settings), settings.database_label):
        assert "topsecretpw" not in shown
        assert "grow-key-xyz" not in shown


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("USE_AWS_SECRETS", "true")
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        yield client


def _store_2019_secrets(client, db=DB_SECRET):
    client.create_secret(Name="grow-data-key", SecretString=json.dumps(db))
    client.create_secret(Name="grow-api", SecretString=json.dumps({"grow-api-key": "grow-from-aws"}))
    client.create_secret(Name="wow-api", SecretString=json.dumps({"api_key": "wow-from-aws"}))


def test_secrets_manager_fills_the_2019_layout(aws, caplog):
    _store_2019_secrets(aws)
    with caplog.at_level(logging.DEBUG):
        settings = load_settings()
    url = settings.database
    assert (url.host, url.port, url.database, url.username) == (DB_SECRET["host"], 5432, "growdb", "grow_etl")
    assert url.password == DB_SECRET["password"]
    assert settings.grow_api_key.get_secret_value() == "grow-from-aws"
    assert settings.wow_api_key.get_secret_value() == "wow-from-aws"
    assert DB_SECRET["password"] not in settings.database_label
    assert DB_SECRET["password"] not in caplog.text
    assert "grow-from-aws" not in caplog.text


def test_the_environment_wins_over_secrets_manager(aws, monkeypatch):
    _store_2019_secrets(aws)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///elsewhere.sqlite")
    monkeypatch.setenv("WOW_API_KEY", "wow-from-env")
    settings = load_settings()
    assert settings.database.get_backend_name() == "sqlite"
    assert settings.wow_api_key.get_secret_value() == "wow-from-env"
    assert settings.grow_api_key.get_secret_value() == "grow-from-aws"


def test_the_web_apps_secrets_come_from_their_own_secret_when_named(aws, monkeypatch):
    _store_2019_secrets(aws)
    assert "backend_token" not in type(load_settings()).model_fields  # the nightly job holds no web secret
    aws.create_secret(
        Name="grow-wow-web",
        SecretString=json.dumps({"backend_token": "token-from-aws", "frontend_secret_key": "key-from-aws"}),
    )
    monkeypatch.setenv("AWS_WEB_SECRET", "grow-wow-web")
    front = front_end_settings()
    assert front.backend_token.get_secret_value() == "token-from-aws"
    assert front.frontend_secret_key.get_secret_value() == "key-from-aws"
    assert front.database.password == DB_SECRET["password"]
    back = back_end_settings()
    assert back.backend_token.get_secret_value() == "token-from-aws"
    assert "frontend_secret_key" not in type(back).model_fields  # the back end never holds the session key
    monkeypatch.setenv("AWS_WEB_SECRET", "no-such-secret")
    with pytest.raises(SettingsError, match="no-such-secret"):
        front_end_settings()


def test_a_missing_secret_is_named(aws):
    with pytest.raises(SettingsError, match="grow-data-key"):
        load_settings()


def test_a_database_secret_without_its_keys_names_them_not_the_password(aws):
    _store_2019_secrets(aws, db={"host": "h", "password": "s3cr3t-p@ss"})
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "port, engine, username" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ('{"api_key": "k1"}', "k1"),
        ('{"GROW_API_KEY": "k2"}', "k2"),
        ("plain-key", "plain-key"),
    ],
)
def test_api_key_secrets_in_the_shapes_people_store_them(raw, key):
    assert api_key_from_secret(raw, "grow-api") == key


@pytest.mark.parametrize("raw", ['{"a": "1", "b": "2"}', '{"api_key": ""}', "  ", "[1, 2]"])
def test_an_api_key_secret_without_a_key_is_refused(raw):
    with pytest.raises(SettingsError, match="grow-api"):
        api_key_from_secret(raw, "grow-api")


def test_log_lines_never_carry_a_secret(monkeypatch, capsys):
    monkeypatch.setenv("GROW_API_KEY", "grow-key-in-a-url")
    monkeypatch.setenv("DATABASE_URL", "postgresql://grow:db-password-9@db.example/grow")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    settings = load_settings()
    configure_logging(settings)
    try:
        logging.getLogger("etl.sources").debug("GET %s failed", "http://sim/api?key=grow-key-in-a-url")
        logging.getLogger("core.db").error("lost postgresql://grow:db-password-9@db.example/grow")
        printed = capsys.readouterr().err
    finally:
        logging.getLogger().handlers.clear()
    assert "GET http://sim/api?key=*** failed" in printed
    assert "grow:***@db.example" in printed
    assert "grow-key-in-a-url" not in printed
    assert "db-password-9" not in printed


@pytest.mark.parametrize("name", ["grow_api_url", "wow_api_url", "google_api_url"])
def test_api_urls_carrying_keys_must_be_https_except_on_loopback(name):
    with pytest.raises(SettingsError, match=f"{name.upper()}: must start with https://"):
        load_settings(**{name: "http://api.example.org/grow"})
    for allowed in (
        "https://api.example.org/x",
        "http://127.0.0.1:8080/x",
        "http://localhost/x",
        "http://[::1]:9/x",
    ):
        assert getattr(load_settings(**{name: allowed}), name) == allowed


def test_tracebacks_in_the_log_never_carry_a_secret(monkeypatch, capsys):
    monkeypatch.setenv("WOW_API_KEY", "wow-key-in-an-error")
    configure_logging(load_settings())
    try:
        try:
            raise RuntimeError("GET https://wow.example/api?key=wow-key-in-an-error refused")
        except RuntimeError:
            logging.getLogger("etl.sources").exception("the call failed")
        printed = capsys.readouterr().err
    finally:
        logging.getLogger().handlers.clear()
    assert (
        "the call failed" in printed
        and "RuntimeError: GET https://wow.example/api?key=*** refused" in printed
    )
    assert "wow-key-in-an-error" not in printed


@pytest.mark.parametrize("role", ["back_end", "front_end"])
def test_the_web_apps_redact_their_own_secrets_in_their_logs(role, capsys, tmp_path):
    from flask_back_end import create_app as create_back_end
    from flask_front_end import create_app as create_front_end

    secrets = {"backend_token": "token-of-the-back-end", "database_url": f"sqlite:///{tmp_path / 'x.sqlite'}"}
    if role == "back_end":
        app = create_back_end(back_end_settings(**secrets))
    else:
        secrets |= {
            "frontend_secret_key": "key-that-signs-sessions",
            "google_maps_browser_key": "AIza-browser",
        }
        app = create_front_end(front_end_settings(**secrets))
    try:
        for name, value in secrets.items():
            if name != "database_url":
                app.logger.error("leaked %s", value)
        printed = capsys.readouterr().err
    finally:
        logging.getLogger().handlers.clear()
    assert printed.count("leaked ***") == len(secrets) - 1
    for name, value in secrets.items():
        assert name == "database_url" or value not in printed


def _store_guide_secrets(client):
    """Every secret deploy/README.md tells the operator to store."""
    _store_2019_secrets(client)
    client.create_secret(Name="google-api", SecretString=json.dumps({"api_key": "AIza-from-aws"}))
    web = {"backend_token": "token-from-aws", "frontend_secret_key": "key-from-aws"}
    client.create_secret(Name="grow-wow-web", SecretString=json.dumps(web))


def test_each_role_reads_only_the_secrets_its_iam_policy_allows(aws, monkeypatch):
    _store_guide_secrets(aws)
    monkeypatch.setenv("AWS_GOOGLE_SECRET", "google-api")  # the nightly host's environment file
    nightly = RefusingSecrets(aws, GUIDE_SECRETS["nightly"])
    settings = load_settings(store=SecretStore(nightly))
    assert settings.google_api_key.get_secret_value() == "AIza-from-aws"
    assert settings.grow_api_key.get_secret_value() == "grow-from-aws"
    assert sorted(nightly.asked) == sorted(GUIDE_SECRETS["nightly"])

    monkeypatch.delenv("AWS_GOOGLE_SECRET")
    monkeypatch.setenv("AWS_WEB_SECRET", "grow-wow-web")  # the Beanstalk environments' properties
    for load in (front_end_settings, back_end_settings):
        web = RefusingSecrets(aws, GUIDE_SECRETS["web"])
        assert load(store=SecretStore(web)).backend_token.get_secret_value() == "token-from-aws"
        assert set(web.asked) == set(GUIDE_SECRETS["web"])


def test_a_secret_the_role_may_not_read_names_itself_the_role_and_the_setting(aws):
    _store_guide_secrets(aws)
    with pytest.raises(SettingsError) as caught:
        load_settings(store=SecretStore(RefusingSecrets(aws, ("grow-data-key", "grow-api"))))
    message = str(caught.value)
    assert "\n" not in message
    assert "'wow-api'" in message and "WOW_API_KEY" in message and "nightly" in message
    assert "AccessDeniedException" in message
