// Offline and failures: the connection indicator, and the service worker
// that keeps the app shell so the page opens while the server cannot be
// reached. The module reports when its event stream's connection comes up
// or drops (app.js passes it on to onConnection); this file tells the
// listeners given to onConnectionChange when the connection is up or lost.
import { $ } from "./util.js";

const listeners = [];
// "connecting" until the event stream first connects, then "online", or
// "offline" after it dropped or could not connect (the module reconnects
// by itself).
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

// onConnection(up) is the module's report on its event stream.
export function onConnection(up) {
  if (up) everOnline = true;
  set(up ? "online" : "offline");
}
window.addEventListener("offline", () => set("offline"));

if ("serviceWorker" in navigator && window.isSecureContext) {
  // The scope is the whole origin: the page is at /, the worker under
  // /web/ (the server allows it with Service-Worker-Allowed).
  navigator.serviceWorker.register("web/sw.js", { scope: "/" }).catch((e) => console.warn("service worker:", e));
}

// onConnectionChange(f) calls f(state) at every change.
export const onConnectionChange = (f) => listeners.push(f);

// connectionState is "connecting", "online" or "offline".
export const connectionState = () => state;
draw();
