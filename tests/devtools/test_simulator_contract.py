"""The simulator speaks the real contracts: GROW answers validate against the GROW API's own spec,
WOW answers carry the fields DESIGN.md §4 names, and requests are checked as production checks them."""

from pathlib import Path

import pytest
import yaml
from jsonschema import Draft4Validator

from devtools.simulator.server import Keys, create_app

SPEC = Path(__file__).resolve().parents[1] / "data" / "grow-api" / "spec"
GROW = "Thingful.Connectors.GROWSensors"
AUTH = {"Authorization": "Bearer sim-grow-key"}


def definition(name: str) -> Draft4Validator:
    """A validator for one of the spec's definitions, with its $refs to the others resolved."""
    definitions = {
        path.stem: yaml.safe_load(path.read_text()) for path in (SPEC / "definitions").glob("*.yaml")
    }
    schema = {**definitions[name], "definitions": definitions}
    return Draft4Validator(schema)


def assert_valid(validator: Draft4Validator, document) -> None:
    errors = sorted(validator.iter_errors(document), key=str)
    assert not errors, errors[0]


@pytest.fixture
def client(network):
    return create_app(network, keys=Keys()).test_client()


def series_request(codes, start="20190610000000", end="20190615000000", **settings):
    return {
        "Readers": [
            {
                "DataSourceCode": GROW,
                "Settings": {
                    "LocationCodes": codes,
                    "VariableCodes": [
                        f"{GROW}.{v}"
                        for v in ("calibrated_soil_moisture", "air_temperature", "light", "battery_level")
                    ],
                    "StartDate": start,
                    "EndDate": end,
                    "Order": "asc",
                    "StructureType": "TimeSeries",
                    "CalculationType": "None",
                    **settings,
                },
            }
        ]
    }


def test_locations_validate_against_the_spec(client, network):
    answer = client.post("/grow/api/entity/locations/get", json={"DataSourceCodes": [GROW]}, headers=AUTH)
    assert answer.status_code == 200
    locations = answer.get_json()["Locations"]
    assert len(locations) == len(network.sensors)
    validator = definition("Location")
    for key, location in locations.items():
        assert_valid(validator, location)
        assert key == f"Grow.Thingful#{location['Code']}"
        sensor = network.sensors.iloc[network.sensor_index[location["Code"]]]
        assert (location["X"], location["Y"]) == (sensor["longitude"], sensor["latitude"])  # X is longitude
        assert location["UserUid"] == sensor["owner_id"]


def test_time_series_informations_validate_against_the_spec(client):
    answer = client.post("/grow/api/entity/timeSeriesInformations/get", json={}, headers=AUTH)
    assert answer.status_code == 200
    body = answer.get_json()
    assert_valid(definition("TimeSeriesInfo"), body)
    first = next(iter(body["TimeSeriesInformations"].values()))
    assert first["LocationIdentifier"].startswith("Grow.Thingful.")
    assert len(first["StartDate"]) == 14


def test_time_series_validate_against_the_spec(client, network):
    codes = list(network.sensors["sensor_id"][:3])
    answer = client.post("/grow/api/timeSeries/get", json=series_request(codes), headers=AUTH)
    assert answer.status_code == 200
    body = answer.get_json()
    # The spec types Data as one object; production answers a list of them (DESIGN.md §4), so each
    # element is checked against the spec's TimeSeriesData.
    assert len(body["Data"]) == 3 * 4
    validator = definition("TimeSeriesData")
    for entry in body["Data"]:
        assert_valid(validator, entry)
        assert entry["NoDataValue"] == -9999
        stamps = [p["DateTime"] for p in entry["Data"]]
        assert stamps == sorted(stamps)
        assert all(len(s) == 14 and "20190610000000" <= s <= "20190615000000" for s in stamps)
    assert_valid(definition("TimeSeriesMeta"), body["Meta"])


def test_descending_order_unless_asked_for_ascending(client, network):
    request = series_request(list(network.sensors["sensor_id"][:1]))
    del request["Readers"][0]["Settings"]["Order"]
    entry = client.post("/grow/api/timeSeries/get", json=request, headers=AUTH).get_json()["Data"][0]
    stamps = [p["DateTime"] for p in entry["Data"]]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (series_request([f"s{i}" for i in range(11)]), "at most 10 LocationCodes"),
        (series_request(["a"], start="20190601000000", end="20190611000001"), "maximum of 10 days"),
        (series_request(["a"], start="20190611000000", end="20190601000000"), "before StartDate"),
        (series_request(["a"], start="2019-06-01"), "yyyymmddHHMMSS"),
        (series_request([]), "LocationCodes"),
        ({"Readers": []}, "exactly one Reader"),
        ({"Readers": [{"DataSourceCode": "x", "Settings": {}}]}, "DataSourceCode"),
    ],
)
def test_bad_requests_get_400_with_the_error_body_of_the_spec(client, body, message):
    answer = client.post("/grow/api/timeSeries/get", json=body, headers=AUTH)
    assert answer.status_code == 400
    assert_valid(definition("Error400"), answer.get_json())
    assert message in answer.get_json()["Exception"]["Message"]


def test_unparseable_json_gets_400(client):
    answer = client.post(
        "/grow/api/timeSeries/get", data=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert answer.status_code == 400


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "sim-grow-key"}]
)
@pytest.mark.parametrize(
    "path", ["entity/locations/get", "entity/timeSeriesInformations/get", "timeSeries/get"]
)
def test_missing_or_wrong_key_gets_401(client, headers, path):
    answer = client.post(f"/grow/api/{path}", json={"DataSourceCodes": [GROW]}, headers=headers)
    assert answer.status_code == 401
    assert_valid(definition("Error401"), answer.get_json())


WOW_FIELDS = {
    "SiteId",
    "Latitude",
    "Longitude",
    "ReportEndDateTime",
    "DryBulbTemperature_Celsius",
    "RainfallAmount_Millimetre",
    "RelativeHumidity",
    "IsOfficial",
    "IsLatestVersion",
}
WOW_KEY = {"Ocp-Apim-Subscription-Key": "sim-wow-key"}


def test_wow_answers_carry_the_fields_of_the_design(client, network):
    site = network.stations["site_id"][0]
    answer = client.get(
        "/wow/api/observations/byversion",
        query_string={
            "site_id": site,
            "start_time": "2019-06-20T00:00:00",
            "end_time": "2019-06-21T00:00:00",
        },
        headers=WOW_KEY,
    )
    assert answer.status_code == 200
    observations = answer.get_json()["Object"]
    assert observations
    for observation in observations:
        assert set(observation) >= WOW_FIELDS
        assert observation["SiteId"] == site
        assert "2019-06-20T00:00:00" <= observation["ReportEndDateTime"] <= "2019-06-21T00:00:00"


def test_wow_box_query_finds_the_stations_inside(client, network):
    answer = client.get(
        "/wow/api/observations/byversion",
        query_string={
            "top_left_lat": 60,
            "top_left_long": -8,
            "bottom_right_lat": 49.9,
            "bottom_right_long": 2,
            "start_time": "2019-06-30T18:00:00",
            "end_time": "2019-06-30T23:59:59",
        },
        headers=WOW_KEY,
    )
    sites = {o["SiteId"] for o in answer.get_json()["Object"]}
    stations = network.stations
    inside = stations[stations["latitude"].between(49.9, 60) & stations["longitude"].between(-8, 2)]
    reporting = {s for s, state in zip(inside["site_id"], inside["state"]) if state != "stopped"}
    assert reporting <= sites <= set(inside["site_id"])


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"site_id": "1", "start_time": "yesterday", "end_time": "2019-06-21T00:00:00"}, 400),
        ({"start_time": "2019-06-20T00:00:00", "end_time": "2019-06-21T00:00:00"}, 400),
        ({"site_id": "1", "start_time": "2019-05-01T00:00:00", "end_time": "2019-06-21T00:00:00"}, 400),
    ],
)
def test_wow_bad_queries_get_400(client, query, status):
    assert (
        client.get("/wow/api/observations/byversion", query_string=query, headers=WOW_KEY).status_code
        == status
    )


def test_wow_without_the_key_gets_401(client):
    query = {"site_id": "1", "start_time": "2019-06-20T00:00:00", "end_time": "2019-06-21T00:00:00"}
    assert client.get("/wow/api/observations/byversion", query_string=query).status_code == 401
