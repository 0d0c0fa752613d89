"""Step 2 of 5, `python -m etl.find_nearest_wow_live`: refresh the live WOW stations and link each sensor
to its nearest live one.

Distances are great-circle, found with a BallTree (haversine metric) over the live stations. A sensor
whose linked station stopped being live is relinked; a sensor with no live station within LINK_MAX_KM
(default 50 km) gets no link and a reason saying so.

When WOW cannot be reached, stations already in the database keep their liveness and their links (the
run record counts `wow_unreachable`); the saved station file (WOW_STATIONS_FILE) only seeds an empty
database, since its dates are not today's.
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
from sklearn.neighbors import BallTree
from sqlalchemy import func, select, update

from core.load import bulk_upsert
from core.schema import fetch_state, sensor_wow, sensors, wow_observations, wow_sites
from etl.commands import step_command
from etl.fetch_state import STATE_COLUMNS, WOW, read_state
from etl.geo import EARTH_RADIUS_KM
from etl.quarantine import write_quarantine
from etl.shard import owned, sensor_sites
from etl.sources.http import SourceError
from etl.sources.wow import STORED_COLUMNS, WowClient
from etl.step import StepContext

log = logging.getLogger(__name__)

NAME = "find_nearest_wow_live"
LINK_COLUMNS = ["sensor_id", "site_id", "distance_km", "reason"]
GAP_TOLERANCE = pd.Timedelta(hours=2)  # stations report every 5 to 60 minutes


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
    client = WowClient(context.settings)
    with context.engine.connect() as connection:
        # Who owns which sensor as the step starts, by the links it rewrites (exact all the same: etl.shard).
        sites = sensor_sites(connection)
        known_stations = connection.scalar(select(func.count()).select_from(wow_sites))
        known_live = connection.scalar(select(func.count()).select_from(wow_sites).where(wow_sites.c.is_live))
    try:
        recent = client.get_recent(context.now)
    except SourceError as exc:
        partial = getattr(exc, "answer", None)  # the windows answered before it failed
        if partial is not None and partial.quarantined:
            with context.engine.begin() as connection:
                seen = dt.datetime.now(dt.UTC)
                context.tally.add("quarantined", write_quarantine(connection, partial.quarantined, seen))
        if known_stations:
            # The saved file's dates are not today's: judged by them, live stations would die and links
            # move to stations that may be gone. Yesterday's picture is the better one.
            log.warning(
                "%s; keeping the %d stations, their liveness and the links as they are", exc, known_stations
            )
            context.tally.add("wow_unreachable")
            return 0
        if context.settings.wow_stations_file is None:
            raise
        log.warning("%s; seeding the empty station list from %s", exc, context.settings.wow_stations_file)
        context.tally.add("wow_unreachable")
        recent = client.saved_stations()
    stations = recent.stations
    live = stations[stations["is_live"]].reset_index(drop=True)
    if live.empty and known_live:
        # A 200 with no live station at all over Europe is an outage, not a night every station died.
        log.warning(
            "WOW answered with no live station; keeping the %d live stations and the links", known_live
        )
        context.tally.add("wow_unreachable")
        return 0
    with context.engine.connect() as connection:
        sensor_frame = pd.DataFrame(
            connection.execute(select(sensors.c.sensor_id, sensors.c.latitude, sensors.c.longitude)).all(),
            columns=["sensor_id", "latitude", "longitude"],
        )
        stored = read_state(connection, WOW)
    # .loc, since [] takes an empty mask (no sensors) for an empty list of columns
    sensor_frame = sensor_frame.loc[owned(context.shard, sensor_frame["sensor_id"], sites)].reset_index(
        drop=True
    )
    links = link_sensors(sensor_frame, live, context.settings.link_max_km)
    # The reports that showed the linked stations live are the newest of their observations: keep them,
    # so extract_all_grow_data need not ask WOW for them again.
    linked_sites = set(links["site_id"].dropna())
    observations = recent.observations[recent.observations["site_id"].isin(linked_sites)]
    answer = recent.answer
    for name, n in answer.counts.items():
        context.tally.add(f"{name}_observations", n)
    context.tally.add("station_gaps", len(answer.incomplete))
    covered = covered_through(linked_sites, answer, stored, recent.since, context.now)
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
        if len(covered):
            bulk_upsert(connection, fetch_state, covered)
        context.tally.add(
            "quarantined", write_quarantine(connection, answer.quarantined, dt.datetime.now(dt.UTC))
        )
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


def covered_through(linked: set, answer, stored: dict, since, now) -> pd.DataFrame:
    """The linked stations whose reports the box answer fully holds from their watermark to now: seen in
    every window of it, nothing refused, and no hole between their watermark and the box's start. Their
    watermark moves to now, so extract_all_grow_data does not ask for them again."""
    rows = []
    if since is not None:
        for site in sorted(linked & answer.seen_in_every_window - set(answer.incomplete)):
            state = stored.get(site)
            if (
                state is not None
                and state.held_since is None
                and state.fetched_through >= since - GAP_TOLERANCE
            ):
                rows.append((WOW, site, now, None, None, 0))
    frame = pd.DataFrame(rows, columns=STATE_COLUMNS)
    frame["fetched_through"] = pd.to_datetime(frame["fetched_through"], utc=True)
    frame["held_since"] = pd.to_datetime(frame["held_since"], utc=True)
    return frame


main = step_command(
    NAME,
    run,
    "Refresh the live WOW stations (WOW_API_URL, WOW_API_KEY) and link every sensor to its nearest.",
)

if __name__ == "__main__":
    main(prog_name=f"python -m etl.{NAME}")
