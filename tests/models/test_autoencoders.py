"""The autoencoders: daily windows from any sampling; the shipped models pass clean simulated days and
flag a fault injected on known days; training writes small, reproducible models, from a simulated network
or from sensors in the database."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from core.db import init_db, make_engine
from core.load import bulk_upsert
from core.schema import readings, sensor_health, sensors
from detection.model import MODEL_DIR, VARIABLES, check_with_models, daily_windows, load, shipped
from devtools import train_models
from etl.settings import load_settings
from models import train
from tests.factories import START, clean

DAY = pd.Timedelta(days=1)


def as_frame(series_frame: pd.DataFrame, sensor: str = "s1") -> pd.DataFrame:
    return series_frame.rename_axis("ts").reset_index().assign(sensor_id=sensor)


@pytest.mark.parametrize("freq", ["15min", "1h"])
def test_every_whole_day_makes_one_window_whatever_the_sampling(freq):
    windows = daily_windows(as_frame(clean(days=7, freq=freq)), "air_temperature")
    assert windows.values.shape == (7, 96)
    assert list(windows.keys["day"]) == list(pd.date_range(START, periods=7, freq="D"))
    assert not np.isnan(windows.values).any()


def test_a_day_with_a_long_gap_is_left_out_and_short_gaps_are_filled():
    frame = as_frame(clean(days=4))
    gap = (frame["ts"] >= START + pd.Timedelta(days=1, hours=6)) & (
        frame["ts"] < START + pd.Timedelta(days=1, hours=9)
    )
    short = (frame["ts"] >= START + pd.Timedelta(days=2, hours=6)) & (
        frame["ts"] < START + pd.Timedelta(days=2, hours=7)
    )
    windows = daily_windows(frame[~gap & ~short], "air_temperature")
    assert list(windows.keys["day"]) == [START, START + 2 * DAY, START + 3 * DAY]
    assert not np.isnan(windows.values).any()


@pytest.mark.slow  # loads TensorFlow (7 s)
def test_the_shipped_models_are_small_and_carry_their_calibration():
    size = sum(f.stat().st_size for f in MODEL_DIR.iterdir() if f.suffix in (".keras", ".json"))
    assert size < 5_000_000
    for variable in VARIABLES:
        model = shipped()[variable]
        assert 0 < model.threshold < np.inf and model.low < model.high
        assert model.info["held_out_error"]["max"] < model.threshold


@pytest.fixture(scope="module")
def clean_sensors(network):
    """Five clean sensors of the simulated network, as the database would hand them to detection."""
    faulty = set(network.labels()["sensor_id"])
    codes = [c for c in network.sensors["sensor_id"] if c not in faulty][:5]
    return network.visible_readings(codes, network.start, network.end, now=network.end)


@pytest.mark.slow  # loads TensorFlow and runs the models (6 s)
def test_clean_simulated_days_are_not_flagged(clean_sensors):
    assert check_with_models(clean_sensors, shipped()) == []


def fault_days(frame: pd.DataFrame, first: int, last: int) -> tuple[pd.Series, pd.Timestamp, pd.Timestamp]:
    sensor = frame["sensor_id"].iloc[0]
    start = frame["ts"].min().floor("D") + first * DAY
    end = frame["ts"].min().floor("D") + (last + 1) * DAY
    on = (frame["sensor_id"] == sensor) & (frame["ts"] >= start) & (frame["ts"] < end)
    return on, start, end - pd.Timedelta(seconds=1)


def injected(frame: pd.DataFrame, variable: str, how) -> tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]:
    frame = frame.copy()
    on, start, end = fault_days(frame, 10, 11)
    frame.loc[on, variable] = how(frame.loc[on, variable].to_numpy(), np.random.default_rng(3))
    return frame, start, end


@pytest.mark.slow  # runs the models: TensorFlow (test-fast loads it nowhere)
@pytest.mark.parametrize(
    ("variable", "fault"),
    [
        ("air_temperature", lambda x, rng: x + rng.normal(0, 3, len(x))),  # a failing thermistor
        # a probe reading wildly from noon (the soil model's threshold is set by storm days, so it
        # answers only to gross faults; the rules and the station checks do the finer work)
        ("soil_moisture", lambda x, rng: np.where(np.arange(len(x)) % 96 >= 48, 150.0, x)),
        ("light", lambda x, rng: np.where(x < 0.5, 30.0, x)),  # a lamp on all night
    ],
)
def test_a_fault_injected_on_two_days_is_flagged_on_those_days_only(clean_sensors, variable, fault):
    frame, start, end = injected(clean_sensors, variable, fault)
    rows = check_with_models(frame, shipped())
    assert [(r["sensor_id"], r["variable"], r["kind"], r["detector"]) for r in rows] == [
        (frame["sensor_id"].iloc[0], variable, "unusual_day", "model")
    ]
    assert start <= rows[0]["start_at"] and rows[0]["end_at"] <= end
    assert rows[0]["score"] > 1 and "unlike a normal day" in rows[0]["explanation"]


@pytest.mark.slow  # runs the soil moisture model: TensorFlow
def test_on_days_the_station_saw_rain_the_soil_moisture_model_is_not_taken_at_its_word(clean_sensors):
    # A storm makes a soil moisture day like no other; where the station recorded rain that day, the
    # model's evidence is dropped (the rules still look at the day).
    frame, start, _ = injected(
        clean_sensors, "soil_moisture", lambda x, rng: np.where(np.arange(len(x)) % 96 >= 48, 150.0, x)
    )
    assert [r["variable"] for r in check_with_models(frame, shipped())] == ["soil_moisture"]
    wet = pd.DataFrame({"sensor_id": [frame["sensor_id"].iloc[0]] * 2, "day": [start, start + DAY]})
    assert check_with_models(frame, shipped(), wet_days=wet) == []


def run_training(tmp_path, *args, env=None, command=train.main):
    result = CliRunner().invoke(
        command,
        ["--epochs", "2", "--units", "4", "--variable", "air_temperature", "--out", str(tmp_path), *args],
        env=env,
    )
    assert result.exit_code == 0, result.output
    return json.loads((tmp_path / "air_temperature.json").read_text())


@pytest.mark.slow
def test_training_on_a_simulated_network_is_seeded_and_writes_a_usable_model(tmp_path, small_network):
    data = ("--data", str(small_network.folder), "--seed", "5")
    first = run_training(tmp_path / "a", *data, command=train_models.main)
    again = run_training(tmp_path / "b", *data, command=train_models.main)
    assert first == again  # same data and seed, same model and threshold
    assert first["training_sensors"] + first["held_out_sensors"] == 20 - len(small_network.labels())
    model = load("air_temperature", tmp_path / "a")
    assert model.threshold == pytest.approx(2 * first["held_out_error"]["max"])
    assert (tmp_path / "a" / "air_temperature.keras").stat().st_size < 1_000_000


@pytest.mark.slow
def test_training_from_trusted_sensors_in_the_database(tmp_path, small_network, database_url):
    url = database_url
    engine = make_engine(load_settings(database_url=url))
    init_db(engine)
    codes = list(small_network.sensors["sensor_id"][:3])
    frame = small_network.visible_readings(codes, small_network.start, small_network.end, small_network.end)
    with engine.begin() as connection:
        bulk_upsert(connection, sensors, pd.DataFrame({"sensor_id": codes}))
        bulk_upsert(connection, readings, frame)
    engine.dispose()
    info = run_training(tmp_path / "m", "--from-db", "--sensors", ",".join(codes), env={"DATABASE_URL": url})
    assert info["trained_on"] == f"database sensors {','.join(codes)}"
    assert info["training_sensors"] + info["held_out_sensors"] == 3

    result = CliRunner().invoke(
        train.main,
        ["--from-db", "--sensors", "nosuch1", "--out", str(tmp_path / "x")],
        env={"DATABASE_URL": url},
    )
    assert result.exit_code == 2 and "no readings in the database for sensor(s): nosuch1" in result.output
    result = CliRunner().invoke(train.main, ["--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--from-db" in result.output


@pytest.mark.slow  # a subprocess importing TensorFlow
def test_loading_and_running_the_models_keeps_tensorflow_chatter_off_the_terminal():
    # TensorFlow's C++ side writes its start-up lines to stderr at import, whatever TF_CPP_MIN_LOG_LEVEL
    # says; a user running the demo saw a screen of them.
    script = (
        "import numpy as np\n"
        "from detection.model import shipped\n"
        "print(float(shipped()['light'].errors(np.zeros((1, 96), dtype='float32'))[0]) >= 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    for chatter in ("absl", "oneDNN", "I0000", "AutoGraph"):
        assert chatter not in result.stderr, result.stderr


def test_training_from_the_database_picks_the_sensors_healthy_all_along(
    tmp_path, small_network, database_url
):
    engine = make_engine(load_settings(database_url=database_url))
    init_db(engine)
    codes = list(small_network.sensors["sensor_id"][:4])
    frame = small_network.visible_readings(codes, small_network.start, small_network.end, small_network.end)
    health = pd.DataFrame(
        {"sensor_id": codes, "status": ["healthy", "healthy", "faulty", "recovered"], "reason": "test"}
    )
    with engine.begin() as connection:
        bulk_upsert(connection, sensors, pd.DataFrame({"sensor_id": codes}))
        bulk_upsert(connection, readings, frame)
        bulk_upsert(connection, sensor_health, health)
        assert train.healthy_sensors(connection, min_days=5) == sorted(codes[:2])
        assert train.healthy_sensors(connection, min_days=400) == []
    engine.dispose()
    result = CliRunner().invoke(
        train.main, ["--from-db", "--out", str(tmp_path / "x")], env={"DATABASE_URL": database_url}
    )
    assert result.exit_code == 2 and "healthy with 30 days" in result.output  # the network has 12 days
