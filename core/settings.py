"""What every part of GROW–WOW is configured with: the database, logging and the AWS secret store.

Each role has its own typed settings built on `CoreSettings`: the nightly job (`etl.settings`), the back
end (`flask_back_end.settings`) and the dashboard (`flask_front_end.settings`). Each field is read from
the upper-case environment variable of its name. Secrets can come from AWS Secrets Manager instead, in
the 2019 layout (see `core.aws_secrets`), when `USE_AWS_SECRETS` is on; values set in the environment
always win over the secret store, so a developer can point one run elsewhere without touching AWS.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import ClassVar, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from core.aws_secrets import WEB_SECRET_KEYS, SecretStore, database_url_from_secret
from core.errors import SettingsError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
DEFAULT_SQLITE_PATH = VAR_DIR / "grow_wow.sqlite"


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
T = TypeVar("T")


def http_url(value: str) -> str:
    """A base URL of a remote service, without its trailing slash."""
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


def https_url(value: str) -> str:
    """The base URL of a service we send a key to: https, except on this machine (the simulator)."""
    value = http_url(value)
    if not value.startswith("https://") and urlsplit(value).hostname not in LOOPBACK_HOSTS:
        raise ValueError("must start with https:// (plain http only on loopback)")
    return value


class CoreSettings(BaseSettings):
    """The settings every role shares: where the database is, how much to log, where secrets live."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)
    role: ClassVar[str] = "GROW–WOW"  # who these settings serve, in messages: each role names itself

    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL; unset means the embedded SQLite file under var/"
    )
    log_level: str = "INFO"
    use_aws_secrets: bool = False
    aws_region: str = "eu-west-1"
    aws_db_secret: str = "grow-data-key"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @cached_property
    def database(self) -> URL:
        """The parsed database URL, SQLite under var/ when none is set."""
        if self.database_url is None:
            return URL.create("sqlite", database=str(DEFAULT_SQLITE_PATH))
        return parse_database_url(self.database_url.get_secret_value())

    @property
    def database_label(self) -> str:
        """The database URL for messages and logs, password hidden."""
        return self.database.render_as_string(hide_password=True)

    def secrets_from_store(self, store: SecretStore) -> dict[str, SecretStr]:
        """The secrets this role needs that the environment left unset, read from the store. A role
        with secrets of its own extends this."""
        if "database_url" in self.model_fields_set:
            return {}
        creds = self.from_store("DATABASE_URL", store.json_object, self.aws_db_secret)
        return {"database_url": SecretStr(database_url_from_secret(creds, self.aws_db_secret))}

    def from_store(self, setting: str, read: Callable[[str], T], secret_id: str) -> T:
        """`read(secret_id)`, its failure told in one line naming the role and the setting it was for."""
        try:
            return read(secret_id)
        except SettingsError as exc:
            raise SettingsError(f"{self.role} ({setting}): {exc}") from None

    def secret_values(self) -> list[str]:
        """Every secret these settings hold (to keep out of logs): the SecretStr fields and the
        database password (the rest of its URL, host and user, helps whoever reads the log)."""
        values = [
            value.get_secret_value()
            for name in type(self).model_fields
            if name != "database_url" and isinstance(value := getattr(self, name), SecretStr)
        ]
        if self.database.password:
            values.append(str(self.database.password))
        return values


def parse_database_url(raw: str) -> URL:
    """Parse a database URL; PostgreSQL goes through psycopg2 (SQLAlchemy 2.1 would pick psycopg 3)."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise SettingsError(
            "DATABASE_URL is not a database URL (expected e.g. postgresql://user@host/db)"
        ) from None
    if url.get_backend_name() not in {"sqlite", "postgresql"}:
        raise SettingsError(f"DATABASE_URL names {url.get_backend_name()!r}; use sqlite or postgresql")
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    return url


Role = TypeVar("Role", bound=CoreSettings)


def load_role_settings(role: type[Role], store: SecretStore | None = None, **overrides) -> Role:
    """Read one role's settings from the environment (and AWS Secrets Manager when switched on).

    Raises SettingsError with one line naming the bad setting; the value itself is never echoed,
    because it may be a secret.
    """
    try:
        settings = role(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        reason = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"setting {name}: {reason}") from None
    if settings.use_aws_secrets:
        store = store or SecretStore.connect(settings.aws_region)
        settings = settings.model_copy(update=settings.secrets_from_store(store))
    settings.database  # noqa: B018 - parse now so a bad URL fails at start, not mid-run
    return settings


class WebSettings(CoreSettings):
    """What both web apps share: the service token the back end checks and the front end sends, and the
    secret (AWS_WEB_SECRET, e.g. grow-wow-web) that holds it and the front end's session key."""

    backend_token: SecretStr | None = Field(
        default=None, description="service token clients of the JSON back end send (Authorization: Bearer)"
    )
    aws_web_secret: str | None = Field(
        default=None,
        description="the web apps' secret: backend_token, frontend_secret_key (e.g. grow-wow-web)",
    )
    db_statement_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="PostgreSQL cancels any one query of a web request that runs longer (503)",
    )

    def secrets_from_store(self, store: SecretStore) -> dict[str, SecretStr]:
        updates = super().secrets_from_store(store)
        wanted = [name for name in WEB_SECRET_KEYS if name in type(self).model_fields]
        wanted = [name for name in wanted if name not in self.model_fields_set]
        if self.aws_web_secret and wanted:
            settings = ", ".join(name.upper() for name in wanted)
            web = self.from_store(settings, store.json_object, self.aws_web_secret)
            updates.update({name: SecretStr(str(web[name])) for name in wanted if web.get(name)})
        return updates
