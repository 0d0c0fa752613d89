"""The dashboard's settings: the database (shared, for accounts), where the back end is, and the
cookies, rate limits and map tiles of the pages."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from core.archive import ArchiveSettings
from core.aws_secrets import SecretStore
from core.mail import MailSettings
from core.settings import WebSettings, http_url, load_role_settings


class FrontendSettings(WebSettings, MailSettings, ArchiveSettings):
    """What the dashboard reads from the environment; the mail settings send sign-up confirmations and
    password resets."""

    role: ClassVar[str] = "the front end"

    backend_url: str = Field(
        default="http://127.0.0.1:8000", description="where the front end reaches the back end"
    )
    backend_timeout_s: float = Field(
        default=15.0, gt=0, le=120, description="seconds the dashboard waits for one answer of the back end"
    )
    frontend_secret_key: SecretStr | None = Field(
        default=None,
        description="signs the front end's session cookies and CSRF tokens (required to serve it)",
    )
    session_cookie_secure: bool = Field(
        default=True, description="send the session cookie over HTTPS only (off only for a local demo)"
    )
    session_hours: float = Field(
        default=12.0,
        gt=0,
        le=24,
        description="a login lasts this long without remember-me (and a CSRF token)",
    )
    session_absolute_hours: float = Field(
        default=24.0,
        gt=0,
        le=7 * 24,
        description="a login without remember-me ends this long after it began, however busy",
    )
    remember_days: int = Field(
        default=14, ge=1, le=14, description='"stay logged in" lasts this many days (at most 14)'
    )
    login_rate_limit: str = Field(
        default="10 per minute", description="login attempts allowed per client address (Flask-Limiter)"
    )
    login_account_rate_limit: str = Field(
        default="5 per minute;15 per 10 minutes;30 per hour",
        description="login attempts allowed per account name, from any address (a spread-out guesser), "
        "in growing delays; a browser that has logged in to the account before is not held back by it",
    )
    data_rate_limit: str = Field(
        default="300 per minute", description="calls of the /data/* routes allowed per logged-in account"
    )
    signup_rate_limit: str = Field(
        default="5 per 10 minutes;20 per day",
        description="sign-up requests allowed per client address (each sends a mail)",
    )
    reset_rate_limit: str = Field(
        default="5 per 10 minutes;20 per day",
        description="password reset requests allowed per client address (each sends a mail)",
    )
    inbox_rate_limit: str = Field(
        default="3 per hour;6 per day",
        description="mails the dashboard sends to one address asked for (sign-ups, resets and address "
        "changes together), from any client: nobody can fill someone's inbox with them",
    )
    claim_rate_limit: str = Field(
        default="5 per hour;10 per day",
        description="attempts at claiming a GROW owner's sensors allowed per account (each guesses a serial)",
    )
    claim_address_rate_limit: str = Field(
        default="20 per hour", description="attempts at claiming sensors allowed per client address"
    )
    rate_limit_storage: str = Field(
        default="memory://",
        description="where the rate limits count; redis://… shares them between workers and instances",
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

    @field_validator("backend_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)


def load_settings(store: SecretStore | None = None, **overrides) -> FrontendSettings:
    return load_role_settings(FrontendSettings, store, **overrides)
