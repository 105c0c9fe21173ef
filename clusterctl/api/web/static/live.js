// Each element with data-live listens to the server's pushes and takes the fragment it sends:
// rendered on the server and escaped there, so no data is turned into markup here.
"use strict";
for (const el of document.querySelectorAll("[data-live]")) {
  const source = new EventSource(el.dataset.live);
  source.onmessage = (event) => {
    el.innerHTML = event.data;
    el.dataset.updated = String(Date.now());
  };
}

// Each element with data-load takes its content from that address once, after the page is up:
// a page's slow sections (a year's report) do not hold up the page or one another.
for (const el of document.querySelectorAll("[data-load]")) {
  fetch(el.dataset.load, { credentials: "same-origin" })
    .then((r) => r.ok ? r.text() : r.text().then((t) => { throw new Error(`${r.status}: ${t}`); }))
    .then((html) => { el.innerHTML = html; el.dataset.loaded = "yes"; })
    .catch((e) => { el.textContent = `Could not load this section (${e.message}).`; el.dataset.loaded = "error"; });
}
