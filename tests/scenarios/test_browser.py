"""The front end in a real browser (Debian's Chromium driven by Playwright) on the data of a real
nightly run: the simulated network's 50 sensors through the five steps, both apps on loopback.

Each test writes a screenshot of its page to the folder SCREENSHOT_DIR names (to look at them, or to refresh
the README's pictures in docs/ with UPDATE_SCREENSHOTS=1), else to a temporary folder. Where Chromium is
missing the tests are skipped with the reason, except under CI (CI=true), where they fail.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import select, update

from core.db import init_db, make_engine
from core.schema import anomalies, sensor_health, sensor_wow, sensors
from devtools.demo import demo_settings, serve_in_background
from devtools.loopback import serve_on_loopback
from etl.runner import run_nightly
from etl.settings import load_settings
from etl.shard import Shard
from flask_back_end import create_app as create_back_end
from flask_back_end.settings import load_settings as back_end_settings
from flask_front_end import accounts, statuses
from flask_front_end import create_app as create_front_end
from flask_front_end.settings import load_settings as front_end_settings
from tests.factories import SIMULATED_END
from tests.scenarios.browsing import PHONE, overflowing, serious_violations

HOSTILE_NAME = "<img src=x id=pwned-name>"
HOSTILE_ADDRESS = 'Hostile Lane "><img src=x id=pwned-address>'

SCREENSHOTS = [
    "login",
    "login_refused",
    "all_grow_map",
    "sensor_panel",
    "faulty_sensor",
    "owner_map",
    "owner_latest_tables",
    "silent_sensors",
    "phone_map",
    "phone_sensor",
    "phone_owner",
]
PASSWORD = "a demo password"
TOKEN = "browser-test-token"

pytestmark = [
    # Werkzeug's development server leaves a static file open when the browser drops its request early.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def _serve(app) -> tuple[str, object]:
    server = serve_on_loopback(app)
    return f"http://127.0.0.1:{server.port}", server


@contextmanager
def both_apps(database_url: str):
    """The back end and the dashboard on the database, on loopback, with no map tiles: the dashboard's
    address."""
    back_url, back = _serve(
        create_back_end(back_end_settings(database_url=database_url, backend_token=TOKEN))
    )
    front = front_end_settings(
        database_url=database_url,
        backend_url=back_url,
        backend_token=TOKEN,
        frontend_secret_key="browser-test-secret",
        session_cookie_secure=False,
        map_tile_url="",
    )
    front_url, server = _serve(create_front_end(front))
    try:
        yield front_url
    finally:
        server.shutdown()
        back.shutdown()


@pytest.fixture(scope="module")
def site(tmp_path_factory, network_dir):
    """Both apps on the database of one nightly run, with an admin and the owner of a faulty sensor."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'grow_wow.sqlite'}"
    simulator_url, simulator = serve_in_background(network_dir)
    settings = demo_settings(
        load_settings(database_url=database_url, etl_now=SIMULATED_END, http_backoff_s=0.01), simulator_url
    )
    engine = make_engine(settings)
    init_db(engine)
    run_nightly(settings, engine, Shard())
    simulator.shutdown()
    with engine.connect() as connection:
        faulty = connection.execute(
            select(sensors.c.sensor_id, sensors.c.owner_id, sensors.c.address)
            .join(sensor_health)
            .where(sensor_health.c.status == "faulty")
            .order_by(sensors.c.sensor_id)
        ).first()
    assert faulty is not None, "the simulated network should hold a faulty sensor"
    # A volunteer's sensor name and a geocoded address are not ours: make one of each hostile.
    with engine.begin() as connection:
        hostile = connection.scalar(
            select(sensors.c.sensor_id)
            .where(sensors.c.sensor_id != faulty.sensor_id)
            .order_by(sensors.c.sensor_id)
        )
        connection.execute(
            sensors.update()
            .where(sensors.c.sensor_id == hostile)
            .values(name=HOSTILE_NAME, address=HOSTILE_ADDRESS)
        )
        silent, silent_since = silence_a_healthy_sensor(connection, hostile)
        # A condition on the faulty sensor's page: shown, but not as a fault.
        frozen_from = dt.datetime.fromisoformat(SIMULATED_END) - dt.timedelta(days=3)
        connection.execute(
            anomalies.insert().values(
                sensor_id=faulty.sensor_id,
                variable="soil_moisture",
                kind="frozen_soil",
                start_at=frozen_from,
                end_at=frozen_from + dt.timedelta(hours=20),
                score=1.5,
                detector="condition",
                explanation="soil likely frozen: not a fault",
            )
        )
        # A day 2019's model flagged, imported with the 2019 history: shown, in grey, as history.
        connection.execute(
            anomalies.insert().values(
                sensor_id=faulty.sensor_id,
                variable="air_temperature",
                kind="2019-model",
                start_at=frozen_from,
                end_at=frozen_from + dt.timedelta(hours=23, minutes=45),
                detector="model",
                explanation="2019's model flagged this day: its reconstruction error equalled the next day's",
            )
        )
        # Values ISMN's quality control flagged, imported with an ISMN station's file: history too.
        connection.execute(
            anomalies.insert().values(
                sensor_id=faulty.sensor_id,
                variable="soil_moisture",
                kind="ismn-flag",
                start_at=frozen_from + dt.timedelta(hours=2),
                end_at=frozen_from + dt.timedelta(hours=14),
                detector="rule",
                explanation="ISMN flagged D10: a saturated plateau of 12 h or more",
            )
        )
        health = dict(connection.execute(select(sensor_health.c.sensor_id, sensor_health.c.status)).all())
        owners = dict(connection.execute(select(sensors.c.sensor_id, sensors.c.owner_id)).all())
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    accounts.create_user(engine, "olive", PASSWORD, "owner", owner_id=faulty.owner_id)

    back_url, back = _serve(
        create_back_end(back_end_settings(database_url=database_url, backend_token=TOKEN))
    )
    front_settings = front_end_settings(
        database_url=database_url,
        backend_url=back_url,
        backend_token=TOKEN,
        frontend_secret_key="browser-test-secret",
        session_cookie_secure=False,
        map_tile_url="",  # no tiles: every request must stay on the app's own host
        login_rate_limit="1000 per minute",  # every test logs in from 127.0.0.1
    )
    front_url, front = _serve(create_front_end(front_settings))
    yield {
        "url": front_url,
        "engine": engine,
        "faulty": faulty.sensor_id,
        "owner": faulty.owner_id,
        "address": faulty.address,
        "hostile": hostile,
        "silent": silent,
        "silent_since": silent_since,
        "statuses": {s: health.get(s, statuses.UNCHECKED) for s in owners},
        "owners": owners,
    }
    front.shutdown()
    back.shutdown()
    engine.dispose()


CROWD = 6_500  # GROW's network at its largest


@pytest.fixture(scope="module")
def crowded_site(tmp_path_factory):
    """Both apps on a network of GROW's size: 6,500 located sensors with their health, and an admin."""
    import numpy as np
    import pandas as pd

    from core.load import bulk_upsert

    database_url = f"sqlite:///{tmp_path_factory.mktemp('crowded') / 'grow_wow.sqlite'}"
    engine = make_engine(load_settings(database_url=database_url))
    init_db(engine)
    rng = np.random.default_rng(6500)
    ids = [f"{i:08x}" for i in rng.choice(2**32, CROWD, replace=False)]
    status = rng.choice(["healthy", "faulty", "recovered", "silent"], CROWD, p=[0.75, 0.1, 0.1, 0.05])
    with engine.begin() as connection:
        located = {
            "sensor_id": ids,
            "owner_id": [f"owner-{i % 900:03d}" for i in range(CROWD)],
            "latitude": rng.uniform(36, 60, CROWD).round(5),
            "longitude": rng.uniform(-9, 25, CROWD).round(5),
        }
        bulk_upsert(connection, sensors, pd.DataFrame(located))
        bulk_upsert(connection, sensor_health, pd.DataFrame({"sensor_id": ids, "status": status}))
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    with both_apps(database_url) as front_url:
        yield {"url": front_url}
    engine.dispose()


NETWORK = 100_000  # a region's senseBoxes (issue 34)


@pytest.fixture(scope="module")
def network_site(tmp_path_factory):
    """Both apps on 100,000 located sensors with their health (no readings), and an admin: the sensors'
    ids, positions and statuses besides."""
    import numpy as np
    import pandas as pd

    from core.load import bulk_upsert

    database_url = f"sqlite:///{tmp_path_factory.mktemp('network') / 'grow_wow.sqlite'}"
    engine = make_engine(load_settings(database_url=database_url))
    init_db(engine)
    rng = np.random.default_rng(34)
    located = pd.DataFrame(
        {
            "sensor_id": [f"n{i:06d}" for i in range(NETWORK)],
            "owner_id": [f"owner-{i % 5000:04d}" for i in range(NETWORK)],
            "latitude": rng.uniform(36, 60, NETWORK).round(5),
            "longitude": rng.uniform(-9, 25, NETWORK).round(5),
        }
    )
    located["status"] = rng.choice(
        ["healthy", "faulty", "recovered", "silent", "paused"], NETWORK, p=[0.7, 0.1, 0.1, 0.05, 0.05]
    )
    with engine.begin() as connection:
        bulk_upsert(connection, sensors, located.drop(columns="status"))
        bulk_upsert(connection, sensor_health, located[["sensor_id", "status"]])
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    with both_apps(database_url) as front_url:
        yield {"url": front_url, "sensors": located}
    engine.dispose()


def rings(page) -> list[dict[str, int]]:
    """Each cluster on the map as its ring shows it: sensors per status, read from its arcs (and checked
    against its number and its tooltip)."""
    drawn = page.locator(".marker-cluster").evaluate_all(
        "els => els.map(e => [e.firstElementChild.title, e.firstElementChild.style.backgroundImage,"
        " e.querySelector('span').textContent])"
    )
    colours = {rgb(look.colour): look.value for look in statuses.LOOKS}
    shown = []
    for title, ring, number in drawn:
        count = int(number)
        stops = {}  # the browser writes each arc as two stops of its colour
        for colour, degrees in re.findall(r"(rgb\([^)]*\)) ([\d.]+)deg", ring):
            stops.setdefault(colours[colour], []).append(float(degrees))
        tally = {status: round((max(d) - min(d)) / 360 * count) for status, d in stops.items()}
        words = re.findall(r"(\d[\d,]*) (\w+)", title.split(":", 1)[1])
        assert {s: n for s, n in tally.items() if n} == {s: int(n.replace(",", "")) for n, s in words}
        assert sum(tally.values()) == count, (title, ring)
        shown.append(tally)
    return shown


def test_a_map_of_100000_sensors_opens_light_its_rings_are_the_statuses_inside_and_it_zooms_to_markers(
    browser, network_site
):
    """Issue 34: the first paint of 100,000 sensors (page, scripts, the views' answers; on the wire, an
    empty cache) stays under 300 kB; each ring's shares are the statuses of the sensors inside its
    cluster (its bounds, from the answer, hold exactly them: a grid cell's); a cluster opens down to
    single markers, each with its sensor's status."""
    sensors = network_site["sensors"]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, network_site)
    page.wait_for_selector("#map[data-ready=true]")
    wire = context.new_cdp_session(page)
    wire.send("Network.enable")
    wire.send("Network.clearBrowserCache")
    sent, views = {}, []
    wire.on("Network.loadingFinished", lambda e: sent.update({e["requestId"]: e["encodedDataLength"]}))
    page.on("response", lambda r: "/data/map/view" in r.url and r.status == 200 and views.append(r))
    page.goto(f"{network_site['url']}/all_grow_map")
    page.wait_for_selector("#map[data-ready=true]")
    page.wait_for_load_state("networkidle")
    print(f"first paint of {NETWORK:,} sensors: {sum(sent.values()) / 1000:.1f} kB in {len(sent)} requests")
    assert 0 < sum(sent.values()) <= 300_000, sum(sent.values())
    # Every sensor is on the first paint (the map fits the network), in a cluster or alone.
    assert wait_for_markers(page, NETWORK) == NETWORK
    assert (
        int(page.inner_text("[data-count=faulty]").replace(",", "")) == (sensors["status"] == "faulty").sum()
    )
    answer = views[-1].json()
    clusters = [dict(zip(answer["clusters"]["fields"], row)) for row in answer["clusters"]["rows"]]
    inside = []
    for cluster in clusters:
        west, south, east, north = cluster["bounds"]
        within = sensors[sensors.longitude.between(west, east) & sensors.latitude.between(south, north)]
        assert len(within) == cluster["count"]
        inside.append(within["status"].value_counts().to_dict())
    key = lambda tally: sorted(tally.items())  # noqa: E731
    assert sorted(map(key, rings(page))) == sorted(map(key, inside))
    assert covered(page) == []  # neighbouring rings fan out: each can be clicked
    # Into the first cluster until the sensors stand alone: each marker wears its sensor's status.
    for _ in range(12):
        if not page.locator(".marker-cluster").count():
            break
        into_first_cluster(page)
    assert int(page.get_attribute("#map", "data-zoom")) >= 12
    titles = page.locator(".sensor-marker").evaluate_all("els => els.map(e => e.title)")
    assert titles
    status_of = dict(zip(sensors["sensor_id"], sensors["status"]))
    for title in titles:
        sensor_id, status = re.fullmatch(r"(\S+) \((.+)\)", title).groups()
        assert statuses.BY_VALUE[status_of[sensor_id]].label.lower() == status, title
    assert errors == []
    context.close()


def silence_a_healthy_sensor(connection, besides: str) -> tuple[str, str]:
    """Mark one healthy sensor silent, as the nightly analysis does when a sensor stops sending: its id,
    and its last reading as the sensor page shows it (UTC, to the minute)."""
    row = connection.execute(
        select(sensor_health.c.sensor_id, sensor_health.c.latest_reading_at)
        .where(sensor_health.c.status == "healthy", sensor_health.c.sensor_id != besides)
        .order_by(sensor_health.c.sensor_id)
    ).first()
    assert row is not None, "the simulated network should hold a healthy sensor"
    since = row.latest_reading_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
    connection.execute(
        sensor_health.update()
        .where(sensor_health.c.sensor_id == row.sensor_id)
        .values(status="silent", reason=f"silent: no reading since {since} UTC; before that: healthy")
    )
    return row.sensor_id, since


def rgb(colour: str) -> str:
    """`#607d8b` as the browser computes it: `rgb(96, 125, 139)`."""
    return f"rgb({int(colour[1:3], 16)}, {int(colour[3:5], 16)}, {int(colour[5:7], 16)})"


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Where the screenshots go: SCREENSHOT_DIR, emptied of this module's pictures first, or a temporary
    folder."""
    if not os.environ.get("SCREENSHOT_DIR"):
        return tmp_path_factory.mktemp("screenshots")
    folder = Path(os.environ["SCREENSHOT_DIR"]).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for name in SCREENSHOTS:
        (folder / f"{name}.png").unlink(missing_ok=True)
    return folder


@pytest.fixture
def page(browser, site, shots):
    """A fresh browser tab that records the host of every request it makes."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.shots = shots
    page.hosts, page.errors = set(), []
    page.on("request", lambda request: page.hosts.add(urlsplit(request.url).netloc))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and page.errors.append(message.text))
    page.set_default_timeout(20_000)
    yield page
    own = urlsplit(site["url"]).netloc
    assert page.hosts <= {own}, f"requests left the app: {page.hosts - {own}}"
    expected = getattr(page, "expected_errors", 0)
    assert len(page.errors) == expected, page.errors
    context.close()


def shoot(page, name: str) -> None:
    page.screenshot(path=str(page.shots / f"{name}.png"), full_page=True)


def log_in(page, site, username="ada", password=PASSWORD):
    page.goto(f"{site['url']}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def log_out(page):
    """As a person does, with the header's button. (Clearing the cookies races with answers still on
    their way, which bring the session cookie back.)"""
    with page.expect_navigation():
        page.click("header .who button[type=submit]")
    assert page.url.split("?")[0].endswith("/login")


def marker_total(page) -> int:
    """Sensors on the map: single markers plus the counts written on the clusters."""
    return page.evaluate(
        "document.querySelectorAll('.sensor-marker').length + [...document.querySelectorAll("
        "'.marker-cluster span')].reduce((total, e) => total + Number(e.textContent), 0)"
    )


def wait_for_markers(page, expected: int) -> int:
    """The marker total once it reaches `expected` (or what it is after 10 s)."""
    for _ in range(50):
        if marker_total(page) == expected:
            break
        page.wait_for_timeout(200)
    return marker_total(page)


def filter_map(page, status: str) -> None:
    """Press a status's filter and wait till the map has drawn that status's sensors."""
    page.click(f"button[data-status={status}]")
    page.wait_for_selector("#map[data-ready=true]")


def into_first_cluster(page, tap: bool = False) -> None:
    """Click (or tap) the first cluster and wait till the map has zoomed in and drawn the view's answer."""
    zoom = page.get_attribute("#map", "data-zoom")
    cluster = page.locator(".marker-cluster").first
    if tap:
        cluster.tap()
    else:
        cluster.click()
    page.wait_for_function("z => document.getElementById('map').dataset.zoom !== z", arg=zoom)
    page.wait_for_selector("#map[data-ready=true]")


def covered(page) -> list[list[str]]:
    """The markers and rings on the map that cover part of another (by their titles): none should."""
    return page.evaluate(
        """() => {
          const shown = [...document.querySelectorAll('.sensor-marker, .marker-cluster')].map(e => [
            e.title || e.firstElementChild.title, e.getBoundingClientRect()]);
          const pairs = [];
          shown.forEach(([a, r], i) => shown.slice(i + 1).forEach(([b, q]) => {
            const over = r.left < q.right && q.left < r.right && r.top < q.bottom && q.top < r.bottom;
            if (over) pairs.push([a, b]);
          }));
          return pairs;
        }"""
    )


def test_log_in_and_see_every_sensor_on_the_map(page, site):
    page.goto(f"{site['url']}/login")
    shoot(page, "login")
    log_in(page, site)
    page.wait_for_selector("#map[data-ready=true]")
    assert page.url.endswith("/all_grow_map")
    assert wait_for_markers(page, len(site["owners"])) == len(site["owners"])
    shown = [look.value for look in statuses.LOOKS]
    counts = {s: int(page.inner_text(f"[data-count={s}]")) for s in ("all", *shown)}
    expected = list(site["statuses"].values())
    assert counts == {"all": len(expected), **{status: expected.count(status) for status in shown}}
    # A cluster is a ring of each status's share (not the worst status's colour alone), with a red
    # badge counting its faulty sensors; its tooltip says what is inside, and the hint says so.
    clusters = page.locator(".marker-cluster").evaluate_all(
        "els => els.map(e => [e.className, e.firstElementChild.title,"
        " e.firstElementChild.style.backgroundImage,"
        " (e.querySelector('.faulty-count') || {}).textContent || '0'])"
    )
    faulty_inside = 0
    for class_name, title, ring, badge in clusters:
        inside = dict((status, int(n)) for n, status in re.findall(r"(\d+) (\w+)", title.split(":", 1)[1]))
        worst = next(s for s in statuses.WORST_FIRST if s in inside)
        assert f"status-{worst}" in class_name, (class_name, title)
        stops = re.findall(r"(rgb\([^)]*\)) ([\d.]+)deg", ring)
        assert ring.startswith("conic-gradient(") and len({c for c, _ in stops}) == len(inside), ring
        for status, n in inside.items():  # each status's arc is its share of the ring
            mine = [float(deg) for colour, deg in stops if colour == rgb(statuses.BY_VALUE[status].colour)]
            assert abs(max(mine) - min(mine) - 360 * n / sum(inside.values())) < 0.2, ring
        assert int(badge) == inside.get("faulty", 0)
        faulty_inside += inside.get("faulty", 0)
    assert "red badge its faulty ones" in " ".join(page.inner_text("#map-hint").split())
    assert faulty_inside + page.locator(".sensor-marker.status-faulty").count() == counts["faulty"]
    shoot(page, "all_grow_map")


def test_silent_sensors_are_grey_on_the_map_and_say_since_when(page, site):
    log_in(page, site)
    page.wait_for_selector("#map[data-ready=true]")
    silent = [s for s, status in site["statuses"].items() if status == "silent"]
    assert site["silent"] in silent and int(page.inner_text("[data-count=silent]")) == len(silent)
    grey = rgb(statuses.BY_VALUE["silent"].colour)
    legend = page.locator("button[data-status=silent] .swatch")
    assert legend.evaluate("e => getComputedStyle(e).backgroundColor") == grey
    page.click("button[data-status=silent]")
    assert wait_for_markers(page, len(silent)) == len(silent)
    # Single markers and clusters alike (more silent sensors may stand close together) wear the grey.
    worn = page.locator(".sensor-marker, .marker-cluster div").evaluate_all(
        "els => els.map(e => getComputedStyle(e).backgroundColor)"
    )
    assert worn and set(worn) == {grey}
    titles = page.locator(".sensor-marker").evaluate_all("els => els.map(e => e.title)")
    assert {title.split(" ")[0] for title in titles} <= set(silent)
    shoot(page, "silent_sensors")
    page.goto(f"{site['url']}/sensors/{site['silent']}")
    page.wait_for_selector("#sensor-page[data-ready=true]")
    assert page.inner_text("#status") == f"silent since {site['silent_since']} UTC"
    assert page.locator("#status").evaluate("e => getComputedStyle(e).backgroundColor") == grey


def test_the_map_page_of_6500_sensors_loads_in_under_300_kb_and_the_unchanged_map_is_not_sent_again(
    browser, crowded_site
):
    """Measured on the wire as Chromium reports it (headers and compressed bodies), with an empty cache:
    the page, its styles and scripts, and the map's views of 6,500 sensors."""
    url = crowded_site["url"]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/login")  # log in, then forget everything the login page left in the cache
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#map[data-ready=true]")
    wire = context.new_cdp_session(page)
    wire.send("Network.enable")
    wire.send("Network.clearBrowserCache")
    sent, answers = {}, {}
    wire.on("Network.responseReceived", lambda e: answers.update({e["requestId"]: e["response"]}))
    wire.on("Network.loadingFinished", lambda e: sent.update({e["requestId"]: e["encodedDataLength"]}))
    page.goto(f"{url}/all_grow_map")
    page.wait_for_selector("#map[data-ready=true]")
    assert wait_for_markers(page, CROWD) == CROWD
    page.wait_for_load_state("networkidle")
    by_path = {urlsplit(answers[r]["url"]).path: (answers[r], n) for r, n in sent.items() if r in answers}
    encoding = {
        path: {k.lower(): v for k, v in a["headers"].items()}.get("content-encoding", "-")
        for path, (a, _) in by_path.items()
    }
    total = sum(sent.values())
    print(f"first load: {total / 1000:.1f} kB in {len(sent)} requests")
    for path, (_, n) in sorted(by_path.items(), key=lambda item: -item[1][1]):
        print(f"  {n / 1000:7.1f} kB  {encoding[path]:4}  {path}")
    assert total <= 300_000, total
    assert encoding["/data/map/view"] in ("br", "gzip")
    # The next visit asks again for the views, which have not changed: 304 on the wire, no body.
    sent.clear()
    answers.clear()
    wire_status = {}
    wire.on(
        "Network.responseReceivedExtraInfo", lambda e: wire_status.update({e["requestId"]: e["statusCode"]})
    )
    page.reload()
    page.wait_for_selector("#map[data-ready=true]")
    page.wait_for_load_state("networkidle")
    assert wait_for_markers(page, CROWD) == CROWD
    again = [r for r, a in answers.items() if urlsplit(a["url"]).path == "/data/map/view"]
    assert again and all(wire_status[r] == 304 and sent[r] < 2_000 for r in again)
    context.close()


def test_every_page_passes_axe_with_no_serious_or_critical_violation(page, site):
    page.goto(f"{site['url']}/login")
    checked = {"login": serious_violations(page)}
    log_in(page, site)
    page.wait_for_selector("#map[data-ready=true]")
    wait_for_markers(page, len(site["owners"]))
    checked["all sensors map"] = serious_violations(page)
    filter_map(page, "faulty")
    page.locator(".sensor-marker, .marker-cluster").first.click()
    checked["all sensors map, filtered and clicked"] = serious_violations(page)
    page.goto(f"{site['url']}/")
    checked["home"] = serious_violations(page)
    page.goto(f"{site['url']}/sensors/{site['faulty']}")
    page.wait_for_selector("#sensor-page[data-ready=true]")
    checked["sensor page"] = serious_violations(page)
    page.goto(f"{site['url']}/owner_map")
    page.wait_for_selector("#owner-page[data-ready=true]")
    checked["owner map (admin)"] = serious_violations(page)
    page.goto(f"{site['url']}/sensors/not-a-sensor")
    checked["not found"] = serious_violations(page)
    page.expected_errors = 1  # the 404
    log_out(page)
    log_in(page, site, username="olive")
    page.goto(f"{site['url']}/owner_map")
    page.wait_for_selector("#owner-page[data-ready=true]")
    checked["owner page"] = serious_violations(page)
    assert {name: found for name, found in checked.items() if found} == {}


def test_on_a_phone_the_map_panel_tables_and_charts_fit_the_screen(browser, site, shots):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.shots = shots
    page.goto(f"{site['url']}/login")
    checked = {"login": overflowing(page)}
    log_in(page, site)
    page.wait_for_selector("#map[data-ready=true]")
    box = page.locator("#map").bounding_box()
    assert box["width"] >= PHONE["width"] - 40 and box["height"] >= 300, box  # the map fills the screen
    checked["map"] = overflowing(page)
    filter_map(page, "faulty")
    marker = page.locator(".sensor-marker")
    for _ in range(12):
        if marker.count():
            break
        into_first_cluster(page, tap=True)
    marker.first.tap()
    page.locator("#sensor-panel .reason").wait_for()
    checked["map with its panel"] = overflowing(page)
    shoot(page, "phone_map")
    page.goto(f"{site['url']}/sensors/{site['faulty']}")
    page.wait_for_selector("#sensor-page[data-ready=true]")
    chart = page.locator("#chart-soil_moisture").bounding_box()
    assert chart["width"] >= 300 and chart["height"] >= 150, chart
    checked["sensor page"] = overflowing(page)
    shoot(page, "phone_sensor")
    page.goto(f"{site['url']}/")
    checked["home"] = overflowing(page)
    log_out(page)
    log_in(page, site, username="olive")
    page.goto(f"{site['url']}/owner_map")
    page.wait_for_selector("#owner-page[data-ready=true]")
    checked["owner page"] = overflowing(page)
    shoot(page, "phone_owner")
    context.close()
    assert {name: found for name, found in checked.items() if found} == {}


def test_a_wrong_password_is_refused(page, site):
    page.expected_errors = 1  # the browser logs the 401 answer
    log_in(page, site, password="not the password")
    assert page.url.endswith("/login")
    assert "Wrong username or password" in page.inner_text("main")
    shoot(page, "login_refused")


def test_filtering_by_faulty_shows_exactly_the_faulty_sensors(page, site):
    log_in(page, site)
    page.wait_for_selector("#map[data-ready=true]")
    page.click("button[data-status=faulty]")
    faulty = [s for s, status in site["statuses"].items() if status == "faulty"]
    assert wait_for_markers(page, len(faulty)) == len(faulty)
    classes = page.locator(".sensor-marker").evaluate_all("els => els.map(e => e.className)")
    assert all("status-faulty" in c for c in classes)
    # Not by colour alone: each marker wears its status's symbol, and the legend says what it means.
    symbol = statuses.BY_VALUE["faulty"].symbol
    assert set(page.locator(".sensor-marker").all_inner_texts()) == {symbol}
    assert page.inner_text("button[data-status=faulty] .swatch") == symbol
    titles = page.locator(".leaflet-marker-icon.sensor-marker").evaluate_all("els => els.map(e => e.title)")
    assert {t.split(" ")[0] for t in titles} <= set(faulty)


def open_faulty_panel(page, site):
    """Log in, show the faulty sensors, zoom in until the faulty sensor's own marker shows and click it:
    its panel, once it says why."""
    log_in(page, site)
    page.wait_for_selector("#map[data-ready=true]")
    filter_map(page, "faulty")
    marker = page.locator(f".sensor-marker[title^='{site['faulty']} ']")
    for _ in range(12):
        if marker.count():
            break
        into_first_cluster(page)
    marker.first.click()
    panel = page.locator("#sensor-panel")
    panel.locator(".reason").wait_for()
    return panel


def test_clicking_a_sensor_shows_its_health_and_reason(page, site):
    panel = open_faulty_panel(page, site)
    assert "faulty" in panel.inner_text() and len(panel.locator(".reason").inner_text()) > 10
    # As 2019's panel: days active, first and last reading; and the battery, which 2019 did not show.
    facts = dict(zip(panel.locator("dt").all_inner_texts(), panel.locator("dd").all_inner_texts()))
    assert re.fullmatch(r"\d+ % \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)", facts["Battery"]), facts
    assert int(facts["Days active"]) > 0
    assert facts["First reading"] < facts["Last reading"] and facts["Last reading"].endswith("UTC")
    shoot(page, "sensor_panel")


def test_a_station_link_without_a_distance_shows_as_unknown_on_the_panel_and_the_page(page, site):
    """`import-2019` stores 2019's empty distances as NULL: the panel and the charts say so, no script
    error (issue 32: "Cannot read properties of null (reading 'toFixed')")."""
    link = sensor_wow.c.sensor_id == site["faulty"]
    with site["engine"].begin() as connection:
        kept = connection.scalar(select(sensor_wow.c.distance_km).where(link))
        connection.execute(update(sensor_wow).where(link).values(distance_km=None))
    try:
        panel = open_faulty_panel(page, site)
        assert "distance unknown" in panel.inner_text()
        page.goto(f"{site['url']}/sensors/{site['faulty']}")
        page.wait_for_selector("#sensor-page[data-ready=true]")
        assert "distance unknown" in page.inner_text("#station")
    finally:
        with site["engine"].begin() as connection:
            connection.execute(update(sensor_wow).where(link).values(distance_km=kept))


def test_the_keyboard_reaches_the_filters_and_the_markers_and_opens_a_sensor(page, site):
    log_in(page, site)
    page.wait_for_selector("#map[data-ready=true]")
    reached = []
    for _ in range(120):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "(e => e.dataset.status !== undefined ? 'filter:' + e.dataset.status"
            " : e.classList.contains('sensor-marker') ? 'marker' : e.classList.contains('marker-cluster')"
            " ? 'cluster' : e.tagName)(document.activeElement)"
        )
        reached.append(focused)
        if focused == "marker":
            break
    assert {f"filter:{look.value}" for look in statuses.LOOKS} <= set(reached), reached
    assert reached[-1] == "marker", reached
    sensor = page.evaluate("document.activeElement.title").split(" ")[0]
    page.keyboard.press("Enter")
    panel = page.locator("#sensor-panel")
    panel.locator(".reason").wait_for()
    assert sensor in panel.inner_text()
    # A cluster opens from the keyboard too: Enter zooms into it.
    clusters = page.locator(".marker-cluster")
    assert clusters.count() > 0  # fifty sensors in a few towns cluster at the zoom the page opens on
    zoom = int(page.get_attribute("#map", "data-zoom"))
    clusters.first.focus()
    page.keyboard.press("Enter")
    for _ in range(50):
        if int(page.get_attribute("#map", "data-zoom")) > zoom:
            break
        page.wait_for_timeout(200)
    assert int(page.get_attribute("#map", "data-zoom")) > zoom


def test_a_faulty_sensor_page_draws_charts_with_data_and_marked_anomalies(page, site):
    log_in(page, site)
    page.goto(f"{site['url']}/sensors/{site['faulty']}")
    page.wait_for_selector("#sensor-page[data-ready=true]")
    assert page.inner_text("#status") == "faulty"
    for variable in ("soil_moisture", "air_temperature", "light", "battery_level"):
        points = page.evaluate(f"Chart.getChart('chart-{variable}').data.datasets[0].data.length")
        assert points > 100, variable
        assert page.locator(f"#chart-{variable}").evaluate("c => c.width") > 0
    captions = " ".join(page.locator("figcaption").all_inner_texts())
    marked = sum(int(n) for n in re.findall(r"(\d+) anomal(?:y|ies) marked", captions))
    # The frozen spell is shaded apart (blue), counted as a condition, and listed as one.
    assert "1 condition (not faults, in blue)" in captions
    spans = page.evaluate("Chart.getChart('chart-soil_moisture').options.plugins.anomalySpans.spans")
    assert sum(1 for span in spans if span[2] == "condition") == 1
    # Imported history (a day 2019's model flagged, values ISMN flagged) is shaded grey, never a fault.
    for variable in ("air_temperature", "soil_moisture"):
        history = page.evaluate(f"Chart.getChart('chart-{variable}').options.plugins.anomalySpans.spans")
        assert [span[2] for span in history].count("history") == 1, variable
    assert captions.count("1 span of imported history (in grey)") == 2, captions
    assert "frozen soil" in page.inner_text("#anomalies") and "condition" in page.inner_text("#anomalies")
    rows = page.locator("#anomalies tbody tr").count()
    assert marked > 0 and rows > 0 and "No anomalies" not in page.inner_text("#anomalies")
    assert page.evaluate("Chart.getChart('chart-grow-wow-temperature').data.datasets[1].data.length") > 0
    # Time ticks fall on whole hours or days (UTC), at most 8, and day ticks say only the date.
    ticks = page.evaluate("Chart.getChart('chart-soil_moisture').scales.x.ticks.map(t => t.value)")
    assert 2 <= len(ticks) <= 8 and all(t % 3_600_000 == 0 for t in ticks), ticks
    step = ticks[1] - ticks[0]
    labels = page.evaluate("Chart.getChart('chart-soil_moisture').scales.x.ticks.map(t => t.label)")
    if step % 86_400_000 == 0:
        assert all(t % 86_400_000 == 0 for t in ticks) and all(re.fullmatch(r"\d\d-\d\d", x) for x in labels)
    shoot(page, "faulty_sensor")
    # The date fields show the range drawn (the last 9 days); a narrower one redraws with fewer points.
    start, end = page.input_value("#start"), page.input_value("#end")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", end) and start < end  # times of day, not dates
    before = page.evaluate("Chart.getChart('chart-soil_moisture').data.datasets[0].data.length")
    six_hours = (dt.datetime.fromisoformat(end) - dt.timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M")
    page.fill("#start", six_hours)
    page.evaluate("document.getElementById('sensor-page').dataset.ready = ''")
    page.click("#range button[type=submit]")
    page.wait_for_selector("#sensor-page[data-ready=true]")
    after = page.evaluate("Chart.getChart('chart-soil_moisture').data.datasets[0].data.length")
    assert 0 < after <= 25 < before  # six hours of 15-minute readings
    assert page.inner_text("#chart-message").startswith(six_hours.replace("T", " "))


def test_chart_times_follow_the_zone_chosen_utc_or_local_and_the_choice_is_remembered(browser, site):
    # Newfoundland's clock is 2 h 30 min behind UTC in June: its whole hours are UTC half hours.
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="America/St_Johns")
    context.set_default_timeout(20_000)
    page = context.new_page()
    log_in(page, site)
    page.goto(f"{site['url']}/sensors/{site['faulty']}")
    page.wait_for_selector("#sensor-page[data-ready=true]")
    ticks = "Chart.getChart('chart-soil_moisture').scales.x.ticks.map(t => t.value)"
    assert all(t % 3_600_000 == 0 for t in page.evaluate(ticks))  # UTC by default
    utc_end = page.input_value("#end")
    page.evaluate("document.getElementById('sensor-page').dataset.ready = ''")
    page.select_option("#zone", "local")
    page.wait_for_selector("#sensor-page[data-ready=true]")
    local = page.evaluate(ticks)
    assert local and all(t % 3_600_000 == 1_800_000 for t in local), local
    axis = page.evaluate("Chart.getChart('chart-soil_moisture').options.scales.x.title.text")
    assert axis == "local time, America/St_Johns"
    # The fields hold the same moment on the local clock, and the table's times are local too.
    moved = dt.datetime.fromisoformat(utc_end) - dt.datetime.fromisoformat(page.input_value("#end"))
    assert moved == dt.timedelta(hours=2, minutes=30)
    assert "From (local)" in page.inner_text("#anomalies thead")
    assert "local time" in page.inner_text("#chart-message")
    page.reload()  # remembered
    page.wait_for_selector("#sensor-page[data-ready=true]")
    assert page.input_value("#zone") == "local"
    assert all(t % 3_600_000 == 1_800_000 for t in page.evaluate(ticks))
    context.close()


def test_charts_tables_and_the_map_say_when_they_are_loading_empty_or_failed(page, site):
    log_in(page, site)
    page.wait_for_selector("#map[data-ready=true]")
    assert page.inner_text("#map-message") == f"{len(site['owners'])} sensors on the map."
    html = page.request.get(f"{site['url']}/all_grow_map").text()
    assert "Loading the sensors…" in html  # what shows until the map answer comes
    # A range before the sensor's first reading: each chart says there is nothing to draw, and why.
    page.goto(f"{site['url']}/sensors/{site['faulty']}")
    page.wait_for_selector("#sensor-page[data-ready=true]")
    page.fill("#start", "2001-01-01T00:00")
    page.fill("#end", "2001-01-02T00:00")
    page.evaluate("document.getElementById('sensor-page').dataset.ready = ''")
    page.click("#range button[type=submit]")
    page.wait_for_selector("#sensor-page[data-ready=true]")
    empty = page.locator(".charts figure").evaluate_all("els => els.map(e => e.dataset.empty || '')")
    assert empty[:4] == [
        f"No {label} readings in this range"
        for label in ("soil moisture", "air temperature", "light", "battery")
    ]
    assert empty[4:] == ["The WOW station sent nothing for this range"] * 2
    assert page.inner_text("#anomalies tbody") == "No anomalies in this range."
    # The data service down: the words say so where the charts' summary and the table go.
    page.expected_errors = 4  # the browser logs the two 502 answers, and the scripts each failure
    down = {"error": "backend_unavailable", "message": "the data service cannot be reached"}
    page.route("**/data/sensors/*/readings*", lambda route: route.fulfill(status=502, json=down))
    page.route("**/data/map/view*", lambda route: route.fulfill(status=502, json=down))
    page.click("#range button[type=submit]")
    page.wait_for_selector("#chart-message.error")
    said = "could not be drawn: the data service cannot be reached"
    assert page.inner_text("#chart-message") == f"The charts {said}"
    assert "could not be loaded: the data service" in page.inner_text("#anomalies tbody")
    page.goto(f"{site['url']}/all_grow_map")
    page.wait_for_selector("#map-message.error")
    said = "could not be loaded: the data service cannot be reached"
    assert page.inner_text("#map-message") == f"The sensors {said}"
    # No sensors at all (a new deployment): the map says why it is empty.
    page.unroute("**/data/map/view*")
    nothing = {"fields": [], "rows": []}
    empty = {"zoom": 4, "statuses": [], "counts": {}, "bounds": None, "clusters": nothing, "sensors": nothing}
    page.route("**/data/map/view*", lambda route: route.fulfill(json=empty))
    page.goto(f"{site['url']}/all_grow_map")
    page.wait_for_selector("#map[data-ready=true]")
    assert page.inner_text("#map-message").startswith("No sensors to show yet")


def test_the_sensor_page_downloads_its_range_as_csv_equal_to_the_readings_api_and_its_charts_as_png(
    page, site
):
    import csv
    import io
    from pathlib import Path

    def table(download) -> list[dict]:
        return list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))

    log_in(page, site)
    page.goto(f"{site['url']}/sensors/{site['faulty']}")
    page.wait_for_selector("#sensor-page[data-ready=true]")
    with page.expect_download() as readings_file:
        page.click("#download-readings")
    rows = table(readings_file)
    drawn = urlsplit(page.get_attribute("#download-readings", "href")).query  # the range on the charts
    api = page.request.get(f"{site['url']}/data/sensors/{site['faulty']}/readings?{drawn}&max_points=20000")
    items = api.json()["items"]
    assert len(rows) == len(items) == api.json()["readings"] > 100
    assert [r["ts"] for r in rows] == [i["ts"] for i in items]
    assert [float(r["soil_moisture"]) for r in rows if r["soil_moisture"]] == [
        i["soil_moisture"] for i in items if i["soil_moisture"] is not None
    ]
    with page.expect_download() as anomalies_file:
        page.click("#download-anomalies")
    assert len(table(anomalies_file)) == page.locator("#anomalies tbody tr").count() > 0
    with page.expect_download() as charts_file:
        page.click("#download-charts")
    assert charts_file.value.suggested_filename == f"{site['faulty']}_charts.png"
    assert Path(charts_file.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_owner_sees_only_their_sensors(page, site):
    log_in(page, site, username="olive")
    page.wait_for_selector("#map[data-ready=true]")
    own = [s for s, owner in site["owners"].items() if owner == site["owner"]]
    assert wait_for_markers(page, len(own)) == len(own)
    page.goto(f"{site['url']}/owner_map")
    page.wait_for_selector("#owner-page[data-ready=true]")
    listed = page.locator("#owner-sensors tbody tr td:first-child").all_inner_texts()
    assert sorted(listed) == sorted(own)
    assert site["owner"] in page.inner_text("#owner-stats")
    shoot(page, "owner_map")
    other = next(s for s, owner in site["owners"].items() if owner != site["owner"])
    page.expected_errors = 2  # the browser logs each 404 answer
    refused = page.goto(f"{site['url']}/sensors/{other}")
    assert refused.status == 404 and "no such page or sensor" in page.inner_text("main")
    # Typing an id in the header charts the owner's own sensor, and refuses another owner's.
    page.fill("header input[name=sensor_id]", own[0])
    page.click("header .open-sensor button")
    page.wait_for_selector("#sensor-page[data-ready=true]")
    assert page.url.endswith(f"/sensors/{own[0]}")
    page.fill("header input[name=sensor_id]", other)
    with page.expect_navigation():
        page.click("header .open-sensor button")
    assert "no such page or sensor" in page.inner_text("main")


def test_an_owner_opens_a_status_table_of_latest_readings_and_a_row_opens_its_charts(page, site):
    log_in(page, site, username="olive")
    page.goto(f"{site['url']}/owner_map")
    page.wait_for_selector("#owner-page[data-ready=true]")
    own = sorted(s for s, owner in site["owners"].items() if owner == site["owner"])
    listed = []
    for status in ("healthy", "recovered", "faulty"):
        rows = page.locator(f"#latest-{status} tbody tr[data-href]")
        listed += [rows.nth(i).locator("td a").inner_text() for i in range(rows.count())]
    assert sorted(listed) == own  # every sensor of the owner's in the table of its status
    table = next(
        f"#latest-{s}"
        for s in ("faulty", "recovered", "healthy")
        if page.locator(f"#latest-{s} tbody tr[data-href]").count()
    )
    row = page.locator(f"{table} tbody tr[data-href]").first
    cells = row.locator("td").all_inner_texts()
    assert re.fullmatch(r"\d+(\.\d)?", cells[1]), cells  # battery, %
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", cells[5]), cells  # last upload
    sensor = row.locator("td a").inner_text()
    shoot(page, "owner_latest_tables")
    row.locator("td").nth(1).click()  # anywhere on the row, not only its link
    page.wait_for_selector("#sensor-page[data-ready=true]")
    assert page.url.endswith(f"/sensors/{sensor}")


def test_the_owner_map_finds_sensors_by_address(page, site):
    log_in(page, site)
    page.goto(f"{site['url']}/owner_map")
    page.wait_for_selector("#owner-page[data-ready=true]")
    page.type("#address", site["address"][:5], delay=50)  # as a person types
    for _ in range(50):
        if page.locator("#address-options option").count():
            break
        page.wait_for_timeout(200)
    first = page.locator("#address-options option").first.get_attribute("value")
    # 2019's route answers the same search in its own shape.
    typed = site["address"][:5]
    answer = page.request.get(f"{site['url']}/autocomplete?q={typed}").json()
    assert list(answer) == ["matching_results"] and first in answer["matching_results"]
    assert all(typed.lower() in address.lower() for address in answer["matching_results"])
    page.fill("#address", first)
    page.click("#owner-search button[type=submit]")
    # The owners' statistics are asked for after the sensors' table is shown: the search is over when
    # the count of sensors found shows.
    page.wait_for_selector("#owner-message:text-matches('^[0-9]+ sensors?$')")
    found = page.locator("#owner-sensors tbody tr td:nth-child(4)").all_inner_texts()
    assert found and all(address == first for address in found)
    owners = set(page.locator("#owner-sensors tbody tr td:nth-child(5)").all_inner_texts())
    assert set(page.locator("#owner-stats tbody tr td:first-child").all_inner_texts()) == owners


def test_hostile_names_and_addresses_show_as_text(page, site):
    log_in(page, site)
    page.goto(f"{site['url']}/owner_map")
    page.wait_for_selector("#owner-page[data-ready=true]")
    page.type("#address", "Hostile", delay=50)
    for _ in range(50):
        if page.locator("#address-options option").count():
            break
        page.wait_for_timeout(200)
    assert page.locator("#address-options option").first.get_attribute("value") == HOSTILE_ADDRESS
    page.fill("#address", HOSTILE_ADDRESS)
    page.click("#owner-search button[type=submit]")
    page.wait_for_selector("#owner-sensors:not([hidden])")
    row = page.locator("#owner-sensors tbody tr").first.inner_text()
    assert HOSTILE_NAME in row and HOSTILE_ADDRESS in row
    page.goto(f"{site['url']}/sensors/{site['hostile']}")
    page.wait_for_selector("#sensor-page[data-ready=true]")
    assert HOSTILE_NAME in page.inner_text("h1") and HOSTILE_ADDRESS in page.inner_text(".facts")
    assert page.locator("#pwned-name, #pwned-address").count() == 0
    page.expected_errors = 0


def test_a_form_posted_without_its_csrf_token_is_refused(page, site):
    page.expected_errors = 1  # the browser logs the 400 answer
    page.goto(f"{site['url']}/login")
    page.evaluate("document.querySelector('input[name=csrf_token]').remove()")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    assert "CSRF" in page.inner_text("main")
    assert page.goto(f"{site['url']}/all_grow_map").url.split("?")[0].endswith("/login")


@pytest.fixture(scope="module")
def odd_site(tmp_path_factory):
    """Both apps on a database of the odd rows (tests.factories.ODD_SENSORS) beside seed's, with an admin
    and owner-a's owner."""
    from tests.factories import seed, seed_odd

    database_url = f"sqlite:///{tmp_path_factory.mktemp('odd') / 'grow_wow.sqlite'}"
    engine = make_engine(load_settings(database_url=database_url))
    init_db(engine)
    seed(engine)
    seed_odd(engine)
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    accounts.create_user(engine, "oscar", PASSWORD, "owner", owner_id="owner-a")
    with both_apps(database_url) as front_url:
        yield {"url": front_url}
    engine.dispose()


def test_the_odd_rows_render_on_every_page_with_no_script_error(browser, odd_site):
    """Issue 32: rows the database may hold (no name, no place, no readings, a link with no distance to a
    station that never reported, faulty with no reason, an id at the edge of the pattern) on the map, its
    panels, the sensor pages and an owner's map: every answer under 500, no script error."""
    from tests.factories import EDGE_ID, ODD_SENSORS

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors, answers = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("response", lambda response: answers.append((response.status, response.url)))
    page.set_default_timeout(20_000)
    log_in(page, odd_site)
    page.goto(f"{odd_site['url']}/all_grow_map")
    page.wait_for_selector("#map[data-ready=true]")
    edge = page.locator(f".sensor-marker[title^='{EDGE_ID} ']")
    for _ in range(12):  # zoom in until the edge id's own marker shows, and open its panel
        assert covered(page) == []  # sensors close together fan out: each can be clicked
        if edge.count():
            break
        into_first_cluster(page)
    edge.first.click()
    page.wait_for_function(
        "id => document.getElementById('sensor-panel').innerText.includes(id)", arg=EDGE_ID
    )
    for sensor_id in ODD_SENSORS:
        page.goto(f"{odd_site['url']}/sensors/{quote(sensor_id, safe='')}")
        page.wait_for_selector("#sensor-page[data-ready=true]")
        assert page.inner_text("main").strip()
    log_out(page)
    log_in(page, odd_site, "oscar")
    page.goto(f"{odd_site['url']}/owner_map")
    page.wait_for_selector("[data-ready=true]")
    assert errors == [] and [answer for answer in answers if answer[0] >= 500] == []
    assert len(answers) > 20
    context.close()


def test_every_page_left_a_screenshot(shots):
    """The tests above photographed each page; UPDATE_SCREENSHOTS=1 copies the three the README shows."""
    assert [name for name in SCREENSHOTS if not (shots / f"{name}.png").exists()] == []
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        docs = Path(__file__).resolve().parents[2] / "docs"
        for name in ("all_grow_map", "faulty_sensor", "owner_latest_tables", "phone_map", "phone_owner"):
            shutil.copy(shots / f"{name}.png", docs / f"{name}.png")
