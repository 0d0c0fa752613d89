"""A folder of a gardener's files as a nightly source: whole nights store what it holds, change nothing a
second time, and go on when it cannot be read."""

import pandas as pd
from sqlalchemy import select

from core.db import init_db, make_engine
from core.schema import anomalies, etl_runs, quarantine, readings, sensors
from tests.etl.test_import_files import write_folder


def test_a_folder_as_a_nightly_source_stores_what_it_holds_and_a_second_night_changes_nothing(
    tmp_path, simulator
):
    from core.db import read_frame as frame_of
    from etl.runner import STEPS, run_nightly
    from etl.shard import Shard
    from etl.sources.files import read_folder
    from tests.factories import NOW, assert_same_database, pipeline_settings, snapshot

    folder = tmp_path / "garden"
    write_folder(folder)
    database = f"sqlite:///{tmp_path / 'nightly.sqlite'}"
    settings = pipeline_settings(database, simulator(), sensor_sources="files", files_dir=folder)
    engine = make_engine(settings)
    init_db(engine)
    first = run_nightly(settings, engine, Shard())
    before = snapshot(engine)
    again = run_nightly(settings, engine, Shard())
    assert [r.rows > 0 for r in first][:3] == [True, True, True]
    assert [r.rows for r in again] == [0] * len(STEPS)
    assert_same_database(snapshot(engine), before)
    expected = read_folder(folder, None, NOW).readings
    with engine.connect() as connection:
        stored = frame_of(connection, select(readings)).sort_values(["sensor_id", "ts"], ignore_index=True)
        reasons = connection.execute(select(quarantine.c.reason)).scalars().all()
        flagged = connection.execute(select(anomalies.c.explanation).where(anomalies.c.kind == "ismn-flag"))
        flagged = flagged.scalars().all()
    values = ["soil_moisture", "air_temperature", "light", "battery_level"]
    stored = stored.astype(dict.fromkeys(values, float))  # a column of nothing but NULL comes back as None
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
    assert not any("ISMN flag" in reason for reason in reasons)  # a flagged value is a value
    assert len(flagged) == 1 and "D03" in flagged[0]  # and ISMN's flag is kept beside it as history


def test_a_folder_that_cannot_be_read_does_not_stop_the_night_of_the_other_sources(tmp_path, simulator):
    from etl.runner import run_nightly
    from etl.shard import Shard
    from tests.factories import pipeline_settings

    folder = tmp_path / "garden"
    write_folder(folder)
    (folder / "mapping.json").unlink()  # CSV files nobody has described: the folder cannot be read
    database = f"sqlite:///{tmp_path / 'nightly.sqlite'}"
    settings = pipeline_settings(database, simulator(), sensor_sources="grow,files", files_dir=folder)
    engine = make_engine(settings)
    init_db(engine)
    reports = run_nightly(settings, engine, Shard())
    assert [r.rows > 0 for r in reports[:5]] == [True] * 5  # GROW's sensors went through every step
    with engine.connect() as connection:
        ids = connection.execute(select(sensors.c.sensor_id)).scalars().all()
        counts = connection.execute(
            select(etl_runs.c.counts).where(etl_runs.c.step == "store_sensor_info")
        ).scalar()
    assert ids and not any(sensor_id.startswith("file:") for sensor_id in ids)
    assert counts == {"sensor_list_unavailable": 1}
