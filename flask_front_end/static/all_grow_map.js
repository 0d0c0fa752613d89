// /all_grow_map: every sensor the account may see, coloured by status, with counts and a status filter;
// a click opens a panel with the sensor's health and why.
"use strict";

(async function () {
  const element = document.getElementById("map");
  const panel = document.getElementById("sensor-panel");
  const buttons = [...document.querySelectorAll("button.filter")];
  const message = document.getElementById("map-message");
  const [map, answer] = await Promise.all([createSensorMap(element), getJSON(element.dataset.source)]);
  const sensors = answer.rows.map((row) => Object.fromEntries(answer.fields.map((field, i) => [field, row[i]])));

  const counts = { all: sensors.length };
  STATUSES.looks.forEach((look) => { counts[look.value] = 0; });
  sensors.forEach((sensor) => { counts[statusOf(sensor.status)] += 1; });
  Object.entries(counts).forEach(([status, count]) => {
    document.querySelector(`[data-count="${status}"]`).textContent = numeral(count);
  });

  const when = (iso) => (iso ? `${escapeHTML(iso.slice(0, 16).replace("T", " "))} UTC` : "—");

  async function open(sensor) {
    panel.hidden = false;
    panel.innerHTML = `<p>${escapeHTML(say("loadingSensor", { sensor: sensor.sensor_id }))}</p>`;
    try {
      const detail = await getJSON(element.dataset.sensorUrl.replace("SENSOR", encodeURIComponent(sensor.sensor_id)));
      const health = detail.health || {};
      const status = statusOf(health.status);
      const station = detail.station && detail.station.site_id
        ? `${escapeHTML(detail.station.name || detail.station.site_id)}, ${escapeHTML(distance(detail.station.distance_km))}`
        : escapeHTML(say("noneLinked"));
      const latest = detail.latest;
      const battery = latest && latest.battery_level !== null
        ? `${Math.round(latest.battery_level)} % <small>(${when(latest.ts)})</small>` : "—";
      panel.innerHTML = `
        <h2>${escapeHTML(detail.name || detail.sensor_id)} <small>${escapeHTML(detail.sensor_id)}</small></h2>
        <p><span class="badge status-${status}">${escapeHTML(badgeText(health))}</span></p>
        <p class="reason">${escapeHTML(health.reason || say("notThroughDetection"))}</p>
        <dl class="facts">
          <dt>${escapeHTML(say("address"))}</dt><dd>${escapeHTML(detail.address || "—")}</dd>
          <dt>${escapeHTML(say("wowStation"))}</dt><dd>${station}</dd>
          <dt>${escapeHTML(say("battery"))}</dt><dd>${battery}</dd>
          <dt>${escapeHTML(say("daysActive"))}</dt><dd>${detail.days_active ?? "—"}</dd>
          <dt>${escapeHTML(say("firstReading"))}</dt><dd>${when(detail.first_sample_at)}</dd>
          <dt>${escapeHTML(say("lastReading"))}</dt><dd>${when(detail.last_sample_at)}</dd>
        </dl>
        <p><a href="${element.dataset.pageUrl.replace("SENSOR", encodeURIComponent(detail.sensor_id))}">${escapeHTML(say("chartsLink"))}</a></p>`;
    } catch (error) {
      panel.innerHTML = `<p class="flash error">${escapeHTML(error.message)}</p>`;
    }
  }

  function filter(status) {
    buttons.forEach((button) => button.setAttribute("aria-pressed", String(button.dataset.status === status)));
    const shown = status ? sensors.filter((sensor) => statusOf(sensor.status) === status) : sensors;
    map.show(shown, open);
    // Say why the map is empty, when it is.
    if (!sensors.length) {
      message.textContent = say("noSensorsYet");
    } else if (!shown.length) {
      message.textContent = say("noSensorsOfStatus", { status: statusWord(status) });
    } else {
      message.textContent = say("sensorsOnMap", { count: shown.length });
    }
  }
  buttons.forEach((button) => button.addEventListener("click", () => filter(button.dataset.status)));
  filter("");
  element.dataset.ready = "true";
})().catch((error) => {
  console.error(error);
  const message = document.getElementById("map-message");
  message.textContent = say("notLoaded", { error: error.message });
  message.classList.add("error");
});
