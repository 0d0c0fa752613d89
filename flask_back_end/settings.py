"""The back end's settings: the database (shared), the service token, and which origins may call it."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from core.aws_secrets import SecretStore
from core.settings import WebSettings, load_role_settings


class BackendSettings(WebSettings):
    """What the JSON back end reads from the environment."""

    role: ClassVar[str] = "the back end"

    cors_origins: str = Field(
        default="",
        description="comma-separated origins whose pages may call the back end (CORS); empty: CORS off",
    )


def load_settings(store: SecretStore | None = None, **overrides) -> BackendSettings:
    return load_role_settings(BackendSettings, store, **overrides)
