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

const HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

// Text for innerHTML, in element content and in quoted attributes alike: names and addresses come from
// volunteers and geocoders, not from us.
function escapeHTML(text) {
  return String(text == null ? "" : text).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}
