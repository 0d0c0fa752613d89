"""What the dashboard's routes and commands reach through the app: its settings, its database engine
(accounts) and its client of the back end.

`create_app` fills `app.extensions["grow_wow"]` once (`install`); everything else asks these getters.
"""

from __future__ import annotations

from flask import Flask, current_app
from sqlalchemy.engine import Engine

from core.db import make_engine
from flask_front_end.backend import Backend
from flask_front_end.settings import FrontendSettings


def install(app: Flask, settings: FrontendSettings) -> None:
    token = settings.backend_token.get_secret_value() if settings.backend_token else None
    app.extensions["grow_wow"] = {
        "settings": settings,
        "engine": make_engine(settings, statement_timeout_s=settings.db_statement_timeout_s),
        "backend": Backend(settings.backend_url, token, timeout_s=settings.backend_timeout_s),
    }


def _services() -> dict:
    return current_app.extensions["grow_wow"]


def settings() -> FrontendSettings:
    return _services()["settings"]


def engine() -> Engine:
    return _services()["engine"]


def backend() -> Backend:
    return _services()["backend"]
