"""The nightly alerts in each account's language (issue 33): an owner's mail and an admin's digest, as the
SMTP server receives them, and every part of each (news, reminders, well again, what to try, the digest's
counts and its "and more") with no English message id left; an account that chose no language, or one
no longer offered, gets English. The reasons stay as detection stored them, in English (a known limit)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pandas as pd
import pytest
from sqlalchemy import select, update

from core import i18n
from core.schema import sensor_health, sensors, users
from etl import notify_owners
from etl.settings import load_settings
from etl.shard import Shard
from etl.step import StepContext
from flask_front_end import accounts
from tests.catalogues import TRANSLATED, english_left
from tests.factories import seed

# Many pages, mails and accounts on both engines: `make test` and CI run these; `make test-fast` not.
pytestmark = pytest.mark.slow

NOW = dt.datetime(2019, 6, 12, 2, 0, tzinfo=dt.UTC)
PASSWORD = "a long password"
BASE = "https://grow-wow.example.org"


@pytest.fixture
def garden(engine, settings, smtp_server, monkeypatch):
    """seed's network (s1 of owner-a faulty, r1 of owner-b silent), owner-a's account and an admin, both
    with addresses, and mail settings on the loopback server."""
    seed(engine)
    monkeypatch.setattr(accounts, "generate_password_hash", lambda password, **_: f"plain:{password}")
    accounts.create_user(engine, "olive", PASSWORD, "owner", owner_id="owner-a", email="olive@example.org")
    accounts.create_user(engine, "ada", PASSWORD, "admin", email="ada@example.org")
    with engine.begin() as connection:
        connection.execute(
            update(sensor_health).where(sensor_health.c.sensor_id == "r1").values(status="silent")
        )
        connection.execute(update(sensors).where(sensors.c.sensor_id == "s1").values(place="London"))
    port, inbox = smtp_server
    mail = load_settings(
        database_url=settings.database_url.get_secret_value(),
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        dashboard_url=BASE,
        mail_link_secret="the link secret the nightly job and the dashboard share",
    )
    return mail, inbox


def choose(engine, language: str | None) -> None:
    with engine.begin() as connection:
        connection.execute(update(users).values(language=language))


def reasons(engine) -> tuple[str, ...]:
    """What the mails show as stored: names, owner ids, places and detection's reasons (English)."""
    with engine.connect() as connection:
        found = [
            *connection.scalars(select(sensor_health.c.reason)),
            *connection.scalars(select(sensors.c.name)),
            *connection.scalars(select(sensors.c.owner_id)),
        ]
    return (*(text for text in found if text), "London")


@pytest.mark.parametrize("language", list(i18n.LANGUAGES))
def test_the_owners_alert_and_the_admins_digest_come_in_each_accounts_language(engine, garden, language):
    settings, inbox = garden
    choose(engine, language)
    notify_owners.run(StepContext(settings, engine, Shard(), NOW))
    mails = {recipients[0]: message for recipients, message in inbox.messages}
    assert set(mails) == {"olive@example.org", "ada@example.org"}
    said = i18n.translations(language)
    alert, digest = mails["olive@example.org"], mails["ada@example.org"]
    assert alert["Subject"] == said.ngettext(
        "GROW-WOW: a sensor needs a look", "GROW-WOW: %(count)d of your sensors need a look", 1
    ) % {"count": 1}
    text = alert.get_content()
    assert text.startswith(said.gettext("Hello %(name)s,") % {"name": "olive"})
    assert said.gettext("Why: %(reason)s") % {"reason": "1 soil moisture spike of up to 65.0 %"} in text
    assert said.gettext(notify_owners.DAMAGED) in text  # what to try after a spike
    assert said.gettext("faulty") in text and f"{BASE}/sensors/s1" in text
    news = digest["Subject"].split(": ", 1)[1] if ": " in digest["Subject"] else digest["Subject"]
    assert said.ngettext("%(count)d silent", "%(count)d silent", 1) % {"count": 1} in news
    assert said.gettext("Newly faulty: %(count)d") % {"count": 1} in digest.get_content()
    if language != i18n.SOURCE:
        for message in (alert, digest):
            assert (
                english_left(f"{message['Subject']}\n{message.get_content()}", language, reasons(engine))
                == []
            )


@pytest.mark.parametrize("chosen", [None, "pt", ""])
def test_an_account_without_a_language_we_speak_gets_english(engine, garden, chosen):
    settings, inbox = garden
    choose(engine, chosen)
    notify_owners.run(StepContext(settings, engine, Shard(), NOW))
    subjects = sorted(message["Subject"] for _, message in inbox.messages)
    assert subjects == ["GROW-WOW network digest: 1 faulty, 1 silent", "GROW-WOW: a sensor needs a look"]


def episodes(count: int) -> pd.DataFrame:
    """Ledger rows as the step reads them: `count` sensors, each bad since a known time or since ever."""
    since = [pd.Timestamp("2019-06-10 03:00", tz="UTC"), notify_owners.EPOCH] * count
    return pd.DataFrame(
        {
            "sensor_id": [f"s{i}" for i in range(count)],
            "name": ["Bed" if i % 2 else None for i in range(count)],
            "status": ["faulty" if i % 3 else "silent" for i in range(count)],
            "health": ["recovered" if i % 2 else "healthy" for i in range(count)],
            "since": since[:count],
            "reason": ["light stuck at 0" if i % 2 else None for i in range(count)],
            "kind": [["stuck", "spike", "moved", "drift", None][i % 5] for i in range(count)],
            "owner_id": ["owner-a" if i % 2 else None for i in range(count)],
            "place": ["Lyon" if i % 2 else None for i in range(count)],
            "country": ["FR"] * count,
        }
    )


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_part_of_every_alert_is_translated(language):
    """News, reminders and well-again notes with every kind of advice, the footers with and without an
    unsubscribe link, and a digest long enough to say "and more": no English message id left."""
    words = i18n.translations(language)
    context = SimpleNamespace(settings=SimpleNamespace(dashboard_url=BASE))
    news, reminders, recovered = episodes(6), episodes(3), episodes(2)
    stop = f"{BASE}/unsubscribe/token"
    mails = [
        (
            notify_owners.subject(6, 3, 2, words=words),
            notify_owners.body("olive", news, reminders, recovered, context, stop, words=words),
        ),
        (
            notify_owners.subject(0, 3, 0, words=words),
            notify_owners.body("olive", news[:0], reminders, news[:0], context, words=words),
        ),
        (
            notify_owners.subject(0, 0, 1, words=words),
            notify_owners.body("olive", news[:0], news[:0], recovered[:1], context, words=words),
        ),
        (
            notify_owners.digest_subject(episodes(60), reminders, recovered, words=words),
            notify_owners.digest_body("ada", episodes(60), reminders, recovered, BASE, stop, words=words),
        ),
        (notify_owners.digest_subject(news[:0], reminders, news[:0], words=words), ""),
    ]
    data = ("light stuck at 0", "Bed", "Lyon", "owner-a")
    for subject, body in mails:
        assert english_left(f"{subject}\n{body}", language, data) == [], subject
    advice = {
        words.gettext(notify_owners.advice(status, kind))
        for status, kind in zip(news["status"], news["kind"])
    }
    assert all(tip in mails[0][1] for tip in advice) and len(advice) >= 4
    assert (
        words.gettext("... and %(count)d more: %(link)s") % {"count": 10, "link": f"{BASE}/all_grow_map"}
        in mails[3][1]
    )
