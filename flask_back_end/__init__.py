"""The JSON back end: `create_app()` builds it; `application.py` exposes it for Elastic Beanstalk.

Its settings are `flask_back_end.settings`; the database and schema come from `core/`. Every route needs
the service token (`Authorization: Bearer <BACKEND_TOKEN>`) unless marked `@public` (`/api/v1/health`, the
OpenAPI document). Errors have one shape, `{"error": ..., "message": ...}`; bad query parameters answer 400
naming the parameter.
"""

from __future__ import annotations

import hmac
import re

from apiflask import APIFlask, HTTPTokenAuth
from apiflask.exceptions import HTTPError
from flask import current_app, request
from sqlalchemy.exc import OperationalError
from werkzeug.routing import BaseConverter

from core.logs import configure_logging
from flask_back_end import extensions
from flask_back_end.schemas import CODE, ErrorOut
from flask_back_end.settings import BackendSettings, load_settings

API_PREFIX = "/api/v1"
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled (by statement_timeout)
auth = HTTPTokenAuth(scheme="Bearer")


def create_app(settings: BackendSettings | None = None) -> APIFlask:
    settings = settings or load_settings()
    configure_logging(settings)  # its secrets never reach the log, tracebacks included
    app = APIFlask(
        __name__,
        title="GROW–WOW API",
        version="1.0",
        spec_path=f"{API_PREFIX}/openapi.json",
        docs_path=None,  # the interactive docs page loads scripts from a CDN
        static_folder=None,  # it serves no files: no route to keep open for them
    )
    app.config.update(
        VALIDATION_ERROR_STATUS_CODE=400,
        VALIDATION_ERROR_SCHEMA=ErrorOut,
        HTTP_ERROR_SCHEMA=ErrorOut,
        SPEC_FORMAT="json",
        AUTH_ERROR_DESCRIPTION="a valid service token is required (Authorization: Bearer …)",
    )
    app.url_map.converters["code"] = CodeConverter
    app.spec_processor(lambda spec: _document_the_token(app, _document_codes(spec)))
    extensions.install(app, settings)
    app.error_processor(_error_body)
    app.register_error_handler(OperationalError, _database_too_slow)
    auth.error_processor(_error_body)
    if settings.cors_origins:
        from flask_cors import CORS

        origins = [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]
        CORS(app, origins=origins, allow_headers=["Authorization", "Content-Type"], methods=["GET"])

    from flask_back_end.api import api
    from flask_back_end.legacy import legacy

    app.register_blueprint(api, url_prefix=API_PREFIX)
    app.register_blueprint(legacy)
    public(app.view_functions["openapi.spec"])  # the document: what the API offers is no secret
    app.before_request(_token_first)  # the app's, not a blueprint's: a route anywhere is covered
    return app


def public(view):
    """Open the route to anyone. Every other route needs the service token (`_token_first`), so a new
    route is closed until someone marks it @public on purpose."""
    view.public = True
    return view


def is_public(view) -> bool:
    return getattr(view, "public", False)


# Flask-HTTPAuth's own check around nothing: None with the right token (or for a CORS preflight), else 401.
_token_checked = auth.login_required(lambda: None)


def _token_first():
    """Before every request: the service token, unless its route is @public (no route: 404 answers)."""
    view = current_app.view_functions.get(request.endpoint)
    if view is None or is_public(view):
        return None
    return _token_checked()


class CodeConverter(BaseConverter):
    """A sensor or owner id in a path; anything else is a 404 before a query is made."""

    regex = CODE


def _document_codes(spec: dict) -> dict:
    """Path ids go through CodeConverter; say so in the document (APIFlask writes a bare string)."""
    for operations in spec["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in ("sensor_id", "owner_id"):
                    parameter["schema"]["pattern"] = f"^{CODE}$"
    return spec


def _document_the_token(app: APIFlask, spec: dict) -> dict:
    """`_token_first` in the document, as APIFlask writes a token it checks itself: each route not
    @public states the token and its 401."""
    spec["components"]["securitySchemes"] = {"BearerAuth": {"type": "http", "scheme": "bearer"}}
    refused = {
        "description": app.config["AUTH_ERROR_DESCRIPTION"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)  # /x/<code:id> -> /x/{id}
        if path in spec["paths"] and not is_public(app.view_functions[rule.endpoint]):
            for operation in spec["paths"][path].values():
                operation["security"] = [{"BearerAuth": []}]
                operation["responses"]["401"] = refused
    return spec


@auth.verify_token
def _verify(token: str) -> bool | None:
    expected = extensions.settings().backend_token
    if expected is None or not token:
        return None
    return hmac.compare_digest(token.encode(), expected.get_secret_value().encode()) or None


def _database_too_slow(error: OperationalError):
    """A query PostgreSQL cancelled at the statement timeout: 503 saying so, not a 500."""
    if getattr(error.orig, "pgcode", None) != QUERY_CANCELED:
        raise error
    seconds = extensions.settings().db_statement_timeout_s
    message = (
        f"the database took longer than {seconds:g} s (DB_STATEMENT_TIMEOUT_S) "
        "to answer; ask for less (a shorter range, a smaller page) or try again later"
    )
    return {"error": "timeout", "message": message}, 503


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
