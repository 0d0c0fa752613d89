"""The JSON back end: `create_app()` builds it; `application.py` exposes it for Elastic Beanstalk.

Settings and the database come from `etl/` (one schema, one settings object). Every data route needs
the service token (`Authorization: Bearer <BACKEND_TOKEN>`); `/api/v1/health` is open. Errors have one
shape, `{"error": ..., "message": ...}`; bad query parameters answer 400 naming the parameter.
"""

from __future__ import annotations

import hmac

from apiflask import APIFlask, HTTPTokenAuth
from apiflask.exceptions import HTTPError

from etl.db import make_engine
from etl.settings import Settings, load_settings

API_PREFIX = "/api/v1"
auth = HTTPTokenAuth(scheme="Bearer")


def create_app(settings: Settings | None = None) -> APIFlask:
    settings = settings or load_settings()
    app = APIFlask(
        __name__,
        title="GROW–WOW API",
        version="1.0",
        spec_path=f"{API_PREFIX}/openapi.json",
        docs_path=None,  # the interactive docs page loads scripts from a CDN
    )
    app.config.update(
        VALIDATION_ERROR_STATUS_CODE=400,
        SPEC_FORMAT="json",
        AUTH_ERROR_DESCRIPTION="a valid service token is required (Authorization: Bearer …)",
    )
    app.extensions["grow_wow"] = {"settings": settings, "engine": make_engine(settings)}
    app.error_processor(_error_body)
    auth.error_processor(_error_body)

    from flask_back_end.api import api

    app.register_blueprint(api, url_prefix=API_PREFIX)
    return app


@auth.verify_token
def _verify(token: str) -> bool | None:
    from flask import current_app

    expected = current_app.extensions["grow_wow"]["settings"].backend_token
    if expected is None or not token:
        return None
    return hmac.compare_digest(token.encode(), expected.get_secret_value().encode()) or None


def _error_body(error: HTTPError):
    """One error shape for every error: a short code and a sentence; for a bad parameter, which one."""
    message = error.message
    if error.status_code == 400 and error.detail:
        # webargs reports {"query": {"per_page": ["Must be ..."]}}: name the parameter and the problem.
        problems = [
            f"{name}: {' '.join(map(str, reasons)) if isinstance(reasons, list) else reasons}"
            for fields in error.detail.values()
            for name, reasons in fields.items()
        ]
        message = "bad parameter " + "; ".join(problems)
    code = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
        error.status_code, "error"
    )
    return {"error": code, "message": message}, error.status_code, error.headers
