"""Two whole nights on GROW and openSenseMap together: both stored, the second changes nothing."""

import numpy as np
import pandas as pd

from core.vocabulary import LIGHT_PER_LUX
from devtools.simulator import osem
from tests.etl.sources.test_opensensemap import NOW


def test_a_night_on_grow_and_opensensemap_stores_both_and_a_second_night_changes_nothing(
    database_url, small_network, simulator
):
    from sqlalchemy import select

    from core.db import init_db, make_engine, read_frame
    from core.schema import readings, sensor_health, sensors
    from etl.runner import STEPS, run_nightly
    from etl.shard import Shard
    from tests.factories import assert_same_database, pipeline_settings, snapshot

    url = simulator(serving=small_network)
    settings = pipeline_settings(
        database_url,
        url,
        sensor_sources="grow,opensensemap",
        osem_api_url=f"{url}/osem",
        osem_grouptag=osem.GROUPTAG,
    )
    engine = make_engine(settings)
    init_db(engine)
    first = run_nightly(settings, engine, Shard())
    before = snapshot(engine)
    again = run_nightly(settings, engine, Shard())
    assert all(r.rows > 0 for r in first[:-1]) and [r.rows for r in again] == [0] * len(STEPS)
    assert_same_database(snapshot(engine), before)

    codes = list(small_network.sensors["sensor_id"])
    ours = {f"osem:{osem.box_id(c)}": c for c in codes}
    with engine.connect() as connection:
        stored_ids = set(connection.execute(select(sensors.c.sensor_id)).scalars())
        health = dict(connection.execute(select(sensor_health.c.sensor_id, sensor_health.c.status)).all())
    assert stored_ids == set(codes) | set(ours)  # both networks, the ids apart
    assert set(health) == stored_ids
    with engine.connect() as connection:
        stored = read_frame(connection, select(readings).where(readings.c.sensor_id.like("osem:%")))
    stored["ts"] = pd.to_datetime(stored["ts"], utc=True)
    stored = stored.sort_values(["sensor_id", "ts"], ignore_index=True)
    truth = osem.expected_readings(small_network, codes, small_network.start, NOW, NOW)
    truth = truth.sort_values(["sensor_id", "ts"], ignore_index=True)
    pd.testing.assert_frame_equal(stored[["sensor_id", "ts"]], truth[["sensor_id", "ts"]], check_dtype=False)
    for variable in ("soil_moisture", "air_temperature", "light"):
        assert np.allclose(stored[variable], truth[variable], atol=LIGHT_PER_LUX, equal_nan=True), variable
    # The same gardens, read through either source, come out of detection the same.
    for box, code in ours.items():
        assert health[box] == health[code], (box, code)
