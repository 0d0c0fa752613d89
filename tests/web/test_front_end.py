"""The front end on both engines, with the real back end behind it on loopback: logging in, what each
account may see, CSRF, the login rate limit, safe redirects, and the account commands."""

import datetime as dt
import html
import json
import re
from email.utils import parsedate_to_datetime

import pytest
from flask import Blueprint, jsonify, url_for
from sqlalchemy import select, update

from core.errors import SettingsError
from core.schema import anomalies, login_sessions, sensor_wow
from flask_back_end import create_app as create_back_end
from flask_back_end.settings import load_settings as back_end_settings
from flask_front_end import accounts, is_public, public, statuses
from flask_front_end import create_app as create_front_end
from flask_front_end.settings import load_settings
from tests.factories import ODD_SENSORS, TOKEN, seed, seed_odd, seed_silent

PASSWORD = "correct horse battery"
DEAD_BACK_END = "http://127.0.0.1:9"  # the discard port: nothing listens there, every connection is refused


@pytest.fixture
def cheap_scrypt(monkeypatch):
    """Passwords hashed with scrypt at a 32nd of its cost (n = 1024, not 32768): these tests make and log
    in to a hundred accounts, at 5 ms a hash instead of 180. The real cost is checked on its own below."""
    real = accounts.generate_password_hash

    def cheap(password, method="scrypt", salt_length=16):
        return real(
            password, method="scrypt:1024:8:1" if method == "scrypt" else method, salt_length=salt_length
        )

    monkeypatch.setattr(accounts, "generate_password_hash", cheap)


@pytest.fixture
def front_settings(settings, engine, serve, cheap_scrypt):
    """Settings of a front end whose back end (on the seeded database) answers on loopback."""
    seed(engine)
    url = settings.database_url.get_secret_value()
    back_end = serve(create_back_end(back_end_settings(database_url=url, backend_token=TOKEN)))
    return dict(
        database_url=url,
        backend_url=back_end,
        backend_token=TOKEN,
        frontend_secret_key="test-secret-key-for-sessions",
        session_cookie_secure=False,
    )


@pytest.fixture
def app(front_settings, engine):
    app = create_front_end(load_settings(**front_settings))
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    accounts.create_user(engine, "olive", PASSWORD, "owner", owner_id="owner-a")
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token(client, path="/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def log_in(client, username, password=PASSWORD, next_page=None):
    path = "/login" + (f"?next={next_page}" if next_page else "")
    form = {"username": username, "password": password, "csrf_token": csrf_token(client)}
    return client.post(path, data=form)


def test_pages_send_strangers_to_the_login_page_and_back(client):
    answer = client.get("/sensors/s1")
    assert answer.status_code == 302 and answer.location.startswith("/login?next=/sensors/s1")
    assert client.get("/data/map").status_code == 401  # page scripts get JSON, not a redirect
    back = log_in(client, "ada", next_page="/sensors/s1")
    assert back.status_code == 302 and back.location == "/sensors/s1"


# Path arguments from tests.factories.seed: olive's (owner-a) and someone else's (owner-b). A route with
# another argument fails the tests below until it has one here.
# filename: a static file; day, source, name: an admin's archive downloads (tests/web/test_archive_page.py)
OLIVES = {"sensor_id": "s1", "owner_id": "owner-a", "filename": "app.js", "pause_id": 1}
OLIVES |= {"day": "2019-06-03", "source": "grow", "name": "manifest.json"}
SOMEONE_ELSES = {"sensor_id": "r1", "owner_id": "owner-b", "pause_id": 1}


def filled(app, rule, ids=OLIVES) -> str:
    with app.test_request_context():
        return url_for(rule.endpoint, **{name: ids[name] for name in rule.arguments})


def rules(app, opened: bool = False) -> list:
    """The app's routes that need a login, or (`opened`) those marked @public."""
    return [
        rule for rule in app.url_map.iter_rules() if is_public(app.view_functions[rule.endpoint]) is opened
    ]


def test_every_route_but_the_public_ones_needs_a_login(app, client):
    """Every route of the app, from its url_map, so a new one cannot escape: logged out, a page sends
    the browser to log in and a /data/ route answers 401; logged in, the same path answers."""
    guarded = rules(app)
    assert len(guarded) >= 18
    token = csrf_token(client)  # a POST would otherwise stop at CSRF, before the login check
    for rule in guarded:
        path = filled(app, rule)
        for method in rule.methods - {"OPTIONS"}:
            form = {"csrf_token": token} if method == "POST" else None
            answer = client.open(path, method=method, data=form)
            if path.startswith("/data/"):
                assert answer.status_code == 401, (method, path)
                assert method == "HEAD" or answer.json["error"] == "unauthorized"
            else:
                assert answer.status_code == 302, (method, path)
                assert answer.location == f"/login?next={path}", (method, path)
    log_in(client, "ada")
    for rule in guarded:
        if "GET" in rule.methods:
            answer = client.get(filled(app, rule))
            answer.close()
            # 400: /autocomplete without q; 302: /open_sensor without an id goes to the map
            # 404: the archive's downloads, with no archive set up here (tests/web/test_archive_page.py)
            known = answer.status_code in (200, 302, 400) or rule.endpoint.startswith("archive.")
            assert known and "/login" not in (answer.location or ""), rule


def test_only_the_login_sign_up_and_reset_pages_the_links_in_mails_health_and_static_files_are_public(
    app, client
):
    opened = rules(app, opened=True)
    assert {rule.endpoint for rule in opened} == {
        "auth.login",
        "auth.health",
        "static",
        "signup.ask",
        "signup.confirm",
        "reset.ask",
        "reset.choose",
        "account.confirm_address",
        "unsubscribe.page",
    }
    for rule in opened:
        if "token" in rule.arguments:  # a link in a mail: tests/web/test_self_service.py opens each
            continue
        with client.get(filled(app, rule)) as answer:
            assert answer.status_code == 200, rule.rule


def test_a_route_added_anywhere_needs_a_login_without_being_told(front_settings, engine):
    """Protected by default: a page or data route on a new blueprint or on the app is refused to a
    stranger until marked @public."""
    app = create_front_end(load_settings(**front_settings))
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    extra = Blueprint("extra", __name__)

    @extra.get("/extra")
    def page():
        return "a page"

    @extra.get("/data/extra")
    def data():
        return jsonify(secret=True)

    @extra.get("/extra/open")
    @public
    def opened():
        return "open to anyone"

    app.register_blueprint(extra)
    app.add_url_rule("/added", "added", lambda: "added")
    client = app.test_client()
    assert client.get("/extra").location == "/login?next=/extra"
    assert client.get("/added").location == "/login?next=/added"
    assert client.get("/data/extra").status_code == 401
    assert client.get("/extra/open").status_code == 200
    log_in(client, "ada")
    assert [client.get(path).status_code for path in ("/extra", "/added", "/data/extra")] == [200] * 3


def test_an_owner_is_refused_every_route_about_someone_elses_sensor_or_owner(app):
    """Every route with a sensor or owner in its path (from the url_map): someone else's is a 404 to an
    owner, as if it did not exist, and their own answers."""
    olive = app.test_client()
    log_in(olive, "olive")
    about_one = [
        rule for rule in rules(app) if rule.arguments & {"sensor_id", "owner_id"} and "GET" in rule.methods
    ]
    assert len(about_one) >= 8
    for rule in about_one:
        with olive.get(filled(app, rule, SOMEONE_ELSES)) as refused:
            assert refused.status_code == 404, rule.rule
        with olive.get(filled(app, rule)) as answer:
            assert answer.status_code == 200, rule.rule


def test_the_login_page_acknowledges_grow_wow_and_the_eu_funding_in_words(client):
    page = client.get("/login").get_data(as_text=True)
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    for words in ("GROW Observatory", "Met Office", "Weather Observations Website", "Horizon 2020"):
        assert words in text, words
    assert "<img" not in page  # words, not copied logos


def test_a_wrong_password_is_refused(client):
    answer = log_in(client, "ada", "not the password")
    assert answer.status_code == 401 and "Wrong username or password" in answer.get_data(as_text=True)
    assert client.get("/data/map").status_code == 401
    assert log_in(client, "nobody").status_code == 401


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"]
)
def test_next_never_leads_off_the_site(client, target):
    answer = log_in(client, "ada", next_page=target)
    assert answer.status_code == 302 and answer.location == "/all_grow_map"


def test_a_form_without_its_csrf_token_is_refused(client):
    answer = client.post("/login", data={"username": "ada", "password": PASSWORD})
    assert answer.status_code == 400 and "CSRF" in answer.get_data(as_text=True)
    assert client.get("/data/map").status_code == 401
    log_in(client, "ada")
    assert client.post("/logout").status_code == 400  # logging out needs the token too
    assert client.get("/data/map").status_code == 200


def test_logging_in_is_rate_limited(front_settings, engine):
    app = create_front_end(load_settings(**front_settings, login_rate_limit="3 per minute"))
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    client = app.test_client()
    codes = [log_in(client, "ada", "wrong password").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    assert log_in(client, "ada").status_code == 429  # even the right password waits


def test_behind_a_trusted_proxy_each_client_has_its_own_login_limit(front_settings, engine):
    app = create_front_end(load_settings(**front_settings, login_rate_limit="2 per minute", proxy_hops=1))
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    client = app.test_client()

    def attempt(address):
        form = {"username": "ada", "password": "wrong password", "csrf_token": csrf_token(client)}
        return client.post("/login", data=form, headers={"X-Forwarded-For": address}).status_code

    assert [attempt("203.0.113.5") for _ in range(3)] == [401, 401, 429]
    assert attempt("198.51.100.7") == 401  # another client, not yet limited


def test_one_account_has_its_own_login_limit_whatever_address_asks(front_settings, engine):
    limits = {"login_rate_limit": "10 per minute", "login_account_rate_limit": "3 per hour"}
    app = create_front_end(load_settings(**front_settings, **limits, proxy_hops=1))
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    accounts.create_user(engine, "olive", PASSWORD, "owner", owner_id="owner-a")
    client = app.test_client()

    def attempt(username, address, password=None):
        form = {"username": username, "password": password or "wrong", "csrf_token": csrf_token(client)}
        return client.post("/login", data=form, headers={"X-Forwarded-For": address}).status_code

    # A password guesser spreading its tries over many addresses still meets the account's limit.
    assert [attempt("ada", f"203.0.113.{i}") for i in range(4)] == [401, 401, 401, 429]
    assert attempt("ADA", "198.51.100.9") == 429  # the same account, however it is spelt
    assert attempt("olive", "198.51.100.9", PASSWORD) == 302  # another account is not held back


def test_a_guesser_at_an_account_does_not_lock_its_owner_out_of_their_own_browser(front_settings, engine):
    """Issue 32: 30 wrong passwords from any mix of addresses refused the right one too, for an hour."""
    limits = {"login_rate_limit": "10 per minute", "login_account_rate_limit": "3 per hour"}
    app = create_front_end(load_settings(**front_settings, **limits, proxy_hops=1))
    accounts.create_user(engine, "olive", PASSWORD, "owner", owner_id="owner-a")
    owner, guesser, stranger = app.test_client(), app.test_client(), app.test_client()

    def attempt(client, address, password=None):  # only wrong passwords count against the account
        form = {"username": "olive", "password": password or "wrong", "csrf_token": csrf_token(client)}
        return client.post("/login", data=form, headers={"X-Forwarded-For": address})

    assert attempt(owner, "198.51.100.7", PASSWORD).status_code == 302  # olive's own browser, last week
    log_out(owner)
    tries = [attempt(guesser, f"203.0.113.{i}") for i in range(4)]
    assert [t.status_code for t in tries] == [401, 401, 401, 429]
    assert "this account" in tries[-1].get_data(as_text=True)  # says truthfully what was limited
    assert attempt(owner, "198.51.100.7", PASSWORD).status_code == 302
    assert attempt(stranger, "198.51.100.8", PASSWORD).status_code == 429  # a new browser waits


def test_a_guesser_at_an_account_waits_longer_the_more_it_guesses(front_settings, engine):
    """The account's limit grows its delays: 5 tries, then a minute's wait; 15 in ten minutes, then ten
    minutes'; 30 in an hour, then the hour's rest (LOGIN_ACCOUNT_RATE_LIMIT's default)."""
    app = create_front_end(load_settings(**front_settings, proxy_hops=1))
    accounts.create_user(engine, "olive", PASSWORD, "owner", owner_id="owner-a")
    guesser = app.test_client()
    assert load_settings(**front_settings).login_account_rate_limit.count(";") == 2

    def attempt(i):
        form = {"username": "olive", "password": "wrong", "csrf_token": csrf_token(guesser)}
        return guesser.post("/login", data=form, headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code

    assert [attempt(i) for i in range(6)] == [401] * 5 + [429]


def test_each_limit_says_what_it_limited(front_settings, engine):
    app = create_front_end(load_settings(**front_settings, data_rate_limit="1 per minute"))
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    client = app.test_client()
    log_in(client, "ada")
    assert client.get("/data/map").status_code == 200
    refused = client.get("/data/map")
    assert refused.status_code == 429 and "login" not in refused.get_data(as_text=True).lower()
    assert "data" in refused.json["message"]


REDIS = "redis://127.0.0.1:6379/15"


@pytest.fixture
def redis_storage():
    """The machine's Redis, as ElastiCache stands behind RATE_LIMIT_STORAGE in the deployment guide."""
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS}: {exc}")
    return REDIS


def _attempts_in_a_worker(settings, name: str, tries: int, codes) -> None:
    """A gunicorn worker of its own: a forked process with its own app and limiter."""
    client = create_front_end(settings).test_client()
    codes.put([log_in(client, name, "wrong password").status_code for _ in range(tries)])


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "memory"])
def test_workers_count_one_login_limit_only_with_shared_storage(
    front_settings, engine, redis_storage, shared
):
    """gunicorn's workers (and Beanstalk's instances) are processes of their own: with RATE_LIMIT_STORAGE
    shared they count one limit; in memory, one each (which the guide says to avoid)."""
    import multiprocessing
    import uuid

    limits = {"login_rate_limit": "1000 per minute", "login_account_rate_limit": "3 per hour"}
    storage = redis_storage if shared else "memory://"
    settings = load_settings(**front_settings, **limits, rate_limit_storage=storage)
    name = f"guesser-target-{uuid.uuid4().hex[:8]}"  # a count of its own in the shared store
    accounts.create_user(engine, name, PASSWORD, "admin")
    context = multiprocessing.get_context("fork")
    codes = context.Queue()
    worker = context.Process(target=_attempts_in_a_worker, args=(settings, name, 2, codes))
    worker.start()
    first = codes.get(timeout=60)
    worker.join(timeout=60)
    client = create_front_end(settings).test_client()  # the other worker
    then = [log_in(client, name, "wrong password").status_code for _ in range(2)]
    assert first == [401, 401]
    assert then == ([401, 429] if shared else [401, 401])


def test_the_data_routes_are_rate_limited_per_account(front_settings, engine):
    app = create_front_end(load_settings(**front_settings, data_rate_limit="3 per minute"))
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    accounts.create_user(engine, "olive", PASSWORD, "owner", owner_id="owner-a")
    ada, olive = app.test_client(), app.test_client()
    log_in(ada, "ada")
    log_in(olive, "olive")
    paths = ["/data/map", "/data/sensors", "/data/sensors/s1/readings", "/data/map"]
    assert [ada.get(path).status_code for path in paths] == [200, 200, 200, 429]
    assert olive.get("/data/map").status_code == 200  # the same address, another account
    assert ada.get("/all_grow_map").status_code == 200  # the pages themselves are not counted


def shown(view: dict) -> int:
    """Sensors on a map view: those in its clusters and its single ones."""
    return sum(row[2] for row in view["clusters"]["rows"]) + len(view["sensors"]["rows"])


def test_an_admin_sees_every_sensor(client):
    log_in(client, "ada")
    assert [row[0] for row in client.get("/data/map").json["rows"]] == ["0042", "r1", "s1", "s2"]
    view = client.get("/data/map/view?zoom=0").json
    assert shown(view) == 4 and sum(view["counts"].values()) == 4
    assert client.get("/sensors/0042").status_code == 200


def test_an_owner_sees_only_their_sensors(client):
    log_in(client, "olive")
    assert [row[0] for row in client.get("/data/map").json["rows"]] == ["s1", "s2"]
    view = client.get("/data/map/view?zoom=16&bbox=-0.15,51.45,-0.05,51.55").json
    assert [row[0] for row in view["sensors"]["rows"]] == ["s1"]
    view = client.get("/data/map/view?zoom=0").json  # the owner's clusters, and their counts only
    assert shown(view) == 2 and sum(view["counts"].values()) == 2
    assert [s["sensor_id"] for s in client.get("/data/sensors").json["items"]] == ["s1", "s2"]
    assert client.get("/sensors/s1").status_code == 200
    assert client.get("/data/sensors/s1/readings").status_code == 200
    # Another owner's sensor does not exist for them, by page, by data route, or by asking for its owner.
    for path in [
        "/sensors/r1",
        "/data/sensors/r1",
        "/data/sensors/r1/readings",
        "/data/sensors/r1/anomalies",
        "/data/sensors/r1/wow",
        "/data/owners/owner-b/stats",
        "/data/map?owner=owner-b",
        "/data/map/view?zoom=0&owner=owner-b",
        "/data/sensors?owner=owner-b",
        "/data/addresses?q=on&owner=owner-b",
    ]:
        assert client.get(path).status_code == 404, path
    assert [a["address"] for a in client.get("/data/addresses?q=on").json["items"]] == [
        "1 High Street, London"
    ]


def test_the_2019_autocomplete_route_answers_matching_addresses_in_its_own_shape(app, client):
    log_in(client, "ada")
    answer = client.get("/autocomplete?q=HIGH st")
    assert answer.status_code == 200
    assert answer.json == {"matching_results": ["1 High Street, London"]}
    assert client.get("/autocomplete?q=no such place").json == {"matching_results": []}
    assert client.get("/autocomplete").status_code == 400  # q is required, as the back end says
    owner = app.test_client()
    log_in(owner, "olive")  # an owner's search finds only their own sensors' addresses
    assert owner.get("/autocomplete?q=on").json == {"matching_results": ["1 High Street, London"]}
    assert len(client.get("/autocomplete?q=on").json["matching_results"]) > 1
    assert "message" in client.get("/autocomplete?q=x").json  # too short: the back end's words, as JSON


@pytest.mark.parametrize("path", ["/all_grow_map", "/owner_map", "/sensors/s1", "/sensors/0042"])
def test_every_page_renders_with_only_vendored_scripts(client, path):
    log_in(client, "ada")
    answer = client.get(path)
    assert answer.status_code == 200
    scripts = re.findall(r'<script[^>]* src="([^"]+)"', answer.get_data(as_text=True))
    assert scripts and all(src.startswith("/static/") for src in scripts)
    for src in scripts:
        with client.get(src) as script:
            assert script.status_code == 200, src


def test_a_browser_key_switches_the_maps_to_google(front_settings, engine):
    app = create_front_end(load_settings(**front_settings, google_maps_browser_key="AIza-browser-key"))
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    client = app.test_client()
    log_in(client, "ada")
    answer = client.get("/all_grow_map")
    page = answer.get_data(as_text=True)
    assert "https://maps.googleapis.com/maps/api/js?key=AIza-browser-key" in page and "leaflet.js" not in page
    assert "https://maps.googleapis.com" in answer.headers["Content-Security-Policy"]


def test_the_sensor_page_shows_health_reason_and_station(client):
    log_in(client, "ada")
    page = client.get("/sensors/s1").get_data(as_text=True)
    assert "faulty" in page and "1 soil moisture spike of up to 65.0 %" in page
    assert "London WOW" in page and "1.7 km" in page


def test_a_sensor_whose_station_link_has_no_distance_renders(client, engine):
    with engine.begin() as connection:
        connection.execute(update(sensor_wow).values(distance_km=None))
    log_in(client, "ada")
    page = client.get("/sensors/s1")
    assert page.status_code == 200 and "London WOW" in page.get_data(as_text=True)
    assert client.get("/data/sensors/s1").status_code == 200


def test_every_page_and_data_route_answers_the_odd_rows_without_a_500(app, client, engine):
    """Every GET route of the dashboard (from its url_map, so a new one cannot escape), about each odd
    sensor (tests.factories.ODD_SENSORS) where it names one: an answer, never a 500."""
    seed_odd(engine)
    log_in(client, "ada")
    asked = 0
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static" or not set(rule.arguments) <= {"sensor_id"}:
            continue
        for sensor_id in ODD_SENSORS if "sensor_id" in rule.arguments else [None]:
            with app.test_request_context():
                path = url_for(rule.endpoint, **({"sensor_id": sensor_id} if sensor_id else {}))
            answer = client.get(path, query_string={"sensor_id": sensor_id} if sensor_id else None)
            answer.close()
            assert answer.status_code < 500, (path, answer.get_data(as_text=True)[:300])
            asked += 1
    assert asked > 20


def test_a_silent_sensors_page_says_since_when(client, engine):
    seed_silent(engine)
    log_in(client, "ada")
    page = client.get("/sensors/q1").get_data(as_text=True)
    badge = re.search(r'<span class="badge status-silent" id="status">([^<]*)</span>', page)
    assert badge and badge.group(1) == "silent since 2019-06-02 23:45 UTC"


def test_the_map_page_gets_its_statuses_and_colours_from_the_server(client, engine):
    seed_silent(engine)
    log_in(client, "ada")
    page = client.get("/all_grow_map").get_data(as_text=True)
    silent = statuses.BY_VALUE["silent"]
    # The filter buttons, which are the legend and the counts, offer every status, silent among them.
    offered = re.findall(r'<button type="button" class="filter status-(\w+)" data-status="\1"', page)
    assert offered == [look.value for look in statuses.LOOKS] and "silent" in offered
    assert 'data-count="silent"' in page
    # The colour each status wears on the map, and the scripts' statuses, come with the page.
    assert f".status-silent {{ --status-colour: {silent.colour}; --status-ink: {silent.ink}; }}" in page
    config = json.loads(html.unescape(re.search(r'<body data-statuses="([^"]+)"', page).group(1)))
    assert (
        config == statuses.config()
        and {"value": "silent", "label": "Silent", "colour": silent.colour, "dated": True}.items()
        <= next(look for look in config["looks"] if look["value"] == "silent").items()
    )
    # What the page's script places on the map: q1 with its status.
    rows = client.get("/data/map").json["rows"]
    assert [row for row in rows if row[3] == "silent"] == [["q1", 51.75, -1.26, "silent"]]
    owner_page = client.get("/owner_map").get_data(as_text=True)
    assert '<th data-status="silent">Silent</th>' in owner_page


def test_bad_parameters_and_unknown_sensors_come_back_as_the_back_end_said(client):
    log_in(client, "ada")
    bad = client.get("/data/sensors/s1/readings?max_points=1")
    assert bad.status_code == 400 and "max_points" in bad.json["message"]
    assert client.get("/data/sensors/nosuch").status_code == 404
    assert client.get("/sensors/nosuch").status_code == 404
    # Ids are data, never a path: `..` and `../network?` name no sensor, here or at the back end.
    for typed in ("..", "../network?", "."):
        assert client.get("/open_sensor", query_string={"sensor_id": typed}).status_code == 404
    assert client.get("/data/sensors/../readings").status_code == 404
    assert client.get("/sensors/%2E%2E").status_code == 404


def test_the_health_route_is_open_and_says_what_is_down(client, front_settings, engine):
    assert client.get("/health").json == {"status": "ok", "database": "reachable", "backend": "reachable"}
    app = create_front_end(load_settings(**{**front_settings, "backend_url": DEAD_BACK_END}))
    answer = app.test_client().get("/health")
    assert answer.status_code == 503 and answer.json["backend"] == "unreachable"


def test_a_dead_back_end_is_a_clear_error_not_a_crash(front_settings, engine):
    app = create_front_end(load_settings(**{**front_settings, "backend_url": DEAD_BACK_END}))
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    client = app.test_client()
    log_in(client, "ada")
    answer = client.get("/data/map")
    assert answer.status_code == 502 and answer.json["error"] == "backend_unavailable"
    page = client.get("/sensors/s1")
    assert page.status_code == 502 and "cannot be reached" in page.get_data(as_text=True)


def test_a_disabled_account_is_logged_out_at_its_next_request(app, client, engine):
    log_in(client, "olive")
    assert client.get("/data/map").status_code == 200
    accounts.set_active(engine, "olive", False)
    assert client.get("/data/map").status_code == 401
    assert log_in(client, "olive").status_code == 401


def remembered(client) -> str:
    """Log in as olive with "stay logged in": the remember cookie's value."""
    form = {"username": "olive", "password": PASSWORD, "remember": "y", "csrf_token": csrf_token(client)}
    client.post("/login", data=form)
    return client.get_cookie("remember_token").value


@pytest.mark.parametrize(
    "change",
    [
        lambda engine: accounts.set_password(engine, "olive", "a new long password"),
        lambda engine: (
            accounts.set_active(engine, "olive", False),
            accounts.set_active(engine, "olive", True),
        ),
    ],
    ids=["password changed", "disabled and enabled again"],
)
def test_a_password_change_or_a_disable_ends_every_session_and_remember_cookie(app, client, engine, change):
    cookie = remembered(client)
    elsewhere = app.test_client()  # another browser, holding only the remember cookie
    elsewhere.set_cookie("remember_token", cookie)
    assert client.get("/data/map").status_code == 200 and elsewhere.get("/data/map").status_code == 200
    change(engine)
    comeback = app.test_client()
    comeback.set_cookie("remember_token", cookie)
    assert client.get("/data/map").status_code == 401
    assert elsewhere.get("/data/map").status_code == 401
    assert comeback.get("/data/map").status_code == 401


def log_out(client) -> None:
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})


def a_copy_of(app, client, name: str):
    """Another browser holding only a copy of the cookie `name` of `client` (stolen, say)."""
    other = app.test_client()
    other.set_cookie(name, client.get_cookie(name).value)
    return other


def test_a_session_or_remember_cookie_copied_before_logout_is_refused_after_it(app, client):
    remembered(client)
    stolen_session, stolen_remember = (
        a_copy_of(app, client, "session"),
        a_copy_of(app, client, "remember_token"),
    )
    assert stolen_session.get("/data/map").status_code == 200
    assert stolen_remember.get("/data/map").status_code == 200
    log_out(client)
    assert stolen_session.get("/data/map").status_code == 401
    assert stolen_remember.get("/data/map").status_code == 401
    assert a_copy_of(app, stolen_remember, "session").get("/data/map").status_code == 401


def test_every_login_gets_its_own_remember_token(app):
    assert remembered(app.test_client()) != remembered(app.test_client())


def issued_earlier(engine, by: dt.timedelta) -> None:
    """Every login of the database as if it had begun `by` earlier."""
    with engine.begin() as connection:
        for token_hash, issued_at in connection.execute(
            select(login_sessions.c.token_hash, login_sessions.c.issued_at)
        ):
            moved = update(login_sessions).where(login_sessions.c.token_hash == token_hash)
            connection.execute(moved.values(issued_at=issued_at - by))


def test_a_remember_token_older_than_remember_days_is_refused(app, client, engine):
    remembered(client)
    later = a_copy_of(app, client, "remember_token")
    issued_earlier(engine, dt.timedelta(days=13))
    assert later.get("/data/map").status_code == 200
    issued_earlier(engine, dt.timedelta(days=1, minutes=1))  # 14 days and a minute: REMEMBER_DAYS is 14
    assert a_copy_of(app, client, "remember_token").get("/data/map").status_code == 401


def test_a_busy_session_without_remember_me_still_ends_at_its_absolute_lifetime(app, client, engine):
    log_in(client, "olive")
    assert client.get("/data/map").status_code == 200
    issued_earlier(engine, dt.timedelta(hours=23))  # used all along: the idle lifetime never ran out
    assert client.get("/data/map").status_code == 200
    issued_earlier(engine, dt.timedelta(hours=1, minutes=1))  # SESSION_ABSOLUTE_HOURS is 24
    assert client.get("/data/map").status_code == 401


def test_log_out_everywhere_ends_every_session_of_the_account_and_only_its(app, engine):
    phone, laptop, admin = app.test_client(), app.test_client(), app.test_client()
    log_in(phone, "olive"), remembered(laptop), log_in(admin, "ada")
    phone.post("/logout/everywhere", data={"csrf_token": csrf_token(phone, "/")})
    assert phone.get("/data/map").status_code == 401 and laptop.get("/data/map").status_code == 401
    assert admin.get("/data/map").status_code == 200
    log_in(phone, "olive")
    assert phone.get("/data/map").status_code == 200
    ended = app.test_cli_runner().invoke(args=["users", "logout-everywhere", "olive"])
    assert ended.exit_code == 0 and "ended 1 session" in ended.output, ended.output
    assert phone.get("/data/map").status_code == 401


def cookie_lifetime(answer, name: str) -> dt.timedelta:
    """How long the browser is told to keep the cookie `name` that the answer sets."""
    for header in answer.headers.getlist("Set-Cookie"):
        if header.startswith(f"{name}="):
            expires = re.search(r"Expires=([^;]+)", header).group(1)
            return parsedate_to_datetime(expires) - dt.datetime.now(dt.UTC)
    raise AssertionError(f"no {name} cookie set")


def test_sessions_last_their_set_lifetime_and_remember_me_at_most_two_weeks(app, client):
    form = {"username": "olive", "password": PASSWORD, "remember": "y", "csrf_token": csrf_token(client)}
    answer = client.post("/login", data=form)
    assert dt.timedelta(hours=11) < cookie_lifetime(answer, "session") <= dt.timedelta(hours=12)
    assert dt.timedelta(days=13) < cookie_lifetime(answer, "remember_token") <= dt.timedelta(days=14)


def test_the_lifetimes_are_settings(front_settings, engine):
    app = create_front_end(load_settings(**front_settings, session_hours=2, remember_days=3))
    accounts.create_user(engine, "olive", PASSWORD, "owner", owner_id="owner-a")
    client = app.test_client()
    form = {"username": "olive", "password": PASSWORD, "remember": "y", "csrf_token": csrf_token(client)}
    answer = client.post("/login", data=form)
    assert dt.timedelta(hours=1) < cookie_lifetime(answer, "session") <= dt.timedelta(hours=2)
    assert dt.timedelta(days=2) < cookie_lifetime(answer, "remember_token") <= dt.timedelta(days=3)
    with pytest.raises(SettingsError, match="REMEMBER_DAYS"):
        load_settings(**front_settings, remember_days=30)


def test_what_a_logged_in_account_sees_is_kept_by_no_cache_but_its_own_browser_and_the_map_is_asked_again(
    client,
):
    log_in(client, "olive")
    for path in ("/all_grow_map", "/sensors/s1", "/data/sensors", "/data/sensors/s1"):
        assert client.get(path).headers["Cache-Control"] == "private, no-store", path
    assert set(client.get("/data/map").headers["Cache-Control"].split(", ")) == {"private", "no-cache"}
    script = client.get("/static/app.js")
    script.close()  # a static file is streamed from its file
    assert "no-store" not in script.headers.get("Cache-Control", "")


def test_a_request_body_over_a_megabyte_is_refused_before_it_is_read(client):
    huge = {"username": "olive", "password": "x" * 2_000_000, "csrf_token": csrf_token(client)}
    assert client.post("/login", data=huge).status_code == 413


def test_usernames_are_trimmed_and_folded_on_create_and_login(app, client, engine):
    accounts.create_user(engine, "  Grace.H ", PASSWORD, "owner", owner_id="owner-b")
    assert [u.username for u in accounts.list_users(engine) if u.owner_id == "owner-b"] == ["grace.h"]
    assert log_in(client, " GRACE.h").status_code == 302
    with pytest.raises(accounts.AccountError, match="already an account"):
        accounts.create_user(engine, "grace.H", PASSWORD, "owner", owner_id="owner-b")


def test_pages_carry_a_strict_content_security_policy(client):
    log_in(client, "ada")
    policy = client.get("/all_grow_map").headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy


def test_the_session_cookie_is_http_only_and_secure_by_default(front_settings, engine):
    settings = {**front_settings}
    settings.pop("session_cookie_secure")
    app = create_front_end(load_settings(**settings))
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    client = app.test_client()
    answer = log_in(client, "ada")
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie


def test_the_front_end_needs_its_secret_key(front_settings):
    settings = {**front_settings}
    settings.pop("frontend_secret_key")
    with pytest.raises(SettingsError, match="FRONTEND_SECRET_KEY"):
        create_front_end(load_settings(**settings))


def test_accounts_are_managed_from_the_command_line(app, engine):
    runner = app.test_cli_runner()
    made = runner.invoke(
        args=["users", "create", "owen", "--role", "owner", "--owner-id", "owner-b"],
        env={"FRONTEND_NEW_PASSWORD": PASSWORD},
    )
    assert made.exit_code == 0, made.output
    listed = runner.invoke(args=["users", "list"]).output
    assert re.search(r"owen\s+owner\s+owner-b\s+active", listed) and PASSWORD not in listed
    short = runner.invoke(
        args=["users", "create", "x", "--role", "admin"], env={"FRONTEND_NEW_PASSWORD": "short"}
    )
    assert short.exit_code != 0 and "at least 10 characters" in short.output
    no_owner = runner.invoke(
        args=["users", "create", "y", "--role", "owner"], env={"FRONTEND_NEW_PASSWORD": PASSWORD}
    )
    assert no_owner.exit_code != 0 and "owner id" in no_owner.output
    odd_owner = runner.invoke(
        args=["users", "create", "z", "--role", "owner", "--owner-id", "../x"],
        env={"FRONTEND_NEW_PASSWORD": PASSWORD},
    )
    assert odd_owner.exit_code != 0 and "not an owner id" in odd_owner.output
    assert runner.invoke(args=["users", "disable", "owen"]).exit_code == 0
    assert re.search(r"owen\s+owner\s+owner-b\s+disabled", runner.invoke(args=["users", "list"]).output)
    assert runner.invoke(args=["users", "disable", "nobody"]).exit_code != 0


def test_passwords_are_stored_as_scrypt_hashes(engine):
    from sqlalchemy import select

    from core.schema import users

    accounts.create_user(engine, "ada", PASSWORD, "admin")  # at the real cost: no cheap_scrypt here
    with engine.connect() as connection:
        stored = connection.scalar(select(users.c.password_hash).where(users.c.username == "ada"))
    assert stored.startswith("scrypt:32768:8:1$") and PASSWORD not in stored


def test_the_demo_serves_both_apps_and_its_printed_logins_work(settings, engine, cheap_scrypt):
    import requests

    from devtools.web_demo import serve_demo

    seed(engine)
    site = serve_demo(settings, port=0, backend_port=0)
    try:
        (admin, admin_password, _), (owner, owner_password, sees) = site.logins
        assert sees == "only the sensors of owner owner-a"  # the owner of the faulty sensor s1
        for username, password, expected in [(admin, admin_password, 4), (owner, owner_password, 2)]:
            browser = requests.Session()
            page = browser.get(f"{site.url}/login", timeout=10).text
            token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
            form = {"username": username, "password": password, "csrf_token": token}
            assert browser.post(f"{site.url}/login", data=form, timeout=10).url.endswith("/all_grow_map")
            assert len(browser.get(f"{site.url}/data/map", timeout=10).json()["rows"]) == expected
        # Run again: the same accounts, new passwords.
        again = serve_demo(settings, port=0, backend_port=0)
        again.stop()
        assert again.logins[0][1] != admin_password
    finally:
        site.stop()


def test_a_sensors_readings_and_anomalies_download_as_csv_equal_to_the_readings_api(client):
    import csv
    import io

    log_in(client, "olive")
    span = {"start": "2019-06-03", "end": "2019-06-06T12:00"}
    answer = client.get("/sensors/s1/readings.csv", query_string=span)
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert 'filename="s1_readings_2019-06-03' in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    api = client.get("/data/sensors/s1/readings", query_string={**span, "max_points": 20000}).json
    assert len(rows) == len(api["items"]) == api["readings"] > 0
    for row, item in zip(rows, api["items"]):
        assert row["ts"] == item["ts"]
        for name in ("soil_moisture", "air_temperature", "light", "battery_level"):
            assert (float(row[name]) if row[name] else None) == item[name]
    anomalies = client.get(
        "/sensors/s1/anomalies.csv", query_string={"start": "2019-06-01", "end": "2019-06-11"}
    )
    found = list(csv.DictReader(io.StringIO(anomalies.get_data(as_text=True))))
    assert sorted(r["kind"] for r in found) == ["spike", "temperature_bias"]
    # Another owner's sensor, or a bad range, is no download.
    assert client.get("/sensors/r1/readings.csv").status_code == 404
    assert client.get("/sensors/s1/readings.csv?start=soon").status_code == 400


def test_a_downloaded_csv_cell_a_spreadsheet_would_run_as_a_formula_comes_as_text(client, engine):
    import csv
    import io

    with engine.begin() as connection:  # text from elsewhere: a 2019 import, an upstream's message
        connection.execute(update(anomalies).values(explanation='=HYPERLINK("http://evil","spike")'))
    log_in(client, "olive")
    answer = client.get(
        "/sensors/s1/anomalies.csv", query_string={"start": "2019-06-01", "end": "2019-06-11"}
    )
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert rows and {r["explanation"] for r in rows} == {'\'=HYPERLINK("http://evil","spike")'}
    assert all(float(r["score"]) == float(r["score"]) for r in rows)  # numbers stay numbers


def test_typing_a_sensor_id_charts_it_for_whoever_may_see_it_and_refuses_others(app, client):
    log_in(client, "ada")
    answer = client.get("/open_sensor?sensor_id=r1")  # an admin: any sensor
    assert answer.status_code == 302 and answer.location == "/sensors/r1"
    owner = app.test_client()
    log_in(owner, "olive")
    assert owner.get("/open_sensor?sensor_id=%20s1%20").location == "/sensors/s1"  # spaces trimmed
    for typed in ("r1", "nosuch", "../admin", "s1'; drop"):  # another owner's, unknown, not an id
        refused = owner.get("/open_sensor", query_string={"sensor_id": typed})
        assert refused.status_code == 404, typed
        assert "no such page or sensor" in refused.get_data(as_text=True)
    page = owner.get("/all_grow_map").get_data(as_text=True)
    assert 'action="/open_sensor"' in page and 'name="sensor_id"' in page


def test_the_landing_page_counts_the_network_for_an_admin_and_an_owners_own_sensors(app, client):
    def counts(page: str) -> dict:
        items = re.findall(r'data-status="(\w+)">.*?</span> <b>(\d+)</b>', page, re.S)
        return {status: int(n) for status, n in items}

    log_in(client, "ada")
    page = client.get("/").get_data(as_text=True)
    assert "The network" in page and "<b>4</b> sensors" in page and "<b>2</b> owners" in page
    assert counts(page) == {
        "healthy": 1,
        "faulty": 1,
        "recovered": 1,
        "silent": 0,
        "paused": 0,
        "unchecked": 1,
    }
    assert "GROW Observatory" in page and "Horizon 2020" in page
    owner = app.test_client()
    log_in(owner, "olive")
    page = owner.get("/").get_data(as_text=True)
    assert "Your sensors" in page and "<b>2</b> sensors" in page and "owners" not in page.split("<ul")[0]
    assert counts(page) == {
        "healthy": 1,
        "faulty": 1,
        "recovered": 0,
        "silent": 0,
        "paused": 0,
        "unchecked": 0,
    }


def test_the_map_answer_keeps_its_tag_through_the_front_end_and_an_unchanged_map_is_304(app):
    client, olive = app.test_client(), app.test_client()
    log_in(client, "ada")
    first = client.get("/data/map")
    tag = first.headers["ETag"]
    assert first.status_code == 200 and tag and first.json["rows"]
    again = client.get("/data/map", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == tag
    # An owner's map is another answer: the admin's tag does not stand for it.
    log_in(olive, "olive")
    theirs = olive.get("/data/map", headers={"If-None-Match": tag})
    assert theirs.status_code == 200 and [row[0] for row in theirs.json["rows"]] == ["s1", "s2"]
    assert theirs.headers["ETag"] != tag


def test_a_map_view_keeps_its_tag_through_the_front_end_and_a_bad_view_is_the_back_end_s_400(client):
    log_in(client, "ada")
    first = client.get("/data/map/view?zoom=4&bbox=-10,35,30,60")
    tag = first.headers["ETag"]
    assert first.status_code == 200 and tag and shown(first.json) == 4
    again = client.get("/data/map/view?zoom=4&bbox=-10,35,30,60", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.data == b""
    refused = client.get("/data/map/view?zoom=12")  # the world at zoom 12: a million pixels wide
    assert refused.status_code == 400 and "bbox" in refused.json["message"]


@pytest.mark.parametrize("encoding", ["br", "gzip"])
def test_pages_scripts_and_data_come_compressed_to_a_browser_that_accepts_it(client, encoding):
    import gzip

    import brotli

    decode = {"br": brotli.decompress, "gzip": gzip.decompress}[encoding]

    def same_page(body: bytes) -> bytes:  # a page's CSRF token is signed with the second it was made
        return re.sub(rb'(name="csrf_token" type="hidden" value=")[^"]+', rb"\1", body)

    log_in(client, "ada")
    for path in ["/all_grow_map", "/static/vendor/leaflet/leaflet.js", "/data/sensors"]:
        with client.get(path) as plain, client.get(path, headers={"Accept-Encoding": encoding}) as packed:
            assert packed.headers.get("Content-Encoding") == encoding, path
            assert len(packed.data) < len(plain.get_data()), path
            assert same_page(decode(packed.data)) == same_page(plain.get_data()), path


def test_back_end_paths_are_built_from_escaped_segments():
    """Issue 32: an id is data, never a path: each segment escaped, and dot segments, which HTTP clients
    collapse (`/owners/../stats` reached `/stats`), sent encoded."""
    from flask_front_end.backend import api_path

    assert api_path("sensors", "a:b@c.d-e_", "readings") == "/sensors/a%3Ab%40c.d-e_/readings"
    assert api_path("owners", "../network?", "stats") == "/owners/..%2Fnetwork%3F/stats"
    assert api_path("sensors", "..") == "/sensors/%2E%2E" and api_path("sensors", ".") == "/sensors/%2E"


def test_an_accounts_address_and_alerts_are_set_from_the_command_line(app, engine):
    """Issue 33: where an owner's alerts go, and whether they go at all; a bad address is refused."""
    from sqlalchemy import select

    from core.schema import users

    runner = app.test_cli_runner()
    made = runner.invoke(
        args=[
            "users",
            "create",
            "owen",
            "--role",
            "owner",
            "--owner-id",
            "owner-b",
            "--email",
            "o@example.org",
        ],
        env={"FRONTEND_NEW_PASSWORD": PASSWORD},
    )
    assert made.exit_code == 0, made.output
    changed = runner.invoke(args=["users", "mail", "olive", "--email", "olive@example.org", "--no-alerts"])
    assert changed.exit_code == 0 and "olive: alerts off, to olive@example.org" in changed.output
    bad = runner.invoke(args=["users", "mail", "olive", "--email", "olive@example.org\r\nBcc: x@y.z"])
    assert bad.exit_code != 0 and "is not a mail address" in bad.output
    assert runner.invoke(args=["users", "mail", "nobody", "--alerts"]).exit_code != 0
    with engine.connect() as connection:
        rows = dict(connection.execute(select(users.c.username, users.c.email)).all())
        alerts = dict(connection.execute(select(users.c.username, users.c.alerts)).all())
    assert rows["owen"] == "o@example.org" and rows["olive"] == "olive@example.org"
    assert alerts == {"ada": True, "olive": False, "owen": True}
