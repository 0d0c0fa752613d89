"""The map answers, built once each time the data behind them changes and then served from memory with
an ETag: they change once a night (sensor info, then the analysis), and are asked for on every map page.
Two kinds: every sensor in one answer (`/map`), and the grids of clusters each view is cut from
(`/map/view`, `map_clusters`).

The data's version is one cheap query: how many sensors and health rows there are and when the newest
was written (`core.load` stamps `updated_at` on every row it changes), asked at most every
`recheck_seconds` (2 s: a map a night old may be two seconds late, and most requests then never touch
the database). A request whose If-None-Match holds the answer's tag gets 304 and no body."""

from __future__ import annotations

import hashlib
import threading
import time

import orjson
from sqlalchemy import func, select

from core.schema import sensor_health, sensors
from flask_back_end.map_clusters import ClusterIndex

FIELDS = ["sensor_id", "latitude", "longitude", "status"]
MOST_KEPT = 256  # answers per process: everyone's map and the owners' asked since the data changed


def data_version(connection) -> str:
    """What the map is built from, as one string that changes whenever that does."""
    row = connection.execute(
        select(
            select(func.count()).select_from(sensors).scalar_subquery(),
            select(func.max(sensors.c.updated_at)).scalar_subquery(),
            select(func.count()).select_from(sensor_health).scalar_subquery(),
            select(func.max(sensor_health.c.updated_at)).scalar_subquery(),
        )
    ).one()
    return "|".join(str(value) for value in row)


def build(connection, conditions: list) -> list[list]:
    """The map's rows: every located sensor the conditions keep, with its status (None if unchecked)."""
    rows = connection.execute(
        select(sensors.c.sensor_id, sensors.c.latitude, sensors.c.longitude, sensor_health.c.status)
        .select_from(sensors.outerjoin(sensor_health))
        .where(sensors.c.latitude.is_not(None), sensors.c.longitude.is_not(None), *conditions)
        .order_by(sensors.c.sensor_id)
    ).all()
    return [list(row) for row in rows]


class MapAnswers:
    """What was built for the current data version, by kind and filter: the answers (ETag, JSON body)
    and the cluster indexes (data version, ClusterIndex)."""

    def __init__(self, recheck_seconds: float = 2.0) -> None:
        self.recheck_seconds = recheck_seconds
        self._version: str | None = None
        self._checked = -float("inf")
        self._kept: dict[tuple[str, str], tuple] = {}
        self._lock = threading.Lock()

    def get(self, engine, key: str, conditions: list) -> tuple[str, bytes]:
        """(ETag, body) of the map `conditions` select, `key` naming them."""

        def answer(connection, version: str) -> tuple[str, bytes]:
            body = orjson.dumps({"fields": FIELDS, "rows": build(connection, conditions)})
            return hashlib.sha256(f"{version}\n{key}".encode()).hexdigest()[:32], body

        return self._kept_or_built(engine, ("answer", key), answer)

    def view(self, engine, key: str, conditions: list, zoom: int, bbox: tuple, status: str | None):
        """(ETag, body) of one view of the map `conditions` select (`map_clusters.ClusterIndex.view`)."""

        def index(connection, version: str) -> tuple[str, ClusterIndex]:
            rows = build(connection, conditions)
            columns = [list(column) for column in zip(*rows, strict=True)] or [[], [], [], []]
            return version, ClusterIndex(*columns)

        version, clusters = self._kept_or_built(engine, ("clusters", key), index)
        etag = hashlib.sha256(f"{version}\n{key}\n{zoom}\n{bbox}\n{status}".encode()).hexdigest()[:32]
        return etag, orjson.dumps(clusters.view(zoom, bbox, status))

    def _kept_or_built(self, engine, name: tuple[str, str], make):
        with self._lock:
            fresh = time.monotonic() - self._checked < self.recheck_seconds
            if fresh and name in self._kept:
                return self._kept[name]
        with engine.connect() as connection:
            version = data_version(connection)
            with self._lock:
                self._checked = time.monotonic()
                if version != self._version:
                    self._version, self._kept = version, {}
                if name in self._kept:
                    return self._kept[name]
            made = make(connection, version)
        with self._lock:
            if version == self._version and len(self._kept) < MOST_KEPT:
                self._kept[name] = made
        return made
