"""A hostile upstream, piece by piece: answers held against their requests, watermarks that never jump a
hole, records quarantined instead of halting the night, silence noticed, and `etl status` telling it."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine

from core.load import bulk_upsert
from core.schema import metadata, readings
from core.vocabulary import GROW_DATA_SOURCE, Health
from etl.analyse_anomalies import sensor_health_rows
from etl.fetch_state import GROW, Progress, Stored, next_state
from etl.loaders import changed_rows, mark_unsure
from etl.quarantine import REFUSED, REPAIRED, Quarantined, clean_text, quarantine_frame
from etl.sources.grow import check_answer, parse_locations
from etl.sources.http import decode_json
from etl.sources.wow import Box, check_observations

UTC = dt.UTC
START = dt.datetime(2019, 6, 1, tzinfo=UTC)
END = dt.datetime(2019, 6, 2, tzinfo=UTC)
NOT_AFTER = dt.datetime(2019, 6, 2, 1, tzinfo=UTC)
CODES = ("s1", "s2")
VARIABLE_CODES = ("calibrated_soil_moisture", "air_temperature", "light", "battery_level")


def series(code, variable, points):
    return {
        "LocationCode": code,
        "VariableCode": f"{GROW_DATA_SOURCE}.{variable}",
        "NoDataValue": -9999,
        "Data": [{"Value": v, "DateTime": t} for v, t in points],
    }


def full_answer(codes=CODES, points=((12.0, "20190601100000"), (12.5, "20190601101500"))):
    return {"Data": [series(code, v, points) for code in codes for v in VARIABLE_CODES]}


# --- GROW answers held against their request -------------------------------------------------------


def test_a_complete_answer_is_taken_whole():
    answer = check_answer(full_answer(), CODES, START, END, NOT_AFTER)
    assert answer.incomplete == {}
    assert answer.quarantined == []
    assert len(answer.readings) == 4 and set(answer.readings["sensor_id"]) == set(CODES)


def test_a_sensor_or_a_variable_left_out_makes_a_gap():
    payload = full_answer(codes=("s1",))
    payload["Data"] = [e for e in payload["Data"] if not e["VariableCode"].endswith(".light")]
    answer = check_answer(payload, CODES, START, END, NOT_AFTER)
    assert answer.incomplete == {"s1": "light left out of the answer", "s2": "left out of the answer"}
    # Rows without their light would overwrite a stored light with nothing: they wait for a full answer.
    assert answer.readings.empty


def test_samples_of_sensors_not_asked_for_and_outside_the_window_are_dropped_and_counted():
    payload = full_answer()
    payload["Data"] += [series("intruder", v, [(1.0, "20190601100000")]) for v in VARIABLE_CODES]
    payload["Data"][0]["Data"].append({"Value": 13.0, "DateTime": "20190531230000"})  # before START
    answer = check_answer(payload, CODES, START, END, NOT_AFTER)
    assert "intruder" not in set(answer.readings["sensor_id"])
    assert answer.counts["unrequested"] == 4
    assert answer.counts["outside_window"] == 1
    assert answer.incomplete == {}  # extra samples are not missing ones


def test_a_sample_stamped_in_the_future_is_refused_quarantined_and_holds_its_sensor():
    payload = full_answer()
    payload["Data"][0]["Data"].append({"Value": 13.0, "DateTime": "20190720000000"})  # wrong clock
    answer = check_answer(payload, CODES, START, END, NOT_AFTER)
    assert answer.readings["ts"].max() < pd.Timestamp(END)
    assert answer.counts["future"] == 1
    assert [(q.entity_id, q.action) for q in answer.quarantined] == [("s1", REFUSED)]
    assert "stamped in the future" in answer.incomplete["s1"] and "s2" not in answer.incomplete


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "1e999", "NaN", "123456"])
def test_a_value_that_cannot_be_a_reading_is_stored_as_missing_and_quarantined(literal):
    text = json.dumps(full_answer()).replace('"Value": 12.5', f'"Value": {literal}', 1)
    answer = check_answer(decode_json(text.encode()), CODES, START, END, NOT_AFTER)
    row = answer.readings[(answer.readings["sensor_id"] == "s1")].iloc[-1]
    assert np.isnan(row["soil_moisture"])
    assert np.isfinite(answer.readings[["air_temperature", "light"]].to_numpy()).all()
    [record] = answer.quarantined
    assert (record.entity_id, record.action) == ("s1", REPAIRED)
    assert "soil_moisture not a possible reading" in record.reason
    assert "s1" in answer.incomplete  # asked again: a clean answer later gives the true value


def test_a_fault_that_reads_out_of_range_is_a_reading_not_a_transmission_error():
    # A probe in a fault reads soil moisture far over 100 %: detection must see it.
    text = json.dumps(full_answer()).replace('"Value": 12.5', '"Value": 180.0', 1)
    answer = check_answer(decode_json(text.encode()), CODES, START, END, NOT_AFTER)
    assert answer.quarantined == [] and answer.incomplete == {}
    assert answer.readings["soil_moisture"].max() == 180.0


# --- GROW sensor records -------------------------------------------------------------------------------


def location(code, **fields):
    record = {"Code": code, "X": -0.12, "Y": 51.5, "Name": f"Flower Power {code}", "UserUid": "owner-1"}
    return {f"Grow.Thingful#{code}": {**record, **fields}}


def test_sensor_names_with_nul_or_too_long_are_repaired_and_bad_ids_refused():
    payload = {
        "Locations": {
            **location("good"),
            **location("nul", Name="Flower\x00Power"),
            **location("long", Name="x" * 500),
            **location("bad code/1"),
            **location("x" * 80),
            **location("owner", UserUid="own\x00er"),
        }
    }
    sensors, quarantined = parse_locations(payload)
    names = dict(zip(sensors["sensor_id"], sensors["name"]))
    assert names["good"] == "Flower Power good"
    assert names["nul"] == "FlowerPower" and len(names["long"]) == 256
    assert pd.isna(sensors.set_index("sensor_id").loc["owner", "owner_id"])
    assert set(sensors["sensor_id"]) == {"good", "nul", "long", "owner"}
    actions = {(q.entity_id, q.action) for q in quarantined}
    assert actions == {
        ("nul", REPAIRED),
        ("long", REPAIRED),
        ("owner", REPAIRED),
        ("bad code/1", REFUSED),
        ("x" * 80, REFUSED),
    }


def test_text_is_cleaned_for_its_column_and_says_what_was_done():
    assert clean_text("Flower Power", 256) == ("Flower Power", None)
    assert clean_text("a\x00b", 256) == ("ab", "control characters removed")
    assert clean_text("abcdef", 3) == ("abc", "cut from 6 to 3 characters")


def test_the_same_record_sent_again_is_the_same_quarantine_row():
    seen = dt.datetime(2019, 6, 2, tzinfo=UTC)
    one = Quarantined("grow readings", "s1", REPAIRED, "why", {"Value": float("inf"), "DateTime": "x"})
    again = Quarantined("grow readings", "s1", REPAIRED, "why", {"DateTime": "x", "Value": float("inf")})
    other = Quarantined("grow readings", "s1", REPAIRED, "why", {"Value": float("-inf"), "DateTime": "x"})
    frame = quarantine_frame([one, again, other], seen)
    assert len(frame) == 2
    assert "Infinity" in frame["record"].iloc[0]
    assert (
        quarantine_frame([Quarantined("s", "a\x00" * 40, REFUSED, "r", "\x00")], seen)["entity_id"][0]
        == "a" * 40
    )


# --- WOW answers held against their request ---------------------------------------------------------


def observation(site, end, temperature=12.0, latitude=51.5, longitude=-0.1):
    return {
        "SiteId": site,
        "Latitude": latitude,
        "Longitude": longitude,
        "ReportEndDateTime": end,
        "DryBulbTemperature_Celsius": temperature,
        "RainfallAmount_Millimetre": 0.0,
        "RelativeHumidity": 80,
        "IsLatestVersion": True,
    }


def test_a_site_answer_keeps_only_the_site_and_window_asked_and_refuses_a_wrong_clock():
    payload = {
        "Object": [
            observation("101", "2019-06-01T10:00:00"),
            observation("999", "2019-06-01T10:00:00"),  # not asked for
            observation("101", "2019-05-20T10:00:00"),  # before the window
            observation("101", "2019-08-01T10:00:00"),  # in the future
            observation("101", "2019-06-01T11:00:00", temperature=float("inf")),
        ]
    }
    answer = check_observations(payload, START, END, NOT_AFTER, site="101")
    assert list(answer.observations["site_id"]) == ["101", "101"]
    assert np.isnan(answer.observations["air_temperature"].iloc[1])
    assert answer.counts == {"unrequested": 1, "future": 1, "outside_window": 1}
    assert sorted(q.action for q in answer.quarantined) == [REFUSED, REPAIRED]
    assert "101" in answer.incomplete


def test_a_box_answer_drops_stations_outside_the_box():
    box = Box(top=60, left=-10, bottom=50, right=2)
    payload = [
        observation("101", "2019-06-01T10:00:00"),
        observation("202", "2019-06-01T10:00:00", latitude=40),
    ]
    answer = check_observations(payload, START, END, NOT_AFTER, box=box)
    assert list(answer.observations["site_id"]) == ["101"]
    assert answer.counts["unrequested"] == 1
    assert answer.seen_in_every_window == {"101"}


# --- watermarks that never jump a hole ------------------------------------------------------------------


def stamp(day: int, hour: int = 0) -> pd.Timestamp:
    return pd.Timestamp(2019, 6, day, hour, tz="UTC")


def test_a_hole_holds_the_watermark_though_later_windows_were_answered():
    progress = Progress()
    progress.answered("s1", stamp(1), stamp(11))
    progress.answered("s1", stamp(11), stamp(21), "left out of the answer")
    progress.answered("s1", stamp(21), stamp(30))  # answered, but past the hole
    progress.answered("s2", stamp(1), stamp(11))
    progress.answered("s2", stamp(11), stamp(30))
    states, gaps = next_state(GROW, progress, {}, stamp(30), dt.timedelta(days=14))
    state = states.set_index("entity_id")
    assert state.loc["s1", "fetched_through"] == stamp(11)
    assert state.loc["s1", "held_since"] == stamp(30) and state.loc["s1", "held_runs"] == 1
    assert state.loc["s2", "fetched_through"] == stamp(30) and pd.isna(state.loc["s2", "held_since"])
    assert gaps.empty


def test_a_hole_asked_for_longer_than_the_limit_is_given_up_and_reported():
    progress = Progress()
    progress.answered("s1", stamp(11), stamp(21), "left out of the answer")
    stored = {"s1": Stored(stamp(11), held_since=stamp(5), held_runs=15)}
    states, gaps = next_state(GROW, progress, stored, stamp(20), dt.timedelta(days=14))
    assert states.iloc[0]["fetched_through"] == stamp(21) and pd.isna(states.iloc[0]["held_since"])
    gap = gaps.iloc[0]
    assert (gap["entity_id"], gap["start_at"], gap["end_at"]) == ("s1", stamp(11), stamp(21))
    assert gap["reason"] == "left out of the answer"


def test_an_incomplete_answer_fills_in_what_is_missing_but_never_overwrites_a_stored_row():
    # s1's answer held an impossible value (stored as missing): its rows may carry that NaN, so they
    # must not blank a stored good value; a row never stored goes in. s2 was fully answered.
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    others = {"air_temperature": 12.0, "light": 1.0, "battery_level": 80.0}
    stored = pd.DataFrame(
        {"sensor_id": ["s1", "s2"], "ts": [stamp(5), stamp(5)], "soil_moisture": [31.0, 30.0], **others}
    )
    batch = pd.DataFrame(
        {
            "sensor_id": ["s1", "s1", "s2"],
            "ts": [stamp(5), stamp(6), stamp(5)],
            "soil_moisture": [np.nan, np.nan, 32.0],
            **others,
        }
    )
    with engine.begin() as connection:
        bulk_upsert(connection, readings, stored)
        marked = mark_unsure(batch, {"s1": "soil_moisture not a possible reading"})
        kept = changed_rows(connection, marked, {"s1": stamp(5), "s2": stamp(5)})
    assert sorted(zip(kept["sensor_id"], kept["ts"])) == [("s1", stamp(6)), ("s2", stamp(5))]


def test_a_new_hole_after_the_watermark_moved_is_young_however_old_the_last_one_was():
    progress = Progress()
    progress.answered("s1", stamp(1), stamp(11))  # the old hole is answered now
    progress.answered("s1", stamp(11), stamp(21), "light left out of the answer")  # a new one
    stored = {"s1": Stored(stamp(1), held_since=stamp(2), held_runs=16)}
    states, gaps = next_state(GROW, progress, stored, stamp(21), dt.timedelta(days=14))
    assert gaps.empty
    assert states.iloc[0]["held_since"] == stamp(21) and states.iloc[0]["fetched_through"] == stamp(11)


def test_a_hole_filled_later_clears_the_hold():
    progress = Progress()
    progress.answered("s1", stamp(8), stamp(18))
    stored = {"s1": Stored(stamp(11), held_since=stamp(12), held_runs=3)}
    states, _ = next_state(GROW, progress, stored, stamp(18), dt.timedelta(days=14))
    assert states.iloc[0]["fetched_through"] == stamp(18) and pd.isna(states.iloc[0]["held_since"])
    assert states.iloc[0]["held_runs"] == 0


# --- silence ------------------------------------------------------------------------------------------


def test_a_sensor_that_stops_reporting_goes_silent_with_the_date_of_its_last_reading():
    found = pd.DataFrame(columns=["sensor_id", "variable", "kind", "end_at", "score", "explanation"])
    latest = {"quiet": stamp(20, 14), "talking": stamp(29, 23)}
    rows = sensor_health_rows(["quiet", "talking"], found, latest, 2.0, stamp(30), 3.0).set_index("sensor_id")
    assert rows.loc["quiet", "status"] == Health.SILENT
    assert rows.loc["quiet", "reason"].startswith("silent: no reading since 2019-06-20 14:00 UTC (9.4 days)")
    assert rows.loc["talking", "status"] == Health.HEALTHY


# --- answers shaped like nothing we know ---------------------------------------------------------------


@pytest.mark.parametrize(
    "mangle",
    [
        lambda e: e.update(LocationCode={"nested": "code"}),
        lambda e: e.update(VariableCode=["a", "list"]),
        lambda e: e["Data"][0].update(Value=[1, 2]),
        lambda e: e["Data"][0].update(Value={"v": 1}),
        lambda e: e.update(NoDataValue=10**400),
        lambda e: e["Data"][0].update(DateTime="00000101000000"),
    ],
)
def test_odd_shapes_in_an_answer_are_malformed_samples_never_a_crash(mangle):
    payload = full_answer()
    mangle(payload["Data"][0])
    answer = check_answer(payload, CODES, START, END, NOT_AFTER)
    assert answer.readings["ts"].min() >= pd.Timestamp(START)
    assert "s2" not in answer.incomplete  # the other sensor is untouched


def test_a_number_too_large_for_a_float_is_an_impossible_reading():
    text = json.dumps(full_answer()).replace('"Value": 12.5', '"Value": 1' + "0" * 400, 1)
    answer = check_answer(decode_json(text.encode()), CODES, START, END, NOT_AFTER)
    [record] = answer.quarantined
    assert record.action == REPAIRED and "s1" in answer.incomplete
    sensors, quarantined = parse_locations({"Locations": location("big", Y=10**400)})
    assert sensors.empty and quarantined[0].action == REFUSED


def test_an_answer_nested_beyond_reason_is_not_json():
    with pytest.raises(ValueError, match="not JSON"):
        decode_json(b"[" * 100_000 + b"]" * 100_000)


def test_wow_site_ids_outside_the_id_pattern_are_refused():
    payload = [observation("12\x003", "2019-06-01T10:00:00"), observation("../x y", "2019-06-01T10:00:00")]
    payload.append({**observation("101", "2019-06-01T10:00:00"), "SiteId": 10**40})
    payload.append({**observation("101", "2019-06-01T11:00:00"), "DryBulbTemperature_Celsius": 10**400})
    answer = check_observations(payload, START, END, NOT_AFTER)
    assert list(answer.observations["site_id"]) == ["101"]
    assert np.isnan(answer.observations["air_temperature"].iloc[0])
    assert sorted(q.action for q in answer.quarantined) == [REFUSED, REFUSED, REFUSED, REPAIRED]


def test_a_site_call_that_fails_at_its_second_window_keeps_what_the_first_gave(monkeypatch):
    from etl.settings import load_settings
    from etl.sources.http import SourceError
    from etl.sources.wow import Answer, PartialAnswer, WowClient

    first = check_observations([observation("101", "2019-06-01T10:00:00")], START, END, NOT_AFTER, site="101")
    calls = []

    def answer(self, params, what, a, b, site=None, box=None):
        calls.append(a)
        if len(calls) == 2:
            raise SourceError("WOW API observations of site 101: HTTP 503 after 5 attempts")
        return first

    monkeypatch.setattr(WowClient, "_answer", answer)
    client = WowClient(load_settings(wow_api_key="k", wow_api_url="http://127.0.0.1:9/wow/api"))
    with pytest.raises(PartialAnswer) as failure:
        client.get_site_observations("101", START, START + dt.timedelta(days=45))
    assert failure.value.failed_from == calls[1] > START  # the first window counts as answered
    assert isinstance(failure.value.answer, Answer) and len(failure.value.answer.observations) == 1
