"""Accounts in the `users` table: who may log in, with which role, and the CLI to manage them.

Roles: `admin` sees every sensor; `owner` is tied to a GROW owner id and sees only that owner's sensors.
An owner account that signed itself up has no owner id until it claims one (`flask_front_end.claim`):
until then it sees nothing, and asking whose sensors it sees is an error, never "everyone's".
Passwords are stored as werkzeug scrypt hashes, never in clear. Each login is a row of `login_sessions`
named by a random token the cookies carry (stored as its hash): it ends at logout, on a password change,
a disable or "log out everywhere", and past its lifetime.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, replace

import click
from flask.cli import AppGroup
from flask_login import UserMixin
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from core.i18n import LANGUAGES
from core.schema import ALERT_SCHEDULES, ID_RULE, USER_ROLES, is_id, login_sessions, users
from flask_front_end import extensions

MIN_PASSWORD = 10
# A mail address: one @, no spaces or control characters, a dot in the domain, at most 254 characters.
EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")


def is_email(text: str) -> bool:
    return len(text) <= 254 and EMAIL.fullmatch(text) is not None


# Checked against when a username is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = generate_password_hash("not a password of anyone", method="scrypt")


@dataclass(frozen=True)
class User(UserMixin):
    user_id: int
    username: str
    role: str
    owner_id: str | None
    active: bool
    session_version: int = 0
    token: str | None = None  # this login's, once begun (`begin_session`)
    language: str | None = None  # of its pages and mails; None: the browser's

    def get_id(self) -> str | None:
        # What the session and the remember cookie hold: the login's random token, which names its row
        # in login_sessions; ending that row ends every copy of either cookie.
        return self.token

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def unclaimed(self) -> bool:
        """An owner account that has not claimed its GROW owner id yet: it may see no sensor."""
        return self.role == "owner" and not self.owner_id

    @property
    def sees_owner(self) -> str | None:
        """The owner whose sensors this account is limited to; None for an admin (sees all). An
        unclaimed owner account raises Unclaimed: its None would read as "sees all"."""
        if self.is_admin:
            return None
        if self.unclaimed:
            raise Unclaimed(f"account {self.user_id} has not claimed its sensors yet")
        return self.owner_id


class Unclaimed(PermissionError):
    """An owner account without an owner id was asked whose sensors it sees: it sees none."""


def _user(row) -> User:
    return User(
        row.user_id,
        row.username,
        row.role,
        row.owner_id,
        row.is_active,
        row.session_version,
        language=row.language,
    )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def begin_session(user: User, remember: bool) -> User:
    """A new login of `user`: a random token, stored as its hash with the time it was issued."""
    token = secrets.token_urlsafe(32)
    now = dt.datetime.now(dt.UTC)
    with extensions.engine().begin() as connection:
        connection.execute(
            insert(login_sessions).values(
                token_hash=_hash(token), user_id=user.user_id, issued_at=now, remember=remember
            )
        )
        # Logins long over are forgotten as new ones begin (the longest lives REMEMBER_DAYS).
        past = now - dt.timedelta(days=extensions.settings().remember_days + 1)
        connection.execute(delete(login_sessions).where(login_sessions.c.issued_at < past))
    return replace(user, token=token)


def load_user(token: str) -> User | None:
    """The account a session or remember cookie's token names, while its login is neither ended nor
    past its lifetime (REMEMBER_DAYS with "stay logged in", else SESSION_ABSOLUTE_HOURS) and the account
    is active. A cookie from before tokens, or a forged one, names none: log in again."""
    with extensions.engine().connect() as connection:
        row = connection.execute(
            select(users, login_sessions.c.issued_at, login_sessions.c.remember)
            .join(login_sessions, login_sessions.c.user_id == users.c.user_id)
            .where(login_sessions.c.token_hash == _hash(token), login_sessions.c.revoked_at.is_(None))
        ).first()
    if row is None or not row.is_active:
        return None
    settings = extensions.settings()
    lifetime = (
        dt.timedelta(days=settings.remember_days)
        if row.remember
        else dt.timedelta(hours=settings.session_absolute_hours)
    )
    if dt.datetime.now(dt.UTC) - row.issued_at > lifetime:
        return None
    return replace(_user(row), token=token)


def end_session(token: str | None) -> None:
    """Logout: this login answers nothing more, wherever its cookies were copied."""
    if token:
        with extensions.engine().begin() as connection:
            _revoke(connection, login_sessions.c.token_hash == _hash(token))


def end_every_session(engine, username: str) -> int:
    """Every login of the account ends ("log out everywhere"): how many there were."""
    with engine.begin() as connection:
        user_id = connection.scalar(select(users.c.user_id).where(users.c.username == folded(username)))
        if user_id is None:
            raise AccountError(f"no account named {username}")
        return _revoke(connection, login_sessions.c.user_id == user_id)


def _revoke(connection, which) -> int:
    ended = update(login_sessions).where(which, login_sessions.c.revoked_at.is_(None))
    return connection.execute(ended.values(revoked_at=dt.datetime.now(dt.UTC))).rowcount


def authenticate(username: str, password: str) -> User | None:
    """The active account with this name and password, or None (the same time either way)."""
    with extensions.engine().connect() as connection:
        row = connection.execute(select(users).where(users.c.username == folded(username))).first()
        if row is None:  # a name from before folding that another account's folded form already had
            row = connection.execute(select(users).where(users.c.username == username)).first()
    valid = check_password_hash(row.password_hash if row else _DUMMY_HASH, password)
    return _user(row) if row and valid and row.is_active else None


class AccountError(ValueError):
    """A request to create or change an account that cannot be honoured; the message says why."""


def folded(username: str) -> str:
    """A username as stored and looked up: trimmed and case-folded, so "Olive " and "olive" are one."""
    return username.strip().casefold()


def create_user(
    engine, username: str, password: str, role: str, owner_id: str | None = None, email: str | None = None
) -> int:
    username = folded(username)
    if role not in USER_ROLES:
        raise AccountError(f"role must be one of {', '.join(USER_ROLES)}")
    if role == "owner" and not owner_id:
        raise AccountError("an owner account needs the GROW owner id whose sensors it sees")
    if role == "owner" and not is_id(owner_id):
        raise AccountError(f"{owner_id!r} is not an owner id ({ID_RULE})")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
    if not username or len(username) > 64:
        raise AccountError("the username needs 1 to 64 characters")
    if email is not None and not is_email(email):
        raise AccountError(f"{email!r} is not a mail address")
    values = {
        "username": username,
        "password_hash": generate_password_hash(password, method="scrypt"),
        "role": role,
        "owner_id": owner_id if role == "owner" else None,
        "email": email,
    }
    try:
        with engine.begin() as connection:
            return connection.execute(insert(users).values(values).returning(users.c.user_id)).scalar_one()
    except IntegrityError:
        raise AccountError(f"there is already an account named {username}") from None


def set_password(engine, username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
    with engine.begin() as connection:
        changed = connection.execute(
            update(users)
            .where(users.c.username == folded(username))
            .values(
                password_hash=generate_password_hash(password, method="scrypt"),
                session_version=users.c.session_version + 1,
            )
        ).rowcount
        _revoke_all_of(connection, username)
    if not changed:
        raise AccountError(f"no account named {username}")


def set_mail(engine, username: str, email: str | None = None, alerts: bool | None = None) -> None:
    """Where an account's alerts go, and whether they go (None: left as it is)."""
    if email is not None and not is_email(email):
        raise AccountError(f"{email!r} is not a mail address")
    values = {name: value for name, value in (("email", email), ("alerts", alerts)) if value is not None}
    with engine.begin() as connection:
        found = connection.execute(select(users.c.user_id).where(users.c.username == folded(username)))
        if found.first() is None:
            raise AccountError(f"no account named {username}")
        if values:
            connection.execute(update(users).where(users.c.username == folded(username)).values(values))


def set_active(engine, username: str, active: bool) -> None:
    with engine.begin() as connection:
        changed = connection.execute(
            update(users)
            .where(users.c.username == folded(username))
            .values(is_active=active, session_version=users.c.session_version + (0 if active else 1))
        ).rowcount
        if not active:
            _revoke_all_of(connection, username)
    if not changed:
        raise AccountError(f"no account named {username}")


def _revoke_all_of(connection, username: str) -> int:
    owned = select(users.c.user_id).where(users.c.username == folded(username)).scalar_subquery()
    return _revoke(connection, login_sessions.c.user_id == owned)


def list_users(engine) -> list[User]:
    with engine.connect() as connection:
        return [_user(row) for row in connection.execute(select(users).order_by(users.c.username))]


# --- what an account does for itself: sign up, reset, claim, its preferences --------------------------
def has_account(engine, email: str) -> bool:
    """Whether an account is named by this address, or has it as its address (any case)."""
    with engine.connect() as connection:
        found = connection.execute(select(users.c.user_id).where(_named_or_at(email)).limit(1)).first()
    return found is not None


def _named_or_at(email: str):
    return or_(users.c.username == folded(email), func.lower(users.c.email) == email.strip().lower())


def sign_up(engine, email: str, password: str) -> User | None:
    """A new owner account for an address its holder confirmed: named by the address (folded), with it
    as its address, and no owner id until it claims one. None, changing nothing, when the address has
    an account already (a confirmation link used twice)."""
    email = email.strip()
    if not is_email(email) or len(folded(email)) > 64:
        raise AccountError(f"{email!r} is not a mail address an account can be named by")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
    values = {
        "username": folded(email),
        "password_hash": generate_password_hash(password, method="scrypt"),
        "role": "owner",
        "owner_id": None,
        "email": email,
    }
    try:
        with engine.begin() as connection:
            if connection.execute(select(users.c.user_id).where(_named_or_at(email))).first():
                return None
            user_id = connection.execute(insert(users).values(values).returning(users.c.user_id)).scalar_one()
    except IntegrityError:  # the same link, twice at once: the username is unique
        return None
    return User(user_id, values["username"], "owner", None, True)


@dataclass(frozen=True)
class Holder:
    """An active account at a mail address, as a reset mail needs it."""

    user_id: int
    username: str
    email: str
    fingerprint: str
    language: str | None = None  # its mail's; None: the asker's browser's


def fingerprint(password_hash: str, email: str | None) -> str:
    """What a reset link carries of its account: its password hash and address, hashed. Once the
    password (salted afresh each time) or the address changes, the link no longer fits: it works once."""
    return hashlib.sha256(f"{password_hash}\n{email or ''}".encode()).hexdigest()[:32]


def holders_of(engine, email: str) -> list[Holder]:
    """The active accounts whose address is this one, in any case."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(users)
            .where(func.lower(users.c.email) == email.strip().lower(), users.c.is_active)
            .order_by(users.c.user_id)
        ).all()
    return [
        Holder(row.user_id, row.username, row.email, fingerprint(row.password_hash, row.email), row.language)
        for row in rows
    ]


def account_to_reset(engine, user_id: int, carried: str) -> User | None:
    """The active account a reset link names, if the link still fits it (`fingerprint`)."""
    with engine.connect() as connection:
        row = connection.execute(select(users).where(users.c.user_id == user_id)).first()
    if row is None or not row.is_active:
        return None
    if not secrets.compare_digest(fingerprint(row.password_hash, row.email), str(carried)):
        return None
    return _user(row)


def set_owner(engine, user_id: int, owner_id: str) -> bool:
    """The GROW owner id an unclaimed owner account sees from now on; False (nothing changed) when the
    account is no unclaimed owner."""
    if not is_id(owner_id):
        raise AccountError(f"{owner_id!r} is not an owner id ({ID_RULE})")
    with engine.begin() as connection:
        claimed = connection.execute(
            update(users)
            .where(users.c.user_id == user_id, users.c.role == "owner", users.c.owner_id.is_(None))
            .values(owner_id=owner_id)
        )
        return claimed.rowcount == 1


@dataclass(frozen=True)
class Preferences:
    """What an account chose for itself: where its mail goes, whether and how often alerts come, and in
    which language (None: the browser's)."""

    email: str | None
    alerts: bool
    alert_schedule: str
    language: str | None


def preferences(engine, user_id: int) -> Preferences | None:
    """What the account chose; None when there is no such account (any more)."""
    with engine.connect() as connection:
        row = connection.execute(
            select(users.c.email, users.c.alerts, users.c.alert_schedule, users.c.language).where(
                users.c.user_id == user_id
            )
        ).first()
    return Preferences(row.email, row.alerts, row.alert_schedule, row.language) if row else None


def set_preferences(engine, user_id: int, alerts: bool, alert_schedule: str, language: str | None) -> None:
    if alert_schedule not in ALERT_SCHEDULES:
        raise AccountError(f"alerts come {' or '.join(ALERT_SCHEDULES)}")
    if language is not None and language not in LANGUAGES:
        raise AccountError(f"the language is one of {', '.join(LANGUAGES)}")
    with engine.begin() as connection:
        connection.execute(
            update(users)
            .where(users.c.user_id == user_id)
            .values(alerts=alerts, alert_schedule=alert_schedule, language=language)
        )


def change_address(engine, user_id: int, was: str | None, email: str) -> bool:
    """The account's new address, confirmed from it, if its address is still `was` (a confirmation
    link works once, and not after another change); False when nothing changed."""
    if not is_email(email):
        raise AccountError(f"{email!r} is not a mail address")
    still = users.c.email.is_(None) if was is None else users.c.email == was
    with engine.begin() as connection:
        changed = connection.execute(
            update(users).where(users.c.user_id == user_id, still).values(email=email)
        )
        return changed.rowcount == 1


def stop_alerts(engine, user_id: int) -> None:
    """No more alerts to this account (an unsubscribe link); an account gone meanwhile is no error."""
    with engine.begin() as connection:
        connection.execute(update(users).where(users.c.user_id == user_id).values(alerts=False))


# --- `flask --app flask_front_end.application users ...` ----------------------------------------------
users_cli = AppGroup("users", help="Create, list, disable and enable accounts of the front end.")


@users_cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(USER_ROLES), required=True)
@click.option("--owner-id", help="the GROW owner id an owner account sees")
@click.option("--email", help="where its alerts go (an owner's sensors gone faulty or silent)")
@click.password_option(
    envvar="FRONTEND_NEW_PASSWORD", help="asked for when not given (or FRONTEND_NEW_PASSWORD)"
)
def create_command(username: str, role: str, owner_id: str | None, email: str | None, password: str) -> None:
    """Create an account."""
    with _told():
        create_user(extensions.engine(), username, password, role, owner_id, email)
    click.echo(f"created {role} {username}" + (f" (owner {owner_id})" if role == "owner" else ""))


@users_cli.command("password")
@click.argument("username")
@click.password_option(
    envvar="FRONTEND_NEW_PASSWORD", help="asked for when not given (or FRONTEND_NEW_PASSWORD)"
)
def password_command(username: str, password: str) -> None:
    """Set a new password for an account; its sessions and remember cookies end."""
    with _told():
        set_password(extensions.engine(), username, password)
    click.echo(f"new password set for {username}")


@users_cli.command("list")
def list_command() -> None:
    """List the accounts (never their passwords)."""
    for user in list_users(extensions.engine()):
        state = "active" if user.active else "disabled"
        click.echo(f"{user.username:<24} {user.role:<6} {user.owner_id or '-':<38} {state}")


@users_cli.command("mail")
@click.argument("username")
@click.option("--email", help="where its alerts go")
@click.option("--alerts/--no-alerts", default=None, help="mail when its sensors turn faulty or silent")
def mail_command(username: str, email: str | None, alerts: bool | None) -> None:
    """Set where an account's alerts go, and whether they go."""
    with _told():
        set_mail(extensions.engine(), username, email, alerts)
        with extensions.engine().connect() as connection:
            row = connection.execute(
                select(users.c.email, users.c.alerts).where(users.c.username == folded(username))
            ).one()
    click.echo(f"{folded(username)}: alerts {'on' if row.alerts else 'off'}, to {row.email or 'no address'}")


@users_cli.command("disable")
@click.argument("username")
def disable_command(username: str) -> None:
    """Stop an account from logging in (its sessions and remember cookies end at their next request)."""
    with _told():
        set_active(extensions.engine(), username, False)
    click.echo(f"disabled {username}")


@users_cli.command("enable")
@click.argument("username")
def enable_command(username: str) -> None:
    """Let a disabled account log in again."""
    with _told():
        set_active(extensions.engine(), username, True)
    click.echo(f"enabled {username}")


@users_cli.command("logout-everywhere")
@click.argument("username")
def logout_everywhere_command(username: str) -> None:
    """End every login of an account, on every browser (a lost phone, a shared computer)."""
    with _told():
        ended = end_every_session(extensions.engine(), username)
    click.echo(f"ended {ended} session{'s' if ended != 1 else ''} of {username}")


@contextmanager
def _told():
    """An account request that cannot be honoured ends the command with its reason, in one line."""
    try:
        yield
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
