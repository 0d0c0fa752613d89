"""Logging in and out, and the load balancer's health check. Attempts are rate-limited per client
address; `next` may only lead back into this site."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext, lazy_gettext
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from itsdangerous import BadData, URLSafeTimedSerializer
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from flask_front_end import accounts, before_claiming, extensions, limiter, mails, public

auth = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    username = StringField(lazy_gettext("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(lazy_gettext("Password"), validators=[DataRequired(), Length(max=200)])
    remember = BooleanField(lazy_gettext("Stay logged in on this computer"))


class LogoutForm(FlaskForm):
    """Logging out is a POST with the CSRF token, so another site cannot log a user out."""


def _login_limit() -> str:
    return extensions.settings().login_rate_limit


def _account_login_limit() -> str:
    return extensions.settings().login_account_rate_limit


def _folded(username: str | None) -> str:
    return accounts.folded(username or "")[:64]


def _account_asked() -> str:
    """The account a login attempt names (as typed, folded): one guesser behind many addresses still
    meets this account's limit."""
    return "login-account:" + _folded(request.form.get("username"))


# A browser that has logged in to an account before carries a signed note of it: the account's limit,
# which a guesser anywhere can fill, does not hold that browser back (its address's limit still does).
KNOWN_COOKIE = "known_logins"
KNOWN_DAYS = 365


def _known_logins() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="known-logins")


def _known_here() -> list[str]:
    try:
        return _known_logins().loads(request.cookies.get(KNOWN_COOKIE, ""), max_age=KNOWN_DAYS * 86400)
    except BadData:
        return []


def _from_a_known_browser() -> bool:
    return _folded(request.form.get("username")) in _known_here()


def _remember_this_browser(response, username: str):
    known = [_folded(username)] + [name for name in _known_here() if name != _folded(username)]
    response.set_cookie(
        KNOWN_COOKIE,
        _known_logins().dumps(known[:10]),
        max_age=KNOWN_DAYS * 86400,
        httponly=True,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        samesite="Lax",
    )
    return response


@auth.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(
    _login_limit,
    methods=["POST"],
    error_message=lazy_gettext("Too many login attempts from here; wait a minute and try again."),
)
@limiter.limit(
    _account_login_limit,
    methods=["POST"],
    key_func=_account_asked,
    exempt_when=_from_a_known_browser,
    deduct_when=lambda response: response.status_code == 401,  # wrong passwords: the account's own logins
    error_message=lazy_gettext(
        "Too many login attempts at this account; wait an hour, or log in from a browser that has "
        "logged in to it before."
    ),
)
def login():
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")))
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(form.username.data, form.password.data)
        if user is not None:
            session.permanent = True  # the cookie, and the signed session in it, expire after SESSION_HOURS
            login_user(accounts.begin_session(user, form.remember.data), remember=form.remember.data)
            return _remember_this_browser(redirect(safe_next(request.args.get("next"))), user.username)
        flash(gettext("Wrong username or password."), "error")
    page = render_template("login.html", form=form, can_mail=mails.can_send())
    return page, 200 if request.method == "GET" else 401


@auth.post("/logout")
@before_claiming
def logout():
    if LogoutForm().validate_on_submit():
        accounts.end_session(current_user.token)  # copies of its cookies end too
        logout_user()
    return redirect(url_for("auth.login"))


@auth.post("/logout/everywhere")
@before_claiming
def logout_everywhere():
    """Every login of this account ends, on every browser: a lost phone, a shared computer."""
    if LogoutForm().validate_on_submit():
        accounts.end_every_session(extensions.engine(), current_user.username)
        logout_user()
        flash(gettext("Logged out everywhere."), "info")
    return redirect(url_for("auth.login"))


@auth.get("/health")
@public
def health():
    """Open, for the load balancer: 200 when the database (accounts) and the back end answer."""
    from sqlalchemy import select

    from flask_front_end.backend import BackendError

    state = {"status": "ok", "database": "reachable", "backend": "reachable"}
    try:
        with extensions.engine().connect() as connection:
            connection.scalar(select(1))
    except Exception:  # a health check reports, it does not raise
        state.update(status="unavailable", database="unreachable")
    try:
        extensions.backend().get("/health")
    except BackendError:
        state.update(status="unavailable", backend="unreachable")
    return state, 200 if state["status"] == "ok" else 503


def safe_next(target: str | None) -> str:
    """`target` if it is a path on this site, else the map: never a redirect to somewhere else."""
    default = url_for("pages.all_grow_map")
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else default
