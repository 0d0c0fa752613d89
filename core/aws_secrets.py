"""Credentials from AWS Secrets Manager, in the secret layout the 2019 deployment used.

- `grow-data-key`: the RDS/Aurora credentials as the console stores them, a JSON object with
  host, port, engine (the 2019 scripts kept the database name there), username, password.
- `grow-api`, `wow-api`: the API keys, each a JSON object with one key/value pair (or a plain string).
- New, for the web apps, only when AWS_WEB_SECRET names it (say `grow-wow-web`): a JSON object with
  backend_token and frontend_secret_key.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager

from sqlalchemy.engine import URL

from core.errors import SettingsError

DB_SECRET_KEYS = ("host", "port", "engine", "username", "password")
WEB_SECRET_KEYS = ("backend_token", "frontend_secret_key")  # in AWS_WEB_SECRET


class SecretStore:
    """Reads secrets from Secrets Manager by name, with one-line errors and nothing logged."""

    def __init__(self, client):
        self.client = client

    @classmethod
    def connect(cls, region: str) -> SecretStore:
        import boto3  # here: every command reads settings, few use the secret store

        return cls(boto3.client("secretsmanager", region_name=region))

    def read(self, secret_id: str) -> str:
        return _read_secret(self.client, secret_id)

    def json_object(self, secret_id: str) -> dict:
        return _read_json_object(self.client, secret_id)

    def api_key(self, secret_id: str) -> str:
        return api_key_from_secret(self.read(secret_id), secret_id)


def database_url_from_secret(creds: dict, secret_id: str) -> str:
    """Build a PostgreSQL URL from the 2019 database secret (engine holds the database name)."""
    missing = [key for key in DB_SECRET_KEYS if not creds.get(key)]
    if missing:
        raise SettingsError(f"AWS secret {secret_id!r} lacks {', '.join(missing)}")
    try:
        port = int(creds["port"])
    except (TypeError, ValueError):
        raise SettingsError(f"AWS secret {secret_id!r}: port is not a number") from None
    url = URL.create(
        "postgresql+psycopg2",
        username=creds["username"],
        password=creds["password"],
        host=creds["host"],
        port=port,
        database=creds["engine"],
    )
    return url.render_as_string(hide_password=False)


def api_key_from_secret(raw: str, secret_id: str) -> str:
    """Take the API key out of a secret holding one key/value pair, `{"api_key": ...}`, or the bare key."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    if isinstance(value, dict):
        if "api_key" in value:
            value = value["api_key"]
        elif len(value) == 1:
            value = next(iter(value.values()))
        else:
            raise SettingsError(f"AWS secret {secret_id!r} holds several values and no 'api_key'")
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"AWS secret {secret_id!r} holds no API key")
    return value.strip()


@contextmanager
def _botocore_quiet():
    """botocore logs whole response bodies at DEBUG, and these bodies are the secrets."""
    logger = logging.getLogger("botocore")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _read_secret(client, secret_id: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        with _botocore_quiet():
            answer = client.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise SettingsError(f"AWS secret {secret_id!r} could not be read ({code})") from None
    except BotoCoreError as exc:
        raise SettingsError(f"AWS secret {secret_id!r} could not be read ({type(exc).__name__})") from None
    if "SecretString" not in answer:
        raise SettingsError(f"AWS secret {secret_id!r} is binary; store it as a string")
    return answer["SecretString"]


def _read_json_object(client, secret_id: str) -> dict:
    try:
        value = json.loads(_read_secret(client, secret_id))
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise SettingsError(f"AWS secret {secret_id!r} is not a JSON object")
    return value
