"""The 2019 routes answer in the shapes the 2019 map and chart pages read, on both engines."""

import pandas as pd
import pytest
from sqlalchemy import update

from core.schema import sensor_wow
from flask_back_end import create_app
from flask_back_end.settings import load_settings
from tests.factories import START, TOKEN, seed, seed_silent


@pytest.fixture
def client(seeded_url):
    """A client of the back end on the seeded database of each engine (shared: only read)."""
    app = create_app(load_settings(database_url=seeded_url, backend_token=TOKEN))
    with app.test_client() as client:
        yield client
    app.extensions["grow_wow"]["engine"].dispose()


@pytest.fixture
def own_client(settings, engine):
    """A client of the back end on a seeded database of its own, for a test that changes rows."""
    seed(engine)
    app = create_app(load_settings(backend_token=TOKEN))
    with app.test_client() as client:
        yield client
    app.extensions["grow_wow"]["engine"].dispose()


@pytest.fixture
def silent_client(own_client, engine):
    """The same, with owner-a's q1 gone silent (it has readings: only its status keeps it out)."""
    seed_silent(engine)
    return own_client


def get(client, path, token=TOKEN, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(path, headers=headers, query_string=params or None)


ONE_HOUR = {"start": "2019-06-05T00:00:00", "end": "2019-06-05T01:00:00"}
ROUTES = [
    ("/api/all_grow_true_json", {}),
    ("/api/all_grow_healthy_json", {}),
    ("/api/all_grow_recovered_json", {}),
    ("/api/all_grow_faulty_json", {}),
    ("/api/indiv_grow_data", {"sensor_id": "s1", **ONE_HOUR}),
    ("/api/check_faulty_grow", {"sensor_id": "s1"}),
    ("/api/get_wow_data", {"sensor_id": "s1", **ONE_HOUR}),
    ("/grow_by_address", {"address": "Cambridge"}),
    ("/grow_by_owner", {"owner_id": "owner-a"}),
    ("/owner_stats", {"owner_id": "owner-a"}),
    ("/healthy_stats", {"owner_id": "owner-a"}),
    ("/recovered_stats", {"owner_id": "owner-b"}),
    ("/faulty_stats", {"owner_id": "owner-a"}),
]


@pytest.mark.parametrize(("path", "params"), ROUTES)
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_2019_routes_need_the_service_token_too(client, path, params, token):
    refused = get(client, path, token=token, **params)
    assert refused.status_code == 401 and refused.json["error"] == "unauthorized"
    assert get(client, path, **params).status_code == 200


def test_sensor_lists_are_all_sensor_info_rows(client):
    rows = get(client, "/api/all_grow_true_json").json
    assert [row["sensor_id"] for row in rows] == ["0042", "r1", "s1", "s2"]
    s1 = rows[2]
    assert s1 == {
        "sensor_id": "s1",
        "days_active": 10,
        "start_date": "2019-06-01T00:00:00",
        "end_date": "2019-06-10T23:45:00",
        "latitude": 51.5,
        "longitude": -0.1,
        "address": "1 High Street, London",
        "owner_id": "owner-a",
    }


@pytest.mark.parametrize(
    ("status", "expected"), [("healthy", ["s2"]), ("recovered", ["r1"]), ("faulty", ["s1"])]
)
def test_sensor_lists_by_status(client, status, expected):
    rows = get(client, f"/api/all_grow_{status}_json").json
    assert [row["sensor_id"] for row in rows] == expected


def test_individual_series_line_up_for_2019s_charts(own_client, engine):
    from sqlalchemy import update

    from core.schema import readings

    with engine.begin() as connection:  # the light sensor missed one reading
        connection.execute(
            update(readings)
            .where(readings.c.sensor_id == "s1", readings.c.ts == START + pd.Timedelta("4D 00:30:00"))
            .values(light=None)
        )
    body = get(own_client, "/api/indiv_grow_data", sensor_id="s1", **ONE_HOUR).json
    times = [[sample["DateTime"] for sample in series["Data"]] for series in body["Data"]]
    assert times[0] == times[1] == times[2] and len(times[0]) == 4 and "20190605003000" not in times[0]


def test_individual_data_comes_in_grows_shape_newest_first(client):
    body = get(client, "/api/indiv_grow_data", sensor_id="s1", **ONE_HOUR).json
    codes = [series["VariableCode"] for series in body["Data"]]
    assert codes == [
        "Thingful.Connectors.GROWSensors.light",
        "Thingful.Connectors.GROWSensors.air_temperature",
        "Thingful.Connectors.GROWSensors.calibrated_soil_moisture",
    ]
    temperature = body["Data"][1]["Data"]
    assert [sample["DateTime"] for sample in temperature] == [
        "20190605010000",
        "20190605004500",
        "20190605003000",
        "20190605001500",
        "20190605000000",
    ]
    assert temperature[0]["Value"] == 15.0
    # GROW's own compact time format is accepted too, with the same answer.
    compact = get(
        client, "/api/indiv_grow_data", sensor_id="s1", start="20190605000000", end="20190605010000"
    )
    assert compact.json == body


@pytest.mark.parametrize(
    ("sensor_id", "expected"),
    [
        ("s1", [[0, "Mon, 10 Jun 2019 00:00:00 GMT"]]),
        ("r1", [[3, "Wed, 29 May 2019 00:00:00 GMT"]]),  # 3.99 days: 2019 counted whole days
        ("s2", []),
        ("0042", []),
    ],
)
def test_check_faulty_grow(client, sensor_id, expected):
    assert get(client, "/api/check_faulty_grow", sensor_id=sensor_id).json == expected


def test_wow_data_in_2019s_columns(client):
    body = get(
        client, "/api/get_wow_data", sensor_id="s1", start="2019-06-03T00:00:00", end="2019-06-03T01:00:00"
    ).json
    assert body == {
        "distance": [1.7],
        "datetime": ["2019-06-03T00:00:00", "2019-06-03T00:30:00", "2019-06-03T01:00:00"],
        "air_temp": [14.0, 14.0, 14.0],
        "rainfall": [0.0, 0.0, 0.0],
    }


def test_a_link_with_no_distance_answers_with_no_distance_not_a_500(own_client, engine):
    """A normal `import-2019` stores 2019's empty distance as NULL (issue 32)."""
    with engine.begin() as connection:
        connection.execute(update(sensor_wow).values(distance_km=None))
    body = get(own_client, "/api/get_wow_data", sensor_id="s1", **ONE_HOUR).json
    assert body["distance"] == [None] and len(body["datetime"]) == 3


def test_wow_data_for_a_sensor_without_a_station_is_404(client):
    answer = get(client, "/api/get_wow_data", sensor_id="s2", **ONE_HOUR)
    assert answer.status_code == 404 and "no WOW station" in answer.json["message"]


def test_sensors_by_address_and_by_owner(client):
    assert [row["sensor_id"] for row in get(client, "/grow_by_address", address="Cambridge").json] == ["s2"]
    assert get(client, "/grow_by_address", address="Cambri").json == []  # 2019 matched the whole address
    # A 2019 client asks with the address as 2019 wrote it; today's is Google's formatted one.
    old_style = "1 High Street London Greater London England United Kingdom"
    assert [row["sensor_id"] for row in get(client, "/grow_by_address", address=old_style).json] == ["s1"]
    assert [
        row["sensor_id"] for row in get(client, "/grow_by_address", address="1 High Street, London").json
    ] == ["s1"]
    assert [row["sensor_id"] for row in get(client, "/grow_by_owner", owner_id="owner-b").json] == [
        "0042",
        "r1",
    ]


def test_owner_stats_lists_ids_by_status(client):
    assert get(client, "/owner_stats", owner_id="owner-a").json == {
        "owner_id": "owner-a",
        "healthy": ["s2"],
        "recovered": [],
        "faulty": ["s1"],
    }
    assert get(client, "/owner_stats", owner_id="nobody").json == {
        "owner_id": "nobody",
        "healthy": [],
        "recovered": [],
        "faulty": [],
    }


def test_status_stats_give_each_sensors_latest_reading(client):
    faulty = get(client, "/faulty_stats", owner_id="owner-a").json
    assert len(faulty) == 1 and len(faulty[0]) == 1
    sensor_id, battery, soil, light, air, when = faulty[0][0]
    assert (sensor_id, battery, light, air, when) == ("s1", 80.0, 10.0, 15.0, "Mon, 10 Jun 2019 23:45:00 GMT")
    assert 29 < soil < 31
    recovered = get(client, "/recovered_stats", owner_id="owner-b").json
    assert recovered == [[["r1", 80.0, 22.0, 10.0, 15.0, "Sat, 01 Jun 2019 23:45:00 GMT"]]]
    assert get(client, "/healthy_stats", owner_id="owner-a").json == []  # s2 has no reading yet


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/api/indiv_grow_data", {"sensor_id": "s1", "end": "2019-06-05T01:00:00"}, "start"),
        ("/api/indiv_grow_data", {"sensor_id": "s1", "start": "tomorrow", "end": "2019-06-05"}, "start"),
        ("/api/indiv_grow_data", {"sensor_id": "s1", "start": "2019-01-01", "end": "2019-06-05"}, "end"),
        ("/api/indiv_grow_data", {"sensor_id": "s1", "start": "2019-06-05", "end": "2019-06-01"}, "start"),
        ("/api/get_wow_data", {"sensor_id": "a b", **ONE_HOUR}, "sensor_id"),
        ("/api/get_wow_data", {"sensor_id": "..", **ONE_HOUR}, "sensor_id"),
        ("/api/check_faulty_grow", {"sensor_id": "."}, "sensor_id"),
        ("/owner_stats", {"owner_id": ".."}, "owner_id"),
        ("/api/get_wow_data", {"sensor_id": "s1", "start": "1900-01-01", "end": "1900-01-02"}, "start"),
        ("/api/check_faulty_grow", {}, "sensor_id"),
        ("/grow_by_address", {"address": ""}, "address"),
        ("/grow_by_address", {"address": "Cambridge\x00"}, "address"),
        ("/grow_by_owner", {}, "owner_id"),
        ("/owner_stats", {"owner_id": "x" * 65}, "owner_id"),
        ("/faulty_stats", {}, "owner_id"),
    ],
)
def test_bad_2019_parameters_answer_400_naming_the_parameter(client, path, params, parameter):
    answer = get(client, path, **params)
    assert answer.status_code == 400
    assert answer.json["error"] == "bad_request" and parameter in answer.json["message"]


@pytest.mark.parametrize("path", ["/api/indiv_grow_data", "/api/get_wow_data", "/api/check_faulty_grow"])
def test_an_unknown_sensor_is_404(client, path):
    answer = get(client, path, sensor_id="nosuch", **ONE_HOUR)
    assert answer.status_code == 404 and "nosuch" in answer.json["message"]


def ids(answer) -> list[str]:
    return [row["sensor_id"] for row in answer.json]


def test_a_silent_sensor_is_in_the_lists_of_all_sensors_only(silent_client):
    assert ids(get(silent_client, "/api/all_grow_true_json")) == ["0042", "q1", "r1", "s1", "s2"]
    assert ids(get(silent_client, "/grow_by_owner", owner_id="owner-a")) == ["q1", "s1", "s2"]
    assert ids(get(silent_client, "/grow_by_address", address="2 Mill Lane, Oxford")) == ["q1"]
    # 2019's three lists are as they were before q1 went silent.
    for status, expected in [("healthy", ["s2"]), ("recovered", ["r1"]), ("faulty", ["s1"])]:
        assert ids(get(silent_client, f"/api/all_grow_{status}_json")) == expected


def test_owner_stats_keep_2019s_three_statuses(silent_client):
    answer = get(silent_client, "/owner_stats", owner_id="owner-a")
    assert answer.status_code == 200
    assert answer.json == {"owner_id": "owner-a", "healthy": ["s2"], "recovered": [], "faulty": ["s1"]}
    for path in ("/healthy_stats", "/recovered_stats"):
        assert get(silent_client, path, owner_id="owner-a").json == []
    assert [sensor[0][0] for sensor in get(silent_client, "/faulty_stats", owner_id="owner-a").json] == ["s1"]
