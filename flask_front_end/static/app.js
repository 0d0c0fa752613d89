// Helpers every page's script uses.
"use strict";

// The statuses as the server has them (flask_front_end/statuses.py): {looks: [{value, label, colour,
// dated}], worstFirst, unchecked}. Scripts never spell a status themselves.
const STATUSES = JSON.parse(document.body.dataset.statuses);
const STATUS_LOOKS = Object.fromEntries(STATUSES.looks.map((look) => [look.value, look]));

// Every phrase a script shows, in the page's language (flask_front_end/words.py): scripts never spell
// English themselves. A counted phrase is its two forms, [one, more].
const WORDS = JSON.parse(document.body.dataset.words);
const LANGUAGE = document.documentElement.lang || "en";
const PLURAL = new Intl.PluralRules(LANGUAGE);

// The phrase `key` with its %(name)s places filled from `values` (numbers as the language writes them);
// a counted one in the form its `count` takes.
function say(key, values = {}) {
  let text = WORDS[key];
  if (Array.isArray(text)) text = PLURAL.select(values.count) === "one" ? text[0] : text[1];
  return text.replace(/%\((\w+)\)[sd]/g, (_, name) => numeral(values[name]));
}

function numeral(value) {
  return typeof value === "number" ? value.toLocaleString(LANGUAGE) : String(value);
}

function statusOf(value) {
  return value || STATUSES.unchecked;
}

// A status as a sentence says it: its label, in lower case ("faulty", "not checked yet").
function statusWord(value) {
  const look = STATUS_LOOKS[statusOf(value)];
  return look ? look.label.toLocaleLowerCase(LANGUAGE) : value;
}

// A badge's words, as the sensor page's: the status; a dated one (silent) says since its last reading.
function badgeText(health) {
  const look = STATUS_LOOKS[health.status];
  if (look && look.dated && health.latest_reading_at) {
    const time = health.latest_reading_at.slice(0, 16).replace("T", " ");
    return say("since", { status: statusWord(health.status), time });
  }
  return statusWord(health.status);
}

async function getJSON(url) {
  return (await getTaggedJSON(url)).body;
}

// An answer with its ETag ({body, tag}): the same tag, the same answer (a map view drawn already).
async function getTaggedJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.message || say("serverAnswered", { status: String(response.status) }));
  }
  return { body, tag: response.headers.get("ETag") };
}

const HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

// Text for innerHTML, in element content and in quoted attributes alike: names and addresses come from
// volunteers and geocoders, not from us.
function escapeHTML(text) {
  return String(text == null ? "" : text).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

// How far a sensor's station is, in words: a link 2019 made may have no distance.
function distance(km) {
  if (km == null) return say("distanceUnknown");
  return say("kmAway", { km: km.toLocaleString(LANGUAGE, { minimumFractionDigits: 1, maximumFractionDigits: 1 }) });
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
