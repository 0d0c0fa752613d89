// /sensors/<id>: the sensor's soil moisture, air temperature, light and battery over a range with its anomalies
// shaded, the sensor beside its WOW station (air temperature; soil moisture against rain), and the
// anomalies listed with the reason each was raised. Times are UTC.
"use strict";

const VARIABLES = {
  soil_moisture: { label: "Soil moisture", unit: "%", colour: "#6d4c41" },
  air_temperature: { label: "Air temperature", unit: "°C", colour: "#1565c0" },
  light: { label: "Light", unit: "mol/m²/d", colour: "#f9a825" },
  battery_level: { label: "Battery", unit: "%", colour: "#558b2f" },
};
const MAX_POINTS = 1500;

// Shades each [from, to, condition] span (ms since 1970) of options.plugins.anomalySpans.spans, at least
// 4 px wide: anomalies red, conditions (frozen soil, snow, a watering system: not faults) blue.
const anomalySpans = {
  id: "anomalySpans",
  beforeDatasetsDraw(chart, _args, options) {
    const { ctx, chartArea, scales } = chart;
    ctx.save();
    for (const [from, to, condition] of options.spans || []) {
      ctx.fillStyle = condition ? "rgba(30, 136, 229, 0.14)" : "rgba(198, 40, 40, 0.18)";
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

// Time ticks on calendar boundaries (whole hours or days, UTC), as few as make 8 or fewer: a chart
// reads like a calendar, not at arbitrary minutes.
const HOUR = 3600e3;
const TICK_STEPS = [1, 2, 3, 6, 12, 24, 48, 96, 168, 336, 720].map((hours) => hours * HOUR);
function calendarTicks(axis) {
  const step = TICK_STEPS.find((s) => (axis.max - axis.min) / s <= 8) || TICK_STEPS[TICK_STEPS.length - 1];
  const ticks = [];
  for (let t = Math.ceil(axis.min / step) * step; t <= axis.max; t += step) ticks.push({ value: t });
  axis.ticks = ticks;
  axis.calendarStep = step;
}
function tickLabel(value) {
  const iso = new Date(value).toISOString();
  return this.calendarStep >= 24 * HOUR ? iso.slice(5, 10) : iso.slice(5, 16).replace("T", " ");
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
          title: { display: true, text: "UTC" },
        },
        ...axes,
      },
      plugins: {
        anomalySpans: { spans },
        tooltip: { callbacks: { title: (items) => new Date(items[0].parsed.x).toISOString().slice(0, 16).replace("T", " ") } },
      },
    },
  });
}

function series(items, key) {
  return items.filter((item) => item[key] != null).map((item) => ({ x: Date.parse(item.ts), y: item[key] }));
}

function caption(id, text) {
  document.querySelector(`[data-caption="${id}"]`).textContent = text;
}

// The range fields hold UTC times to the minute ("2019-06-03T14:30"); the end takes its whole minute.
function range() {
  const start = document.getElementById("start").value;
  const end = document.getElementById("end").value;
  const params = {};
  if (start) params.start = `${start}:00Z`;
  if (end) params.end = `${end}:59Z`;
  return params;
}

async function load() {
  const page = document.getElementById("sensor-page");
  const message = document.getElementById("chart-message");
  message.textContent = "Loading…";
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
    .map((a) => [Date.parse(a.start_at), Date.parse(a.end_at), a.detector === "condition"]);
  const counted = (spans) => {
    const conditions = spans.filter((span) => span[2]).length;
    const faults = spans.length - conditions;
    return `${faults} ${faults === 1 ? "anomaly" : "anomalies"} marked` +
      (conditions ? `, ${conditions} ${conditions === 1 ? "condition" : "conditions"} (not faults, in blue)` : "");
  };

  for (const [variable, about] of Object.entries(VARIABLES)) {
    const datasets = [{ label: `${about.label} (${about.unit})`, data: series(readings.items, variable), borderColor: about.colour, yAxisID: "y" }];
    if (readings.downsampled) {
      datasets.push({ label: "max", data: series(readings.items, `${variable}_max`), borderColor: `${about.colour}55`, borderWidth: 1, yAxisID: "y" });
      datasets.push({ label: "min", data: series(readings.items, `${variable}_min`), borderColor: `${about.colour}55`, borderWidth: 1, yAxisID: "y" });
    }
    const spans = spansOf(variable);
    draw(variable, datasets, spans, { y: { title: { display: true, text: about.unit } } });
    caption(variable, `${about.label}: ${datasets[0].data.length.toLocaleString("en")} points` +
      `${readings.downsampled ? ` (of ${readings.readings.toLocaleString("en")} readings, with each stretch's min and max)` : ""}, ` +
      counted(spans));
  }

  const station = wow.station.site_id ? `${wow.station.name || wow.station.site_id}, ${wow.station.distance_km.toFixed(1)} km away` : null;
  draw("grow-wow-temperature", [
    { label: "GROW air temperature (°C)", data: series(wow.items, "air_temperature"), borderColor: VARIABLES.air_temperature.colour, yAxisID: "y" },
    { label: "WOW air temperature (°C)", data: series(wow.items, "station_air_temperature"), borderColor: "#00897b", yAxisID: "y" },
  ], spansOf("air_temperature"), { y: { title: { display: true, text: "°C" } } });
  caption("grow-wow-temperature", station ? `Hourly, beside WOW station ${station}` : "No WOW station is linked to this sensor.");
  draw("soil-rain", [
    { label: "GROW soil moisture (%)", data: series(wow.items, "soil_moisture"), borderColor: VARIABLES.soil_moisture.colour, yAxisID: "y" },
    { type: "bar", label: "WOW rainfall (mm/h)", data: series(wow.items, "station_rainfall"), backgroundColor: "#42a5f5", yAxisID: "rain", barThickness: 2 },
  ], spansOf("soil_moisture"), {
    y: { title: { display: true, text: "%" } },
    rain: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "mm" } },
  });
  caption("soil-rain", station ? `Soil moisture against the rain at ${station}` : "No WOW station is linked to this sensor.");

  document.querySelector("#anomalies tbody").innerHTML = inRange.items.length
    ? inRange.items.map((a) => `<tr><td>${escapeHTML(a.variable.replace("_", " "))}</td><td>${escapeHTML(a.kind.replaceAll("_", " "))}</td>
        <td>${escapeHTML(a.start_at.slice(0, 16).replace("T", " "))}</td><td>${escapeHTML(a.end_at.slice(0, 16).replace("T", " "))}</td>
        <td>${escapeHTML(a.detector)}</td><td>${escapeHTML(a.explanation || "")}</td></tr>`).join("")
    : `<tr><td colspan="6">No anomalies in this range.</td></tr>`;
  // Show the range drawn in the date fields, so the default (the last 9 days) is visible and adjustable.
  document.getElementById("start").value ||= readings.start.slice(0, 16);
  document.getElementById("end").value ||= readings.end.slice(0, 16);
  message.textContent = `${readings.start.slice(0, 16).replace("T", " ")} to ${readings.end.slice(0, 16).replace("T", " ")} UTC: ` +
    `${readings.readings.toLocaleString("en")} readings, ${inRange.items.length} anomalies`;
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

document.getElementById("range").addEventListener("submit", (event) => {
  event.preventDefault();
  load().catch((error) => {
  console.error(error);
  document.getElementById("chart-message").textContent = error.message;
});
});
load().catch((error) => {
  console.error(error);
  document.getElementById("chart-message").textContent = error.message;
});
