"""The map's clusters, on synthetic networks: every sensor in exactly one cluster or marker at every zoom,
each cluster's counts per status those of the sensors inside it, single markers once zoomed in, a view
cut to its bbox."""

import numpy as np
import pytest

from flask_back_end.map_clusters import MAX_ZOOM, SINGLES_ZOOM, STATUS_ORDER, ClusterIndex, view_pixels
from flask_back_end.schemas import COUNTED

WORLD = (-180.0, -90.0, 180.0, 90.0)


def network(count: int, seed: int = 34):
    """Sensors across Europe, a few of them at one spot, with statuses (None: not checked yet)."""
    rng = np.random.default_rng(seed)
    lat = rng.uniform(36, 60, count).round(5)
    lon = rng.uniform(-9, 25, count).round(5)
    lat[:5], lon[:5] = 51.5, -0.1  # five sensors in one garden
    choices = np.array(["healthy", "faulty", "recovered", "silent", "paused", None], dtype=object)
    status = choices[rng.choice(len(choices), count)]
    ids = [f"n{i:06d}" for i in range(count)]
    return ids, lat, lon, status


def members(index: ClusterIndex, zoom: int, bbox=WORLD) -> tuple[list, list]:
    """(clusters, singles) of one view, as lists of dicts."""
    answer = index.view(zoom, bbox)
    clusters = [dict(zip(answer["clusters"]["fields"], row)) for row in answer["clusters"]["rows"]]
    singles = [dict(zip(answer["sensors"]["fields"], row)) for row in answer["sensors"]["rows"]]
    return clusters, singles


@pytest.mark.parametrize("zoom", range(MAX_ZOOM + 1))
def test_every_sensor_is_in_exactly_one_cluster_or_marker_at_every_zoom(zoom):
    ids, lat, lon, status = network(3_000)
    index = ClusterIndex(ids, lat, lon, status)
    clusters, singles = members(index, zoom)
    assert sum(c["count"] for c in clusters) + len(singles) == len(ids)
    assert len({s["sensor_id"] for s in singles}) == len(singles)
    assert all(c["count"] >= 2 for c in clusters)  # a lone sensor is a marker, with its id
    # Each cluster's counts per status add up to its count, and over the map to the network's statuses.
    assert all(sum(c["by_status"]) == c["count"] for c in clusters)
    total = np.sum([c["by_status"] for c in clusters], axis=0) if clusters else np.zeros(len(STATUS_ORDER))
    for single in singles:
        total[STATUS_ORDER.index(single["status"] or "unchecked")] += 1
    expected = [sum((s or "unchecked") == name for s in status) for name in STATUS_ORDER]
    assert total.tolist() == expected


def test_a_cluster_counts_exactly_the_statuses_of_the_sensors_inside_it_and_wears_their_bounds():
    ids = ["f1", "f2", "f3", "h1", "h2", "far"]
    lat = np.array([51.50, 51.51, 51.52, 51.50, 51.53, 40.0])
    lon = np.array([-0.10, -0.11, -0.12, -0.13, -0.10, 3.0])
    status = np.array(["faulty", "faulty", "faulty", "healthy", "healthy", "silent"], dtype=object)
    clusters, singles = members(ClusterIndex(ids, lat, lon, status), 4)
    (cluster,) = clusters
    assert cluster["count"] == 5
    assert dict(zip(STATUS_ORDER, cluster["by_status"])) == {
        **dict.fromkeys(STATUS_ORDER, 0),
        "faulty": 3,
        "healthy": 2,
    }
    assert cluster["bounds"] == [-0.13, 51.5, -0.1, 51.53]
    assert cluster["latitude"] == pytest.approx(51.512) and cluster["longitude"] == pytest.approx(-0.112)
    assert singles == [{"sensor_id": "far", "latitude": 40.0, "longitude": 3.0, "status": "silent"}]


def test_clusters_split_as_the_map_zooms_in_and_only_single_markers_once_zoomed_in():
    ids, lat, lon, status = network(3_000)
    index = ClusterIndex(ids, lat, lon, status)
    counts = [len(members(index, zoom)[0]) + len(members(index, zoom)[1]) for zoom in range(SINGLES_ZOOM + 1)]
    assert counts == sorted(counts) and counts[0] < 20 < 1_000 < counts[SINGLES_ZOOM - 1]
    clusters, singles = members(index, SINGLES_ZOOM, (-0.2, 51.4, 0.0, 51.6))
    assert clusters == []
    garden = [s for s in singles if s["latitude"] == 51.5 and s["longitude"] == -0.1]
    assert len(garden) == 5  # sensors at one spot are single markers too, one over the other
    # Zoomed out, the same five sit in one cluster with their statuses.
    (cluster,) = [c for c in members(index, 12, (-0.2, 51.4, 0.0, 51.6))[0] if c["count"] >= 5]
    assert cluster["count"] >= 5


def test_a_view_holds_the_clusters_and_markers_inside_its_bbox_and_the_network_around():
    ids, lat, lon, status = network(3_000)
    index = ClusterIndex(ids, lat, lon, status)
    bbox = (0.0, 45.0, 10.0, 50.0)
    answer = index.view(8, bbox)
    clusters, singles = members(index, 8, bbox)
    for item in [*clusters, *singles]:
        assert 0 <= item["longitude"] <= 10 and 45 <= item["latitude"] <= 50
    # A cluster on the bbox's edge may hold sensors of a cell just outside it (a cell is 0.35° here).
    shown = sum(c["count"] for c in clusters) + len(singles)
    inside = ((lon >= 0) & (lon <= 10) & (lat >= 45) & (lat <= 50)).sum()
    around = ((lon >= -0.4) & (lon <= 10.4) & (lat >= 44.7) & (lat <= 50.3)).sum()
    assert 0.9 * inside <= shown <= around
    # Zoomed in, exactly the sensors inside.
    clusters, singles = members(index, SINGLES_ZOOM, bbox)
    mask = (lon >= 0) & (lon <= 10) & (lat >= 45) & (lat <= 50)
    assert clusters == [] and [s["sensor_id"] for s in singles] == [ids[i] for i in np.flatnonzero(mask)]
    # Whatever the view, the network around it: its counts per status and its bounds.
    assert answer["counts"] == {
        name: sum((s or "unchecked") == name for s in status) for name in STATUS_ORDER
    }
    assert answer["bounds"] == [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())]
    assert answer["zoom"] == 8


def test_the_statuses_counted_are_the_api_s():
    assert STATUS_ORDER == COUNTED


def test_an_empty_network_has_an_empty_map():
    index = ClusterIndex([], np.array([]), np.array([]), np.array([], dtype=object))
    answer = index.view(4, WORLD)
    assert answer["clusters"]["rows"] == [] and answer["sensors"]["rows"] == []
    assert answer["bounds"] is None and set(answer["counts"].values()) == {0}


def test_a_view_is_measured_in_screen_pixels_at_its_zoom():
    assert view_pixels(0, WORLD) == pytest.approx((256, 256), rel=0.01)
    assert view_pixels(4, (-9, 36, 25, 60)) == pytest.approx((387, 419), abs=1)
    width, height = view_pixels(18, WORLD)
    assert width > 60_000_000 and height > 60_000_000
