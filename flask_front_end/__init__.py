"""The front end people log in to: `create_app()` builds it; `application.py` exposes it for Beanstalk.

Accounts live in the shared database (`users`); sensor data comes only from the back end, asked with the
service token (`backend.py`). Pages: `/login`, `/all_grow_map`, `/owner_map`, `/sensors/<id>`; their
scripts read JSON from `/data/...` on this same app, which checks what the account may see. Every route
needs a logged-in account unless marked `@public` (the login page, `/health`, static files, the pages
mails link to); an owner account that has not claimed its sensors yet may open only the routes marked
`@before_claiming` (its account pages, logging out). Pages and mails speak the account's language, else
the browser's (`page_language`), from the catalogues under core/locale (core.i18n).
"""

from __future__ import annotations

import datetime as dt

from flask import Flask, current_app, redirect, render_template, request, url_for
from flask_babel import Babel, get_locale, gettext, lazy_gettext
from flask_compress import Compress
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user, login_required
from flask_wtf.csrf import CSRFError, CSRFProtect
from jinja2 import BytecodeCache
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import BaseConverter

from core import i18n
from core.errors import SettingsError
from core.logs import configure_logging
from core.schema import ID_PATTERN
from flask_front_end import accounts, extensions, words
from flask_front_end.settings import FrontendSettings, load_settings

GOOGLE_MAPS_HOSTS = "https://maps.googleapis.com https://maps.gstatic.com"
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)
compress = Compress()
babel = Babel()


class CompiledTemplates(BytecodeCache):
    """The pages' templates compiled once per process, for every app it makes (the tests and the demo
    make many; each would compile every template again). Keyed by name and source: an edited template
    compiles afresh."""

    def __init__(self):
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


COMPILED_TEMPLATES = CompiledTemplates()


def create_app(settings: FrontendSettings | None = None) -> Flask:
    settings = settings or load_settings()
    configure_logging(settings)  # its secrets never reach the log, tracebacks included
    if settings.frontend_secret_key is None:
        raise SettingsError("setting FRONTEND_SECRET_KEY: needed to sign sessions (a long random string)")
    app = Flask(__name__)
    app.jinja_options = {**app.jinja_options, "bytecode_cache": COMPILED_TEMPLATES}
    app.config.update(
        SECRET_KEY=settings.frontend_secret_key.get_secret_value(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.session_cookie_secure,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_DURATION=dt.timedelta(days=settings.remember_days),
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=settings.session_hours),
        WTF_CSRF_TIME_LIMIT=int(settings.session_hours * 3600),
        RATELIMIT_STORAGE_URI=settings.rate_limit_storage,
        RATELIMIT_HEADERS_ENABLED=True,
        # Pages, scripts and the map go out compressed (brotli, else gzip): the map page's first load
        # with 6,500 sensors is under 300 kB on the wire (tests/scenarios/test_browser.py measures it). Static
        # files are streamed, so the streaming list needs gzip too.
        MAX_CONTENT_LENGTH=1024
        * 1024,  # a login form or a logout is a few hundred bytes: 413 past a megabyte
        COMPRESS_ALGORITHM=["br", "gzip"],
        COMPRESS_ALGORITHM_STREAMING=["br", "gzip"],
        # One set of catalogues for the pages and the nightly job's mails (core.i18n).
        BABEL_TRANSLATION_DIRECTORIES=str(i18n.LOCALE_DIR),
        BABEL_DOMAIN=i18n.DOMAIN,
        BABEL_DEFAULT_LOCALE=i18n.SOURCE,
    )
    if settings.proxy_hops:
        # Behind a load balancer every request comes from it: without this, one login limit for all.
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.url_map.converters["code"] = CodeConverter
    extensions.install(app, settings)

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = lazy_gettext("Please log in to see the sensors.")
    login_manager.user_loader(accounts.load_user)
    login_manager.unauthorized_handler(_unauthorized)
    csrf.init_app(app)
    limiter.init_app(app)
    compress.init_app(app)
    babel.init_app(app, locale_selector=page_language)
    # Words marked where they are defined (core.i18n.N_: the vocabulary's), translated where shown.
    app.jinja_env.filters["translated"] = gettext
    app.jinja_env.policies["ext.i18n.trimmed"] = True  # as babel.cfg extracts them: one line each
    app.context_processor(_language_context)

    from flask_front_end.account_page import account
    from flask_front_end.answers import blueprint as answers
    from flask_front_end.archive_page import archive
    from flask_front_end.auth import auth
    from flask_front_end.claim import claim
    from flask_front_end.pages import pages
    from flask_front_end.reset import reset
    from flask_front_end.signup import signup
    from flask_front_end.unsubscribe import unsubscribe

    for blueprint in (auth, pages, answers, archive, signup, claim, reset, account, unsubscribe):
        app.register_blueprint(blueprint)
    public(app.view_functions["static"])  # the login page's styles and scripts
    app.before_request(_login_first)  # after the rate limits and CSRF check, which a stranger meets first
    app.cli.add_command(accounts.users_cli)
    app.after_request(_security_headers)
    app.after_request(_kept_by_no_one_else)
    app.after_request(_close_the_file_when_sent)  # runs before the compression (registered after it)
    app.register_error_handler(CSRFError, _csrf_refused)
    app.register_error_handler(accounts.Unclaimed, lambda error: _claim_first())
    for status in (404, 429):
        app.register_error_handler(status, _error_page)
    return app


def page_language() -> str:
    """The language of a page and of the mails a request sends: the account's choice, else the best the
    browser asks for among ours, else English."""
    if current_user.is_authenticated and current_user.language in i18n.LANGUAGES:
        return current_user.language
    return browser_language()


def browser_language() -> str:
    return request.accept_languages.best_match(list(i18n.LANGUAGES), default=i18n.SOURCE)


def _language_context() -> dict:
    """What every page needs to speak its language: the code for `<html lang>`, the scripts' words, and
    the vocabulary's names."""
    return {
        "page_language": str(get_locale()),
        "script_words": words.for_scripts(),
        "found_by": words.FOUND_BY,
        "kind_name": words.kind_name,
        "variable_name": words.variable_name,
    }


def public(view):
    """Open the route to anyone. Every other route needs a logged-in account (`_login_first`), so a new
    route is closed until someone marks it @public on purpose."""
    view.public = True
    return view


def is_public(view) -> bool:
    return getattr(view, "public", False)


def before_claiming(view):
    """Open the route to an owner account that has not claimed its sensors yet. Every other route sends
    such an account to claim them (`_login_first`): it sees no sensor, map, download or count before."""
    view.before_claiming = True
    return view


def opens_before_claiming(view) -> bool:
    return getattr(view, "before_claiming", False)


# Flask-Login's own check around nothing: None when logged in, else `_unauthorized`'s answer.
_login_checked = login_required(lambda: None)


def _login_first():
    """Before every request: a logged-in account, unless its route is @public (no route: 404 answers);
    one that has claimed its sensors, unless the route opens before claiming."""
    view = current_app.view_functions.get(request.endpoint)
    if view is None or is_public(view):
        return None
    refused = _login_checked()
    if refused is None and current_user.unclaimed and not opens_before_claiming(view):
        return _claim_first()
    return refused


def _claim_first():
    """An unclaimed owner account is sent to claim its sensors; page scripts get a 403."""
    if request.path.startswith("/data/"):
        return {
            "error": "forbidden",
            "message": gettext("claim your sensors first, on your account page"),
        }, 403
    return redirect(url_for("claim.page"))


class CodeConverter(BaseConverter):
    """A sensor id in a path; anything else is a 404 before the back end is asked."""

    regex = ID_PATTERN


def _security_headers(response):
    """Scripts and styles only from this app (Google's when its maps are on); no framing."""
    settings = extensions.settings()
    google = GOOGLE_MAPS_HOSTS if settings.google_maps_browser_key else ""
    tiles = _origin(settings.map_tile_url)
    response.headers["Content-Security-Policy"] = "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {google}".strip(),
            "style-src 'self' 'unsafe-inline'",  # Leaflet and Chart.js position things with inline styles
            f"img-src 'self' data: {tiles} {google}".strip(),
            f"connect-src 'self' {google}".strip(),
            "frame-ancestors 'none'",
            "form-action 'self'",
        ]
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _kept_by_no_one_else(response):
    """What a logged-in account sees is its own: no shared cache (a proxy, a CDN) keeps it, and the
    browser does not store it either, but for answers it revalidates by their tag (the map: private,
    no-cache). Static files are the same for everyone and cache as Flask serves them."""
    if request.endpoint != "static" and current_user.is_authenticated:
        response.cache_control.private = True
        if not response.cache_control.no_cache:
            response.cache_control.no_store = True
    return response


def _close_the_file_when_sent(response):
    """Flask-Compress swaps a static file's stream for a compressing one and drops the file; tie the
    file's closing to the response's, which the server closes when it has sent it."""
    if response.is_streamed and hasattr(response.response, "close"):
        response.call_on_close(response.response.close)
    return response


def _origin(url: str) -> str:
    """`https://tile.example.org/{z}/...` → `https://tile.example.org` (and `{s}.` subdomains → `*.`)."""
    if not url.startswith(("http://", "https://")):
        return ""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0].replace('{s}', '*')}"


def _unauthorized():
    """Pages send the browser to the login page (and back afterwards); page scripts get a 401."""
    if request.path.startswith("/data/"):
        return {"error": "unauthorized", "message": gettext("log in first")}, 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _csrf_refused(error: CSRFError):
    # Flask-WTF's reason is in English and for developers: one sentence in the page's language instead.
    message = gettext(
        "The form has expired or lost its security token (CSRF): reload the page and send it again."
    )
    return render_template("error.html", title=gettext("Form expired"), message=message), 400


ERRORS = {404: "not_found", 429: "too_many_requests"}  # what a page script's JSON calls each


def _error_page(error):
    titles = {404: gettext("Not found"), 429: gettext("Too many requests")}
    # A limit's own words say which it was (flask_front_end.auth, .pages): lazy, in the page's language.
    message = (
        gettext("There is no such page or sensor here.") if error.code == 404 else str(error.description)
    )
    if request.path.startswith("/data/"):
        return {"error": ERRORS[error.code], "message": message}, error.code
    return render_template("error.html", title=titles[error.code], message=message), error.code
