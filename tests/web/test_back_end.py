"""The JSON back end on both engines: the token guards every data route, answers have their shapes,
bad parameters answer 400 naming the parameter, an unknown sensor 404, long ranges are downsampled with
spikes kept."""

import datetime as dt

import pandas as pd
import pytest
from apiflask import APIBlueprint
from flask import url_for

from core import answers
from flask_back_end import create_app, is_public, public
from flask_back_end.settings import load_settings
from tests.factories import START, TOKEN, seed, seed_silent


@pytest.fixture
def client(seeded_url):
    """A client of the back end on the seeded database of each engine (shared: no test here writes)."""
    app = create_app(load_settings(database_url=seeded_url, backend_token=TOKEN))
    app.config["TESTING"] = True
    with app.test_client() as client:
        yield client
    app.extensions["grow_wow"]["engine"].dispose()


@pytest.fixture
def silent_client(settings, engine):
    """A client of the back end on a database of its own: the seeded sensors and q1, gone silent."""
    seed(engine)
    seed_silent(engine)
    app = create_app(load_settings(backend_token=TOKEN))
    with app.test_client() as client:
        yield client
    app.extensions["grow_wow"]["engine"].dispose()


def get(client, path, token=TOKEN, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(f"/api/v1{path}", headers=headers, query_string=params or None)


DATA_ROUTES = [
    "/sensors",
    "/map",
    "/map/view?zoom=4",
    "/sensors/s1",
    "/sensors/s1/readings",
    "/sensors/s1/anomalies",
    "/sensors/s1/wow",
    "/status_counts",
    "/network",
    "/owners/owner-a/stats",
    "/addresses?q=lo",
]


@pytest.mark.parametrize("path", DATA_ROUTES)
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_data_routes_need_the_service_token(client, path, token):
    answer = get(client, path, token=token)
    assert answer.status_code == 401
    assert answer.json["error"] == "unauthorized" and answer.json["message"]


# A seeded id for each path argument (tests.factories.seed); a route with another argument fails the
# tests below until it has one here.
SEEDED = {"sensor_id": "s1", "owner_id": "owner-a"}


def seeded_path(app, rule) -> str:
    with app.test_request_context():
        return url_for(rule.endpoint, **{name: SEEDED[name] for name in rule.arguments})


def test_every_route_but_the_public_ones_needs_the_service_token(client):
    """Every route of the app, from its url_map: a new one cannot escape the list."""
    app = client.application
    guarded = [rule for rule in app.url_map.iter_rules() if not is_public(app.view_functions[rule.endpoint])]
    assert len(guarded) >= 23  # /api/v1's data routes and 2019's
    for rule in guarded:
        path = seeded_path(app, rule)
        for method in rule.methods - {"OPTIONS"}:  # a CORS preflight never carries the token
            for token in (None, "wrong-token"):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                refused = client.open(path, method=method, headers=headers)
                assert refused.status_code == 401, (method, path, token)
                assert method == "HEAD" or refused.json["error"] == "unauthorized"
        # The token opens it (400: a 2019 route, or /addresses, without its required parameters).
        assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code in (200, 400), path


def test_only_the_health_check_and_the_document_are_public(client):
    app = client.application
    opened = [rule for rule in app.url_map.iter_rules() if is_public(app.view_functions[rule.endpoint])]
    assert {rule.endpoint for rule in opened} == {"api.health", "openapi.spec"}
    for rule in opened:
        assert client.get(seeded_path(app, rule)).status_code == 200, rule.rule


def test_a_route_added_anywhere_needs_the_token_without_being_told():
    """Protected by default: a route on the app or on a new blueprint is refused until marked @public."""
    app = create_app(load_settings(database_url="sqlite://", backend_token=TOKEN))
    app.add_url_rule("/api/v1/added", "added", lambda: {"secret": 1})
    extra = APIBlueprint("extra", __name__)

    @extra.get("/extra")
    def closed():
        return {"secret": 2}

    @extra.get("/extra/open")
    @public
    def opened():
        return {"open": 3}

    app.register_blueprint(extra)
    client = app.test_client()
    for path in ("/api/v1/added", "/extra"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, path
    assert client.get("/extra/open").json == {"open": 3}


def test_the_document_says_every_route_but_health_needs_the_token(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["components"]["securitySchemes"] == {"BearerAuth": {"type": "http", "scheme": "bearer"}}
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            guarded = path != "/api/v1/health"
            assert (operation.get("security") == [{"BearerAuth": []}]) == guarded, path
            assert ("401" in operation["responses"]) == guarded, path


def test_the_health_route_is_open(client):
    answer = client.get("/api/v1/health")
    assert answer.status_code == 200 and answer.json == {"status": "ok", "database": "reachable"}


def test_the_health_route_says_when_the_database_is_unreachable():
    # Nothing listens on port 9: every connection is refused.
    app = create_app(load_settings(database_url="postgresql://nobody@127.0.0.1:9/none", backend_token=TOKEN))
    answer = app.test_client().get("/api/v1/health")
    assert answer.status_code == 503 and answer.json == {"status": "unavailable", "database": "unreachable"}


def test_sensors_are_listed_with_status_and_paginated(client):
    answer = get(client, "/sensors", per_page=2)
    assert answer.status_code == 200
    body = answer.json
    assert [s["sensor_id"] for s in body["items"]] == ["0042", "r1"]  # ids of digits stay text
    assert body["_meta"] == {"page": 1, "per_page": 2, "total_items": 4, "total_pages": 2}
    assert "page=2" in body["_links"]["next"] and "prev" not in body["_links"]
    assert {s["sensor_id"]: s["status"] for s in body["items"]} == {"0042": None, "r1": "recovered"}
    second = get(client, "/sensors", per_page=2, page=2).json
    assert [s["sensor_id"] for s in second["items"]] == ["s1", "s2"] and "next" not in second["_links"]
    # With each its latest reading, battery too (the owner page's tables); none for a sensor without.
    latest = {s["sensor_id"]: s["latest"] for s in second["items"]}
    assert latest["s2"] is None
    assert (
        latest["s1"]["battery_level"] == 80.0
        and latest["s1"]["ts"] == get(client, "/sensors/s1").json["latest"]["ts"]
    )


@pytest.mark.parametrize("path", ["/sensors", "/sensors/s1/anomalies"])
@pytest.mark.parametrize(
    "stray",
    [
        {"endpoint": "x"},
        {"_scheme": "x"},
        {"_method": "POST"},
        {"_anchor": "top"},
        {"_external": "1", "_scheme": "javascript"},
        {"values": "1"},
    ],
)
def test_pagination_links_carry_only_the_validated_query(client, path, stray):
    # Raw query arguments once reached url_for as its own keywords: a 500, or a javascript: link.
    wanted = {"per_page": 1, **({"status": "faulty"} if path == "/sensors" else {})}
    answer = get(client, path, **wanted, **stray)
    assert answer.status_code == 200
    for link in answer.json["_links"].values():
        assert link.startswith(f"/api/v1{path}?"), link
        assert not any(name in link for name in stray), link
        assert "per_page=1" in link
    if path == "/sensors":
        assert all("status=faulty" in link for link in answer.json["_links"].values())


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "faulty"}, ["s1"]),
        ({"status": "healthy"}, ["s2"]),
        ({"status": "recovered"}, ["r1"]),
        ({"owner": "owner-a"}, ["s1", "s2"]),
        ({"q": "paris"}, ["0042"]),
        ({"bbox": "-1,51,0.5,53"}, ["s1", "s2"]),
        ({"bbox": "-1,51,0.5,53", "status": "healthy"}, ["s2"]),
    ],
)
def test_sensor_filters(client, params, expected):
    answer = get(client, "/sensors", **params)
    assert answer.status_code == 200
    assert [s["sensor_id"] for s in answer.json["items"]] == expected


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/sensors", {"status": "broken"}, "status"),
        ("/sensors", {"per_page": "0"}, "per_page"),
        ("/sensors", {"per_page": "100000"}, "per_page"),
        ("/sensors", {"page": "x"}, "page"),
        ("/sensors", {"bbox": "1,2,3"}, "bbox"),
        ("/sensors", {"owner": ""}, "owner"),
        ("/sensors", {"q": "x" * 201}, "q"),
        ("/sensors", {"bbox": "10,50,5,55"}, "bbox"),
        ("/sensors/s1/readings", {"start": "yesterday"}, "start"),
        ("/sensors/s1/readings", {"start": "2019-06-05", "end": "2019-06-01"}, "start"),
        ("/sensors/s1/readings", {"max_points": "1"}, "max_points"),
        ("/sensors/s1/anomalies", {"end": "soon"}, "end"),
        ("/sensors/s1/anomalies", {"per_page": "-3"}, "per_page"),
        ("/sensors/s1/wow", {"end": "2019-13-01"}, "end"),
        ("/addresses", {}, "q"),
        ("/addresses", {"q": "x"}, "q"),
        ("/addresses", {"q": "lon", "limit": "500"}, "limit"),
        ("/map/view", {}, "zoom"),
        ("/map/view", {"zoom": "x"}, "zoom"),
        ("/map/view", {"zoom": "-1"}, "zoom"),
        ("/map/view", {"zoom": "19"}, "zoom"),
        ("/map/view", {"zoom": "4", "bbox": "1,2,3"}, "bbox"),
        ("/map/view", {"zoom": "4", "bbox": "10,50,5,55"}, "bbox"),
        ("/map/view", {"zoom": "10", "bbox": "-180,-85,180,85"}, "bbox"),  # a million pixels wide
        ("/map/view", {"zoom": "4", "status": "broken"}, "status"),
        ("/map/view", {"zoom": "4", "owner": ""}, "owner"),
    ],
)
def test_bad_parameters_answer_400_naming_the_parameter(client, path, params, parameter):
    answer = get(client, path, **params)
    assert answer.status_code == 400
    assert answer.json["error"] == "bad_request"
    assert parameter in answer.json["message"]


def test_one_sensor_with_health_and_station(client):
    body = get(client, "/sensors/s1").json
    assert body["sensor_id"] == "s1" and body["name"] == "Tomato bed"
    assert body["health"]["status"] == "faulty" and "spike" in body["health"]["reason"]
    assert body["health"]["counts"]["kind"] == {"spike": 1}
    assert body["station"] == {"site_id": "900123", "name": "London WOW", "distance_km": 1.7, "reason": None}
    # Its latest reading, battery included (the marker panel and the owner's tables show it).
    assert body["latest"]["ts"].startswith(body["last_sample_at"][:16])
    assert body["latest"]["battery_level"] is not None
    assert get(client, "/sensors/s2").json["latest"] is None  # no readings


@pytest.mark.parametrize(
    "path",
    ["/sensors/nosuch", "/sensors/nosuch/readings", "/sensors/nosuch/anomalies", "/sensors/nosuch/wow"],
)
def test_an_unknown_sensor_is_404(client, path):
    answer = get(client, path)
    assert (
        answer.status_code == 404
        and answer.json["error"] == "not_found"
        and "nosuch" in answer.json["message"]
    )


def test_readings_over_a_short_range_come_as_they_are(client):
    body = get(client, "/sensors/s1/readings", start="2019-06-05T00:00:00Z", end="2019-06-05T05:45:00Z").json
    assert body["downsampled"] is False and body["readings"] == 24 and len(body["items"]) == 24
    assert body["items"][0]["ts"].startswith("2019-06-05T00:00:00")
    assert set(body["items"][0]) == {"ts", "soil_moisture", "air_temperature", "light", "battery_level"}


def test_a_long_range_is_downsampled_and_keeps_the_spike(client):
    body = get(client, "/sensors/s1/readings", max_points=100).json  # default range: the last 9 days
    assert body["downsampled"] is True and body["readings"] > 100 and len(body["items"]) <= 100
    assert max(p["soil_moisture_max"] for p in body["items"]) == 95.0
    assert max(p["soil_moisture"] for p in body["items"]) < 95.0  # the mean alone would hide it


def test_the_network_in_numbers(client):
    body = get(client, "/network").json
    assert body["sensors"] == 4 and body["owners"] == 2
    assert body["by_status"] == get(client, "/status_counts").json


def test_status_counts(client):
    assert get(client, "/status_counts").json == {
        "healthy": 1,
        "faulty": 1,
        "recovered": 1,
        "silent": 0,
        "paused": 0,
        "unchecked": 1,
    }


def test_filtering_by_silent_finds_exactly_the_silent_sensor(silent_client):
    answer = get(silent_client, "/sensors", status="silent")
    assert answer.status_code == 200
    assert [(s["sensor_id"], s["status"]) for s in answer.json["items"]] == [("q1", "silent")]
    assert [row[0] for row in get(silent_client, "/map").json["rows"] if row[3] == "silent"] == ["q1"]


def test_silent_sensors_are_counted(silent_client):
    counts = {"healthy": 1, "faulty": 1, "recovered": 1, "silent": 1, "paused": 0, "unchecked": 1}
    assert get(silent_client, "/status_counts").json == counts
    body = get(silent_client, "/owners/owner-a/stats").json
    assert body["sensors"] == 3
    assert body["by_status"] == {
        "healthy": 1,
        "faulty": 1,
        "recovered": 0,
        "silent": 1,
        "paused": 0,
        "unchecked": 0,
    }


def test_a_silent_sensor_says_when_it_was_last_heard(silent_client):
    health = get(silent_client, "/sensors/q1").json["health"]
    assert health["status"] == "silent" and health["reason"].startswith("silent: no reading since")
    assert health["latest_reading_at"].startswith("2019-06-02T23:45:00")


def test_the_openapi_document_lists_the_routes(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/sensors", "/api/v1/sensors/{sensor_id}", "/api/v1/sensors/{sensor_id}/readings"} <= set(
        spec["paths"]
    )


def test_without_a_configured_token_every_data_route_refuses(settings, engine):
    app = create_app(load_settings(database_url=settings.database_url))  # BACKEND_TOKEN unset
    with app.test_client() as client:
        assert get(client, "/sensors", token="anything").status_code == 401


def test_application_module_builds_the_app(monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    import importlib

    import flask_back_end.application as module

    assert importlib.reload(module).application.name == "flask_back_end"


def test_the_map_answer_has_every_located_sensor_once(client):
    body = get(client, "/map").json
    assert body["fields"] == ["sensor_id", "latitude", "longitude", "status"]
    assert body["rows"] == [
        ["0042", 48.8, 2.3, None],
        ["r1", 45.76, 4.84, "recovered"],
        ["s1", 51.5, -0.1, "faulty"],
        ["s2", 52.2, 0.1, "healthy"],
    ]


def view(client, **params) -> tuple[dict, list[dict], list[dict]]:
    """The map of one view: the answer, its clusters and its single sensors as dicts."""
    answer = get(client, "/map/view", **params)
    assert answer.status_code == 200, answer.json
    body = answer.json
    clusters = [dict(zip(body["clusters"]["fields"], row, strict=True)) for row in body["clusters"]["rows"]]
    singles = [dict(zip(body["sensors"]["fields"], row, strict=True)) for row in body["sensors"]["rows"]]
    return body, clusters, singles


LONDON = "-0.15,51.45,-0.05,51.55"  # at zoom 16, 4,660 × 7,450 pixels


def test_the_map_view_clusters_zoomed_out_with_their_statuses_and_shows_single_sensors_zoomed_in(client):
    body, clusters, singles = view(client, zoom=0)
    # Zoomed out over the world: the three sensors east of Greenwich in one cluster, London's alone.
    assert [(c["count"], dict(zip(body["statuses"], c["by_status"], strict=True))) for c in clusters] == [
        (3, {"healthy": 1, "faulty": 0, "recovered": 1, "silent": 0, "paused": 0, "unchecked": 1})
    ]
    assert singles == [{"sensor_id": "s1", "latitude": 51.5, "longitude": -0.1, "status": "faulty"}]
    assert clusters[0]["bounds"] == [0.1, 45.76, 4.84, 52.2]
    # The whole network around any view: its counts per status and where its sensors are.
    assert body["counts"] == {
        "healthy": 1,
        "faulty": 1,
        "recovered": 1,
        "silent": 0,
        "paused": 0,
        "unchecked": 1,
    }
    assert body["bounds"] == [-0.1, 45.76, 4.84, 52.2]
    # Zoomed in on London: its sensor alone, and nothing outside the bbox.
    body, clusters, singles = view(client, zoom=16, bbox=LONDON)
    assert clusters == [] and [s["sensor_id"] for s in singles] == ["s1"]
    assert body["zoom"] == 16


def test_the_map_view_narrowed_to_an_owner_or_a_status(client):
    _, clusters, singles = view(client, zoom=9, owner="owner-b", bbox="2,45,5,49")
    assert clusters == [] and [s["sensor_id"] for s in singles] == ["0042", "r1"]
    body, clusters, singles = view(client, zoom=0, owner="owner-b")
    assert sum(c["count"] for c in clusters) + len(singles) == 2
    assert body["counts"] == {
        "healthy": 0,
        "faulty": 0,
        "recovered": 1,
        "silent": 0,
        "paused": 0,
        "unchecked": 1,
    }
    # A status: only its sensors, placed where they are; the counts still of every status, for the legend.
    body, clusters, singles = view(client, zoom=0, status="healthy")
    assert clusters == [] and [s["sensor_id"] for s in singles] == ["s2"]
    assert body["bounds"] == [0.1, 52.2, 0.1, 52.2] and body["counts"]["faulty"] == 1
    body, clusters, singles = view(client, zoom=0, status="unchecked")
    assert [s["sensor_id"] for s in singles] == ["0042"]


def test_the_map_and_the_autocomplete_narrowed_to_one_owner(client):
    assert [row[0] for row in get(client, "/map", owner="owner-b").json["rows"]] == ["0042", "r1"]
    assert get(client, "/addresses", q="on", owner="owner-a").json["items"] == [
        {"address": "1 High Street, London", "sensors": 1}
    ]


def test_a_sensors_anomalies_latest_first_and_by_range(client):
    body = get(client, "/sensors/s1/anomalies").json
    assert [a["kind"] for a in body["items"]] == ["spike", "temperature_bias"]
    assert body["items"][0]["detector"] == "rule" and body["items"][0]["explanation"].startswith("1 soil")
    assert body["_meta"]["total_items"] == 2
    early = get(client, "/sensors/s1/anomalies", end="2019-06-03T00:00:00Z").json
    assert [a["kind"] for a in early["items"]] == ["temperature_bias"]
    assert get(client, "/sensors/s2/anomalies").json["items"] == []


def test_an_anomaly_carries_its_owners_answer_and_a_sensor_its_pauses(settings, engine):
    """Issue 33: what an owner said of an anomaly comes with it; a sensor's pauses come with the sensor."""
    seed(engine)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        spike = {"sensor_id": "s1", "variable": "soil_moisture", "kind": "spike"}
        spike["start_at"] = (START + pd.Timedelta(minutes=15 * 500)).to_pydatetime()  # seed's spike
        answers.record_answer(connection, spike, "not_a_fault", "watering", "the hose", None, "olive", now)
        answers.add_pause(
            connection,
            "s1",
            now - dt.timedelta(days=1),
            now + dt.timedelta(days=2),
            "away",
            None,
            "olive",
            now,
        )
    app = create_app(load_settings(backend_token=TOKEN))
    with app.test_client() as client:
        items = get(client, "/sensors/s1/anomalies").json["items"]
        said = {item["kind"]: item["answer"] for item in items}
        assert said["temperature_bias"] is None
        assert said["spike"]["answer"] == "not_a_fault" and said["spike"]["reason"] == "watering"
        assert said["spike"]["note"] == "the hose" and said["spike"]["answered_by"] == "olive"
        pauses = get(client, "/sensors/s1").json["pauses"]
        assert [(p["note"], p["paused_by"]) for p in pauses] == [("away", "olive")]
        assert get(client, "/sensors/s2").json["pauses"] == []
    app.extensions["grow_wow"]["engine"].dispose()


def test_the_wow_comparison_aligns_the_station_hour_by_hour(client):
    body = get(client, "/sensors/s1/wow", start="2019-06-03T00:00:00Z", end="2019-06-03T05:59:59Z").json
    assert body["station"] == {"site_id": "900123", "name": "London WOW", "distance_km": 1.7}
    assert len(body["items"]) == 6
    first = body["items"][0]
    assert first["air_temperature"] == 15.0 and first["station_air_temperature"] == 14.0
    assert body["items"][2]["station_rainfall"] == 2.5  # report 100 (30-min steps) falls in hour 50 = 02:00
    unlinked = get(client, "/sensors/s2/wow").json
    assert unlinked["station"]["site_id"] is None and unlinked["items"] == []


def test_owner_statistics(client):
    body = get(client, "/owners/owner-a/stats").json
    assert body["sensors"] == 2 and body["by_status"] == {
        "healthy": 1,
        "faulty": 1,
        "recovered": 0,
        "silent": 0,
        "paused": 0,
        "unchecked": 0,
    }
    assert body["anomalies"] == 2 and body["latest_reading_at"].startswith("2019-06-10T23:45:00")
    assert get(client, "/owners/nobody/stats").status_code == 404


def test_address_autocomplete(client):
    assert get(client, "/addresses", q="PAR").json["items"] == [
        {"address": "Rue de Rivoli, Paris", "sensors": 1}
    ]
    found = get(client, "/addresses", q="on").json["items"]
    assert [a["address"] for a in found] == ["1 High Street, London", "Quai Saint-Vincent, Lyon"]


def test_cors_is_off_unless_origins_are_configured(client):
    answer = client.get("/api/v1/health", headers={"Origin": "https://elsewhere.example"})
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_configured_origins_may_call_from_a_browser(settings, engine):
    app = create_app(
        load_settings(backend_token=TOKEN, cors_origins="https://map.example.org, https://b.example")
    )
    with app.test_client() as client:
        preflight = client.options(
            "/api/v1/sensors",
            headers={
                "Origin": "https://map.example.org",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "Authorization",
            },
        )
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://map.example.org"
        assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
        stranger = client.get("/api/v1/health", headers={"Origin": "https://elsewhere.example"})
        assert "Access-Control-Allow-Origin" not in stranger.headers


@pytest.mark.parametrize("path", ["/sensors/a%00b", "/sensors/" + "x" * 65, "/owners/a%20b/stats"])
def test_malformed_ids_in_the_path_are_404_before_any_query(client, path):
    answer = get(client, path)
    assert answer.status_code == 404 and answer.json["error"] == "not_found"


@pytest.mark.parametrize("path", ["/sensors/s1/readings", "/sensors/s1/wow"])
def test_a_range_longer_than_the_cap_is_refused_naming_the_limit(client, path):
    answer = get(client, path, start="1970-01-01", end="2199-12-31")
    assert answer.status_code == 400 and answer.json["error"] == "bad_request"
    assert "366 days" in answer.json["message"] and "API_MAX_RANGE_DAYS" in answer.json["message"]
    assert get(client, path, start="2018-07-01", end="2019-07-01").status_code == 200  # a year is fine
    # a start alone reaches to the latest reading, an end alone 9 days back: both are capped
    assert get(client, path, start="2001-01-01").status_code == 400


def test_the_range_cap_is_a_setting(seeded_url):
    app = create_app(load_settings(database_url=seeded_url, backend_token=TOKEN, api_max_range_days=5))
    with app.test_client() as client:
        assert get(client, "/sensors/s1/readings", start="2019-06-01", end="2019-06-05").status_code == 200
        refused = get(client, "/sensors/s1/readings", start="2019-06-01", end="2019-06-07")
        assert refused.status_code == 400 and "5 days" in refused.json["message"]
    app.extensions["grow_wow"]["engine"].dispose()


@pytest.mark.postgres
def test_a_query_past_the_statement_timeout_is_cancelled_with_a_clear_503(postgres_schemas):
    from sqlalchemy import text

    app = create_app(
        load_settings(database_url=postgres_schemas(), backend_token=TOKEN, db_statement_timeout_s=0.2)
    )

    def slow():
        with app.extensions["grow_wow"]["engine"].connect() as connection:
            connection.execute(text("SELECT pg_sleep(2)"))
        return {"finished": True}

    app.add_url_rule("/api/v1/slow", "slow", slow)
    answer = get(app.test_client(), "/slow")  # a route added here needs the token like any other
    assert answer.status_code == 503
    assert answer.json["error"] == "timeout" and "DB_STATEMENT_TIMEOUT_S" in answer.json["message"]
    app.extensions["grow_wow"]["engine"].dispose()


def test_the_map_answer_carries_an_etag_and_is_304_until_the_sensors_or_their_health_change(
    silent_client, engine
):
    import datetime as dt

    from sqlalchemy import update

    from core.schema import sensor_health

    first = get(silent_client, "/map")
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag
    assert "no-cache" in first.headers["Cache-Control"]  # ask again each time; 304 is cheap
    again = silent_client.get(
        "/api/v1/map", headers={"Authorization": f"Bearer {TOKEN}", "If-None-Match": etag}
    )
    assert again.status_code == 304 and again.data == b""
    # An owner's map is another answer, with its own tag.
    assert get(silent_client, "/map", owner="owner-b").headers["ETag"] != etag
    # The nightly analysis changes a status: once the data is looked at again (every 2 s; at once
    # here), the same tag gets the new map.
    silent_client.application.extensions["grow_wow"]["map_answers"].recheck_seconds = 0
    with engine.begin() as connection:
        connection.execute(
            update(sensor_health)
            .where(sensor_health.c.sensor_id == "s2")
            .values(status="faulty", updated_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))  # as core.load stamps
        )
    changed = silent_client.get(
        "/api/v1/map", headers={"Authorization": f"Bearer {TOKEN}", "If-None-Match": etag}
    )
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert ["s2", 52.2, 0.1, "faulty"] in changed.json["rows"]


def test_a_map_view_carries_an_etag_and_its_clusters_follow_the_data(silent_client, engine):
    from sqlalchemy import update

    from core.schema import sensor_health

    headers = {"Authorization": f"Bearer {TOKEN}"}
    first = get(silent_client, "/map/view", zoom=16, bbox="0.05,52.15,0.15,52.25")
    etag = first.headers["ETag"]
    assert first.json["sensors"]["rows"] == [["s2", 52.2, 0.1, "healthy"]]
    assert "no-cache" in first.headers["Cache-Control"]
    path = "/api/v1/map/view?zoom=16&bbox=0.05,52.15,0.15,52.25"
    assert silent_client.get(path, headers={**headers, "If-None-Match": etag}).status_code == 304
    # Another view, zoom or owner is another answer.
    assert get(silent_client, "/map/view", zoom=15, bbox="0.05,52.15,0.15,52.25").headers["ETag"] != etag
    # The analysis makes s2 faulty: the clusters are built again, once the data is looked at again.
    silent_client.application.extensions["grow_wow"]["map_answers"].recheck_seconds = 0
    with engine.begin() as connection:
        connection.execute(
            update(sensor_health)
            .where(sensor_health.c.sensor_id == "s2")
            .values(status="faulty", updated_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
        )
    changed = silent_client.get(path, headers={**headers, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.json["sensors"]["rows"] == [["s2", 52.2, 0.1, "faulty"]]
    zoomed_out = get(silent_client, "/map/view", zoom=0).json
    assert zoomed_out["counts"]["faulty"] == 2
