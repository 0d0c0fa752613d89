// /sensors/<id>: the sensor's soil moisture, air temperature, light and battery over a range with its anomalies
// shaded, the sensor beside its WOW station (air temperature; soil moisture against rain), and the
// anomalies listed with the reason each was raised. Times are in UTC or the browser's local time, as the
// person chose (remembered in this browser); the data and the downloads are always UTC.
"use strict";

// Each chart's variable: its name on the chart and in sentences (the page's words), unit and colour.
const VARIABLES = {
  soil_moisture: { unit: "%", colour: "#6d4c41" },
  air_temperature: { unit: "°C", colour: "#1565c0" },
  light: { unit: "mol/m²/d", colour: "#f9a825" },
  battery_level: { unit: "%", colour: "#558b2f" },
};
for (const [name, about] of Object.entries(VARIABLES)) {
  about.label = WORDS.charts[name];
  about.word = WORDS.variables[name];
}
const MAX_POINTS = 1500;

// Shades each [from, to, look] span (ms since 1970) of options.plugins.anomalySpans.spans, at least 4 px
// wide: faults red, conditions (frozen soil, snow, a watering system: not faults) blue, and imported
// history (days 2019's model flagged, values ISMN's quality control flagged: not deciding health) grey.
const SPAN_FILLS = { fault: "rgba(198, 40, 40, 0.18)", condition: "rgba(30, 136, 229, 0.14)", history: "rgba(97, 97, 97, 0.16)" };
const anomalySpans = {
  id: "anomalySpans",
  beforeDatasetsDraw(chart, _args, options) {
    const { ctx, chartArea, scales } = chart;
    ctx.save();
    for (const [from, to, look] of options.spans || []) {
      ctx.fillStyle = SPAN_FILLS[look];
      const left = Math.max(scales.x.getPixelForValue(from), chartArea.left);
      const right = Math.min(scales.x.getPixelForValue(to), chartArea.right);
      if (right < chartArea.left || left > chartArea.right) continue;
      const width = Math.max(right - left, 4);
      ctx.fillRect(Math.min(left, chartArea.right - width), chartArea.top, width, chartArea.bottom - chartArea.top);
    }
    ctx.restore();
  },
};
Chart.register(anomalySpans);

// The zone times are shown in: "utc" or "local" (the browser's). `wall(t)` is the time t (ms, UTC) as
// that zone's clock reads it, written as if it were UTC: ticks, labels and fields all work on it.
const ZONE_KEY = "grow-wow.time-zone";
let zone = localStorage.getItem(ZONE_KEY) === "local" ? "local" : "utc";
const offsetAt = (t) => (zone === "local" ? -new Date(t).getTimezoneOffset() * 60e3 : 0);
const wall = (t) => t + offsetAt(t);
const unwall = (w) => w - offsetAt(w - offsetAt(w));  // a wall time back to UTC (right across DST too)
const zoneName = () => (zone === "utc" ? say("utc") : say("localTimeIn", { zone: Intl.DateTimeFormat().resolvedOptions().timeZone }));
const shown = (iso) => new Date(wall(Date.parse(iso))).toISOString().slice(0, 16).replace("T", " ");

// Time ticks on calendar boundaries (whole hours or days in the zone shown), as few as make 8 or fewer:
// a chart reads like a calendar, not at arbitrary minutes.
const HOUR = 3600e3;
const TICK_STEPS = [1, 2, 3, 6, 12, 24, 48, 96, 168, 336, 720].map((hours) => hours * HOUR);
function calendarTicks(axis) {
  const step = TICK_STEPS.find((s) => (axis.max - axis.min) / s <= 8) || TICK_STEPS[TICK_STEPS.length - 1];
  const ticks = [];
  for (let w = Math.ceil(wall(axis.min) / step) * step; unwall(w) <= axis.max; w += step) {
    ticks.push({ value: unwall(w) });
  }
  axis.ticks = ticks;
  axis.calendarStep = step;
}
function tickLabel(value) {
  const text = new Date(wall(value)).toISOString();
  return this.calendarStep >= 24 * HOUR ? text.slice(5, 10) : text.slice(5, 16).replace("T", " ");
}

// How an anomaly is shown: a fault, a condition, or imported history (the page says which kinds are
// history: core.vocabulary.IMPORTED).
const IMPORTED_KINDS = new Set(JSON.parse(document.getElementById("sensor-page").dataset.importedKinds || "[]"));
function lookOf(anomaly) {
  if (anomaly.detector === "condition") return "condition";
  return IMPORTED_KINDS.has(anomaly.kind) ? "history" : "fault";
}

const charts = {};
function draw(id, datasets, spans, axes) {
  if (charts[id]) charts[id].destroy();
  charts[id] = new Chart(document.getElementById(`chart-${id}`), {
    type: "line",
    data: { datasets },
    options: {
      animation: false,
      parsing: false,
      normalized: true,
      maintainAspectRatio: false,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      elements: { point: { radius: 0 }, line: { borderWidth: 1.5 } },
      scales: {
        x: {
          type: "linear",
          afterBuildTicks: calendarTicks,
          ticks: { autoSkip: false, maxRotation: 0, callback: tickLabel },
          title: { display: true, text: zoneName() },
        },
        ...axes,
      },
      plugins: {
        anomalySpans: { spans },
        tooltip: { callbacks: { title: (items) => shown(new Date(items[0].parsed.x).toISOString()) } },
      },
    },
  });
}

function series(items, key) {
  return items.filter((item) => item[key] != null).map((item) => ({ x: Date.parse(item.ts), y: item[key] }));
}

// A chart's caption; `empty` (words saying why there is nothing to draw) is also written across it.
function caption(id, text, empty = null) {
  const element = document.querySelector(`[data-caption="${id}"]`);
  element.textContent = text;
  const figure = element.closest("figure");
  figure.removeAttribute("aria-busy");
  if (empty) figure.dataset.empty = empty;
  else delete figure.dataset.empty;
}

// A variable, kind or detector in the page's words; one newer than this page, as the data names it.
const named = (words, value) => WORDS[words][value] || value.replaceAll("_", " ");

const ANOMALY_BODY = () => document.querySelector("#anomalies tbody");
function anomalyNote(text) {
  ANOMALY_BODY().innerHTML = `<tr><td colspan="6">${escapeHTML(text)}</td></tr>`;
}

// While loading: every chart busy, its caption and the anomaly table saying so.
function loading() {
  for (const element of document.querySelectorAll("[data-caption]")) {
    element.textContent = say("loading");
    element.closest("figure").setAttribute("aria-busy", "true");
  }
  anomalyNote(say("loadingAnomalies"));
}

// The range fields hold times to the minute in the zone shown ("2019-06-03T14:30"); the end takes its
// whole minute. The back end is asked in UTC.
const fromField = (value, seconds) => new Date(unwall(Date.parse(`${value}:${seconds}Z`))).toISOString();
const toField = (iso) => new Date(wall(Date.parse(iso))).toISOString().slice(0, 16);
function range() {
  const start = document.getElementById("start").value;
  const end = document.getElementById("end").value;
  const params = {};
  if (start) params.start = fromField(start, "00");
  if (end) params.end = fromField(end, "59");
  return params;
}

async function load() {
  const page = document.getElementById("sensor-page");
  const message = document.getElementById("chart-message");
  message.textContent = say("loadingReadings");
  message.classList.remove("error");
  loading();
  const params = range();
  const [readings, wow] = await Promise.all([
    getJSON(`${page.dataset.readingsUrl}?${new URLSearchParams({ ...params, max_points: MAX_POINTS })}`),
    getJSON(`${page.dataset.wowUrl}?${new URLSearchParams(params)}`),
  ]);
  // The readings answer says which range it covers (9 days up to the latest by default): list the
  // anomalies of exactly that range.
  const query = new URLSearchParams({ start: readings.start, end: readings.end, per_page: 1000 });
  const inRange = await getJSON(`${page.dataset.anomaliesUrl}?${query}`);
  const spansOf = (variable) => inRange.items
    .filter((a) => a.variable === variable)
    .map((a) => [Date.parse(a.start_at), Date.parse(a.end_at), lookOf(a)]);
  const counted = (spans) => {
    const conditions = spans.filter((span) => span[2] === "condition").length;
    const history = spans.filter((span) => span[2] === "history").length;
    const faults = spans.length - conditions - history;
    return [
      say("anomaliesMarked", { count: faults }),
      ...(conditions ? [say("conditions", { count: conditions })] : []),
      ...(history ? [say("history", { count: history })] : []),
    ].join(", ");
  };

  for (const [variable, about] of Object.entries(VARIABLES)) {
    const datasets = [{ label: `${about.label} (${about.unit})`, data: series(readings.items, variable), borderColor: about.colour, yAxisID: "y" }];
    if (readings.downsampled) {
      datasets.push({ label: say("max"), data: series(readings.items, `${variable}_max`), borderColor: `${about.colour}55`, borderWidth: 1, yAxisID: "y" });
      datasets.push({ label: say("min"), data: series(readings.items, `${variable}_min`), borderColor: `${about.colour}55`, borderWidth: 1, yAxisID: "y" });
    }
    const spans = spansOf(variable);
    draw(variable, datasets, spans, { y: { title: { display: true, text: about.unit } } });
    const points = datasets[0].data.length;
    caption(variable, say("points", { variable: about.label, count: points }) +
      `${readings.downsampled ? ` ${say("downsampled", { count: readings.readings })}` : ""}, ` +
      counted(spans), points ? null : say("noReadings", { variable: about.word }));
  }

  const station = wow.station.site_id ? `${wow.station.name || wow.station.site_id}, ${distance(wow.station.distance_km)}` : null;
  // Why a station chart is empty: no station within reach, or the station sent nothing in this range.
  const reason = page.dataset.stationReason;
  const noStation = reason ? say("noStationBecause", { reason }) : say("noStation");
  const stationEmpty = (key) => {
    if (!station) return noStation;
    return series(wow.items, key).length ? null : say("stationSentNothing");
  };
  draw("grow-wow-temperature", [
    { label: say("growTemperature"), data: series(wow.items, "air_temperature"), borderColor: VARIABLES.air_temperature.colour, yAxisID: "y" },
    { label: say("wowTemperature"), data: series(wow.items, "station_air_temperature"), borderColor: "#00897b", yAxisID: "y" },
  ], spansOf("air_temperature"), { y: { title: { display: true, text: "°C" } } });
  caption("grow-wow-temperature", station ? say("besideStation", { station }) : `${noStation}.`,
    stationEmpty("station_air_temperature"));
  draw("soil-rain", [
    { label: say("growSoilMoisture"), data: series(wow.items, "soil_moisture"), borderColor: VARIABLES.soil_moisture.colour, yAxisID: "y" },
    { type: "bar", label: say("wowRainfall"), data: series(wow.items, "station_rainfall"), backgroundColor: "#42a5f5", yAxisID: "rain", barThickness: 2 },
  ], spansOf("soil_moisture"), {
    y: { title: { display: true, text: "%" } },
    rain: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "mm" } },
  });
  caption("soil-rain", station ? say("againstRain", { station }) : `${noStation}.`,
    stationEmpty("station_rainfall"));

  ANOMALY_BODY().innerHTML = inRange.items.length
    ? inRange.items.map((a) => `<tr><td>${escapeHTML(named("variables", a.variable))}</td><td>${escapeHTML(named("kinds", a.kind))}</td>
        <td>${escapeHTML(shown(a.start_at))}</td><td>${escapeHTML(shown(a.end_at))}</td>
        <td>${escapeHTML(named("detectors", a.detector))}</td><td>${escapeHTML(a.explanation || "")}</td></tr>`).join("")
    : `<tr><td colspan="6">${escapeHTML(say("noAnomalies"))}</td></tr>`;
  labelCells(document.getElementById("anomalies"));
  // Show the range drawn in the date fields, so the default (the last 9 days) is visible and adjustable.
  document.getElementById("start").value ||= toField(readings.start);
  document.getElementById("end").value ||= toField(readings.end);
  for (const cell of document.querySelectorAll("[data-zone-name]")) cell.textContent = say(zone === "utc" ? "utc" : "local");
  const drawnRange = say("range", { start: shown(readings.start), end: shown(readings.end), zone: say(zone === "utc" ? "utc" : "localTime") });
  message.textContent = `${drawnRange}: ${say("readings", { count: readings.readings })}, ` +
    say("anomalies", { count: inRange.items.length });
  // The downloads take exactly the range drawn.
  const drawn = new URLSearchParams({ start: readings.start, end: readings.end });
  for (const id of ["download-readings", "download-anomalies"]) {
    const link = document.getElementById(id);
    link.href = `${link.dataset.base}?${drawn}`;
  }
  page.dataset.ready = "true";
}

// The charts as one PNG, one under the other on white, as 2019 kept a picture of each sensor's week.
document.getElementById("download-charts").addEventListener("click", (event) => {
  const canvases = [...document.querySelectorAll(".charts canvas")].filter((c) => c.width > 0);
  const sheet = document.createElement("canvas");
  sheet.width = Math.max(...canvases.map((c) => c.width));
  sheet.height = canvases.reduce((sum, c) => sum + c.height, 0);
  const ctx = sheet.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, sheet.width, sheet.height);
  let top = 0;
  for (const canvas of canvases) {
    ctx.drawImage(canvas, 0, top);
    top += canvas.height;
  }
  event.currentTarget.href = sheet.toDataURL("image/png");  // before the browser follows the link
});

// Loading says so; a failure says what failed, in words, where the charts' summary goes.
function loadAndSay() {
  load().catch((error) => {
    console.error(error);
    const message = document.getElementById("chart-message");
    message.textContent = say("chartsNotDrawn", { error: error.message });
    message.classList.add("error");
    for (const element of document.querySelectorAll("[data-caption]")) caption(element.dataset.caption, say("notDrawn"), say("notDrawnSeeAbove"));
    anomalyNote(say("anomaliesNotLoaded", { error: error.message }));
  });
}

document.getElementById("range").addEventListener("submit", (event) => {
  event.preventDefault();
  loadAndSay();
});

// Another zone: the fields keep the same moments, written in the new zone's clock, and the charts redraw.
const zoneChoice = document.getElementById("zone");
zoneChoice.value = zone;
zoneChoice.addEventListener("change", () => {
  const moments = ["start", "end"].map((id) => document.getElementById(id).value)
    .map((value) => (value ? fromField(value, "00") : ""));
  zone = zoneChoice.value;
  localStorage.setItem(ZONE_KEY, zone);
  ["start", "end"].forEach((id, i) => { document.getElementById(id).value = moments[i] ? toField(moments[i]) : ""; });
  loadAndSay();
});
loadAndSay();
