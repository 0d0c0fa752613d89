"""Accounts people make and keep themselves (issue 33), on both engines, with the real back end and a real
SMTP server on loopback: sign up by mail, claim sensors by a serial number, reset a password by mail,
the account page, one-click unsubscribe; no account enumeration, rate limits, and an unclaimed account
that sees nothing."""

import logging
import re

import pytest
from flask import url_for
from flask_login import current_user
from itsdangerous.timed import TimestampSigner
from sqlalchemy import select, update

from core import links
from core.schema import sensors, users
from flask_back_end import create_app as create_back_end
from flask_back_end.settings import load_settings as back_end_settings
from flask_front_end import accounts, before_claiming, is_public, opens_before_claiming
from flask_front_end import create_app as create_front_end
from flask_front_end.claim import same_serial
from flask_front_end.settings import load_settings
from tests.factories import TOKEN, seed
from tests.web.test_front_end import PASSWORD, csrf_token, log_in

# Many pages, mails and accounts on both engines: `make test` and CI run these; `make test-fast` not.
pytestmark = pytest.mark.slow

LINK_SECRET = "test-secret-for-links-in-mails"
NEW_PASSWORD = "a brand new password"
# As printed on each seeded sensor: olive's (owner-a) s1 and s2, someone else's (owner-b) r1 and 0042.
SERIALS = {"s1": "GW-00A1-7731", "s2": "GW-00A1-7732", "r1": "GW-00B2-1101", "0042": "GW-00B2-1102"}


@pytest.fixture
def cheap_scrypt(monkeypatch):
    """Passwords hashed at a 32nd of scrypt's cost, as tests/web/test_front_end.py does."""
    real = accounts.generate_password_hash

    def cheap(password, method="scrypt", salt_length=16):
        return real(
            password, method="scrypt:1024:8:1" if method == "scrypt" else method, salt_length=salt_length
        )

    monkeypatch.setattr(accounts, "generate_password_hash", cheap)


@pytest.fixture
def front_settings(settings, engine, serve, cheap_scrypt, smtp_server):
    """A front end's settings: the back end on the seeded database (with serial numbers) on loopback,
    and mail through the SMTP server on loopback."""
    seed(engine)
    with engine.begin() as connection:
        for sensor_id, serial in SERIALS.items():
            connection.execute(
                update(sensors).where(sensors.c.sensor_id == sensor_id).values(serial_number=serial)
            )
    url = settings.database_url.get_secret_value()
    back_end = serve(create_back_end(back_end_settings(database_url=url, backend_token=TOKEN)))
    port, _ = smtp_server
    return dict(
        database_url=url,
        backend_url=back_end,
        backend_token=TOKEN,
        frontend_secret_key="test-secret-key-for-sessions",
        session_cookie_secure=False,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        mail_link_secret=LINK_SECRET,
        dashboard_url="https://grow-wow.example.org",
    )


@pytest.fixture
def inbox(smtp_server):
    return smtp_server[1]


@pytest.fixture
def app(front_settings, engine):
    app = create_front_end(load_settings(**front_settings))
    accounts.create_user(engine, "ada", PASSWORD, "admin", email="ada@example.org")
    accounts.create_user(engine, "olive", PASSWORD, "owner", owner_id="owner-a", email="Olive@Example.org")
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def an_app(front_settings, engine, **changes):
    app = create_front_end(load_settings(**{**front_settings, **changes}))
    accounts.create_user(engine, "olive", PASSWORD, "owner", owner_id="owner-a", email="olive@example.org")
    return app


def mails_to(inbox, address: str) -> list:
    """The mails the SMTP server received for `address` (in any case)."""
    return [m for recipients, m in inbox.messages if address.lower() in {r.lower() for r in recipients}]


def link_in(message, path: str) -> str:
    """The path of the link to `path`... in a mail, which points at DASHBOARD_URL."""
    found = re.search(rf"https://grow-wow\.example\.org({re.escape(path)}[^\s]*)", message.get_content())
    assert found, message.get_content()
    return found.group(1)


def post_form(client, path: str, form: dict, **kwargs):
    return client.post(path, data={**form, "csrf_token": csrf_token(client, path)}, **kwargs)


def ask(client, path: str, email: str, **kwargs):
    """Ask /signup or /reset for a mail to `email`."""
    return post_form(client, path, {"email": email}, **kwargs)


def text_of(answer) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", answer.get_data(as_text=True)).split())


def unclaimed(engine, email="new.owner@example.org") -> accounts.User:
    return accounts.sign_up(engine, email, PASSWORD)


def row_of(engine, username: str):
    with engine.connect() as connection:
        return connection.execute(select(users).where(users.c.username == username)).one()


# --- signing up ------------------------------------------------------------------------------------------
def test_signing_up_confirms_the_address_by_mail_then_logs_in_an_account_that_sees_nothing_yet(
    client, engine, inbox
):
    answer = ask(client, "/signup", "  New.Owner@Example.org ")
    assert answer.status_code == 200 and "a mail is on its way" in text_of(answer)
    (mail,) = mails_to(inbox, "New.Owner@Example.org")
    assert mail["Subject"] == "Confirm your address for GROW–WOW" and mail["From"]
    path = link_in(mail, "/signup/confirm/")
    page = client.get(path)
    assert page.status_code == 200 and 'type="password"' in page.get_data(as_text=True)
    made = post_form(client, path, {"password": NEW_PASSWORD, "repeat": NEW_PASSWORD})
    assert made.status_code == 302 and made.location == "/account/claim"
    row = row_of(engine, "new.owner@example.org")
    assert (row.role, row.owner_id, row.email, row.alerts) == ("owner", None, "New.Owner@Example.org", True)
    # Logged in, and shown nothing but the way to claim its sensors.
    claim_page = client.get("/account/claim")
    assert claim_page.status_code == 200 and "serial number" in text_of(claim_page)
    assert client.get("/data/map").status_code == 403
    assert client.get("/").location == "/account/claim"
    # The password chosen is the account's.
    assert log_in(app_client(client), "new.owner@example.org", NEW_PASSWORD).status_code == 302


def app_client(client):
    return client.application.test_client()


def test_a_confirmation_link_used_again_creates_and_changes_nothing(client, engine, inbox):
    ask(client, "/signup", "new.owner@example.org")
    path = link_in(mails_to(inbox, "new.owner@example.org")[0], "/signup/confirm/")
    post_form(client, path, {"password": NEW_PASSWORD, "repeat": NEW_PASSWORD})
    again = app_client(client)
    opened = again.get(path)
    assert opened.status_code == 302 and opened.location.startswith("/login")
    resent = again.post(path, data={"password": "another password!", "repeat": "another password!"})
    assert resent.status_code in (302, 400)
    assert log_in(app_client(client), "new.owner@example.org", "another password!").status_code == 401
    assert log_in(app_client(client), "new.owner@example.org", NEW_PASSWORD).status_code == 302
    with engine.connect() as connection:
        assert (
            connection.scalar(select(users.c.user_id).where(users.c.username.like("new.owner%"))) is not None
        )
        assert len(connection.execute(select(users.c.user_id)).all()) == 3


def test_known_and_unknown_addresses_get_byte_identical_answers_and_the_known_one_a_reminder(
    app, engine, inbox
):
    known = ask(app.test_client(), "/signup", "OLIVE@example.org")
    unknown = ask(app.test_client(), "/signup", "nobody.yet@example.org")
    assert known.status_code == unknown.status_code == 200
    assert known.get_data() == unknown.get_data()
    (reminder,) = mails_to(inbox, "OLIVE@example.org")
    assert reminder["Subject"] == "You already have a GROW–WOW account"
    body = reminder.get_content()
    assert "https://grow-wow.example.org/login" in body and "https://grow-wow.example.org/reset" in body
    assert "/signup/confirm/" not in body
    assert "/signup/confirm/" in mails_to(inbox, "nobody.yet@example.org")[0].get_content()
    with engine.connect() as connection:  # nothing is made until the link is followed
        assert len(connection.execute(select(users.c.user_id)).all()) == 2


@pytest.mark.parametrize("path", ["/signup", "/reset"])
@pytest.mark.parametrize(
    "typed", ["a@example.org\r\nBcc: many@example.org", "a@example.org\nx", "not an address", "", "@x.org"]
)
def test_an_address_with_a_line_break_or_none_at_all_is_refused_by_the_form(client, inbox, path, typed):
    answer = ask(client, path, typed)
    assert answer.status_code == 400
    assert re.search(r'role="alert"[^>]*>[^<]*(address|required)', answer.get_data(as_text=True), re.I)
    assert 'aria-invalid="true"' in answer.get_data(as_text=True)
    assert inbox.messages == []


def test_a_signup_address_too_long_to_name_an_account_is_refused(client, inbox):
    answer = ask(client, "/signup", "a" * 60 + "@example.org")
    assert answer.status_code == 400 and inbox.messages == []


# --- an account that has not claimed its sensors sees nothing ------------------------------------------
def test_an_unclaimed_owner_is_asked_whose_sensors_it_sees_and_never_answers_everyones():
    admin = accounts.User(1, "ada", "admin", None, True)
    owner = accounts.User(2, "olive", "owner", "owner-a", True)
    new = accounts.User(3, "new@example.org", "owner", None, True)
    assert admin.sees_owner is None and owner.sees_owner == "owner-a"
    assert new.unclaimed and not owner.unclaimed and not admin.unclaimed
    with pytest.raises(accounts.Unclaimed):
        new.sees_owner  # noqa: B018 — the property is the test


def test_an_unclaimed_account_sees_no_sensor_map_csv_or_count_by_any_route(app, client, engine):
    """Every route of the app (from its url_map, so a new one cannot escape) but the account's own pages:
    a page sends an unclaimed account to claim, /data/ answers 403, and no answer names a sensor."""
    unclaimed(engine)
    log_in(client, "new.owner@example.org")
    token = csrf_token(client, "/account")
    ids = {"sensor_id": "s1", "owner_id": "owner-a", "pause_id": 1, "day": "2019-06-03", "source": "grow"}
    ids["name"] = "manifest.json"
    asked = 0
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if is_public(view) or opens_before_claiming(view):
            continue
        with app.test_request_context():
            path = url_for(rule.endpoint, **{name: ids[name] for name in rule.arguments})
        for method in rule.methods - {"OPTIONS", "HEAD"}:
            answer = client.open(
                path, method=method, data={"csrf_token": token} if method == "POST" else None
            )
            body = answer.get_data(as_text=True)
            if path.startswith("/data/"):
                assert answer.status_code == 403 and answer.json["error"] == "forbidden", (method, path)
            else:
                assert answer.status_code == 302 and answer.location == "/account/claim", (method, path)
            for secret in ("s1", "Tomato bed", "High Street", "owner-a", *SERIALS.values()):
                assert secret not in body, (path, secret)
            asked += 1
    assert asked >= 15  # the pages, downloads and /data/ routes of today
    # What it may open shows none of the network either: its account pages.
    for path in ("/account", "/account/claim"):
        page = client.get(path).get_data(as_text=True)
        assert "Tomato bed" not in page and "The network" not in page and "owner None" not in page, path


def test_a_route_open_before_claiming_that_asks_whose_sensors_still_shows_an_unclaimed_account_none(
    front_settings, engine
):
    """Belt and braces: a route marked by mistake, which asks `sees_owner`, is answered as the guard
    answers, never with everyone's sensors."""
    app = an_app(front_settings, engine)

    @app.get("/careless")
    @before_claiming
    def careless():
        return {"owner": current_user.sees_owner}

    @app.get("/data/careless")
    @before_claiming
    def careless_data():
        return {"owner": current_user.sees_owner}

    client = app.test_client()
    log_in(client, unclaimed(engine).username)
    assert client.get("/careless").location == "/account/claim"
    assert client.get("/data/careless").status_code == 403
    olive = app.test_client()
    log_in(olive, "olive")
    assert olive.get("/careless").json == {"owner": "owner-a"}


def test_the_routes_an_unclaimed_account_may_open_are_its_account_pages_and_logging_out(app):
    opened = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if opens_before_claiming(app.view_functions[rule.endpoint])
        and not is_public(app.view_functions[rule.endpoint])
    }
    assert opened == {
        "account.page",
        "account.preferences",
        "account.password",
        "account.address",
        "claim.page",
        "auth.logout",
        "auth.logout_everywhere",
    }


# --- claiming sensors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "typed, printed, same",
    [
        ("GW-00A1-7731", "GW-00A1-7731", True),
        ("  gw-00a1-7731 ", "GW-00A1-7731", True),
        ("GW-00A1-7731", " GW-00A1-7731\t", True),
        ("GW-00A1-773", "GW-00A1-7731", False),
        ("GW-00A1-7731", None, False),
        ("", "", False),
        ("  ", " ", False),
    ],
)
def test_serials_are_compared_trimmed_and_in_any_case(typed, printed, same):
    assert same_serial(typed, printed) is same


def claim(client, owner_id: str, serial: str, **kwargs):
    return post_form(client, "/account/claim", {"owner_id": owner_id, "serial_number": serial}, **kwargs)


def test_claiming_with_a_serial_of_the_owner_shows_the_owners_sensors(client, engine):
    new = unclaimed(engine)
    log_in(client, new.username)
    answer = claim(client, " owner-a ", " gw-00a1-7732 ")
    assert answer.status_code == 302 and answer.location == "/"
    assert row_of(engine, new.username).owner_id == "owner-a"
    assert [row[0] for row in client.get("/data/map").json["rows"]] == ["s1", "s2"]
    home = client.get("/").get_data(as_text=True)
    assert "Your sensors" in home and "<b>2</b> sensors" in home
    assert client.get("/sensors/r1").status_code == 404  # still nobody else's
    assert claim(client, "owner-b", SERIALS["r1"]).status_code == 400  # and no second owner
    assert row_of(engine, new.username).owner_id == "owner-a"


def refusal(answer) -> str:
    return re.search(r'role="alert"[^>]*>([^<]+)<', answer.get_data(as_text=True)).group(1).strip()


def test_a_wrong_owner_id_or_serial_gets_one_and_the_same_refusal(client, engine):
    new = unclaimed(engine)
    log_in(client, new.username)
    answers = [
        claim(client, "owner-a", "GW-00A1-7739"),  # no such serial
        claim(client, "owner-a", SERIALS["r1"]),  # another owner's sensor
        claim(client, "owner-b", SERIALS["s1"]),  # another owner, this one's serial
        claim(client, "owner-z", SERIALS["s1"]),  # no such owner
        claim(client, "../owner-a", SERIALS["s1"]),  # no owner id at all
    ]
    assert {answer.status_code for answer in answers} == {400}
    assert len({refusal(answer) for answer in answers}) == 1
    assert "serial" in refusal(answers[0]).lower()
    for answer in answers:  # the serial typed is not sent back
        assert not any(serial in answer.get_data(as_text=True) for serial in SERIALS.values())
    assert row_of(engine, new.username).owner_id is None
    assert client.get("/data/map").status_code == 403


def test_claiming_is_rate_limited_per_account_and_per_client_address(front_settings, engine):
    app = an_app(
        front_settings,
        engine,
        claim_rate_limit="2 per hour",
        claim_address_rate_limit="3 per hour",
        proxy_hops=1,
    )
    first, second = unclaimed(engine, "first@example.org"), unclaimed(engine, "second@example.org")
    guesser, other = app.test_client(), app.test_client()
    log_in(guesser, first.username)
    log_in(other, second.username)
    here = {"headers": {"X-Forwarded-For": "203.0.113.5"}}
    codes = [
        claim(guesser, "owner-a", f"GW-{i}", headers={"X-Forwarded-For": f"198.51.100.{i}"}) for i in range(3)
    ]
    assert [answer.status_code for answer in codes] == [400, 400, 429]  # the account's limit, wherever from
    assert "account" in text_of(codes[-1])
    assert claim(guesser, "owner-a", SERIALS["s1"]).status_code == 429  # even the right serial waits
    assert [claim(other, "owner-a", f"GW-{i}", **here).status_code for i in range(2)] == [400, 400]
    third = unclaimed(engine, "third@example.org")
    another = app.test_client()
    log_in(another, third.username)
    assert claim(another, "owner-a", "GW-x", **here).status_code == 400
    assert claim(another, "owner-a", SERIALS["s1"], **here).status_code == 429  # the address's limit
    assert row_of(engine, third.username).owner_id is None


# --- resetting a password --------------------------------------------------------------------------------
def reset_link(client, inbox, address="olive@example.org") -> str:
    ask(client, "/reset", address)
    return link_in(mails_to(inbox, address)[-1], "/reset/")


def test_a_password_is_reset_through_the_link_in_a_mail_which_works_once(app, client, engine, inbox):
    elsewhere = app.test_client()
    log_in(elsewhere, "olive")
    answer = ask(client, "/reset", "OLIVE@EXAMPLE.ORG")
    assert answer.status_code == 200 and "a mail is on its way" in text_of(answer)
    (mail,) = mails_to(inbox, "Olive@Example.org")  # to the address as the account has it
    assert mail["Subject"] == "Reset your GROW–WOW password" and "olive" in mail.get_content()
    path = link_in(mail, "/reset/")
    assert 'type="password"' in client.get(path).get_data(as_text=True)
    done = post_form(client, path, {"password": NEW_PASSWORD, "repeat": NEW_PASSWORD})
    assert done.status_code == 302 and done.location == "/login"
    assert log_in(app.test_client(), "olive").status_code == 401
    assert log_in(app.test_client(), "olive", NEW_PASSWORD).status_code == 302
    assert elsewhere.get("/data/map").status_code == 401  # every login of the account ended
    # The link worked once: used again, it is refused and changes nothing.
    again = client.get(path)
    assert again.status_code == 400 and "no longer works" in text_of(again)
    refused = app.test_client().post(
        path, data={"password": "third password!!", "repeat": "third password!!"}
    )
    assert refused.status_code == 400
    assert log_in(app.test_client(), "olive", NEW_PASSWORD).status_code == 302


def test_a_reset_link_expires_after_an_hour(client, inbox, monkeypatch):
    path = reset_link(client, inbox)
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 3590)
    assert client.get(path).status_code == 200
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 3610)
    expired = client.get(path)
    assert expired.status_code == 400 and "no longer works" in text_of(expired)
    assert post_form(client, "/reset", {"email": "x@example.org"}).status_code == 200  # asking again works


def test_a_confirmation_link_expires_after_a_day(client, inbox, monkeypatch):
    ask(client, "/signup", "late@example.org")
    path = link_in(mails_to(inbox, "late@example.org")[0], "/signup/confirm/")
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 24 * 3600 + 60)
    assert client.get(path).status_code == 400


def test_a_reset_link_stops_working_when_the_address_changes_or_the_account_is_disabled(
    client, engine, inbox
):
    path = reset_link(client, inbox)
    accounts.set_mail(engine, "olive", email="olive@elsewhere.example")
    assert client.get(path).status_code == 400
    path = reset_link(client, inbox, "olive@elsewhere.example")
    accounts.set_active(engine, "olive", False)
    assert client.get(path).status_code == 400


def signed(purpose, payload, secret=LINK_SECRET) -> str:
    return links.sign(secret, purpose, payload)


def test_forged_altered_and_other_purposes_tokens_are_refused(client, engine, inbox):
    olive = row_of(engine, "olive")
    fits = accounts.fingerprint(olive.password_hash, olive.email)
    genuine = signed(links.Purpose.RESET, {"user": olive.user_id, "fingerprint": fits})
    assert client.get(f"/reset/{genuine}").status_code == 200
    for token in [
        signed(links.Purpose.RESET, {"user": olive.user_id, "fingerprint": fits}, "another secret"),
        signed(links.Purpose.CONFIRM, {"user": olive.user_id, "fingerprint": fits}),
        signed(links.Purpose.UNSUBSCRIBE, {"user": olive.user_id, "fingerprint": fits}),
        signed(links.Purpose.RESET, {"user": olive.user_id, "fingerprint": "0" * 32}),
        signed(links.Purpose.RESET, {"user": olive.user_id}),
        genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"),
        "not-a-token",
    ]:
        answer = client.get(f"/reset/{token}")
        assert answer.status_code == 400 and 'type="password"' not in answer.get_data(as_text=True), token
    for token in [
        signed(links.Purpose.CONFIRM, {"email": "x@example.org"}, "another secret"),
        signed(links.Purpose.RESET, {"email": "x@example.org"}),
        signed(links.Purpose.CONFIRM, {"email": "x@example.org\r\nBcc: y@example.org"}),
        signed(links.Purpose.CONFIRM, {"user": olive.user_id, "new_email": "x@example.org"}),
    ]:
        assert client.get(f"/signup/confirm/{token}").status_code == 400, token
    assert (
        client.get(f"/signup/confirm/{signed(links.Purpose.CONFIRM, {'email': 'x@example.org'})}").status_code
        == 200
    )


def test_reset_answers_known_and_unknown_addresses_byte_identically_and_mails_each_account_at_one(
    app, engine, inbox
):
    accounts.create_user(
        engine, "olive-work", PASSWORD, "owner", owner_id="owner-b", email="olive@example.org"
    )
    accounts.create_user(
        engine, "olive-old", PASSWORD, "owner", owner_id="owner-b", email="olive@example.org"
    )
    accounts.set_active(engine, "olive-old", False)
    known = ask(app.test_client(), "/reset", "olive@example.org")
    unknown = ask(app.test_client(), "/reset", "stranger@example.org")
    assert known.status_code == unknown.status_code == 200 and known.get_data() == unknown.get_data()
    names = sorted(
        re.search(r"account (\S+)", m.get_content()).group(1) for m in mails_to(inbox, "olive@example.org")
    )
    assert names == ["olive", "olive-work"]  # each active account at the address, none disabled
    (nothing,) = mails_to(inbox, "stranger@example.org")
    assert (
        "/reset/" not in nothing.get_content()
        and "https://grow-wow.example.org/signup" in nothing.get_content()
    )


# --- rate limits on asking for mail ----------------------------------------------------------------------
def test_sign_up_and_reset_are_limited_per_client_address(front_settings, engine, inbox):
    app = an_app(front_settings, engine, signup_rate_limit="2 per minute", reset_rate_limit="2 per minute")
    client = app.test_client()
    assert [ask(client, "/signup", f"n{i}@example.org").status_code for i in range(3)] == [200, 200, 429]
    assert [ask(client, "/reset", f"r{i}@example.org").status_code for i in range(3)] == [200, 200, 429]
    assert len(inbox.messages) == 4


def test_one_inbox_gets_only_so_many_mails_whoever_asks(front_settings, engine, inbox):
    app = an_app(front_settings, engine, inbox_rate_limit="2 per hour", proxy_hops=1)
    client = app.test_client()

    def from_(i):
        return {"headers": {"X-Forwarded-For": f"203.0.113.{i}"}}

    assert ask(client, "/signup", "victim@example.org", **from_(1)).status_code == 200
    assert ask(client, "/reset", "VICTIM@example.org", **from_(2)).status_code == 200
    refused = ask(client, "/signup", "victim@example.org", **from_(3))
    assert refused.status_code == 429 and "address" in text_of(refused)
    assert ask(client, "/reset", "victim@example.org", **from_(4)).status_code == 429
    assert len(mails_to(inbox, "victim@example.org")) == 2
    assert ask(client, "/signup", "someone.else@example.org", **from_(3)).status_code == 200


# --- without mail, or with a mail server that refuses ----------------------------------------------------
@pytest.mark.parametrize("missing", ["smtp_host", "mail_link_secret"])
def test_without_mail_set_up_sign_up_and_reset_say_the_operator_makes_accounts(
    front_settings, engine, missing
):
    app = an_app(front_settings, engine, **{missing: None})
    client = app.test_client()
    for path in ("/signup", "/reset"):
        page = client.get(path)
        assert page.status_code == 200 and "cannot send mail" in text_of(page), path
        assert "made by its operator" in text_of(page)
        asked = client.post(path, data={"email": "olive@example.org", "csrf_token": csrf_token(client)})
        assert asked.status_code == 200 and "cannot send mail" in text_of(asked)
    login = client.get("/login").get_data(as_text=True)
    assert 'href="/signup"' not in login and 'href="/reset"' not in login


def test_the_login_page_links_to_sign_up_and_reset_when_mail_is_set_up(client):
    page = client.get("/login").get_data(as_text=True)
    assert 'href="/signup"' in page and 'href="/reset"' in page


def test_a_mail_server_that_refuses_gets_a_try_later_page_alike_for_known_and_unknown(app, inbox, caplog):
    inbox.refusing = True
    with caplog.at_level(logging.WARNING):
        answers = [
            ask(app.test_client(), "/signup", "olive@example.org"),
            ask(app.test_client(), "/signup", "nobody.yet@example.org"),
            ask(app.test_client(), "/reset", "olive@example.org"),
            ask(app.test_client(), "/reset", "nobody.yet@example.org"),
        ]
    assert {answer.status_code for answer in answers} == {503}
    assert answers[0].get_data() == answers[1].get_data() and answers[2].get_data() == answers[3].get_data()
    assert "could not send" in text_of(answers[0]) and "try again later" in text_of(answers[0])
    assert "451" in caplog.text and "mail" in caplog.text
    assert (
        LINK_SECRET not in caplog.text
        and "/signup/confirm/" not in caplog.text
        and "/reset/" not in caplog.text
    )
    assert "nobody.yet@example.org" not in caplog.text


# --- the account page -------------------------------------------------------------------------------------
def test_the_account_page_shows_the_address_and_changes_alerts_schedule_and_language(client, engine):
    log_in(client, "olive")
    page = client.get("/account")
    assert page.status_code == 200 and "Olive@Example.org" in page.get_data(as_text=True)
    form = {"alerts": "", "alert_schedule": "weekly", "language": "el"}
    token = csrf_token(client, "/account")
    answer = client.post("/account/preferences", data={**form, "csrf_token": token})
    assert answer.status_code == 302 and answer.location == "/account"
    row = row_of(engine, "olive")
    assert (row.alerts, row.alert_schedule, row.language) == (False, "weekly", "el")
    for bad in (
        {"alert_schedule": "hourly", "language": "en"},
        {"alert_schedule": "nightly", "language": "xx"},
    ):
        assert client.post("/account/preferences", data={**bad, "csrf_token": token}).status_code == 400
    back = client.post(
        "/account/preferences",
        data={"alerts": "y", "alert_schedule": "nightly", "language": "fr", "csrf_token": token},
    )
    assert back.status_code == 302
    row = row_of(engine, "olive")
    assert (row.alerts, row.alert_schedule, row.language) == (True, "nightly", "fr")
    assert client.post("/account/preferences", data=form).status_code == 400  # CSRF: no token, no change
    assert row_of(engine, "olive").alerts is True


def test_changing_the_password_needs_the_current_one_and_ends_the_other_logins(app, client, engine):
    elsewhere = app.test_client()
    log_in(elsewhere, "olive")
    log_in(client, "olive")
    token = csrf_token(client, "/account")
    wrong = {
        "current": "not my password",
        "password": NEW_PASSWORD,
        "repeat": NEW_PASSWORD,
        "csrf_token": token,
    }
    refused = client.post("/account/password", data=wrong)
    assert refused.status_code == 400 and "current password" in text_of(refused).lower()
    short = {"current": PASSWORD, "password": "short", "repeat": "short", "csrf_token": token}
    assert client.post("/account/password", data=short).status_code == 400
    right = {**wrong, "current": PASSWORD}
    assert client.post("/account/password", data=right).status_code == 302
    assert client.get("/data/map").status_code == 200  # this browser stays logged in
    assert elsewhere.get("/data/map").status_code == 401
    assert log_in(app.test_client(), "olive", NEW_PASSWORD).status_code == 302


def test_a_new_address_takes_effect_once_confirmed_from_it(client, engine, inbox):
    log_in(client, "olive")
    token = csrf_token(client, "/account")
    bad = client.post(
        "/account/address", data={"email": "x@example.org\r\nBcc: y@example.org", "csrf_token": token}
    )
    assert bad.status_code == 400 and inbox.messages == []
    asked = client.post("/account/address", data={"email": "olive@new.example", "csrf_token": token})
    assert asked.status_code == 302
    assert row_of(engine, "olive").email == "Olive@Example.org"  # not before it is confirmed
    (mail,) = mails_to(inbox, "olive@new.example")
    path = link_in(mail, "/account/address/")
    stranger = app_client(client)  # the link is the proof: any browser, no login
    page = stranger.get(path)
    assert page.status_code == 200 and "olive@new.example" in page.get_data(as_text=True)
    confirmed = post_form(stranger, path, {})
    assert confirmed.status_code == 200 and "olive@new.example" in text_of(confirmed)
    assert row_of(engine, "olive").email == "olive@new.example"
    # Used again after another change, it does not bring the old new address back.
    accounts.set_mail(engine, "olive", email="olive@third.example")
    assert stranger.get(path).status_code == 400
    assert row_of(engine, "olive").email == "olive@third.example"


def test_an_admin_has_an_account_page_too(client):
    log_in(client, "ada")
    page = client.get("/account")
    assert page.status_code == 200 and "ada@example.org" in page.get_data(as_text=True)
    assert "claim" not in text_of(page).lower()


# --- unsubscribing with one click -------------------------------------------------------------------------
def test_unsubscribing_needs_no_login_and_no_csrf_token(client, engine):
    olive = row_of(engine, "olive")
    path = f"/unsubscribe/{signed(links.Purpose.UNSUBSCRIBE, {'user': olive.user_id})}"
    page = client.get(path)
    assert page.status_code == 200 and 'method="post"' in page.get_data(as_text=True)
    assert row_of(engine, "olive").alerts is True  # opening the link (a mail scanner does) changes nothing
    answer = client.post(path, data={"List-Unsubscribe": "One-Click"})  # RFC 8058, as a mail client sends
    assert answer.status_code == 200 and "alerts are off" in text_of(answer).lower()
    assert row_of(engine, "olive").alerts is False
    assert row_of(engine, "ada").alerts is True


def test_an_unsubscribe_link_forged_expired_or_for_another_purpose_changes_nothing(
    client, engine, monkeypatch
):
    olive = row_of(engine, "olive")
    for token in [
        signed(links.Purpose.UNSUBSCRIBE, {"user": olive.user_id}, "another secret"),
        signed(links.Purpose.RESET, {"user": olive.user_id}),
        signed(links.Purpose.UNSUBSCRIBE, {"user": str(olive.user_id)}),
        "made-up",
    ]:
        assert client.get(f"/unsubscribe/{token}").status_code == 400, token
        assert client.post(f"/unsubscribe/{token}").status_code == 400, token
    genuine = f"/unsubscribe/{signed(links.Purpose.UNSUBSCRIBE, {'user': olive.user_id})}"
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 91 * 24 * 3600)
    assert client.post(genuine).status_code == 400
    assert row_of(engine, "olive").alerts is True
