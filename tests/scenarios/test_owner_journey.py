"""An owner's whole journey in a real browser (issue 33), on the data of real nightly runs and a real SMTP
server on loopback: sign up, confirm from the mail the server received, claim the sensors with a serial,
hear of a faulty one by mail, open its charts from the link, answer *not a fault: watering*, and the
next night it is healthy and nothing more is sent; then stop the mails from the mail, logged out.
"""

from __future__ import annotations

import html
import os
import re
import socket
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import init_db, make_engine
from core.schema import anomalies, sensor_health, sensors, users
from core.vocabulary import NOT_FAULTS
from devtools.demo import demo_settings, serve_in_background
from devtools.loopback import serve_on_loopback
from etl.runner import run_nightly
from etl.settings import load_settings
from etl.shard import Shard
from flask_back_end import create_app as create_back_end
from flask_back_end.settings import load_settings as back_end_settings
from flask_front_end import create_app as create_front_end
from flask_front_end.settings import load_settings as front_end_settings
from tests.factories import SIMULATED_END
from tests.scenarios.browsing import PHONE, overflowing, serious_violations

TOKEN = "journey-token"
LINK_SECRET = "the journey's link secret, shared by the night and the dashboard"
ADDRESS = "olive.grower@example.org"
PASSWORD = "my own garden password"


@pytest.fixture
def garden_site(tmp_path, small_network, smtp_server):
    """Both apps on loopback with mail, over the database of one night of the small simulated network
    (20 sensors: a faulty one among them is all the journey needs)."""
    port, inbox = smtp_server
    mail = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "mail_link_secret": LINK_SECRET,
    }
    database_url = f"sqlite:///{tmp_path / 'journey.sqlite'}"
    back = serve_on_loopback(
        create_back_end(back_end_settings(database_url=database_url, backend_token=TOKEN))
    )
    # The links in the dashboard's mails lead to DASHBOARD_URL, never to whatever Host a request named.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        front_port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{front_port}"
    front_settings = front_end_settings(
        database_url=database_url,
        backend_url=f"http://127.0.0.1:{back.port}",
        backend_token=TOKEN,
        frontend_secret_key="journey-session-key",
        session_cookie_secure=False,
        map_tile_url="",
        dashboard_url=url,
        **mail,
    )
    front = serve_on_loopback(create_front_end(front_settings), front_port)
    simulator_url, simulator = serve_in_background(small_network.folder)
    etl = load_settings(
        database_url=database_url, etl_now=SIMULATED_END, http_backoff_s=0.01, dashboard_url=url, **mail
    )
    settings = demo_settings(etl, simulator_url)
    engine = make_engine(settings)
    init_db(engine)
    run_nightly(settings, engine, Shard())
    yield {"url": url, "engine": engine, "settings": settings, "inbox": inbox}
    simulator.shutdown()
    front.shutdown()
    back.shutdown()
    engine.dispose()


def fewest_faults_of_a_faulty_sensor(engine):
    """The faulty sensor with the fewest faults (an owner answers each): its id, owner id and serial."""
    faults = anomalies.c.kind.not_in([kind.value for kind in NOT_FAULTS])
    with engine.connect() as connection:
        return connection.execute(
            select(sensors.c.sensor_id, sensors.c.owner_id, sensors.c.serial_number)
            .join(sensor_health, sensor_health.c.sensor_id == sensors.c.sensor_id)
            .join(anomalies, anomalies.c.sensor_id == sensors.c.sensor_id)
            .where(sensor_health.c.status == "faulty", faults, sensors.c.serial_number.is_not(None))
            .group_by(sensors.c.sensor_id, sensors.c.owner_id, sensors.c.serial_number)
            .order_by(func.count(), sensors.c.sensor_id)
        ).first()


def mails_to(inbox, address: str) -> list:
    return [message for (to, *_), message in inbox.messages if to == address]


def link_in(message, path: str) -> str:
    return re.search(rf"http://127\.0\.0\.1:\d+{path}\S+", message.get_content()).group(0)


def shots() -> Path:
    """Where the pictures go: SCREENSHOT_DIR, else a temporary folder; with UPDATE_SCREENSHOTS=1, docs/
    (the README shows them)."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        return Path(__file__).resolve().parents[2] / "docs"
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tempfile.gettempdir()) / "owner-journey"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def mail_as_page(message) -> str:
    """A received mail as a mail program shows plain text: its headers, then its words."""
    head = "".join(
        f"<b>{name}:</b> {html.escape(str(message[name]))}<br>" for name in ("From", "To", "Subject")
    )
    body = html.escape(message.get_content())
    return (
        '<body style="font: 15px/1.45 sans-serif; margin: 1.2rem; max-width: 52rem">'
        f'<p style="border-bottom: 1px solid #ccc; padding-bottom: .6rem">{head}</p>'
        f'<pre style="white-space: pre-wrap; font: 14px/1.5 monospace">{body}</pre></body>'
    )


def picture(browser, name: str, page_html: str) -> None:
    page = browser.new_context(viewport={"width": 900, "height": 600}).new_page()
    page.set_content(page_html)
    page.screenshot(path=str(shots() / f"{name}.png"), full_page=True)
    page.context.close()


def status_of(engine, sensor_id: str) -> str:
    with engine.connect() as connection:
        return connection.scalar(select(sensor_health.c.status).where(sensor_health.c.sensor_id == sensor_id))


def test_an_owner_signs_up_claims_hears_of_a_fault_answers_it_and_stops_the_mails(browser, garden_site):
    site, engine, inbox = garden_site["url"], garden_site["engine"], garden_site["inbox"]
    sensor = fewest_faults_of_a_faulty_sensor(engine)
    assert sensor is not None, "the simulated night should leave a faulty sensor with a serial"
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    checked = {}

    # Sign up: the address only; the link comes by mail.
    page.goto(f"{site}/reset")
    checked["forgotten password"] = serious_violations(page)
    page.goto(f"{site}/login")
    page.click("text=Sign up")
    checked["sign up"] = serious_violations(page)
    page.fill("input[name=email]", ADDRESS)
    page.click("button[type=submit]")
    [confirmation] = mails_to(inbox, ADDRESS)
    page.goto(link_in(confirmation, "/signup/confirm/"))
    checked["choose a password"] = serious_violations(page)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=repeat]", PASSWORD)
    page.click("button[type=submit]")

    # Claim: the owner id and the serial printed on one sensor.
    page.wait_for_url(re.compile(r"/account/claim$"))
    checked["claim"] = serious_violations(page)
    page.fill("input[name=owner_id]", sensor.owner_id)
    page.fill("input[name=serial_number]", sensor.serial_number.lower())  # as typed off a sticker
    with page.expect_navigation():
        page.click("main button[type=submit]")  # not the header's "log out"
    with engine.connect() as connection:
        claimed = connection.execute(select(users.c.owner_id, users.c.alerts).where(users.c.email == ADDRESS))
        assert claimed.one() == (sensor.owner_id, True)
    page.goto(f"{site}/account")
    checked["account"] = serious_violations(page)

    # The next night tells her: one mail, with the reason and the link to the charts.
    settings = garden_site["settings"]
    run_nightly(settings, engine, Shard())
    [alert] = mails_to(inbox, ADDRESS)[1:]
    text = alert.get_content()
    assert f"({sensor.sensor_id}): faulty" in text and "  Why: " in text and "  Try: " in text
    picture(browser, "alert_mail", mail_as_page(alert))
    page.goto(link_in(alert, f"/sensors/{sensor.sensor_id}"))
    page.wait_for_selector("#sensor-page[data-ready=true]")
    assert page.locator("#chart-soil_moisture").bounding_box()["height"] > 100

    # Not a fault: watering, for each fault the page offers.
    forms = page.locator(".answer-form")
    for index in range(forms.count()):
        form = page.locator(".answer-form").nth(index)
        form.locator("input[value=not_a_fault]").check()
        form.locator("select[name=reason]").select_option("watering")
        with page.expect_navigation():
            form.locator("button[type=submit]").click()
        page.wait_for_selector("#sensor-page[data-ready=true]")
    assert page.locator(".answers .said").count() == forms.count() > 0
    checked["sensor page, answered"] = serious_violations(page)
    page.locator("#answers").screenshot(path=str(shots() / "sensor_answers.png"))

    # The next night leaves it healthy and sends nothing.
    run_nightly(settings, engine, Shard())
    assert status_of(engine, sensor.sensor_id) == "healthy"
    assert len(mails_to(inbox, ADDRESS)) == 2

    # Stop the mails from the mail, with no login in this browser.
    stranger = browser.new_context().new_page()
    stranger.goto(re.search(r"Stop these mails: (\S+)", text).group(1))
    checked["unsubscribe"] = serious_violations(stranger)
    stranger.click("main button[type=submit]")
    with engine.connect() as connection:
        assert connection.scalar(select(users.c.alerts).where(users.c.email == ADDRESS)) is False
    assert errors == []
    assert {name: found for name, found in checked.items() if found} == {}

    # On a phone, the new pages fit the screen.
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    wide = {}
    for path in ("/signup", "/reset", "/login"):
        phone.goto(f"{site}{path}")
        wide[path] = overflowing(phone)
    phone.fill("input[name=username]", ADDRESS)
    phone.fill("input[name=password]", PASSWORD)
    phone.click("main button[type=submit]")
    for path in ("/account", f"/sensors/{sensor.sensor_id}"):
        phone.goto(f"{site}{path}")
        wide[path] = overflowing(phone)
    assert {path: found for path, found in wide.items() if found} == {}
    context.close()
