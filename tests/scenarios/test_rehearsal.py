"""A deployment rehearsal: deploy/README.md as an operator follows it, against stand-ins for AWS.

Secrets Manager (moto) holds exactly the secrets the guide tells the operator to store; each role reads
them through a client that refuses what the guide's IAM policy does not give it; the database is a fresh
PostgreSQL database named by `grow-data-key`, as Aurora would be. The nightly job (its environment file
as the guide writes it) completes against the simulator with street-level addresses from the Google
path; each web app answers its health route and serves a page."""

import json
import re
import uuid

import boto3
import pytest
from moto import mock_aws
from sqlalchemy import create_engine, select, text

from core.aws_secrets import SecretStore
from core.db import init_db, make_engine
from core.schema import etl_runs, sensors
from etl.runner import run_nightly
from etl.settings import load_settings as nightly_settings
from etl.shard import Shard
from flask_back_end import create_app as create_back_end
from flask_back_end.settings import load_settings as back_end_settings
from flask_front_end import accounts
from flask_front_end import create_app as create_front_end
from flask_front_end.settings import load_settings as front_end_settings
from tests.factories import GUIDE_SECRETS, NOW, RefusingSecrets

pytestmark = pytest.mark.postgres

WEB = {"backend_token": "a-long-random-token-for-the-back-end", "frontend_secret_key": "a-long-random-key"}


@pytest.fixture
def database(postgres_url):
    """A fresh PostgreSQL database, as the guide's `growdb`; dropped afterwards."""
    name = f"rehearsal_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield postgres_url.set(database=name)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def secrets_manager(database, monkeypatch):
    """Secrets Manager holding what deploy/README.md, section 1, says to store, and nothing else."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "rehearsal")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "rehearsal")
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        db = {
            "host": database.host,
            "port": database.port or 5432,
            "engine": database.database,  # 2019 kept the database name here
            "username": database.username,
            "password": "any-password-trust-auth-takes",
        }
        client.create_secret(Name="grow-data-key", SecretString=json.dumps(db))
        client.create_secret(Name="grow-api", SecretString=json.dumps({"api_key": "sim-grow-key"}))
        client.create_secret(Name="wow-api", SecretString=json.dumps({"api_key": "sim-wow-key"}))
        client.create_secret(Name="google-api", SecretString=json.dumps({"api_key": "AIzaSim-google-key"}))
        client.create_secret(Name="grow-wow-web", SecretString=json.dumps(WEB))
        yield client


def guide_environment(monkeypatch, text_of_env_file: str) -> None:
    """The variables of an environment file (or Beanstalk properties) as the guide writes them."""
    for line in text_of_env_file.strip().splitlines():
        name, _, value = line.partition("=")
        monkeypatch.setenv(name, value)


def env_file_of_the_guide() -> str:
    """The /etc/grow-wow.env the guide writes in section 2 (taken from the guide itself)."""
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[2] / "deploy" / "README.md").read_text()
    return re.search(r"tee /etc/grow-wow.env <<'ENV'\n(.*?)\nENV", guide, re.S).group(1)


def test_deployed_as_the_guide_says_each_role_works_with_only_its_own_secrets(
    secrets_manager, simulator, serve, monkeypatch
):
    # The nightly host: the guide's environment file, the simulator standing in for GROW, WOW, Google.
    url = simulator()
    guide_environment(monkeypatch, env_file_of_the_guide())
    monkeypatch.setenv("GROW_API_URL", f"{url}/grow/api")
    monkeypatch.setenv("WOW_API_URL", f"{url}/wow/api")
    monkeypatch.setenv("GOOGLE_API_URL", url)
    monkeypatch.setenv("ETL_NOW", NOW.isoformat())
    nightly = RefusingSecrets(secrets_manager, GUIDE_SECRETS["nightly"])
    settings = nightly_settings(store=SecretStore(nightly))
    engine = make_engine(settings)
    init_db(engine)  # the guide's `python -m etl init-db`
    reports = run_nightly(settings, engine, Shard())
    assert [report.name for report in reports][-1] == "notify_owners"
    with engine.connect() as connection:
        assert set(connection.scalars(select(etl_runs.c.status))) == {"ok"}
        addresses = connection.scalars(select(sensors.c.address)).all()
    assert addresses and all(re.search(r"^\S.* \d+, ", address) for address in addresses), addresses[:3]
    engine.dispose()

    # The Beanstalk environments: their properties as the guide's table gives them.
    for name in ("AWS_GOOGLE_SECRET", "GROW_API_URL", "WOW_API_URL", "GOOGLE_API_URL", "ETL_NOW"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USE_AWS_SECRETS", "true")
    monkeypatch.setenv("AWS_WEB_SECRET", "grow-wow-web")
    back_client = RefusingSecrets(secrets_manager, GUIDE_SECRETS["web"])
    back = create_back_end(back_end_settings(store=SecretStore(back_client)))
    with back.test_client() as client:
        assert client.get("/api/v1/health").status_code == 200
        bearer = {"Authorization": f"Bearer {WEB['backend_token']}"}
        page = client.get("/api/v1/sensors", headers=bearer)
        assert page.status_code == 200 and page.json["_meta"]["total_items"] == len(addresses)
    backend_url = serve(back)

    monkeypatch.setenv("BACKEND_URL", backend_url)
    front_client = RefusingSecrets(secrets_manager, GUIDE_SECRETS["web"])
    front_settings = front_end_settings(store=SecretStore(front_client), session_cookie_secure=False)
    front = create_front_end(front_settings)
    accounts.create_user(front.extensions["grow_wow"]["engine"], "operator", "a long password", "admin")
    with front.test_client() as client:
        assert client.get("/health").status_code == 200
        login = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login).group(1)
        form = {"username": "operator", "password": "a long password", "csrf_token": token}
        assert client.post("/login", data=form).status_code == 302
        assert client.get("/all_grow_map").status_code == 200
        assert client.get("/data/map").json
    # Each role read every secret its policy gives it (the nightly job the Google key too), and no other.
    assert set(nightly.asked) == set(GUIDE_SECRETS["nightly"])
    assert set(back_client.asked) == set(front_client.asked) == set(GUIDE_SECRETS["web"])
