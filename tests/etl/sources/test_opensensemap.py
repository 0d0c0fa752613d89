"""openSenseMap as a sensor source: the simulated API keeps to the documented contract and refuses what
the real one refuses, and the client reads boxes and readings from it exactly, paging past 10,000."""

import datetime as dt
import itertools
import re

import numpy as np
import pandas as pd
import pytest
import requests

from core.vocabulary import LIGHT_PER_LUX, source_of
from devtools.simulator import osem
from etl.sources.opensensemap import BIN, OpenSenseMapClient, parse_boxes, request_windows

UTC = dt.UTC
NOW = dt.datetime(2019, 7, 1, tzinfo=UTC)
HEX24 = re.compile(r"[0-9a-f]{24}")
RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture(scope="module")
def osem_url(network):
    from devtools.loopback import serve_on_loopback
    from devtools.simulator.server import create_app

    server = serve_on_loopback(create_app(network, now=NOW))
    yield f"http://127.0.0.1:{server.port}/osem"
    server.shutdown()


def test_every_box_and_measurement_has_the_documented_fields_and_formats(osem_url, network):
    boxes = requests.get(f"{osem_url}/boxes", timeout=10).json()
    assert len(boxes) > len(network.sensors)  # indoor and air-quality boxes beside the gardens
    for box in boxes:
        assert HEX24.fullmatch(box["_id"]) and box["exposure"] in {"indoor", "outdoor", "mobile", "unknown"}
        assert box["currentLocation"]["type"] == "Point" and len(box["currentLocation"]["coordinates"]) == 3
        assert RFC3339_MS.fullmatch(box["createdAt"]) and RFC3339_MS.fullmatch(box["lastMeasurementAt"])
        for sensor in box["sensors"]:
            assert HEX24.fullmatch(sensor["_id"]) and {"title", "unit", "sensorType"} <= set(sensor)
    garden = next(b for b in boxes if b["exposure"] == "outdoor" and len(b["sensors"]) == 3)
    light = next(s for s in garden["sensors"] if s["unit"] == "lx")
    week = {"from-date": "2019-06-20T00:00:00Z", "to-date": "2019-06-27T00:00:00Z"}
    items = requests.get(
        f"{osem_url}/boxes/{garden['_id']}/data/{light['_id']}", params=week, timeout=10
    ).json()
    assert items and all(set(item) == {"value", "createdAt", "location"} for item in items)
    assert all(isinstance(item["value"], str) and RFC3339_MS.fullmatch(item["createdAt"]) for item in items)
    stamps = [item["createdAt"] for item in items]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert max(float(item["value"]) for item in items) > 1000  # lux, not our unit


def test_the_simulated_api_refuses_what_the_real_one_refuses(osem_url):
    box = requests.get(f"{osem_url}/boxes", timeout=10).json()[0]
    data = f"{osem_url}/boxes/{box['_id']}/data/{box['sensors'][0]['_id']}"

    def status(url, **params):
        answer = requests.get(url, params=params, timeout=10)
        return answer.status_code, answer.json().get("code") if answer.status_code != 200 else None

    assert status(data, **{"from-date": "2019-06-01T00:00:00Z"}) == (400, "BadRequest")
    after = {"from-date": "2019-06-10T00:00:00Z", "to-date": "2019-06-01T00:00:00Z"}
    assert status(data, **after) == (422, "UnprocessableEntity")
    too_long = {"from-date": "2019-05-01T00:00:00Z", "to-date": "2019-06-15T00:00:00Z"}
    assert status(data, **too_long) == (422, "UnprocessableEntity")
    assert status(f"{osem_url}/boxes/not-a-box-id") == (422, "UnprocessableEntity")
    assert status(f"{osem_url}/boxes/{'0' * 24}") == (404, "NotFound")
    assert status(f"{osem_url}/boxes/{box['_id']}/data/{'0' * 24}") == (404, "NotFound")
    # Answers hold at most 10,000 measurements, the newest.
    month = {"from-date": "2019-06-01T00:00:00Z", "to-date": "2019-06-30T00:00:00Z"}
    items = requests.get(data, params=month, timeout=10).json()
    assert len(items) == 10_000 and items[0]["createdAt"] > "2019-06-29"


def test_boxes_indoors_on_the_move_or_without_a_soil_probe_are_left_out():
    def box(number, exposure="outdoor", titles=(("Bodenfeuchte", "%"), ("Temperatur", "°C"))):
        return {
            "_id": f"{number:024x}",
            "name": f"box {number}",
            "exposure": exposure,
            "currentLocation": {"type": "Point", "coordinates": [7.6, 51.9, 0]},
            "createdAt": "2019-05-01T00:00:00.000Z",
            "lastMeasurementAt": "2019-06-30T23:58:07.123Z",
            "sensors": [
                {"_id": f"{number:08x}{i:016x}", "title": t, "unit": u} for i, (t, u) in enumerate(titles)
            ],
        }

    listed = [
        box(1),
        box(2, "indoor"),
        box(3, "mobile"),
        box(4, titles=(("PM10", "µg/m³"),)),
        box(5, titles=(("Soil moisture", "%"), ("Illuminance", "lx"))),
        {"_id": "not-an-id", "name": "broken"},
        {**box(6), "currentLocation": {"coordinates": [200, 95]}},
    ]
    boxes = parse_boxes(listed)
    assert list(boxes.sensors["sensor_id"]) == [f"osem:{1:024x}", f"osem:{5:024x}"]
    assert list(boxes.sensors["owner_id"]) == list(boxes.sensors["sensor_id"])  # the box is the owner
    assert boxes.skipped == {"indoor": 1, "mobile": 1, "no soil moisture": 1}
    assert sorted(q.entity_id for q in boxes.quarantined) == ["not-an-id", f"osem:{6:024x}"]
    assert boxes.variables[f"{5:024x}"].keys() == {"soil_moisture", "light"}
    assert [source_of(s) for s in boxes.sensors["sensor_id"]] == ["opensensemap"] * 2


def test_windows_start_on_a_quarter_hour_and_keep_to_a_month():
    windows = request_windows(["osem:a"], dt.datetime(2019, 5, 1, 10, 7, 30, tzinfo=UTC), NOW)
    assert windows[0][1] == dt.datetime(2019, 5, 1, 10, 0, tzinfo=UTC)
    assert all(b - a < dt.timedelta(days=31) for _, a, b in windows)
    assert windows[-1][2] == NOW and all(
        n[1] - p[2] == dt.timedelta(seconds=1) for p, n in itertools.pairwise(windows)
    )


def test_the_client_reads_the_gardens_and_their_readings_exactly(osem_url, network, source_settings):
    client = OpenSenseMapClient(
        source_settings(
            osem_url.removesuffix("/osem"), sensor_sources="opensensemap", osem_grouptag=osem.GROUPTAG
        )
    )
    sensors, quarantined = client.get_sensors()
    assert quarantined == []
    assert sorted(sensors["sensor_id"]) == sorted(
        f"osem:{osem.box_id(c)}" for c in network.sensors["sensor_id"]
    )
    codes = list(network.sensors["sensor_id"][:3])
    ours = [f"osem:{osem.box_id(c)}" for c in codes]
    start = network.start
    frames = []
    for batch in client.iter_windows(client.request_windows(ours, start, NOW)):
        assert batch.error is None and not batch.incomplete
        frames.append(batch.readings)
    fetched = pd.concat(frames, ignore_index=True).sort_values(["sensor_id", "ts"], ignore_index=True)
    truth = osem.expected_readings(network, codes, start, NOW, NOW).sort_values(
        ["sensor_id", "ts"], ignore_index=True
    )
    assert len(fetched) == len(truth) > 2 * 30 * 96  # a month each: more than 10,000 a window, paged
    assert not fetched.duplicated(["sensor_id", "ts"]).any()
    assert (fetched["ts"].dt.floor(BIN) == fetched["ts"]).all()
    pd.testing.assert_frame_equal(fetched[["sensor_id", "ts"]], truth[["sensor_id", "ts"]], check_dtype=False)
    for variable in ("soil_moisture", "air_temperature", "light"):
        assert np.allclose(fetched[variable], truth[variable], atol=LIGHT_PER_LUX, equal_nan=True), variable
    assert fetched["battery_level"].isna().all()


def test_paging_keeps_measurements_that_share_a_time_and_windows_leave_no_second_between_them(
    monkeypatch, source_settings
):
    """The API cuts an answer at 10,000 (4 here): a page ending among measurements of one millisecond
    must not lose the rest of them, and a measurement at 23:59:59.500 belongs to the window that ends on
    that second."""
    from etl.sources import opensensemap

    stamps = [
        "2019-06-01T10:00:07.000Z",
        "2019-06-01T10:03:07.000Z",
        "2019-06-01T10:06:07.000Z",
        "2019-06-01T10:06:07.000Z",  # two at one millisecond, across a page's edge
        "2019-06-01T10:09:07.000Z",
        "2019-06-01T10:12:07.000Z",
        "2019-06-01T23:59:59.500Z",  # inside the first window's last second
        "2019-06-02T00:00:00.250Z",
    ]
    values = ["10", "20", "30", "50", "40", "60", "70", "80"]
    asked = []

    def api(method, path, what, params=None):
        asked.append(params)
        low, high = (pd.Timestamp(params[k]) for k in ("from-date", "to-date"))
        inside = [(t, v) for t, v in zip(stamps, values) if low <= pd.Timestamp(t) <= high]
        inside.sort(key=lambda item: item[0], reverse=True)
        return [{"createdAt": t, "value": v, "location": [0, 0]} for t, v in inside[:4]]

    monkeypatch.setattr(opensensemap, "PAGE", 4)
    client = OpenSenseMapClient(source_settings("http://127.0.0.1:9", osem_api_url="http://127.0.0.1:9/osem"))
    client.box_variables["a" * 24] = {"soil_moisture": "b" * 24}
    monkeypatch.setattr(client.source, "request_json", api)
    first_day = client.get_readings_window(
        ("osem:" + "a" * 24,),
        dt.datetime(2019, 6, 1, tzinfo=UTC),
        dt.datetime(2019, 6, 1, 23, 59, 59, tzinfo=UTC),
    )
    next_day = client.get_readings_window(
        ("osem:" + "a" * 24,),
        dt.datetime(2019, 6, 2, tzinfo=UTC),
        dt.datetime(2019, 6, 2, 23, 59, 59, tzinfo=UTC),
    )
    assert len(asked) > 2  # paged
    means = first_day.readings.set_index("ts")["soil_moisture"]
    assert means[pd.Timestamp("2019-06-01 10:00", tz="UTC")] == pytest.approx(
        (10 + 20 + 30 + 50 + 40 + 60) / 6
    )
    assert means[pd.Timestamp("2019-06-01 23:45", tz="UTC")] == 70  # not lost between the windows
    assert next_day.readings["soil_moisture"].tolist() == [80]
