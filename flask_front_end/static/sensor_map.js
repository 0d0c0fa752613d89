// One small map interface for both map pages: Leaflet by default, Google Maps when the page was given a
// browser key (as in 2019). Markers are coloured by health status; clusters are rings of the statuses
// inside them. Two ways to fill it: `show(sensors)` places every sensor and clusters them here (an
// owner's few), `showView(answer)` draws a view of the back end's clusters (/data/map/view: the whole
// network, asked again at each move through `view()` and `onMove()`).
"use strict";

const EUROPE = { lat: 50.5, lng: 8.0, zoom: 4 };
const MAX_ZOOM = 18;  // the back end's deepest (flask_back_end/map_clusters.py)

let googleReady;
const googleLoaded = new Promise((resolve) => { googleReady = resolve; });
window.growGoogleReady = () => googleReady();  // the Google script's callback

function leafletMap(element, config) {
  const map = L.map(element, { maxZoom: MAX_ZOOM }).setView([EUROPE.lat, EUROPE.lng], EUROPE.zoom);
  if (config.tileUrl) {
    L.tileLayer(config.tileUrl, { attribution: config.tileAttribution, maxZoom: MAX_ZOOM }).addTo(map);
  }
  const clusters = L.markerClusterGroup({
    showCoverageOnHover: false, maxClusterRadius: 40, animate: false,
    iconCreateFunction: (cluster) => {
      const tally = {};
      cluster.getAllChildMarkers().forEach((m) => { tally[m.options.status] = (tally[m.options.status] || 0) + 1; });
      return ringIcon(tally, cluster.getChildCount());
    },
  });
  map.addLayer(clusters);
  const viewed = L.layerGroup().addTo(map);  // the back end's clusters and single sensors of this view
  let drawn = null;  // the tag of the answer `viewed` shows
  const clear = () => { viewed.clearLayers(); drawn = null; };
  map.on("zoomend", () => { element.dataset.zoom = map.getZoom(); });  // what the page shows, for tests
  map.on("zoomstart", clear);  // clusters of another zoom level: gone till the answer

  // `offset`: pixels from its place, where sensors stand at one spot (see `apart`).
  function sensorMarker(sensor, onClick, offset = [0, 0]) {
    const status = statusOf(sensor.status);
    const icon = L.divIcon({  // the status's symbol as well as its colour
      className: `sensor-marker status-${status}`,
      html: STATUS_LOOKS[status].symbol,
      iconSize: [18, 18],
      iconAnchor: [9 - offset[0], 9 - offset[1]],
    });
    const marker = L.marker([sensor.latitude, sensor.longitude], {
      icon, title: `${sensor.sensor_id} (${statusWord(status)})`, keyboard: true, status,
    });
    marker.on("click", () => onClick(sensor));
    marker.on("keypress", (event) => { if (pressed(event)) onClick(sensor); });
    return marker;
  }

  // Into a cluster: its sensors fill the view, at one zoom level deeper at least.
  function zoomInto(cluster) {
    const [west, south, east, north] = cluster.bounds;
    const bounds = L.latLngBounds([south, west], [north, east]);
    const zoom = Math.max(map.getBoundsZoom(bounds, false, L.point(40, 40)), map.getZoom() + 1);
    map.setView(bounds.getCenter(), Math.min(zoom, MAX_ZOOM), { animate: false });
  }

  return {
    show(sensors, onClick) {
      clusters.clearLayers();
      const markers = sensors.map((sensor) => sensorMarker(sensor, onClick));
      clusters.addLayers(markers);
      if (markers.length) {
        map.fitBounds(clusters.getBounds(), { padding: [20, 20], maxZoom: 12, animate: false });
      }
    },
    // `tag`: the answer's ETag. The answer drawn already is left as it is (a marker being clicked stays).
    showView(answer, onClick, tag = null) {
      if (tag && tag === drawn) return;
      clear();
      drawn = tag;
      const sensors = rowsOf(answer.sensors);
      const clusters = rowsOf(answer.clusters);
      const placed = [...sensors, ...clusters].map((row, i) => ({
        ...map.latLngToLayerPoint([row.latitude, row.longitude]), size: i < sensors.length ? 18 : 36,
      }));
      const offsets = apart(placed);
      sensors.forEach((sensor, i) => viewed.addLayer(sensorMarker(sensor, onClick, offsets[i])));
      clusters.forEach((cluster, i) => {
        const tally = Object.fromEntries(answer.statuses.map((status, j) => [status, cluster.by_status[j]]));
        const marker = L.marker([cluster.latitude, cluster.longitude], {
          icon: ringIcon(tally, cluster.count, offsets[sensors.length + i]), keyboard: true,
        });
        marker.on("click", () => zoomInto(cluster));
        marker.on("keypress", (event) => { if (pressed(event)) zoomInto(cluster); });
        viewed.addLayer(marker);
      });
    },
    // What to ask the back end for: the zoom level and the view, within the world's edges. (Only the
    // view: a cluster drawn is one the screen shows, and each move asks again.)
    view() {
      const shown = map.getBounds();
      const edges = [[shown.getWest(), 180], [shown.getSouth(), 90], [shown.getEast(), 180], [shown.getNorth(), 90]];
      return { zoom: map.getZoom(), bbox: edges.map(([v, most]) => Math.min(most, Math.max(-most, v)).toFixed(5)).join(",") };
    },
    onMove(handler) { map.on("moveend", handler); },
    // Fit the view to [west, south, east, north]; true when it moved (then onMove's handler runs).
    fit([west, south, east, north]) {
      const before = `${map.getCenter()} ${map.getZoom()}`;
      clear();  // another filter's
      map.fitBounds([[south, west], [north, east]], { padding: [20, 20], maxZoom: 12, animate: false });
      return `${map.getCenter()} ${map.getZoom()}` !== before;
    },
  };
}

// Offsets in pixels ([dx, dy]) that keep markers from covering one another: `placed` are their places on
// the screen ({x, y, size}: a marker's or a ring's width). Markers that overlap (neighbours in two grid
// cells, or sensors at one spot) push each other apart along the line between them, a few pixels at a
// time, until none does: each moves no further than its neighbours need, and each can be clicked.
const GAP = 2;  // pixels between markers pushed apart
function apart(placed) {
  const shown = placed.map(({ x, y }) => ({ x, y }));
  for (let round = 0; round < 100; round += 1) {
    const pairs = overlapping(shown, placed);
    if (!pairs.length) break;
    pairs.forEach(([a, b]) => {
      let [dx, dy] = [shown[b].x - shown[a].x, shown[b].y - shown[a].y];
      if (Math.hypot(dx, dy) < 0.5) [dx, dy] = [Math.cos(b * 2.4), Math.sin(b * 2.4)];  // one spot: fan by turns
      const d = Math.hypot(dx, dy);
      // Half each, to a square's diagonal apart: their squares then clear at any angle.
      const push = ((((placed[a].size + placed[b].size) / 2 + GAP) * Math.SQRT2 - d) / 2) / d;
      if (push <= 0) return;
      shown[a].x -= dx * push; shown[a].y -= dy * push;
      shown[b].x += dx * push; shown[b].y += dy * push;
    });
  }
  return placed.map(({ x, y }, i) => [Math.round(shown[i].x - x), Math.round(shown[i].y - y)]);
}

// The pairs [a, b] of markers at `shown` whose squares (`placed[i].size` wide) overlap or touch: each
// compared only with those in its own and the neighbouring buckets of the widest marker's size.
function overlapping(shown, placed) {
  const bucket = Math.max(1, ...placed.map((p) => p.size)) + GAP;
  const buckets = new Map();
  shown.forEach(({ x, y }, i) => {
    const key = `${Math.floor(x / bucket)},${Math.floor(y / bucket)}`;
    buckets.set(key, [...(buckets.get(key) || []), i]);
  });
  const pairs = [];
  shown.forEach(({ x, y }, a) => {
    const [bx, by] = [Math.floor(x / bucket), Math.floor(y / bucket)];
    for (let dx = -1; dx <= 1; dx += 1) {
      for (let dy = -1; dy <= 1; dy += 1) {
        (buckets.get(`${bx + dx},${by + dy}`) || []).forEach((b) => {
          const reach = (placed[a].size + placed[b].size) / 2 + 1;
          if (b > a && Math.abs(shown[b].x - x) < reach && Math.abs(shown[b].y - y) < reach) pairs.push([a, b]);
        });
      }
    }
  });
  return pairs;
}

// The rows of a compact answer ({fields, rows}) as objects.
function rowsOf(table) {
  return table.rows.map((row) => Object.fromEntries(table.fields.map((field, i) => [field, row[i]])));
}

// Leaflet makes markers focusable buttons but opens only popups on Enter: ours open panels and pages.
// (A cluster opens on Enter by itself: the cluster library zooms on its keypress.)
function pressed(event) {
  const key = event.originalEvent.key;
  if (key !== "Enter" && key !== " ") return false;
  event.originalEvent.preventDefault();  // Space would scroll the page
  return true;
}

// A cluster is a ring of the statuses inside it (`tally`: sensors per status), each its share of the
// ring (worst first, from the top; to a ten-thousandth of a degree, exact for 100,000 sensors), around
// the number of sensors; a red badge counts the faulty ones.
// Its fill behind the ring is the worst status's colour, and its tooltip says what is inside.
const WORST_FIRST = STATUSES.worstFirst;
function ringParts(tally, count) {
  const present = WORST_FIRST.filter((status) => tally[status]);
  const worst = present[0] || WORST_FIRST[WORST_FIRST.length - 1];
  const inside = present.map((status) => `${numeral(tally[status])} ${statusWord(status)}`).join(", ");
  return { present, worst, title: say("clusterTitle", { count, statuses: inside }) };
}

function ringIcon(tally, count, offset = [0, 0]) {
  const { present, worst, title } = ringParts(tally, count);
  let turned = 0;
  const segments = present.map((status) => {
    const from = turned;
    turned += (360 * tally[status]) / count;
    return `${STATUS_LOOKS[status].colour} ${from.toFixed(4)}deg ${turned.toFixed(4)}deg`;
  });
  const faulty = tally.faulty ? `<b class="faulty-count" aria-hidden="true">${tally.faulty}</b>` : "";
  return L.divIcon({
    html: `<div title="${escapeHTML(title)}" style="background-image: conic-gradient(${segments.join(", ")})">` +
      `<span>${count}</span>${faulty}</div>`,
    className: `marker-cluster status-cluster status-${worst}`,
    iconSize: L.point(36, 36),
    iconAnchor: L.point(18 - offset[0], 18 - offset[1]),
  });
}

function googleMap(element) {
  const map = new google.maps.Map(element, { center: { lat: EUROPE.lat, lng: EUROPE.lng }, zoom: EUROPE.zoom, maxZoom: MAX_ZOOM });
  let markers = [];
  const clear = () => { markers.forEach((marker) => marker.setMap(null)); markers = []; };
  const dot = (colour, scale) => ({ path: google.maps.SymbolPath.CIRCLE, scale, fillColor: colour,
                                    fillOpacity: 0.95, strokeColor: "#fff", strokeWeight: 1 });
  function sensorMarker(sensor, onClick) {
    const status = statusOf(sensor.status);
    const marker = new google.maps.Marker({
      position: { lat: sensor.latitude, lng: sensor.longitude }, map, title: `${sensor.sensor_id} (${statusWord(status)})`,
      icon: dot(STATUS_LOOKS[status].colour, 8),
      label: { text: STATUS_LOOKS[status].symbol, color: STATUS_LOOKS[status].ink, fontSize: "11px", fontWeight: "700" },
    });
    marker.addListener("click", () => onClick(sensor));
    return marker;
  }
  const ready = new Promise((resolve) => google.maps.event.addListenerOnce(map, "idle", resolve));
  const boundsOf = ([west, south, east, north]) => new google.maps.LatLngBounds({ lat: south, lng: west }, { lat: north, lng: east });
  return {
    ready,  // getBounds answers once the map is first idle
    show(sensors, onClick) {
      clear();
      const bounds = new google.maps.LatLngBounds();
      markers = sensors.map((sensor) => {
        bounds.extend({ lat: sensor.latitude, lng: sensor.longitude });
        return sensorMarker(sensor, onClick);
      });
      if (markers.length) map.fitBounds(bounds);
    },
    // Google has no rings: a cluster is a dot of its worst status's colour, its count on it, and what is
    // inside in its title.
    showView(answer, onClick) {
      clear();
      markers = rowsOf(answer.sensors).map((sensor) => sensorMarker(sensor, onClick));
      rowsOf(answer.clusters).forEach((cluster) => {
        const tally = Object.fromEntries(answer.statuses.map((status, i) => [status, cluster.by_status[i]]));
        const { worst, title } = ringParts(tally, cluster.count);
        const marker = new google.maps.Marker({
          position: { lat: cluster.latitude, lng: cluster.longitude }, map, title, icon: dot(STATUS_LOOKS[worst].colour, 16),
          label: { text: numeral(cluster.count), color: STATUS_LOOKS[worst].ink, fontSize: "11px", fontWeight: "700" },
        });
        marker.addListener("click", () => map.fitBounds(boundsOf(cluster.bounds)));
        markers.push(marker);
      });
    },
    view() {
      const bounds = map.getBounds();
      const [sw, ne] = [bounds.getSouthWest(), bounds.getNorthEast()];
      const west = ne.lng() < sw.lng() ? -180 : sw.lng();  // across the antimeridian: all of it
      const east = ne.lng() < sw.lng() ? 180 : ne.lng();
      return { zoom: map.getZoom(), bbox: [west, sw.lat(), east, ne.lat()].map((v) => v.toFixed(5)).join(",") };
    },
    onMove(handler) { map.addListener("idle", handler); },
    fit(bounds) {
      map.fitBounds(boundsOf(bounds));
      return true;
    },
  };
}

// Resolves to {show, showView, view, onMove, fit} once the map library is ready.
function createSensorMap(element) {
  const config = JSON.parse(element.dataset.config);
  if (config.googleKey) {
    return googleLoaded.then(() => {
      const map = googleMap(element);
      return map.ready.then(() => map);
    });
  }
  return Promise.resolve(leafletMap(element, config));
}
