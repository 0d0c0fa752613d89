"""The map of one view at one zoom level: sensors gathered into clusters on a grid of the map's pixels,
each cluster with its count per status (the dashboard's rings are exact shares), lone sensors and every
sensor once zoomed in as single markers.

A zoom level's grid cells are CELL_PX squares of Web Mercator pixels (Leaflet's projection), so each
cell splits into four at the next level and a cluster never straddles two clusters of the level above.
The grids are built once per network (`map_answer.MapAnswers` keeps one per data version) and a view
is a cut of one grid by its bbox: numpy over arrays, no query."""

from __future__ import annotations

import threading

import numpy as np

from core.vocabulary import Health

UNCHECKED = "unchecked"  # no health row yet; its sensors say `status: null`, as everywhere in the API
STATUS_ORDER = (*(status.value for status in Health), UNCHECKED)  # a cluster's counts per status
TILE_PX = 256  # a zoom level's world is TILE_PX · 2^zoom pixels a side
CELL_PX = 64  # a cluster gathers a 64-pixel square: its ring is 36 px, a marker 18
SINGLES_ZOOM = 16  # from here every sensor is its own marker (64 px are about 150 m at the equator)
MAX_ZOOM = 18  # the dashboard's deepest zoom
MAX_VIEW_PX = 10_000  # a view's width and height at its zoom: a 4K screen is 3,840 pixels wide
MAX_LATITUDE = 85.051129  # Web Mercator's square world stops here
CLUSTER_FIELDS = ["latitude", "longitude", "count", "by_status", "bounds"]
SENSOR_FIELDS = ["sensor_id", "latitude", "longitude", "status"]
DECIMALS = 5  # a metre: what the sensors' own positions carry


def mercator(latitude, longitude) -> tuple[np.ndarray, np.ndarray]:
    """Positions as fractions of the Web Mercator world, 0..1 west to east and north to south."""
    lat = np.radians(np.clip(np.asarray(latitude, dtype=float), -MAX_LATITUDE, MAX_LATITUDE))
    x = (np.asarray(longitude, dtype=float) + 180) / 360
    y = 0.5 - np.log(np.tan(np.pi / 4 + lat / 2)) / (2 * np.pi)
    return x, y


def view_pixels(zoom: int, bbox: tuple[float, float, float, float]) -> tuple[float, float]:
    """How many screen pixels wide and high `bbox` (west, south, east, north; degrees) is at `zoom`."""
    west, south, east, north = bbox
    (x0, x1), (y1, y0) = mercator([south, north], [west, east])
    world = TILE_PX * 2**zoom
    return float((x1 - x0) * world), float((y1 - y0) * world)


def _spread(bits: np.ndarray) -> np.ndarray:
    """The bits of 32-bit integers moved to the even places of 64-bit ones (half of a Morton code)."""
    v = bits.astype(np.uint64)
    for shift, mask in (
        (16, 0x0000FFFF0000FFFF),
        (8, 0x00FF00FF00FF00FF),
        (4, 0x0F0F0F0F0F0F0F0F),
        (2, 0x3333333333333333),
        (1, 0x5555555555555555),
    ):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


class Grid:
    """The clusters of some of a network's sensors (`members`, indexes into it) at each zoom level below
    SINGLES_ZOOM: per cluster its centroid, count, counts per status, bounds, and its sensor when alone.

    The sensors are sorted once by the Morton code of their cell at the finest level: a coarser level's
    cell is a prefix of that code, so every level's clusters are runs of the one order."""

    def __init__(self, network: ClusterIndex, members: np.ndarray) -> None:
        self.network, self.members = network, members
        lat, lon = network.latitude[members], network.longitude[members]
        self.bounds = (
            [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())] if len(members) else None
        )
        bits = _cell_bits(SINGLES_ZOOM - 1)
        x, y = mercator(lat, lon)
        side = 2**bits
        cx = np.minimum(x * side, side - 1).astype(np.int64)
        cy = np.minimum(y * side, side - 1).astype(np.int64)
        code = (_spread(cx) << np.uint64(1)) | _spread(cy)
        order = np.argsort(code, kind="stable")
        code = code[order]
        self.sensors = members[order]
        self.levels = [
            self._level(code >> np.uint64(2 * (bits - _cell_bits(zoom)))) for zoom in range(SINGLES_ZOOM)
        ]

    def _level(self, cell: np.ndarray) -> dict[str, np.ndarray]:
        kinds = len(STATUS_ORDER)
        if not len(cell):  # reduceat wants at least one group
            none = np.zeros(0, dtype=np.int64)
            return {
                "latitude": none.astype(float),
                "longitude": none.astype(float),
                "count": none,
                "by_status": none.reshape(0, kinds),
                "bounds": none.reshape(0, 4).astype(float),
                "single": none,
            }
        starts = np.flatnonzero(np.concatenate(([True], cell[1:] != cell[:-1])))
        count = np.diff(np.append(starts, len(cell)))
        sensors = self.sensors
        lat, lon = self.network.latitude[sensors], self.network.longitude[sensors]
        cluster_of = np.repeat(np.arange(len(count)), count)
        by_status = np.bincount(
            cluster_of * kinds + self.network.status[sensors], minlength=len(count) * kinds
        )
        return {
            "latitude": np.add.reduceat(lat, starts) / count,
            "longitude": np.add.reduceat(lon, starts) / count,
            "count": count,
            "by_status": by_status.reshape(-1, kinds),
            "bounds": np.column_stack(
                [
                    np.minimum.reduceat(lon, starts),
                    np.minimum.reduceat(lat, starts),
                    np.maximum.reduceat(lon, starts),
                    np.maximum.reduceat(lat, starts),
                ]
            ),
            "single": np.where(count == 1, sensors[starts], -1),
        }


def _cell_bits(zoom: int) -> int:
    """log2 of a zoom level's cells a side."""
    return int(np.log2(TILE_PX * 2**zoom // CELL_PX))


class ClusterIndex:
    """A network of located sensors and its grids: all its sensors', and each status's once asked."""

    def __init__(self, ids, latitude, longitude, status) -> None:
        self.ids = np.asarray(ids, dtype=object)
        self.latitude = np.asarray(latitude, dtype=float)
        self.longitude = np.asarray(longitude, dtype=float)
        position = {name: i for i, name in enumerate(STATUS_ORDER)}
        self.status = np.array(
            [position[s if s is not None else UNCHECKED] for s in status], dtype=np.int64
        ).reshape(-1)
        tally = np.bincount(self.status, minlength=len(STATUS_ORDER))
        self.counts = {name: int(n) for name, n in zip(STATUS_ORDER, tally, strict=True)}
        self._grids = {None: Grid(self, np.arange(len(self.ids)))}
        self._lock = threading.Lock()

    def grid(self, status: str | None) -> Grid:
        """The grid of the sensors of `status` (None: all), built the first time it is asked for."""
        with self._lock:
            if status not in self._grids:
                members = np.flatnonzero(self.status == STATUS_ORDER.index(status))
                self._grids[status] = Grid(self, members)
            return self._grids[status]

    def view(self, zoom: int, bbox: tuple[float, float, float, float], status: str | None = None) -> dict:
        """The map of `bbox` at `zoom`, of the sensors of `status` (None: all): its clusters and single
        sensors, with the counts per status of the whole network and the bounds of the sensors shown."""
        grid = self.grid(status)
        west, south, east, north = bbox
        if zoom >= SINGLES_ZOOM:
            lat, lon = self.latitude[grid.members], self.longitude[grid.members]
            inside = (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)
            clusters, singles = [], grid.members[inside]
        else:
            level = grid.levels[zoom]
            lat, lon, count = level["latitude"], level["longitude"], level["count"]
            inside = (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)
            many = np.flatnonzero(inside & (count > 1))
            clusters = [
                list(row)
                for row in zip(
                    lat[many].round(DECIMALS).tolist(),
                    lon[many].round(DECIMALS).tolist(),
                    count[many].tolist(),
                    level["by_status"][many].tolist(),
                    level["bounds"][many].round(DECIMALS).tolist(),
                    strict=True,
                )
            ]
            singles = level["single"][inside & (count == 1)]
        return {
            "zoom": zoom,
            "statuses": list(STATUS_ORDER),
            "counts": self.counts,
            "bounds": grid.bounds,
            "clusters": {"fields": CLUSTER_FIELDS, "rows": clusters},
            "sensors": {"fields": SENSOR_FIELDS, "rows": self._sensor_rows(np.sort(singles))},
        }

    def _sensor_rows(self, chosen: np.ndarray) -> list[list]:
        names = [None if s == UNCHECKED else s for s in STATUS_ORDER]
        return [
            [sensor_id, lat, lon, names[status]]
            for sensor_id, lat, lon, status in zip(
                self.ids[chosen].tolist(),
                self.latitude[chosen].tolist(),
                self.longitude[chosen].tolist(),
                self.status[chosen].tolist(),
                strict=True,
            )
        ]
