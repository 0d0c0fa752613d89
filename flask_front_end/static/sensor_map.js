// One small map interface for both map pages: Leaflet with marker clustering by default, Google Maps
// when the page was given a browser key (as in 2019). Markers are coloured by health status; clusters
// are rings of the statuses inside them.
"use strict";

const EUROPE = { lat: 50.5, lng: 8.0, zoom: 4 };

let googleReady;
const googleLoaded = new Promise((resolve) => { googleReady = resolve; });
window.growGoogleReady = () => googleReady();  // the Google script's callback

function leafletMap(element, config) {
  const map = L.map(element, { maxZoom: 18 }).setView([EUROPE.lat, EUROPE.lng], EUROPE.zoom);
  if (config.tileUrl) {
    L.tileLayer(config.tileUrl, { attribution: config.tileAttribution, maxZoom: 18 }).addTo(map);
  }
  const clusters = L.markerClusterGroup({
    showCoverageOnHover: false, maxClusterRadius: 40, animate: false, iconCreateFunction: clusterIcon,
  });
  map.addLayer(clusters);
  map.on("zoomend", () => { element.dataset.zoom = map.getZoom(); });  // what the page shows, for tests
  return {
    show(sensors, onClick) {
      clusters.clearLayers();
      const markers = sensors.map((sensor) => {
        const status = statusOf(sensor.status);
        const icon = L.divIcon({  // the status's symbol as well as its colour
          className: `sensor-marker status-${status}`,
          html: STATUS_LOOKS[status].symbol,
          iconSize: [18, 18],
        });
        const marker = L.marker([sensor.latitude, sensor.longitude], {
          icon, title: `${sensor.sensor_id} (${statusWord(status)})`, keyboard: true, status,
        });
        marker.on("click", () => onClick(sensor));
        marker.on("keypress", (event) => { if (pressed(event)) onClick(sensor); });
        return marker;
      });
      clusters.addLayers(markers);
      if (markers.length) {
        map.fitBounds(clusters.getBounds(), { padding: [20, 20], maxZoom: 12, animate: false });
      }
    },
  };
}

// Leaflet makes markers focusable buttons but opens only popups on Enter: ours open panels and pages.
// (A cluster opens on Enter by itself: the cluster library zooms on its keypress.)
function pressed(event) {
  const key = event.originalEvent.key;
  if (key !== "Enter" && key !== " ") return false;
  event.originalEvent.preventDefault();  // Space would scroll the page
  return true;
}

// A cluster is a ring of the statuses inside it, each its share of the ring (worst first, from the
// top), around the number of sensors; a red badge counts the faulty ones. Its fill behind the ring is
// the worst status's colour, and its tooltip says what is inside.
const WORST_FIRST = STATUSES.worstFirst;
function clusterIcon(cluster) {
  const tally = {};
  cluster.getAllChildMarkers().forEach((marker) => { tally[marker.options.status] = (tally[marker.options.status] || 0) + 1; });
  const present = WORST_FIRST.filter((status) => tally[status]);
  const worst = present[0] || WORST_FIRST[WORST_FIRST.length - 1];
  const count = cluster.getChildCount();
  const inside = present.map((status) => `${numeral(tally[status])} ${statusWord(status)}`).join(", ");
  const title = say("clusterTitle", { count, statuses: inside });
  let turned = 0;
  const segments = present.map((status) => {
    const from = turned;
    turned += (360 * tally[status]) / count;
    return `${STATUS_LOOKS[status].colour} ${from.toFixed(1)}deg ${turned.toFixed(1)}deg`;
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
  const map = new google.maps.Map(element, { center: { lat: EUROPE.lat, lng: EUROPE.lng }, zoom: EUROPE.zoom });
  let markers = [];
  return {
    show(sensors, onClick) {
      markers.forEach((marker) => marker.setMap(null));
      const bounds = new google.maps.LatLngBounds();
      markers = sensors.map((sensor) => {
        const status = statusOf(sensor.status);
        const position = { lat: sensor.latitude, lng: sensor.longitude };
        bounds.extend(position);
        const marker = new google.maps.Marker({
          position, map, title: `${sensor.sensor_id} (${statusWord(status)})`,
          icon: { path: google.maps.SymbolPath.CIRCLE, scale: 8, fillColor: STATUS_LOOKS[status].colour,
                  fillOpacity: 0.95, strokeColor: "#fff", strokeWeight: 1 },
          label: { text: STATUS_LOOKS[status].symbol, color: STATUS_LOOKS[status].ink, fontSize: "11px", fontWeight: "700" },
        });
        marker.addListener("click", () => onClick(sensor));
        return marker;
      });
      if (markers.length) map.fitBounds(bounds);
    },
  };
}

// Resolves to {show(sensors, onClick)} once the map library is ready.
function createSensorMap(element) {
  const config = JSON.parse(element.dataset.config);
  if (config.googleKey) {
    return googleLoaded.then(() => googleMap(element));
  }
  return Promise.resolve(leafletMap(element, config));
}
