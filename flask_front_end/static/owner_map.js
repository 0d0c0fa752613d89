// /owner_map: find sensors by address (autocomplete) or, for admins, by owner id; show them on a map
// with their owners' statistics. An owner account sees its own sensors at once.
"use strict";

(async function () {
  const page = document.getElementById("owner-page");
  const addressInput = document.getElementById("address");
  const ownerInput = document.getElementById("owner");
  const options = document.getElementById("address-options");
  const message = document.getElementById("owner-message");
  const map = await createSensorMap(document.getElementById("map"));
  const pageUrl = (id) => page.dataset.pageUrl.replace("SENSOR", encodeURIComponent(id));

  let typed = 0;
  addressInput.addEventListener("input", async () => {
    const text = addressInput.value.trim();
    const mine = ++typed;
    if (text.length < 2) return;
    try {
      const answer = await getJSON(`${page.dataset.addressesUrl}?${new URLSearchParams({ q: text, limit: 10 })}`);
      if (mine !== typed) return;  // a later keystroke has asked already
      options.innerHTML = answer.items
        .map((item) => `<option value="${escapeHTML(item.address)}">${escapeHTML(say("sensors", { count: item.sensors }))}</option>`)
        .join("");
    } catch (error) {
      message.textContent = error.message;
    }
  });

  function fill(table, rows) {
    table.querySelector("tbody").innerHTML = rows.join("");
    labelCells(table);
    table.hidden = rows.length === 0;
    document.getElementById(`${table.id === "owner-stats" ? "stats" : "sensors"}-title`).hidden = rows.length === 0;
  }

  // 2019's tables: per status, each sensor's latest reading; a row (or its link) opens its charts.
  const number = (value) => (value === null || value === undefined ? "—" : (Math.round(value * 10) / 10).toString());
  function showLatest(sensors) {
    let shown = 0;
    for (const table of document.querySelectorAll("table.latest")) {
      const mine = sensors.filter((s) => statusOf(s.status) === table.dataset.status);
      table.querySelector("tbody").innerHTML = mine.length ? mine.map((s) => {
        const r = s.latest || {};
        return `<tr data-href="${pageUrl(s.sensor_id)}"><td><a href="${pageUrl(s.sensor_id)}">${escapeHTML(s.sensor_id)}</a>
          ${escapeHTML(s.name || "")}</td><td>${number(r.battery_level)}</td><td>${number(r.soil_moisture)}</td>
          <td>${number(r.light)}</td><td>${number(r.air_temperature)}</td>
          <td>${escapeHTML(r.ts ? r.ts.slice(0, 16).replace("T", " ") : "—")}</td></tr>`;
      }).join("") : `<tr><td colspan="6">${escapeHTML(say("noSensorsOfStatusHere", { status: statusWord(table.dataset.status) }))}</td></tr>`;
      labelCells(table);
      document.querySelector(`#latest-${table.dataset.status}-title [data-count]`).textContent = `(${mine.length})`;
      shown += mine.length;
    }
    document.getElementById("latest-tables").hidden = sensors.length === 0;
    return shown;
  }
  document.getElementById("latest-tables").addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-href]");
    if (row && !event.target.closest("a")) window.location.href = row.dataset.href;
  });

  async function show(query) {
    message.textContent = say("loading");
    const answer = await getJSON(`${page.dataset.sensorsUrl}?${new URLSearchParams({ ...query, per_page: 1000 })}`);
    const sensors = answer.items;
    map.show(sensors.filter((s) => s.latitude != null && s.longitude != null),
             (sensor) => { window.location.href = pageUrl(sensor.sensor_id); });
    fill(document.getElementById("owner-sensors"), sensors.map((s) => `
      <tr><td><a href="${pageUrl(s.sensor_id)}">${escapeHTML(s.sensor_id)}</a></td><td>${escapeHTML(s.name || "")}</td>
      <td><span class="badge status-${statusOf(s.status)}">${escapeHTML(badgeText(s))}</span></td>
      <td>${escapeHTML(s.address || "")}</td><td>${escapeHTML(s.owner_id || "")}</td></tr>`));
    showLatest(sensors);
    const owners = [...new Set(sensors.map((s) => s.owner_id).filter(Boolean))];
    const stats = await Promise.all(owners.map((owner) =>
      getJSON(page.dataset.statsUrl.replace("OWNER", encodeURIComponent(owner)))));
    fill(document.getElementById("owner-stats"), stats.map((o) => `
      <tr><td>${escapeHTML(o.owner_id)}</td><td>${o.sensors}</td>
      ${STATUSES.looks.map((look) => `<td>${o.by_status[look.value] || 0}</td>`).join("")}
      <td>${o.anomalies}</td><td>${escapeHTML((o.latest_reading_at || "—").slice(0, 16).replace("T", " "))}</td></tr>`));
    message.textContent = sensors.length ? say("sensors", { count: sensors.length }) : say("noSensorsFound");
  }

  document.getElementById("owner-search").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = {};
    if (addressInput.value.trim()) query.q = addressInput.value.trim();
    if (ownerInput && ownerInput.value.trim()) query.owner = ownerInput.value.trim();
    if (!Object.keys(query).length) {
      message.textContent = say(ownerInput ? "typeAddressOrOwner" : "typeAddress");
      return;
    }
    show(query).catch((error) => { message.textContent = error.message; });
  });

  if (page.dataset.ownOwner) {
    await show({ owner: page.dataset.ownOwner });
  }
  page.dataset.ready = "true";
})().catch((error) => {
  console.error(error);
  document.getElementById("owner-message").textContent = error.message;
});
