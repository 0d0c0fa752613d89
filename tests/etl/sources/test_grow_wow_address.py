"""GROW, WOW and address clients: parsing on saved answers, and fetching over HTTP from the simulator."""

import datetime as dt
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from itertools import pairwise

import numpy as np
import orjson
import pandas as pd
import pytest
import requests

from core.errors import SettingsError
from core.vocabulary import GROW_DATA_SOURCE
from etl.sources.address import Geocoder, offline_address
from etl.sources.grow import (
    GrowClient,
    check_answer,
    parse_grow_timestamps,
    parse_locations,
    request_windows,
)
from etl.sources.http import HttpPolicy, Source, SourceError, in_order
from etl.sources.wow import WowClient, live_stations, parse_observations

UTC = dt.UTC
START, END = dt.datetime(2019, 5, 1, tzinfo=UTC), dt.datetime(2019, 5, 2, tzinfo=UTC)


def entry(code, variable, points, no_data=-9999):
    return {
        "LocationIdentifier": f"Grow.Thingful#{code}",
        "LocationCode": code,
        "VariableCode": f"{GROW_DATA_SOURCE}.{variable}",
        "NoDataValue": no_data,
        "Data": [{"Value": v, "DateTime": t, "Availability": 1, "Quality": 0} for v, t in points],
    }


# --- GROW parsing -------------------------------------------------------------------------------------


def test_grow_timestamps_parse_as_utc_and_nonsense_is_flagged():
    stamps, valid = parse_grow_timestamps(
        [
            "20190501001527",
            "20191231235959",
            "20190230120000",
            "20191301000000",
            "2019050100152",
            "201905010015270",
            None,
            20190501001527,
        ]
    )
    assert list(valid) == [True, True, False, False, False, False, False, True]
    assert stamps[0] == np.datetime64("2019-05-01T00:15:27")
    assert stamps[1] == np.datetime64("2019-12-31T23:59:59")
    assert stamps[7] == stamps[0]


def test_variables_are_joined_by_timestamp_not_by_position():
    t = ["20190501000300", "20190501001800", "20190501003300"]
    payload = {
        "Data": [
            entry("s1", "air_temperature", [(11.5, t[0]), (12.0, t[1]), (12.5, t[2])]),
            # light has no sample at t[1]: joined by position, 20.0 would land at t[1]
            entry("s1", "light", [(0.5, t[0]), (20.0, t[2])]),
            entry("s1", "calibrated_soil_moisture", [(31.2, t[0]), (-9999, t[1]), (31.0, t[2])]),
            entry("s1", "soil_moisture", [(99.0, t[0])]),  # raw moisture: not ours to keep
            entry("s1", "battery_level", [(88, t[2]), (88, t[1]), (88, t[0])]),  # any order
        ]
    }
    answer = check_answer(payload, ["s1"], START, END, END)
    assert answer.incomplete == {} and answer.quarantined == []
    readings = answer.readings
    assert list(readings.columns) == [
        "sensor_id",
        "ts",
        "soil_moisture",
        "air_temperature",
        "light",
        "battery_level",
    ]
    assert list(readings["ts"]) == [
        pd.Timestamp(x, tz="UTC") for x in ("2019-05-01 00:03", "2019-05-01 00:18", "2019-05-01 00:33")
    ]
    assert readings["light"].tolist()[0] == 0.5 and np.isnan(readings["light"].tolist()[1])
    assert readings["light"].tolist()[2] == 20.0
    assert readings["soil_moisture"].isna().tolist() == [False, True, False]  # NoData is missing
    assert readings["soil_moisture"].tolist()[0] == 31.2  # calibrated, not the raw 99
    assert (readings["battery_level"] == 88).all()


def test_malformed_samples_are_refused_and_their_sensor_asked_again():
    good = [(11.5, "20190501000300")]
    payload = {
        "Data": [
            entry("s1", "air_temperature", [*good, ("warm", "20190501001800"), (12.0, "yesterday")]),
            *(entry("s1", v, good) for v in ("light", "calibrated_soil_moisture", "battery_level")),
            {"VariableCode": f"{GROW_DATA_SOURCE}.light", "Data": "nope"},
            "not an entry",
        ]
    }
    answer = check_answer(payload, ["s1"], START, END, END)
    assert len(answer.readings) == 1
    assert [(q.action, q.record["Value"]) for q in answer.quarantined] == [
        ("refused", "warm"),
        ("refused", 12.0),
    ]
    assert answer.incomplete["s1"] == "air_temperature unreadable sample"


@pytest.mark.parametrize("payload", [None, [], {"Data": None}, {"data": []}, "<html>"])
def test_a_malformed_answer_is_an_error(payload):
    with pytest.raises(ValueError, match="no Data list"):
        check_answer(payload, ["s1"], START, END, END)


def test_locations_take_x_as_longitude_and_skip_malformed_records():
    payload = {
        "Locations": {
            "Grow.Thingful#zg9xr321": {
                "Code": "zg9xr321",
                "Identifier": "Grow.Thingful#zg9xr321",
                "Name": "Parrot Flower Power soil sensor PI040297AA4A030551",
                "X": -0.126236,
                "Y": 51.500152,
                "UserUid": "owner-1",
                "FirstSampleTimestamp": 20170101220841,
                "LastAvailableSampleTimestamp": "20171211153025",
            },
            "Grow.Thingful#bad1": {"Code": "bad1", "X": "east", "Y": 51},
            "Grow.Thingful#bad2": {"Code": "bad2", "X": 10, "Y": 100},
            "Grow.Thingful#bad3": "not a record",
        }
    }
    sensors, quarantined = parse_locations(payload)
    assert [(q.entity_id, q.action) for q in quarantined] == [
        ("bad1", "refused"),
        ("bad2", "refused"),
        ("Grow.Thingful#bad3", "refused"),
    ]
    row = sensors.iloc[0]
    assert (row["sensor_id"], row["latitude"], row["longitude"]) == ("zg9xr321", 51.500152, -0.126236)
    assert row["serial_number"] == "PI040297AA4A030551"
    assert row["first_sample_at"] == pd.Timestamp("2017-01-01 22:08:41", tz="UTC")
    assert row["last_sample_at"] == pd.Timestamp("2017-12-11 15:30:25", tz="UTC")


def test_request_windows_respect_the_server_limits_and_cover_the_range_once():
    codes = [f"s{i}" for i in range(23)]
    start, end = dt.datetime(2019, 5, 1, tzinfo=UTC), dt.datetime(2019, 6, 5, 12, tzinfo=UTC)
    windows = request_windows(codes, start, end)
    assert all(len(group) <= 10 for group, _, _ in windows)
    assert all(b - a <= dt.timedelta(days=10) for _, a, b in windows)
    for group in {w[0] for w in windows}:
        spans = sorted((a, b) for g, a, b in windows if g == group)
        assert spans[0][0] == start and spans[-1][1] == end
        assert all(later[0] - earlier[1] == dt.timedelta(seconds=1) for earlier, later in pairwise(spans))
    assert sorted({c for g, _, _ in windows for c in g}) == sorted(codes)


# --- GROW over HTTP -----------------------------------------------------------------------------------

NOW = dt.datetime(2019, 7, 1, tzinfo=UTC)


def test_a_misbehaving_api_loses_and_duplicates_nothing(network, simulator, source_settings, caplog):
    """50 sensors × 30 days with a fifth of the answers failing (5xx, 429, cut short, HTML)."""
    url = simulator(error_rate=0.2, retry_after_s=0, seed=11)
    client = GrowClient(source_settings(url, http_attempts=8))
    codes = list(network.sensors["sensor_id"])
    with caplog.at_level(logging.WARNING):
        fetched = client.get_readings(codes, network.start, network.end)
    truth = network.visible_readings(codes, network.start, network.end, NOW).sort_values(
        ["sensor_id", "ts"], ignore_index=True
    )
    assert len(fetched) > 100_000
    assert not fetched.duplicated(["sensor_id", "ts"]).any()
    pd.testing.assert_frame_equal(fetched, truth, check_dtype=False)
    assert "not JSON" in caplog.text  # the cut and HTML answers were met, and retried
    assert "sim-grow-key" not in caplog.text


def test_only_uploaded_readings_are_served_and_late_ones_arrive_later(network, simulator, source_settings):
    earlier = dt.datetime(2019, 6, 20, tzinfo=UTC)
    # The sensor whose phone has gone longest without uploading by then.
    sensor = int(np.argmin(network.uploaded_until(earlier)))
    code = network.sensors["sensor_id"][sensor]
    url = simulator(now=earlier)
    client = GrowClient(source_settings(url))
    before = client.get_readings([code], network.start, network.end)
    requests.post(f"{url}/sim/clock", json={"now": NOW.isoformat()}, timeout=5).raise_for_status()
    after = client.get_readings([code], network.start, network.end)

    assert len(before) == len(network.visible_readings([code], network.start, network.end, earlier))
    assert len(after) == len(network.visible_readings([code], network.start, network.end, NOW))
    late = after[(after["ts"] < earlier) & ~after["ts"].isin(before["ts"])]
    assert len(late) >= 96  # at least a day of history that was not there before


def test_requests_reuse_one_connection_when_the_server_keeps_it_open():
    """A night makes thousands of requests: a new connection for each costs both ends a handshake. An
    answer read whole gives its connection back to the pool (werkzeug, serving the simulator, always
    closes; this server keeps connections open, as the real APIs do)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    connections = []

    class KeepAlive(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            connections.append(self.client_address)
            super().setup()

        def do_GET(self):
            body = orjson.dumps({"Object": []})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAlive)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        source = Source("test API", f"http://127.0.0.1:{server.server_address[1]}", {}, HttpPolicy())
        answers = [source.request_json("GET", "observations", f"call {i}") for i in range(3)]
    finally:
        server.shutdown()
        server.server_close()
    assert answers == [{"Object": []}] * 3
    assert len(connections) == 1


def test_fetches_run_only_a_few_ahead_of_the_answers_taken():
    """A first run asks for a year of every station: the answers must not pile up in memory while the
    loader takes them one by one."""
    started = []

    def call(item):
        started.append(item)
        return item * 2

    answers = in_order(call, range(1000), workers=2, name="test")
    assert next(answers) == 0
    time.sleep(0.2)  # time for the pool to run ahead, if it would
    assert len(started) <= 4 * 2 + 1
    assert list(answers) == [2 * i for i in range(1, 1000)]


def test_a_netrc_entry_for_the_host_does_not_replace_the_key(
    simulator, source_settings, tmp_path, monkeypatch
):
    """requests looks for ~/.netrc (or $NETRC) on every call without an auth of its own, and a match would
    replace the Authorization header holding the GROW key with a password."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-the-key\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    sensors, _ = GrowClient(source_settings(simulator())).get_sensors()
    assert len(sensors)


def test_sensors_come_with_owner_place_and_sample_span(network, simulator, source_settings):
    sensors, quarantined = GrowClient(source_settings(simulator())).get_sensors()
    assert quarantined == []
    assert sorted(sensors["sensor_id"]) == sorted(network.sensors["sensor_id"])
    merged = sensors.merge(network.sensors, on="sensor_id", suffixes=("", "_true"))
    assert (merged["owner_id"] == merged["owner_id_true"]).all()
    assert np.allclose(merged["latitude"], merged["latitude_true"])
    assert (merged["first_sample_at"] <= merged["last_sample_at"]).all()


def test_retry_after_is_honoured_and_attempts_are_bounded(simulator, source_settings, network):
    url = simulator(error_rate=1.0, failures=("429",), retry_after_s=1)
    client = GrowClient(source_settings(url, http_attempts=2, http_backoff_s=0.01))
    started = time.perf_counter()
    with pytest.raises(SourceError) as caught:
        client.get_readings([network.sensors["sensor_id"][0]], NOW - dt.timedelta(days=1), NOW)
    assert time.perf_counter() - started >= 1.0  # waited as told, not the 0.01 s backoff
    message = str(caught.value)
    assert message.startswith("GROW API readings of ")
    assert "HTTP 429 after 2 attempts" in message


def test_a_wrong_key_is_refused_without_showing_it(simulator, source_settings):
    client = GrowClient(source_settings(simulator(), grow_api_key="not-the-key-1234"))
    with pytest.raises(SourceError) as caught:
        client.get_sensors()
    assert "HTTP 401" in str(caught.value)
    assert "not-the-key-1234" not in str(caught.value)


def test_a_malformed_answer_fails_that_request_only(network, simulator, source_settings, monkeypatch):
    client = GrowClient(source_settings(simulator()))
    real = client.source.request_json
    broken_window = dt.datetime(2019, 6, 11, tzinfo=UTC)

    def sometimes_broken(method, path, what, **kwargs):
        if (
            kwargs.get("json", {}).get("Readers", [{}])[0].get("Settings", {}).get("StartDate")
            == "20190611000000"
        ):
            return {"Data": "garbled"}
        return real(method, path, what, **kwargs)

    monkeypatch.setattr(client.source, "request_json", sometimes_broken)
    batches = list(
        client.iter_readings(
            list(network.sensors["sensor_id"][:3]),
            dt.datetime(2019, 6, 1, tzinfo=UTC),
            NOW - dt.timedelta(seconds=1),
        )
    )
    failed = [b for b in batches if b.error is not None]
    assert len(batches) == 3 and len(failed) == 1
    assert failed[0].start == broken_window
    assert "no Data list" in str(failed[0].error)
    assert all(len(b.readings) > 0 for b in batches if b.error is None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dead_api_ends_in_one_line_within_the_timeout_times_attempts(source_settings):
    settings = source_settings(
        f"http://127.0.0.1:{free_port()}", http_attempts=3, http_timeout_s=2, http_backoff_s=0.1
    )
    started = time.perf_counter()
    with pytest.raises(SourceError) as caught:
        GrowClient(settings).get_sensors()
    assert time.perf_counter() - started < 2 * 3
    assert str(caught.value) == "GROW API sensor list: connection refused after 3 attempts"


def run_etl(*args, env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GROW_", "WOW_", "HTTP_"))}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "etl", *args], capture_output=True, text=True, env=environment, timeout=120
    )


@pytest.mark.slow  # a subprocess
def test_the_fetch_command_with_a_dead_api_exits_nonzero_with_one_line(tmp_path):
    result = run_etl(
        "fetch-sensors",
        env={
            "GROW_API_URL": f"http://127.0.0.1:{free_port()}/api",
            "GROW_API_KEY": "k-123456",
            "HTTP_ATTEMPTS": "2",
            "HTTP_BACKOFF_S": "0.05",
            "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite",
        },
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: GROW API sensor list: connection refused after 2 attempts"


@pytest.mark.slow  # a subprocess
def test_the_fetch_command_writes_the_readings(network, simulator, tmp_path):
    url = simulator()
    code = network.sensors["sensor_id"][1]
    out = tmp_path / "readings.csv"
    result = run_etl(
        "fetch-readings",
        code,
        "--start",
        "2019-06-01",
        "--end",
        "2019-06-03T23:59:59",
        "--out",
        str(out),
        env={
            "GROW_API_URL": f"{url}/grow/api",
            "GROW_API_KEY": "sim-grow-key",
            "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite",
        },
    )
    assert result.returncode == 0, result.stderr
    written = pd.read_csv(out)
    truth = network.visible_readings(
        [code], dt.datetime(2019, 6, 1, tzinfo=UTC), dt.datetime(2019, 6, 3, 23, 59, 59, tzinfo=UTC), NOW
    )
    assert len(written) == len(truth) > 200
    assert f"{len(truth):,} readings written" in result.stdout


# --- WOW ----------------------------------------------------------------------------------------------


def wow_record(site, when, temperature=12.5, rain=0.2, latest=True, **extra):
    return {
        "SiteId": site,
        "Latitude": 51.5,
        "Longitude": -0.1,
        "ReportEndDateTime": when,
        "DryBulbTemperature_Celsius": temperature,
        "RainfallAmount_Millimetre": rain,
        "RelativeHumidity": 80,
        "IsOfficial": False,
        "IsLatestVersion": latest,
        **extra,
    }


@pytest.mark.parametrize("shape", ["object", "bare list"])
def test_wow_answers_parse_in_both_shapes_with_nulls_and_versions(shape):
    records = [
        wow_record("1001", "2019-05-10T19:45:00"),
        wow_record("1001", "2019-05-10T20:00:00", temperature=None, rain=None),
        wow_record("1001", "2019-05-10T20:00:00", temperature=99.0, latest=False),  # superseded
        wow_record("8b5c6f9e-1d2a-4c3b-9e8f-7a6b5c4d3e2f", "2019-05-10T19:41:57.123Z"),
        wow_record(None, "2019-05-10T19:45:00"),
        wow_record("1002", "sometime"),
        "junk",
    ]
    payload = {"Object": records} if shape == "object" else records
    observations, skipped = parse_observations(payload)
    assert skipped == 3
    assert len(observations) == 3
    assert observations["ts"].dt.tz is not None
    late = observations[(observations["site_id"] == "1001")].iloc[-1]
    assert np.isnan(late["air_temperature"]) and np.isnan(late["rainfall"])


def test_live_means_temperature_and_rainfall_recently():
    now = pd.Timestamp("2019-07-01", tz="UTC")
    observations, _ = parse_observations(
        [
            wow_record("live", "2019-06-30T22:00:00"),
            wow_record("stale", "2019-06-29T22:00:00"),
            wow_record("no_gauge", "2019-06-30T23:00:00", rain=None),
        ]
    )
    stations = live_stations(observations, now, hours=24).set_index("site_id")
    assert stations["is_live"].to_dict() == {"live": True, "no_gauge": False, "stale": False}


def test_wow_site_observations_over_http_match_the_station(network, simulator, source_settings):
    site = network.stations["site_id"][3]
    client = WowClient(source_settings(simulator(wow_bare_list=True)))
    start = dt.datetime(2019, 6, 1, tzinfo=UTC)
    answer = client.get_site_observations(site, start, NOW)
    assert answer.incomplete == {} and answer.quarantined == []
    observations = answer.observations
    i = network.station_index[site]
    reported = np.asarray(network.wow["air_temperature"][i, network.step_of(start) :]) != -32768
    assert len(observations) == reported.sum()
    assert observations["air_temperature"].notna().all()


def test_live_stations_from_the_api_are_the_ones_still_reporting(network, simulator, source_settings):
    client = WowClient(source_settings(simulator()))
    stations, origin = client.get_live_stations(NOW)
    assert origin == "WOW API"
    truth = network.stations.set_index("site_id")["state"]
    live = set(stations.loc[stations["is_live"], "site_id"])
    assert live == {s for s, state in truth.items() if state == "live"}


def test_the_saved_station_file_stands_in_when_the_api_cannot(network, network_dir, source_settings):
    settings = source_settings(
        f"http://127.0.0.1:{free_port()}",
        http_attempts=1,
        wow_stations_file=network_dir / "wow_observations_europe.json",
    )
    stations, origin = WowClient(settings).get_live_stations(NOW)
    assert origin.endswith("wow_observations_europe.json")
    truth = network.stations.set_index("site_id")["state"]
    assert set(stations.loc[stations["is_live"], "site_id"]) == {
        s for s, state in truth.items() if state == "live"
    }


def test_without_a_station_file_a_dead_wow_api_is_an_error(source_settings):
    settings = source_settings(f"http://127.0.0.1:{free_port()}", http_attempts=1)
    with pytest.raises(SourceError, match="WOW API observations in box"):
        WowClient(settings).get_live_stations(NOW)


# --- addresses ----------------------------------------------------------------------------------------


def test_offline_addresses_name_place_and_country():
    london = offline_address(51.5007, -0.1246)
    assert london.country == "United Kingdom"
    assert london.place and london.address.endswith("United Kingdom")
    assert offline_address(39.47, -0.376).country == "Spain"


def test_google_addresses_through_the_configured_url_each_looked_up_once(simulator, source_settings):
    settings = source_settings(simulator(), google_api_key="AIzaSim-google-key")
    geocoder = Geocoder(settings)
    first = geocoder.reverse(48.8566, 2.3522)
    again = geocoder.reverse(48.8566, 2.3522)
    assert geocoder.source == "Google"
    assert first.country == "France" and first.address and first is again
    assert geocoder.reverse.cache_info().hits == 1


def test_a_google_address_is_kept_as_google_writes_it_and_as_2019_wrote_it():
    from etl.sources.address import parse_google_result

    result = {
        "formatted_address": "10 Downing St, London SW1A 2AA, UK",
        "address_components": [
            {"long_name": "10", "types": ["street_number"]},
            {"long_name": "Downing Street", "types": ["route"]},
            {"long_name": "London", "types": ["postal_town"]},
            {"long_name": "United Kingdom", "types": ["country", "political"]},
            {"long_name": "SW1A 2AA", "types": ["postal_code"]},
        ],
    }
    found = parse_google_result([result])
    assert found.address == "10 Downing St, London SW1A 2AA, UK"
    assert found.address_2019 == "10 Downing Street London United Kingdom SW1A 2AA"
    assert (found.place, found.country) == ("London", "United Kingdom")


def test_google_refusing_the_key_is_a_clear_error(simulator, source_settings):
    geocoder = Geocoder(source_settings(simulator(), google_api_key="AIzaWrong-key"))
    with pytest.raises(SourceError, match="REQUEST_DENIED"):
        geocoder.reverse(48.8566, 2.3522)


def test_a_key_that_is_not_a_google_key_is_a_settings_error(source_settings):
    with pytest.raises(SettingsError, match="GOOGLE_API_KEY"):
        Geocoder(source_settings("http://127.0.0.1:1", google_api_key="abc"))


# --- a deadline on each attempt: the whole answer in time, however slowly it trickles -------------------


def http_answer(body, *, status="200 OK", headers=(), piece=None, gap_s=0.0, chunked=False, gzipped=False):
    """What a raw server sends, as (bytes, seconds to wait before sending them): the head at once, then the
    body `piece` bytes at a time every `gap_s` seconds."""
    import gzip

    body = body.encode() if isinstance(body, str) else body
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", "Connection: close", *headers]
    if gzipped:
        body = gzip.compress(body)
        head.append("Content-Encoding: gzip")
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
    piece = piece or max(len(body), 1)
    parts = [body[i : i + piece] for i in range(0, len(body), piece)]
    if chunked:
        parts = [b"%x\r\n%s\r\n" % (len(part), part) for part in parts] + [b"0\r\n\r\n"]
    return [(("\r\n".join(head) + "\r\n\r\n").encode(), 0.0)] + [(part, gap_s) for part in parts]


class RawServer:
    """An HTTP server on a free loopback port, written on a raw socket so it can trickle: its n-th
    connection gets the n-th answer (the last one again once they run out), then is closed."""

    def __init__(self, *answers):
        self.answers = answers
        self.connections = 0
        self.hung_up = 0  # connections the client closed before the whole answer was sent
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        with self.listener:
            while not self.stop.is_set():
                try:
                    connection, _ = self.listener.accept()
                except TimeoutError:
                    continue
                answer = self.answers[min(self.connections, len(self.answers) - 1)]
                self.connections += 1
                threading.Thread(target=self._answer, args=(connection, answer), daemon=True).start()

    def _answer(self, connection, answer):
        with connection:
            connection.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request:
                more = connection.recv(65536)
                if not more:
                    return
                request += more
            for data, wait in answer:
                if self.stop.wait(wait):
                    return
                try:
                    connection.sendall(data)
                except OSError:
                    self.hung_up += 1
                    return


@pytest.fixture
def raw_server():
    """Start a RawServer with the given answers; all are stopped after the test."""
    servers = []

    def start(*answers) -> RawServer:
        servers.append(RawServer(*answers))
        return servers[-1]

    yield start
    for server in servers:
        server.stop.set()


def finishes_within(limit_s, call):
    """Run `call` in a thread: (its outcome, seconds taken); fails the test, instead of hanging it, when the
    call is still running after `limit_s`."""
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except Exception as exc:
            outcome["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit_s)
    if thread.is_alive():
        pytest.fail(f"the call was still running after {limit_s} s", pytrace=False)
    return outcome, time.monotonic() - started


def grow_source(settings) -> Source:
    key = settings.grow_api_key.get_secret_value()
    return Source(
        "GROW API",
        settings.grow_api_url,
        {"Authorization": f"Bearer {key}"},
        HttpPolicy.from_settings(settings),
    )


ANSWER = {"Data": [{"LocationCode": "s1", "Value": 12.5}, {"LocationCode": "s2", "Value": None}], "n": 2}
LONG_ANSWER = orjson.dumps({"Data": [{"LocationCode": f"s{i}", "Value": i / 7} for i in range(200)]})


def test_the_policy_comes_from_the_settings(source_settings):
    settings = source_settings(
        "http://127.0.0.1:1", http_timeout_s=2, http_attempts=3, http_backoff_s=0.25, http_deadline_s=7
    )
    assert HttpPolicy.from_settings(settings) == HttpPolicy(
        timeout_s=2, attempts=3, backoff_s=0.25, deadline_s=7
    )
    assert HttpPolicy.from_settings(source_settings("http://127.0.0.1:1")).deadline_s == 120


@pytest.mark.parametrize("kind", ["length", "chunked", "gzip"])
def test_a_trickling_answer_fails_at_the_deadline_instead_of_holding_the_call(
    kind, raw_server, source_settings, caplog
):
    """A byte every 0.1 s never trips the 0.5 s wait for each piece; the 0.75 s deadline ends each
    attempt."""
    trickle = http_answer(LONG_ANSWER, piece=1, gap_s=0.1, chunked=kind == "chunked", gzipped=kind == "gzip")
    server = raw_server(trickle)
    settings = source_settings(server.url, http_timeout_s=0.5, http_deadline_s=0.75, http_attempts=2)
    source = grow_source(settings)
    with caplog.at_level(logging.WARNING):
        outcome, took = finishes_within(15, lambda: source.request_json("GET", "readings", "readings of s1"))
    assert isinstance(outcome.get("error"), SourceError), outcome
    assert (
        str(outcome["error"]) == "GROW API readings of s1: no complete answer within 0.75 s after 2 attempts"
    )
    assert took < 6  # 2 × 0.75 s and a backoff, with room for a loaded machine
    assert server.connections == 2
    assert "attempt 1 of 2" in caplog.text
    assert "sim-grow-key" not in caplog.text + str(outcome["error"])
    for _ in range(40):  # each attempt hung up, releasing its connection
        if server.hung_up == 2:
            break
        time.sleep(0.05)
    assert server.hung_up == 2


@pytest.mark.parametrize("kind", ["length", "chunked", "gzip", "gzip chunked"])
def test_plain_and_gzipped_answers_still_decode(kind, raw_server, source_settings):
    server = raw_server(http_answer(orjson.dumps(ANSWER), chunked="chunked" in kind, gzipped="gzip" in kind))
    source = grow_source(source_settings(server.url, http_deadline_s=3))
    outcome, _ = finishes_within(10, lambda: source.request_json("GET", "readings", "readings of s1"))
    assert outcome == {"value": ANSWER}


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_slow_but_steady_answer_within_the_deadline_succeeds(gzipped, raw_server, source_settings):
    body = orjson.dumps(ANSWER)
    server = raw_server(http_answer(body, piece=len(body) // 12 + 1, gap_s=0.08, gzipped=gzipped))
    source = grow_source(source_settings(server.url, http_timeout_s=1, http_deadline_s=3, http_attempts=1))
    outcome, took = finishes_within(10, lambda: source.request_json("GET", "readings", "readings of s1"))
    assert outcome == {"value": ANSWER}
    assert took >= 0.5  # it did trickle


def test_an_attempt_past_its_deadline_is_retried(raw_server, source_settings, caplog):
    server = raw_server(http_answer(LONG_ANSWER, piece=1, gap_s=0.2), http_answer(orjson.dumps(ANSWER)))
    source = grow_source(source_settings(server.url, http_timeout_s=1, http_deadline_s=1, http_attempts=2))
    with caplog.at_level(logging.WARNING):
        outcome, _ = finishes_within(10, lambda: source.request_json("GET", "readings", "readings of s1"))
    assert outcome == {"value": ANSWER}
    assert server.connections == 2
    assert "no complete answer within 1 s; attempt 1 of 2" in caplog.text


def test_waiting_as_a_retry_after_asks_does_not_use_up_the_deadline(raw_server, source_settings):
    """urllib3 waits 2 s between the 503 and the answer; the 1.5 s deadline is for the answer's attempt."""
    busy = http_answer("", status="503 Service Unavailable", headers=["Retry-After: 2"])
    answer = http_answer(orjson.dumps(ANSWER))
    server = raw_server(busy, answer, busy, answer)
    source = grow_source(source_settings(server.url, http_timeout_s=1, http_deadline_s=1.5, http_attempts=2))
    outcome, took = finishes_within(15, lambda: source.request_json("GET", "readings", "readings of s1"))
    assert outcome == {"value": ANSWER}
    assert server.connections == 2 and took >= 2


def test_a_trickling_error_answer_ends_at_the_deadline_too(raw_server, source_settings):
    server = raw_server(http_answer(LONG_ANSWER, status="400 Bad Request", piece=1, gap_s=0.2))
    source = grow_source(source_settings(server.url, http_timeout_s=1, http_deadline_s=1, http_attempts=2))
    outcome, took = finishes_within(10, lambda: source.request_json("GET", "readings", "readings of s1"))
    assert isinstance(outcome.get("error"), SourceError), outcome
    assert str(outcome["error"]).startswith("GROW API readings of s1: HTTP 400")
    assert took < 5


def test_answers_are_decoded_by_the_one_swappable_decode_json(raw_server, source_settings, monkeypatch):
    import etl.sources.http

    server = raw_server(http_answer(orjson.dumps(ANSWER), gzipped=True))
    monkeypatch.setattr(etl.sources.http, "decode_json", lambda content: {"decoded": content})
    source = grow_source(source_settings(server.url))
    outcome, _ = finishes_within(10, lambda: source.request_json("GET", "readings", "readings of s1"))
    assert outcome == {"value": {"decoded": orjson.dumps(ANSWER)}}  # the whole body, un-gzipped


def test_a_trickling_google_answer_ends_at_the_deadline(raw_server, source_settings):
    server = raw_server(http_answer(LONG_ANSWER, piece=1, gap_s=0.2))
    settings = source_settings(
        server.url, google_api_key="AIzaSim-google-key", http_timeout_s=1, http_deadline_s=1
    )
    geocoder = Geocoder(settings)
    outcome, took = finishes_within(10, lambda: geocoder.reverse(48.8566, 2.3522))
    assert isinstance(outcome.get("error"), SourceError), outcome
    assert str(outcome["error"]) == "Google geocoding of 48.85660,2.35220: Timeout"
    assert took < 5


# --- keys stay with their hosts -------------------------------------------------------------------------


@pytest.fixture
def redirect_elsewhere(serve):
    """A server that redirects every request to another host (`localhost`, not `127.0.0.1`), and what that
    other host was sent."""
    from flask import Flask, redirect, request

    received = []
    thief = Flask("thief")

    @thief.route("/<path:anything>", methods=["GET", "POST"])
    def steal(anything):
        received.append(dict(request.headers))
        return {"Object": []}

    port = serve(thief).rsplit(":", 1)[1]
    redirector = Flask("redirector")

    @redirector.route("/<path:anything>", methods=["GET", "POST"])
    def elsewhere(anything):
        return redirect(f"http://localhost:{port}/{anything}", code=307)

    return serve(redirector), received


def test_no_key_follows_a_redirect_to_another_host(redirect_elsewhere, source_settings):
    url, received = redirect_elsewhere
    settings = source_settings(url, http_attempts=1)
    with pytest.raises(SourceError, match="redirect"):
        WowClient(settings).get_site_observations("site-1", START, END)
    with pytest.raises(SourceError, match="redirect"):
        GrowClient(settings).get_sensors()
    sent = " ".join(str(headers) for headers in received)
    assert "sim-wow-key" not in sent and "sim-grow-key" not in sent


def test_a_grow_key_stored_as_2019_stored_it_with_its_bearer_is_not_doubled(
    network, simulator, source_settings
):
    """2019's back end sent the grow-api secret's value as the header itself: a value that already says
    `Bearer …` is used as it is."""
    url = simulator()
    for stored in ("sim-grow-key", "Bearer sim-grow-key", "  Bearer sim-grow-key "):
        sensors, _ = GrowClient(source_settings(url, grow_api_key=stored)).get_sensors()
        assert len(sensors) == len(network.sensors), stored
