// Helpers every page's script uses.
"use strict";

function statusOf(value) {
  return value || "unchecked";
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.message || `the server answered ${response.status}`);
  }
  return body;
}

function escapeHTML(text) {
  const div = document.createElement("div");
  div.textContent = text == null ? "" : String(text);
  return div.innerHTML;
}
