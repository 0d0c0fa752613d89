"""Detection's own read path and its memo of model errors: faster ways to the same answers."""

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from core.db import read_frame
from core.load import bulk_upsert
from core.schema import readings, sensors, wow_observations
from detection.model import SLOTS, ErrorMemo, daily_windows
from etl.detect_anomalies import Window, _read_series, _read_windows

T0 = pd.Timestamp("2019-05-01", tz="UTC")


def _stored(engine) -> None:
    """Three sensors (one id all digits) with gaps, NULLs and readings outside the windows."""
    ids = ["s1", "00042", "quiet"]
    ts = T0 + pd.to_timedelta(np.arange(200) * 15, unit="min") + pd.Timedelta(microseconds=7)
    rng = np.random.default_rng(3)
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "sensor_id": sensor,
                    "ts": ts,
                    "soil_moisture": rng.normal(20, 5, len(ts)),
                    "air_temperature": np.where(
                        np.arange(len(ts)) % 7 == 0, np.nan, rng.normal(12, 4, len(ts))
                    ),
                    "light": rng.uniform(0, 30, len(ts)),
                    "battery_level": np.nan,
                }
            )
            for sensor in ids
        ],
        ignore_index=True,
    )
    stations = pd.DataFrame(
        {
            "site_id": "w1",
            "ts": ts[::4],
            "air_temperature": 11.5,
            "rainfall": np.where(np.arange(50) % 3, 0.2, np.nan),
        }
    )
    meta = pd.DataFrame({"sensor_id": ids, "name": ids, "owner_id": "o", "latitude": 51.0, "longitude": 0.0})
    with engine.begin() as connection:
        bulk_upsert(connection, sensors, meta)
        bulk_upsert(connection, readings, frame)
        bulk_upsert(connection, wow_observations, stations)


def test_the_readings_come_as_the_generic_read_gives_them(engine):
    _stored(engine)
    windows = {
        "s1": Window(T0 + pd.Timedelta(hours=3), T0 + pd.Timedelta(hours=30)),
        "00042": Window(T0, T0 + pd.Timedelta(days=5)),
        "quiet": Window(T0 + pd.Timedelta(days=9), T0 + pd.Timedelta(days=10)),  # no readings in it
    }
    variables = ["soil_moisture", "air_temperature", "light", "battery_level"]
    with engine.connect() as connection:
        got = _read_series(connection, readings, "sensor_id", variables, windows)
        expected = _read_windows(connection, [readings], readings, "sensor_id", windows)
        whole = read_frame(connection, select(readings))
    order = ["sensor_id", "ts"]
    expected = expected.sort_values(order, ignore_index=True)
    pd.testing.assert_frame_equal(got.sort_values(order, ignore_index=True), expected)
    assert set(got["sensor_id"]) == {"s1", "00042"}
    assert len(got) == 108 + 200 and got["air_temperature"].isna().any() and got["battery_level"].isna().all()
    assert got["ts"].dtype == whole["ts"].dtype  # the same time type as every other read


def test_the_station_reports_come_as_the_generic_read_gives_them(engine):
    _stored(engine)
    windows = {"w1": Window(T0 + pd.Timedelta(hours=5), T0 + pd.Timedelta(days=1))}
    columns = ["air_temperature", "rainfall"]
    with engine.connect() as connection:
        got = _read_series(connection, wow_observations, "site_id", columns, windows)
        table = wow_observations
        selected = [table.c.site_id, table.c.ts, table.c.air_temperature, table.c.rainfall]
        expected = _read_windows(connection, selected, table, "site_id", windows)
    order = ["site_id", "ts"]
    pd.testing.assert_frame_equal(
        got.sort_values(order, ignore_index=True), expected.sort_values(order, ignore_index=True)
    )
    assert len(got) == 19 and got["rainfall"].isna().any()


class CountingModel:
    """A stand-in for an autoencoder: each day's error is its mean, and the days asked are counted."""

    variable = "light"

    def __init__(self):
        self.asked = 0

    def errors(self, values: np.ndarray) -> np.ndarray:
        self.asked += len(values)
        return values.mean(axis=1).astype(np.float32)


def _days(sensor: str, first: int, count: int, level: float = 0.0):
    days = pd.DataFrame(
        {"sensor_id": sensor, "day": T0 + pd.to_timedelta(np.arange(first, first + count), "D")}
    )
    values = np.arange(first, first + count, dtype=np.float32)[:, None] + level + np.zeros(SLOTS, np.float32)
    return days, values


def test_the_memo_asks_the_model_once_about_the_days_two_passes_share():
    model, memo = CountingModel(), ErrorMemo()
    memo.next_pass()
    memo.keep({"a": T0 + pd.Timedelta(days=6)})  # the next pass starts on day 6
    days, values = _days("a", 0, 10)
    first = memo.errors(model, days, values)
    assert model.asked == 10
    memo.next_pass()
    days, values = _days("a", 6, 10)
    again = memo.errors(model, days, values)
    assert model.asked == 10 + 6  # days 6 to 9 were known
    np.testing.assert_array_equal(again, CountingModel().errors(values))
    np.testing.assert_array_equal(first[6:], again[:4])


def test_the_memo_asks_again_about_a_day_whose_readings_changed_and_forgets_old_passes():
    model, memo = CountingModel(), ErrorMemo()
    memo.next_pass()
    memo.keep({"a": T0})
    days, values = _days("a", 0, 4)
    memo.errors(model, days, values)
    memo.next_pass()
    changed_days, changed = _days("a", 0, 4, level=0.5)  # late readings changed every day
    np.testing.assert_array_equal(memo.errors(model, changed_days, changed), CountingModel().errors(changed))
    assert model.asked == 8
    memo.next_pass()  # nothing kept by the pass before: all is asked again
    memo.errors(model, days, values)
    assert model.asked == 12


@pytest.mark.parametrize("kept_from", [None, 2])
def test_the_memo_holds_only_the_days_it_is_told_to_keep(kept_from):
    model, memo = CountingModel(), ErrorMemo()
    memo.next_pass()
    if kept_from is not None:
        memo.keep({"a": T0 + pd.Timedelta(days=kept_from)})
    days, values = _days("a", 0, 4)
    memo.errors(model, days, values)
    memo.next_pass()
    memo.errors(model, days, values)
    assert model.asked == 4 + (4 if kept_from is None else kept_from)


def test_the_memo_answers_a_window_with_no_day_to_ask_about():
    """A chunk whose sensors sent no light reading in the window (all missing) asks the models about no
    day at all: the memo answers nothing, as the model would, and does not crash the weekly look back."""
    model, memo = CountingModel(), ErrorMemo()
    memo.next_pass()
    frame = pd.DataFrame(
        {"sensor_id": ["a"] * 3, "ts": T0 + pd.to_timedelta([0, 15, 30], "min"), "light": [np.nan] * 3}
    )
    windows = daily_windows(frame, "light")
    assert memo.errors(model, windows.keys, windows.values).shape == (0,)
    assert model.asked == 0
