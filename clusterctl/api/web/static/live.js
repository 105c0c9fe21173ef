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
