// /all_grow_map: every sensor the account may see, coloured by status, with counts and a status filter;
// a click opens a panel with the sensor's health and why. The back end sends each view's clusters and
// single sensors (/data/map/view): 100,000 sensors open as lightly as 50.
"use strict";

(async function () {
  const element = document.getElementById("map");
  const panel = document.getElementById("sensor-panel");
  const buttons = [...document.querySelectorAll("button.filter")];
  const message = document.getElementById("map-message");
  const map = await createSensorMap(element);

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

  // The back end clusters the network: the page asks for the view it shows, again at each move, and
  // the first answer of a filter fits the map to that filter's sensors.
  let status = "";
  let asked = 0;
  let fitted = false;
  async function load() {
    const mine = ++asked;
    element.dataset.ready = "";  // till this view is drawn
    const query = { ...map.view(), ...(status ? { status } : {}) };
    const { body: answer, tag } = await getTaggedJSON(`${element.dataset.source}?${new URLSearchParams(query)}`);
    if (mine !== asked) return;  // a later move or filter has asked already
    const counts = { all: 0 };
    STATUSES.looks.forEach((look) => { counts[look.value] = answer.counts[look.value] || 0; counts.all += counts[look.value]; });
    Object.entries(counts).forEach(([value, count]) => {
      document.querySelector(`[data-count="${value}"]`).textContent = numeral(count);
    });
    if (!fitted) {
      fitted = true;
      if (answer.bounds && map.fit(answer.bounds)) return;  // the move asks for the fitted view
    }
    map.showView(answer, open, tag);
    const shown = status ? counts[status] : counts.all;
    // Say why the map is empty, when it is.
    if (!counts.all) {
      message.textContent = say("noSensorsYet");
    } else if (!shown) {
      message.textContent = say("noSensorsOfStatus", { status: statusWord(status) });
    } else {
      message.textContent = say("sensorsOnMap", { count: shown });
    }
    message.classList.remove("error");
    element.dataset.ready = "true";
  }
  function failed(error) {
    console.error(error);
    message.textContent = say("notLoaded", { error: error.message });
    message.classList.add("error");
  }
  map.onMove(() => load().catch(failed));
  buttons.forEach((button) => button.addEventListener("click", () => {
    buttons.forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    status = button.dataset.status;
    fitted = false;
    load().catch(failed);
  }));
  await load();
})().catch((error) => {
  console.error(error);
  const message = document.getElementById("map-message");
  message.textContent = say("notLoaded", { error: error.message });
  message.classList.add("error");
});
