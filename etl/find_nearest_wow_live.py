"""Step 2 of 5, `python -m etl.find_nearest_wow_live`: refresh the live WOW stations and link each sensor
to its nearest live one.

Distances are great-circle, found with a BallTree (haversine metric) over the live stations. A sensor
whose linked station stopped being live is relinked; a sensor with no live station within LINK_MAX_KM
(default 50 km) gets no link and a reason saying so.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.neighbors import BallTree
from sqlalchemy import select, update

from core.load import bulk_upsert
from core.schema import sensor_wow, sensors, wow_observations, wow_sites
from etl.geo import EARTH_RADIUS_KM
from etl.sources.wow import STORED_COLUMNS, WowClient
from etl.step import StepContext, step_command

log = logging.getLogger(__name__)

NAME = "find_nearest_wow_live"
LINK_COLUMNS = ["sensor_id", "site_id", "distance_km", "reason"]


def nearest(points_lat, points_lon, sites_lat, sites_lon) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the index of the nearest site and the great-circle distance to it in km."""
    # Stations crowd around towns; small leaves and a breadth-first search measured 4x faster on such
    # clusters than the defaults (benchmarks/bench_nearest.py).
    tree = BallTree(np.radians(np.column_stack([sites_lat, sites_lon])), metric="haversine", leaf_size=5)
    distance, index = tree.query(
        np.radians(np.column_stack([points_lat, points_lon])), k=1, breadth_first=True
    )
    return index[:, 0], distance[:, 0] * EARTH_RADIUS_KM


def link_sensors(sensor_frame: pd.DataFrame, live: pd.DataFrame, max_km: float) -> pd.DataFrame:
    """One row per sensor: its nearest live station within `max_km`, or no station and the reason."""
    links = pd.DataFrame(
        {"sensor_id": sensor_frame["sensor_id"], "site_id": None, "distance_km": np.nan, "reason": None}
    )
    located = sensor_frame["latitude"].notna() & sensor_frame["longitude"].notna()
    links.loc[~located, "reason"] = "no coordinates"
    if live.empty:
        links.loc[located, "reason"] = "no live WOW station anywhere"
        return links
    index, distance = nearest(
        sensor_frame.loc[located, "latitude"],
        sensor_frame.loc[located, "longitude"],
        live["latitude"],
        live["longitude"],
    )
    near = distance <= max_km
    rows = links.index[located.to_numpy()]
    links.loc[rows[near], "site_id"] = live["site_id"].to_numpy()[index[near]]
    links.loc[rows, "distance_km"] = np.round(distance, 3)
    links.loc[rows[~near], "reason"] = [
        f"no live WOW station within {max_km:g} km (nearest {d:.1f} km)" for d in distance[~near]
    ]
    return links


def run(context: StepContext) -> int:
    recent = WowClient(context.settings).get_recent(context.now)
    stations = recent.stations
    live = stations[stations["is_live"]].reset_index(drop=True)
    with context.engine.connect() as connection:
        sensor_frame = pd.DataFrame(
            connection.execute(select(sensors.c.sensor_id, sensors.c.latitude, sensors.c.longitude)).all(),
            columns=["sensor_id", "latitude", "longitude"],
        )
    sensor_frame = sensor_frame[sensor_frame["sensor_id"].map(context.shard.contains)].reset_index(drop=True)
    links = link_sensors(sensor_frame, live, context.settings.link_max_km)
    # The reports that showed the linked stations live are the newest of their observations: keep them,
    # so extract_all_grow_data need not ask WOW for them again.
    linked_sites = set(links["site_id"].dropna())
    observations = recent.observations[recent.observations["site_id"].isin(linked_sites)]
    with context.engine.begin() as connection:
        written = bulk_upsert(connection, wow_sites, stations)
        # Stations that fell out of the list (no reports at all lately) are no longer live either.
        written += connection.execute(
            update(wow_sites)
            .where(wow_sites.c.is_live, wow_sites.c.site_id.not_in(list(live["site_id"])))
            .values(is_live=False)
        ).rowcount
        written += bulk_upsert(connection, sensor_wow, links[LINK_COLUMNS])
        if len(observations):
            written += bulk_upsert(connection, wow_observations, observations[STORED_COLUMNS])
    linked = links["site_id"].notna()
    log.info(
        "%d of %d stations live (from %s); %d of %d sensors linked, median distance %.1f km",
        len(live),
        len(stations),
        recent.origin,
        linked.sum(),
        len(links),
        links.loc[linked, "distance_km"].median() if linked.any() else float("nan"),
    )
    return written


main = step_command(
    NAME,
    run,
    "Refresh the live WOW stations (WOW_API_URL, WOW_API_KEY) and link every sensor to its nearest.",
)

if __name__ == "__main__":
    main(prog_name=f"python -m etl.{NAME}")
