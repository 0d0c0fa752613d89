"""Settings for every part of GROW–WOW: one typed object, read from the environment.

Secrets can come from AWS Secrets Manager instead, in the 2019 layout (see `etl.aws_secrets`), when
`USE_AWS_SECRETS` is on. Values set in the environment always win over the secret store, so a developer
can point one run elsewhere without touching AWS.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from etl.errors import SettingsError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
DEFAULT_SQLITE_PATH = VAR_DIR / "grow_wow.sqlite"


class Settings(BaseSettings):
    """Everything configurable, each field read from the upper-case environment variable of its name."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL; unset means the embedded SQLite file under var/"
    )
    grow_api_url: str = "https://grow.thingful.net/api"
    grow_api_key: SecretStr | None = None
    wow_api_url: str = "https://apimgmt.www.wow.metoffice.gov.uk/api"
    wow_api_key: SecretStr | None = None
    google_api_key: SecretStr | None = None
    google_api_url: str = "https://maps.googleapis.com"

    http_timeout_s: float = Field(default=30.0, gt=0, description="seconds for one call to a remote API")
    http_attempts: int = Field(default=5, ge=1, le=20, description="tries per call before giving up")
    http_backoff_s: float = Field(
        default=0.5, ge=0, description="first wait between tries; doubles each time"
    )
    fetch_workers: int = Field(default=4, ge=1, le=32, description="concurrent requests to one API")
    wow_live_hours: float = Field(
        default=24.0, gt=0, description="a station is live if it reported this recently"
    )
    wow_stations_file: Path | None = Field(
        default=None, description="saved byversion answer used as fallback"
    )

    etl_now: dt.datetime | None = Field(
        default=None, description="run as if it were this time (replays, tests)"
    )
    link_max_km: float = Field(default=50.0, gt=0, description="no station link beyond this distance")
    extract_overlap_hours: float = Field(default=6.0, ge=0, description="re-read before each watermark")
    extract_history_days: int = Field(default=365, ge=1, description="how far back a new sensor is fetched")
    faulty_days: float = Field(default=2.0, gt=0, description="faulty if the last anomaly is this recent")
    load_batch_rows: int = Field(default=200_000, ge=1000, description="rows per bulk-upsert transaction")
    detect_context_days: float = Field(
        default=2.0,
        ge=1,
        description="days before each sensor's watermark that detection reads again for context "
        "(the soil drift check needs 20 or more; a weekly run with more catches slow drift)",
    )
    backend_token: SecretStr | None = Field(
        default=None, description="service token clients of the JSON back end send (Authorization: Bearer)"
    )
    cors_origins: str = Field(
        default="",
        description="comma-separated origins whose pages may call the back end (CORS); empty: CORS off",
    )
    models_dir: Path | None = Field(
        default=None, description="trained autoencoders to detect with (default: those shipped in models/)"
    )

    status_max_age_hours: float = Field(
        default=26.0, gt=0, description="`python -m etl status` fails when the last nightly run is older"
    )
    # The front end.
    backend_url: str = Field(
        default="http://127.0.0.1:8000", description="where the front end reaches the back end"
    )
    frontend_secret_key: SecretStr | None = Field(
        default=None,
        description="signs the front end's session cookies and CSRF tokens (required to serve it)",
    )
    session_cookie_secure: bool = Field(
        default=True, description="send the session cookie over HTTPS only (off only for a local demo)"
    )
    login_rate_limit: str = Field(
        default="10 per minute", description="login attempts allowed per client address (Flask-Limiter)"
    )
    rate_limit_storage: str = Field(
        default="memory://",
        description="where login attempts are counted; redis://… shares it between workers",
    )
    proxy_hops: int = Field(
        default=0,
        ge=0,
        le=5,
        description="proxies in front of the front end whose X-Forwarded-For/-Proto to trust "
        "(Beanstalk: 2, its load balancer and nginx); 0 trusts none",
    )
    map_tile_url: str = Field(
        default="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        description="Leaflet tile layer; empty: a map without tiles (no request leaves the app)",
    )
    map_tile_attribution: str = "© OpenStreetMap contributors"
    google_maps_browser_key: SecretStr | None = Field(
        default=None, description="a browser key: the maps use Google Maps instead of Leaflet, as in 2019"
    )

    use_aws_secrets: bool = False
    aws_region: str = "eu-west-1"
    aws_db_secret: str = "grow-data-key"
    aws_grow_secret: str = "grow-api"
    aws_wow_secret: str = "wow-api"
    aws_web_secret: str | None = Field(
        default=None,
        description="the web apps' secret: backend_token, frontend_secret_key (e.g. grow-wow-web)",
    )

    log_level: str = "INFO"

    @field_validator("grow_api_url", "wow_api_url", "google_api_url", "backend_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @field_validator("etl_now")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value

    def now(self) -> dt.datetime:
        """The present for the ETL: ETL_NOW when set, else the clock (UTC)."""
        return self.etl_now or dt.datetime.now(dt.UTC)

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


def load_settings(**overrides) -> Settings:
    """Read the settings from the environment (and AWS Secrets Manager when switched on).

    Raises SettingsError with one line naming the bad setting; the value itself is never echoed,
    because it may be a secret.
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        reason = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"setting {name}: {reason}") from None
    if settings.use_aws_secrets:
        from etl.aws_secrets import fill_from_secrets_manager

        settings = fill_from_secrets_manager(settings)
    settings.database  # noqa: B018 - parse now so a bad URL fails at start, not mid-run
    return settings
