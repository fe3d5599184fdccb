// Offline and failures: the connection indicator, and the service worker
// that keeps the app shell so the page opens while the server cannot be
// reached. The module's event stream is a WebSocket to /api/ws; this file
// watches those sockets (the module opens them through the page's
// WebSocket) to tell app.js when the connection is up or lost.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const listeners = [];
  // "connecting" until the first socket opens, then "online", or "offline"
  // after a socket closed or failed (the module reconnects by itself).
  let state = "connecting";
  let everOnline = false;

  function set(next) {
    if (next === state) return;
    state = next;
    draw();
    for (const f of listeners) f(state);
  }

  function draw() {
    const p = $("conn");
    if (!p) return;
    p.dataset.state = state;
    if (state === "offline") {
      p.textContent = everOnline ? "Connection lost. Reconnecting…" : "Cannot reach the server. Retrying…";
      p.hidden = false;
    } else {
      p.textContent = "";
      p.hidden = true;
    }
  }

  const Native = window.WebSocket;
  if (Native) {
    window.WebSocket = class extends Native {
      constructor(url, protocols) {
        super(url, protocols);
        if (!String(url).includes("/api/ws")) return;
        this.addEventListener("open", () => { everOnline = true; set("online"); });
        this.addEventListener("close", () => set("offline"));
      }
    };
  }
  window.addEventListener("offline", () => set("offline"));

  if ("serviceWorker" in navigator && window.isSecureContext) {
    // The scope is the whole origin: the page is at /, the worker under
    // /web/ (the server allows it with Service-Worker-Allowed).
    navigator.serviceWorker.register("web/sw.js", { scope: "/" }).catch((e) => console.warn("service worker:", e));
  }

  window.sandiOffline = {
    state: () => state,
    // onChange(f) calls f(state) at every change.
    onChange: (f) => listeners.push(f),
  };
  document.addEventListener("DOMContentLoaded", draw);
})();
