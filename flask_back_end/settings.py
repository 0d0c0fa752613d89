"""The back end's settings: the database (shared), the service token, and which origins may call it."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from core.archive import ArchiveSettings
from core.aws_secrets import SecretStore
from core.settings import WebSettings, load_role_settings


class BackendSettings(WebSettings, ArchiveSettings):
    """What the JSON back end reads from the environment."""

    role: ClassVar[str] = "the back end"

    changes_settle_s: float = Field(
        default=600,
        ge=0,
        le=86_400,
        description="/changes lists what changed at least this long ago: a write still in progress (its rows "
        "dated when its transaction began) is never skipped by a mirror that read in the meantime",
    )
    api_max_range_days: int = Field(
        default=366,
        ge=1,
        le=3660,
        description="the longest start..end a readings or WOW route answers (400 beyond, naming this)",
    )
    cors_origins: str = Field(
        default="",
        description="comma-separated origins whose pages may call the back end (CORS); empty: CORS off",
    )


def load_settings(store: SecretStore | None = None, **overrides) -> BackendSettings:
    return load_role_settings(BackendSettings, store, **overrides)
