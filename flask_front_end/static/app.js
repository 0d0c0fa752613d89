// Helpers every page's script uses.
"use strict";

// The statuses as the server has them (flask_front_end/statuses.py): {looks: [{value, label, colour,
// dated}], worstFirst, unchecked}. Scripts never spell a status themselves.
const STATUSES = JSON.parse(document.body.dataset.statuses);
const STATUS_LOOKS = Object.fromEntries(STATUSES.looks.map((look) => [look.value, look]));

function statusOf(value) {
  return value || STATUSES.unchecked;
}

// A badge's words, as the sensor page's: the status; a dated one (silent) says since its last reading.
function badgeText(health) {
  if (!health.status) return STATUS_LOOKS[STATUSES.unchecked].label.toLowerCase();
  const look = STATUS_LOOKS[health.status];
  if (look && look.dated && health.latest_reading_at) {
    return `${health.status} since ${health.latest_reading_at.slice(0, 16).replace("T", " ")} UTC`;
  }
  return health.status;
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.message || `the server answered ${response.status}`);
  }
  return body;
}

const HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

// Text for innerHTML, in element content and in quoted attributes alike: names and addresses come from
// volunteers and geocoders, not from us.
function escapeHTML(text) {
  return String(text == null ? "" : text).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

// How far a sensor's station is, in words: a link 2019 made may have no distance.
function distance(km) {
  return km == null ? "distance unknown" : `${km.toFixed(1)} km away`;
}

// Each cell of a table's body labelled with its column's heading (data-label): on a phone a row is shown
// as a card, one "heading: value" line per cell. Cells spanning columns (an empty table's words) are not.
function labelCells(table) {
  const headings = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
  for (const row of table.querySelectorAll("tbody tr")) {
    [...row.cells].forEach((cell, i) => {
      if (cell.colSpan === 1 && headings[i]) cell.dataset.label = headings[i];
    });
  }
}
