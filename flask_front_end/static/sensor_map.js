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
  map.on("zoomend", () => { element.dataset.zoom = map.getZoom(); });  // what the page shows, for tests
  map.on("zoomstart", () => viewed.clearLayers());  // clusters of another zoom level: gone till the answer

  // `offset`: pixels from its place, where sensors stand at one spot (see `fanned`).
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
    showView(answer, onClick) {
      viewed.clearLayers();
      fanned(rowsOf(answer.sensors)).forEach(([sensor, offset]) => viewed.addLayer(sensorMarker(sensor, onClick, offset)));
      rowsOf(answer.clusters).forEach((cluster) => {
        const tally = Object.fromEntries(answer.statuses.map((status, i) => [status, cluster.by_status[i]]));
        const marker = L.marker([cluster.latitude, cluster.longitude], {
          icon: ringIcon(tally, cluster.count), keyboard: true,
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
      viewed.clearLayers();  // another filter's
      map.fitBounds([[south, west], [north, east]], { padding: [20, 20], maxZoom: 12, animate: false });
      return `${map.getCenter()} ${map.getZoom()}` !== before;
    },
  };
}

// Sensors with their offsets in pixels: those at one spot (zoomed in, they are single markers) fanned out
// on a small circle around it, so each can be seen and clicked.
function fanned(sensors) {
  const spots = new Map();
  sensors.forEach((sensor) => {
    const spot = `${sensor.latitude},${sensor.longitude}`;
    spots.set(spot, [...(spots.get(spot) || []), sensor]);
  });
  return [...spots.values()].flatMap((here) => here.map((sensor, i) => {
    if (here.length === 1) return [sensor, [0, 0]];
    const radius = Math.max(14, (here.length * 20) / (2 * Math.PI));
    const angle = (2 * Math.PI * i) / here.length;
    return [sensor, [Math.round(radius * Math.cos(angle)), Math.round(radius * Math.sin(angle))]];
  }));
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

function ringIcon(tally, count) {
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
