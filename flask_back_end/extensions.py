"""What the back end's routes reach through the app: its settings, its database engine, its map answers.

`create_app` fills `app.extensions["grow_wow"]` once (`install`); everything else asks these getters.
"""

from __future__ import annotations

from flask import Flask, current_app
from sqlalchemy.engine import Engine

from core.db import make_engine
from flask_back_end.map_answer import MapAnswers
from flask_back_end.settings import BackendSettings


def install(app: Flask, settings: BackendSettings) -> None:
    engine = make_engine(settings, statement_timeout_s=settings.db_statement_timeout_s)
    app.extensions["grow_wow"] = {"settings": settings, "engine": engine, "map_answers": MapAnswers()}


def _services() -> dict:
    return current_app.extensions["grow_wow"]


def settings() -> BackendSettings:
    return _services()["settings"]


def engine() -> Engine:
    return _services()["engine"]


def map_answers() -> MapAnswers:
    return _services()["map_answers"]
