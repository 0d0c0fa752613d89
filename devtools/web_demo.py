"""The end of `make demo`: both apps on loopback over the database the demo pipeline filled, with two
accounts to log in with (`python -m devtools.demo` runs the pipeline, then this).

A fresh service token and session key are made for each run, and the demo accounts get new passwords,
printed once. Werkzeug's threaded server, not gunicorn: this is for one person trying the system.
"""

from __future__ import annotations

import secrets
import string
import threading
from dataclasses import dataclass, field

from sqlalchemy import select

from core.db import make_engine
from core.schema import sensor_health, sensors, users
from core.settings import CoreSettings
from core.vocabulary import Health
from devtools.loopback import serve_on_loopback
from flask_back_end import create_app as create_back_end
from flask_back_end.settings import load_settings as back_end_settings
from flask_front_end import accounts
from flask_front_end import create_app as create_front_end
from flask_front_end.settings import load_settings as front_end_settings

ADMIN, OWNER = "demo", "demo-owner"
PASSWORD_LETTERS = string.ascii_letters + string.digits  # easy to copy from a terminal


@dataclass
class DemoSite:
    url: str
    backend_url: str
    logins: list[tuple[str, str, str]]  # (username, password, what it sees)
    servers: list = field(default_factory=list)

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()


def _start(app, port: int):
    try:
        return serve_on_loopback(app, port)
    except OSError:  # the port is taken: any free one will do
        return serve_on_loopback(app)


def demo_accounts(engine) -> list[tuple[str, str, str]]:
    """An admin, and an owner account for the owner of a faulty sensor; new passwords every run. Each has
    an address at example.org, so the demo's alerts have someone to go to."""
    with engine.connect() as connection:
        owner = connection.scalar(
            select(sensors.c.owner_id)
            .join(sensor_health)
            .where(sensor_health.c.status == Health.FAULTY, sensors.c.owner_id.is_not(None))
            .order_by(sensors.c.sensor_id)
            .limit(1)
        ) or connection.scalar(select(sensors.c.owner_id).where(sensors.c.owner_id.is_not(None)).limit(1))
        existing = set(connection.scalars(select(users.c.username)))
    logins = []
    for username, role, owner_id, sees in [
        (ADMIN, "admin", None, "every sensor"),
        (OWNER, "owner", owner, f"only the sensors of owner {owner}"),
    ]:
        if role == "owner" and owner is None:
            continue
        password = "".join(secrets.choice(PASSWORD_LETTERS) for _ in range(12))
        if username in existing:
            accounts.set_password(engine, username, password)
        else:
            accounts.create_user(engine, username, password, role, owner_id)
        accounts.set_mail(engine, username, f"{username}@example.org")
        logins.append((username, password, sees))
    return logins


def serve_demo(
    settings: CoreSettings,
    port: int = 5000,
    backend_port: int = 8000,
    logins: list[tuple[str, str, str]] | None = None,
    mail: dict | None = None,
) -> DemoSite:
    """Both apps over the database of `settings`, with a fresh service token and session key; the
    dashboard sends its mails (sign-up, resets) with the `mail` settings given."""
    token = secrets.token_urlsafe(24)
    # The demo's own database, never one from the shell's DATABASE_URL or the AWS secret store.
    database = {
        "database_url": settings.database.render_as_string(hide_password=False),
        "use_aws_secrets": False,
    }
    back = _start(create_back_end(back_end_settings(**database, backend_token=token)), backend_port)
    backend_url = f"http://127.0.0.1:{back.port}"
    front_settings = front_end_settings(
        **database,
        backend_url=backend_url,
        backend_token=token,
        frontend_secret_key=secrets.token_urlsafe(32),
        session_cookie_secure=False,  # plain http on loopback
        **(mail or {}),
    )
    front = _start(create_front_end(front_settings), port)
    logins = logins if logins is not None else demo_accounts(make_engine(settings))
    return DemoSite(f"http://127.0.0.1:{front.port}", backend_url, logins, [front, back])


def serve_until_stopped(
    settings: CoreSettings,
    port: int = 5000,
    backend_port: int = 8000,
    logins: list[tuple[str, str, str]] | None = None,
    mail: dict | None = None,
) -> None:
    """Serve both apps, print where and the logins, and wait for Ctrl-C."""
    site = serve_demo(settings, port, backend_port, logins, mail)
    print(f"\nThe dashboard is at {site.url}  (JSON API: {site.backend_url}/api/v1/openapi.json)")
    for username, password, sees in site.logins:
        print(f"  log in as {username:<11} password {password}   sees {sees}")
    print("Press Ctrl-C to stop.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        site.stop()
