"""Alerts by mail (issue 33): an owner hears of their sensors gone faulty or silent, once, in words, with
a link and what to try; a mail server down for a night sends nothing twice; a sensor's name cannot add
a header."""

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import select, update

from core import answers, links
from core.links import Purpose
from core.schema import mail_ledger, sensor_health, sensors, users
from etl import notify_owners
from etl.settings import load_settings
from etl.shard import Shard
from etl.step import StepContext
from flask_front_end import accounts
from tests.factories import seed

NOW = dt.datetime(2019, 6, 12, 2, 0, tzinfo=dt.UTC)
PASSWORD = "a long password"
LINK_SECRET = "the link secret the nightly job and the dashboard share"


@pytest.fixture
def garden(engine, settings, smtp_server, monkeypatch):
    """seed's network (s1 of owner-a faulty), owner-a's account with an address, and mail settings on
    the loopback server."""
    seed(engine)
    monkeypatch.setattr(accounts, "generate_password_hash", lambda password, **_: f"plain:{password}")
    accounts.create_user(engine, "olive", PASSWORD, "owner", owner_id="owner-a", email="olive@example.org")
    accounts.create_user(engine, "quiet", PASSWORD, "owner", owner_id="owner-b")  # no address: no mail
    port, inbox = smtp_server
    url = settings.database_url.get_secret_value()
    mail = load_settings(
        database_url=url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        dashboard_url="https://grow-wow.example.org/",
        mail_link_secret=LINK_SECRET,
    )
    return mail, inbox


def night(engine, settings, when=NOW) -> int:
    return notify_owners.run(StepContext(settings, engine, Shard(), when))


def ledger(engine) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.DataFrame(connection.execute(select(mail_ledger)).mappings().all())


def test_an_owner_gets_one_mail_with_the_reason_the_link_and_what_to_try_and_not_again(engine, garden):
    settings, inbox = garden
    assert night(engine, settings) > 0
    assert len(inbox.messages) == 1
    recipients, message = inbox.messages[0]
    assert recipients == ["olive@example.org"] and message["To"] == "olive@example.org"
    assert message["Subject"] == "GROW-WOW: a sensor needs a look"
    text = message.get_content()
    assert "Tomato bed (s1): faulty since 2019-06-10" in text
    assert "Why: 1 soil moisture spike of up to 65.0 %" in text
    assert "Charts: https://grow-wow.example.org/sensors/s1" in text
    assert "Try: check it stands upright and undamaged" in text  # its last fault was a spike
    # The next night, nothing new: nothing sent, and the ledger says it went once.
    night(engine, settings, NOW + dt.timedelta(days=1))
    assert len(inbox.messages) == 1
    rows = ledger(engine)
    assert rows[["sensor_id", "status", "outcome"]].values.tolist() == [["s1", "faulty", "sent"]]


def test_a_mail_server_down_for_a_night_sends_each_alert_once_the_next(engine, garden):
    settings, inbox = garden
    inbox.refusing = True
    night(engine, settings)
    assert inbox.messages == []
    queued = ledger(engine)
    assert queued["sent_at"].isna().all() and "451" in queued["error"].iloc[0]
    night(engine, settings)  # the same night run again while the server still refuses: nothing twice
    inbox.refusing = False
    night(engine, settings, NOW + dt.timedelta(days=1))
    night(engine, settings, NOW + dt.timedelta(days=2))
    assert len(inbox.messages) == 1
    rows = ledger(engine)
    assert rows["outcome"].tolist() == ["sent"] and rows["attempts"].tolist() == [3]


def test_one_mail_a_day_at_most_and_an_episode_over_before_it_goes_is_never_mailed(engine, garden):
    settings, inbox = garden
    night(engine, settings)
    set_health(engine, "s2", "silent")  # later the same day s2 falls silent
    night(engine, settings, NOW + dt.timedelta(hours=12))
    assert len(inbox.messages) == 1  # s2 waits: olive had her mail today
    night(engine, settings, NOW + dt.timedelta(days=1))
    assert len(inbox.messages) == 2 and "Lawn (s2): silent" in inbox.messages[1][1].get_content()
    assert "Try: no reading for days: change its battery" in inbox.messages[1][1].get_content()
    # r1 falls silent after that day's mail and speaks again before another could go: never mailed.
    set_health(engine, "s2", "healthy")
    with engine.begin() as connection:
        connection.execute(update(sensors).where(sensors.c.sensor_id == "r1").values(owner_id="owner-a"))
    set_health(engine, "r1", "silent")
    night(engine, settings, NOW + dt.timedelta(days=1, hours=4))  # queued: mailed today already
    set_health(engine, "r1", "recovered")
    night(engine, settings, NOW + dt.timedelta(days=2))
    # r1's silence never went out (stale); s2, whose silence she was told of, is well again.
    assert len(inbox.messages) == 3
    well = inbox.messages[2][1].get_content()
    assert "Well again:" in well and "Lawn (s2): healthy" in well and "Hedge" not in well
    assert sorted(ledger(engine)["outcome"].tolist()) == ["sent", "sent", "stale"]


def test_a_sensor_name_cannot_add_a_header_or_markup(engine, garden):
    settings, inbox = garden
    with engine.begin() as connection:
        connection.execute(
            update(sensors)
            .where(sensors.c.sensor_id == "s1")
            .values(name="Bed\r\nBcc: thief@example.com\r\n<script>alert(1)</script>")
        )
    night(engine, settings)
    recipients, message = inbox.messages[0]
    assert recipients == ["olive@example.org"] and message["Bcc"] is None
    assert message.get_content_type() == "text/plain"
    assert "Bed Bcc: thief@example.com <script>alert(1)</script> (s1): faulty" in message.get_content()


def test_without_a_mail_server_nothing_is_queued_or_sent(engine, garden):
    settings, inbox = garden
    assert night(engine, settings.model_copy(update={"smtp_host": None})) == 0
    assert inbox.messages == [] and ledger(engine).empty


def test_the_smtp_password_comes_from_the_environment_or_the_secret_store(monkeypatch, tmp_path):
    class Store:  # AWS Secrets Manager as the settings read it
        def api_key(self, secret_id):
            return {"grow-wow-smtp": "from-the-store"}[secret_id]

    known = {"database_url": f"sqlite:///{tmp_path / 'x.sqlite'}", "grow_api_key": "g", "wow_api_key": "w"}
    monkeypatch.setenv("SMTP_PASSWORD", "from-the-environment")
    assert (
        load_settings(smtp_host="mail.example.org", **known).mail_server().password == "from-the-environment"
    )
    monkeypatch.delenv("SMTP_PASSWORD")
    settings = load_settings(smtp_host="mail.example.org", aws_smtp_secret="grow-wow-smtp", **known)
    updates = settings.secrets_from_store(Store())
    assert updates["smtp_password"].get_secret_value() == "from-the-store"
    assert "from-the-store" not in repr(settings.model_copy(update=updates).mail_server())


def test_a_week_still_faulty_brings_one_reminder_and_being_well_again_one_note(engine, garden):
    """Issue 33: a reminder after a week still faulty, and a "well again" note when it recovers, each
    once, each within the one mail a day."""
    settings, inbox = garden
    night(engine, settings)
    for day in range(1, 7):  # still faulty, but not a week yet: quiet
        night(engine, settings, NOW + dt.timedelta(days=day))
    assert len(inbox.messages) == 1
    night(engine, settings, NOW + dt.timedelta(days=7))
    night(engine, settings, NOW + dt.timedelta(days=8))
    assert len(inbox.messages) == 2
    reminder = inbox.messages[1][1]
    assert reminder["Subject"] == "GROW-WOW: a sensor still needs a look"
    assert "Still not well a week after our mail:" in reminder.get_content()
    assert "Tomato bed (s1): faulty since 2019-06-10" in reminder.get_content()
    with engine.begin() as connection:
        connection.execute(
            update(sensor_health).where(sensor_health.c.sensor_id == "s1").values(status="recovered")
        )
    night(engine, settings, NOW + dt.timedelta(days=9))
    night(engine, settings, NOW + dt.timedelta(days=10))
    assert len(inbox.messages) == 3
    well = inbox.messages[2][1]
    assert well["Subject"] == "GROW-WOW: a sensor is well again"
    assert "Well again:" in well.get_content() and "Tomato bed (s1): recovered" in well.get_content()


def test_an_account_that_turned_alerts_off_hears_nothing_more(engine, garden):
    settings, inbox = garden
    night(engine, settings)
    accounts.set_mail(engine, "olive", alerts=False)
    with engine.begin() as connection:
        connection.execute(
            update(sensor_health).where(sensor_health.c.sensor_id == "s1").values(status="recovered")
        )
    night(engine, settings, NOW + dt.timedelta(days=1))  # no "well again" either
    night(engine, settings, NOW + dt.timedelta(days=8))
    assert len(inbox.messages) == 1


def set_health(engine, sensor: str, status: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(sensor_health).where(sensor_health.c.sensor_id == sensor).values(status=status)
        )


def test_every_mail_carries_a_signed_one_click_unsubscribe_link_and_where_to_answer(engine, garden):
    settings, inbox = garden
    night(engine, settings)
    message = inbox.messages[0][1]
    link = message["List-Unsubscribe"].strip("<>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"  # RFC 8058
    assert link.startswith("https://grow-wow.example.org/unsubscribe/")
    token = link.rsplit("/", 1)[1]
    olive = accounts.list_users(engine)[0]
    assert links.read(LINK_SECRET, Purpose.UNSUBSCRIBE, token) == {"user": olive.user_id}
    assert links.read(LINK_SECRET, Purpose.RESET, token) is None
    text = message.get_content()
    assert f"Stop these mails: {link}" in text
    assert "Not a fault, or fixed it? Say so: https://grow-wow.example.org/sensors/s1#answers" in text


def test_an_owner_who_answered_hears_no_well_again_note(engine, garden):
    settings, inbox = garden
    night(engine, settings)
    with engine.begin() as connection:
        anomaly = {"sensor_id": "s1", "variable": "soil_moisture", "kind": "spike"}
        start = connection.execute(
            select(answers.anomalies.c.start_at).where(answers.anomalies.c.kind == "spike")
        ).scalar_one()
        when = NOW + dt.timedelta(hours=5)
        answers.record_answer(
            connection, {**anomaly, "start_at": start}, "not_a_fault", "gardening", None, None, "olive", when
        )
    set_health(engine, "s1", "recovered")  # the next analysis leaves it well
    night(engine, settings, NOW + dt.timedelta(days=1))
    night(engine, settings, NOW + dt.timedelta(days=2))
    assert len(inbox.messages) == 1  # she said what it was: nothing to tell her
    assert ledger(engine)["outcome"].tolist() == ["answered"]  # and nothing is owed later


def test_a_weekly_account_hears_at_most_once_a_week(engine, garden):
    settings, inbox = garden
    with engine.begin() as connection:
        connection.execute(update(users).where(users.c.username == "olive").values(alert_schedule="weekly"))
    night(engine, settings)
    set_health(engine, "s2", "silent")
    for day in range(1, 7):
        night(engine, settings, NOW + dt.timedelta(days=day))
    assert len(inbox.messages) == 1
    night(engine, settings, NOW + dt.timedelta(days=7))
    assert len(inbox.messages) == 2 and "Lawn (s2): silent" in inbox.messages[1][1].get_content()


def test_an_admin_gets_one_digest_of_the_network_not_a_mail_per_owner(engine, garden):
    settings, inbox = garden
    accounts.create_user(engine, "ada", PASSWORD, "admin", email="ada@example.org")
    set_health(engine, "r1", "silent")
    with engine.begin() as connection:
        connection.execute(update(sensors).where(sensors.c.sensor_id == "s1").values(place="London"))
        connection.execute(update(sensors).where(sensors.c.sensor_id == "r1").values(place="Lyon"))
    night(engine, settings)
    digests = [message for to, message in inbox.messages if to == ["ada@example.org"]]
    assert len(digests) == 1
    text = digests[0].get_content()
    assert digests[0]["Subject"] == "GROW-WOW network digest: 1 faulty, 1 silent"
    assert "Newly faulty: 1" in text and "Newly silent: 1" in text
    assert "Tomato bed (s1), owner owner-a: faulty since 2019-06-10" in text
    assert "Hedge (r1), owner owner-b: silent" in text
    assert "Where most are: London (1), Lyon (1)" in text
    night(engine, settings, NOW + dt.timedelta(hours=3))
    assert len([1 for to, _ in inbox.messages if to == ["ada@example.org"]]) == 1


def test_without_a_link_secret_the_mail_goes_without_its_unsubscribe_link(engine, garden):
    settings, inbox = garden
    night(engine, settings.model_copy(update={"mail_link_secret": None}))
    message = inbox.messages[0][1]
    assert message["List-Unsubscribe"] is None
    assert "Ask your operator to stop these mails." in message.get_content()


def test_episodes_closed_over_a_year_ago_are_forgotten_and_open_ones_kept(engine, garden):
    settings, _ = garden
    night(engine, settings)  # s1's episode: sent, still faulty
    long_ago = NOW - dt.timedelta(days=500)
    with engine.begin() as connection:
        olive = connection.scalar(select(users.c.user_id).where(users.c.username == "olive"))
        for sensor, outcome, recovered in [("s2", "sent", long_ago), ("r1", "stale", None)]:
            connection.execute(
                mail_ledger.insert().values(
                    user_id=olive,
                    sensor_id=sensor,
                    status="faulty",
                    since=long_ago,
                    queued_at=long_ago,
                    sent_at=long_ago if outcome == "sent" else None,
                    outcome=outcome,
                    recovered_at=recovered,
                )
            )
        connection.execute(
            update(mail_ledger).where(mail_ledger.c.sensor_id == "s1").values(queued_at=long_ago)
        )
    night(engine, settings, NOW + dt.timedelta(days=1))
    assert ledger(engine)["sensor_id"].tolist() == ["s1"]  # still faulty: kept, however old


def test_a_fault_that_goes_on_night_after_night_is_one_episode_one_mail_one_reminder(engine, garden):
    """Review of issue 33: the last anomaly's end moves each night while a fault goes on (detection
    extends it); that is the same episode, not a new one to mail."""
    settings, inbox = garden
    night(engine, settings)
    for day in range(1, 9):
        with engine.begin() as connection:
            connection.execute(
                update(sensor_health)
                .where(sensor_health.c.sensor_id == "s1")
                .values(last_anomaly_at=NOW + dt.timedelta(days=day, hours=-3))
            )
        night(engine, settings, NOW + dt.timedelta(days=day))
    subjects = [message["Subject"] for _, message in inbox.messages]
    assert subjects == ["GROW-WOW: a sensor needs a look", "GROW-WOW: a sensor still needs a look"]
    set_health(engine, "s1", "recovered")
    night(engine, settings, NOW + dt.timedelta(days=10))
    well = inbox.messages[-1][1].get_content()
    assert well.count("Tomato bed (s1)") == 1 and len(ledger(engine)) == 1


def test_an_answered_episode_still_going_is_never_forgotten_nor_mailed_again(engine, garden):
    settings, inbox = garden
    night(engine, settings)
    with engine.begin() as connection:  # she pauses it on reading the mail, and it never comes back
        later = NOW + dt.timedelta(hours=1)
        answers.add_pause(connection, "s1", later, later + dt.timedelta(days=7), None, None, "olive", later)
    night(engine, settings, NOW + dt.timedelta(days=1))
    for days in (401, 402, 403):
        night(engine, settings, NOW + dt.timedelta(days=days))
    assert len(inbox.messages) == 1
    assert ledger(engine)["outcome"].tolist() == ["answered"]


def test_a_pause_planned_for_later_does_not_count_as_an_answer_until_it_begins(engine, garden):
    settings, inbox = garden
    night(engine, settings)
    with engine.begin() as connection:  # a holiday next month
        start = NOW + dt.timedelta(days=30)
        later = NOW + dt.timedelta(hours=1)
        answers.add_pause(connection, "s1", start, start + dt.timedelta(days=14), None, None, "olive", later)
    night(engine, settings, NOW + dt.timedelta(days=8))
    assert [m["Subject"] for _, m in inbox.messages][-1] == "GROW-WOW: a sensor still needs a look"


def test_a_sensor_gone_to_another_owner_is_no_longer_told_to_the_first(engine, garden):
    settings, inbox = garden
    night(engine, settings)
    with engine.begin() as connection:
        connection.execute(update(sensors).where(sensors.c.sensor_id == "s1").values(owner_id="owner-z"))
    set_health(engine, "s1", "recovered")
    night(engine, settings, NOW + dt.timedelta(days=1))
    assert len(inbox.messages) == 1  # no "well again" about someone else's sensor


def test_the_advice_follows_the_latest_fault_the_owner_did_not_explain(engine, garden):
    settings, inbox = garden
    with engine.begin() as connection:  # the spike (its latest fault) was the owner's watering can
        spike = {"sensor_id": "s1", "variable": "soil_moisture", "kind": "spike"}
        start = connection.execute(
            select(answers.anomalies.c.start_at).where(answers.anomalies.c.kind == "spike")
        ).scalar_one()
        answers.record_answer(
            connection, {**spike, "start_at": start}, "not_a_fault", "watering", None, None, "olive", NOW
        )
    night(engine, settings)
    assert "Try: move it out of direct sun or the greenhouse" in inbox.messages[0][1].get_content()
