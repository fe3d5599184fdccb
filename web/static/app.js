// sandi web client: the page around the WebAssembly module (web/wasm),
// which holds the keys and does every cryptographic operation. The page
// only draws views and calls the module's `sandi` object, whose functions
// return Promises. This module starts the page: one tab owns the device,
// loads the module, and shows the view the device's state calls for; the
// views are modules of their own (auth.js, list.js, chat.js, composer.js,
// members.js, newconv.js, devices.js, safety.js, alarms.js, …).
import { $, debounce, errorText } from "./util.js";
import { st, timings, mark, show, fail, ready } from "./state.js";
import { showAuth, showSetup } from "./auth.js";
import { loadConversations, drawList, initList } from "./list.js";
import { loadWarnings, importTransfer, whenImported } from "./warnings.js";
import { openChat, onMessage, onFailure, readCurrent } from "./chat.js";
import { loadOutbox, retryFailed } from "./composer.js";
import { openNew } from "./newconv.js";
import { openDevices } from "./devices.js";
import { openSafety } from "./safety.js";
import { refreshTrust } from "./trust.js";
import { openAlarms } from "./alarms.js";
import { refreshLines } from "./timeline.js";
import { onReceipt, onTyping } from "./receipts.js";
import { onConnection, onConnectionChange, connectionState } from "./offline.js";
import { safeName } from "./attach.js";
import { workerBytes } from "./transfer.js";
import "./restore.js";
import "./logout.js";
import { backupStatus } from "./backup.js";
import "./voice.js";

// What the browser tests read (nothing in the page does).
window.sandiTimings = timings;
window.sandiAttach = { safeName, workerBytes };
window.sandiOffline = { state: connectionState };

// ---- start: one tab owns the device ----
async function boot() {
  if (!window.WebAssembly || !window.indexedDB) {
    fail("This browser lacks WebAssembly or IndexedDB, which sandi needs.");
    return;
  }
  if (!navigator.locks) {
    // Without Web Locks (very old browsers) one tab cannot be sure it is
    // alone: refuse rather than risk two tabs writing one ratchet.
    fail("This browser lacks the Web Locks API, which sandi needs to keep two tabs from using one device's keys at once.");
    return;
  }
  const owned = await new Promise((resolve) => {
    navigator.locks.request("sandi-device", { ifAvailable: true }, (lock) => {
      resolve(!!lock);
      if (lock) return new Promise(() => {}); // held until the tab closes
    });
  });
  if (!owned) {
    show("other-tab");
    document.documentElement.dataset.ready = "other-tab";
    // Take over when the other tab goes.
    navigator.locks.request("sandi-device", () => {
      start();
      return new Promise(() => {});
    });
    return;
  }
  start();
}

async function start() {
  show("loading");
  try {
    await loadModule();
  } catch (e) {
    fail(e.message);
    return;
  }
  mark("wasmStarted");
  try {
    st.me = await sandi.open(deviceName());
  } catch (e) {
    fail("Cannot open this browser's sandi data: " + errorText(e));
    return;
  }
  mark("opened");
  await route();
}

function deviceName() {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? "Edge" : /Chrom/.test(ua) ? "Chromium" : /Firefox\//.test(ua) ? "Firefox" : /Safari\//.test(ua) ? "Safari" : "Browser";
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS/.test(ua) ? "macOS" : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "";
  return browser + (os ? " on " + os : "");
}

async function loadModule() {
  const loaded = new Promise((resolve) => { window.sandiLoaded = resolve; });
  let resp;
  try {
    resp = await fetch("web/sandi.wasm");
  } catch (e) {
    throw new Error("Cannot reach the server to download sandi.");
  }
  if (resp.status === 404 || typeof Go === "undefined") {
    throw new Error("The sandi web client is not built: run go generate ./web, then restart the server.");
  }
  if (!resp.ok) throw new Error("Downloading sandi failed: HTTP " + resp.status);
  const go = new Go();
  const { instance } = await WebAssembly.instantiateStreaming(resp, go.importObject);
  mark("wasmCompiled");
  // The module's memory, in bytes (it grows and never shrinks): for the
  // tests' figures.
  window.sandiModuleMemory = () => instance.exports.mem.buffer.byteLength;
  go.run(instance).then(() => fail("sandi stopped. Reload the page."));
  await loaded;
}

// What to show for the device's state.
export async function route() {
  if (!st.me.hasAccount) return showAuth();
  if (!st.me.hasIdentity) return showSetup();
  return showMain();
}

// ---- the main view ----
let listening = false;
async function showMain() {
  show("main");
  $("me").textContent = st.me.username;
  if (!listening) window.addEventListener("hashchange", () => render(true));
  // Draw what is stored first; the event stream then brings what came
  // while the page was closed (it holds the client while it works).
  await refresh();
  await render();
  ready();
  if (!listening) {
    listening = true;
    initList();
    await loadOutbox();
    // Back online: what did not go out goes now, under its client id.
    onConnectionChange((state) => { if (state === "online") { retryFailed(); importTransfer(); } });
    whenImported(() => refresh());
    importTransfer();
    document.addEventListener("visibilitychange", () => { if (!document.hidden && st.current) readCurrent(); });
    sandi.listen((m) => queueMicrotask(() => onMessage(m)), (f) => queueMicrotask(() => onFailure(f)),
      () => queueMicrotask(refreshSoon),
      (r) => queueMicrotask(() => onReceipt(r)),
      (t) => queueMicrotask(() => onTyping(t)),
      (up) => queueMicrotask(() => onConnection(up)));
    // A safety net: the event stream reports changes as they happen.
    setInterval(() => { if (!document.hidden) refresh(); }, 30000);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  }
}

// refresh reads again what the views show of the module's state.
export async function refresh() {
  await Promise.all([loadConversations(), loadWarnings(), st.pane === "devices" ? openDevices(true) : null,
    st.current ? refreshLines(st.current) : null]);
  if (st.me && st.me.hasIdentity) await refreshTrust();
}
export const refreshSoon = debounce(() => refresh(), 300);

// ---- routing ----
// render shows the pane the location names. moved: the user went there
// (not a start or a reload), so the focus goes with them: into the pane,
// and back to what opened it when they return to the list.
let renders = 0;
async function render(moved) {
  const call = ++renders;
  const from = document.activeElement;
  const h = location.hash.replace(/^#\/?/, "");
  const [page, arg] = [h.split("/")[0], decodeURIComponent(h.split("/").slice(1).join("/"))];
  const panes = ["empty", "chat", "new", "devices", "safety", "alarms"];
  let pane = "empty";
  if (page === "c" && arg) pane = "chat";
  else if (page === "new") pane = "new";
  else if (page === "devices") pane = "devices";
  else if (page === "safety" && arg) pane = "safety";
  else if (page === "alarms") pane = "alarms";
  if (pane === "devices") {
    // The devices pane is drawn before it is shown (its list and the
    // backup card's state come from the module), so that nothing in it
    // moves under a click once it is; at most a moment is waited.
    await Promise.race([Promise.all([openDevices(), backupStatus()]), new Promise((r) => setTimeout(r, 400))]);
    if (call !== renders) return; // the user went elsewhere meanwhile
  }
  for (const p of panes) $("pane-" + p).hidden = p !== pane;
  st.pane = pane;
  $("app").dataset.pane = pane === "empty" ? "list" : "pane";
  const prev = st.current;
  st.current = pane === "chat" ? arg : null;
  if (pane === "chat" || pane === "empty") st.lastChat = st.current;
  if (prev !== st.current) drawList();
  if (pane === "chat") await openChat(arg, prev !== arg);
  if (pane === "new") openNew();
  if (pane === "safety") await openSafety(arg);
  if (pane === "alarms") await openAlarms();
  if (moved) moveFocus(pane, from);
}

// The secondary panes, which Escape closes (as their back link does).
const closable = ["new", "devices", "safety", "alarms"];

// moveFocus puts the focus in the pane just shown, unless the pane put it
// somewhere itself (the composer, a form's first field): on its heading
// for a keyboard or screen-reader user to go on from. Back on the list, it
// goes to what opened the pane: on a phone the list was hidden meanwhile.
let opener = null;
function moveFocus(pane, from) {
  if (from && $("sidebar").contains(from) && pane !== "empty") opener = from;
  const at = document.activeElement;
  if (pane === "empty") {
    const row = st.lastChat && [...document.querySelectorAll("#conv-list a.conv")].find((a) => a.getAttribute("href") === "#/c/" + st.lastChat);
    const back = opener && opener.isConnected && opener.getClientRects().length ? opener : row || $("new-button");
    opener = null;
    if (!$("sidebar").contains(at) || !at.getClientRects().length) back.focus();
    return;
  }
  const box = $("pane-" + pane);
  if (box.contains(at) && at !== box) return;
  box.querySelector("h2[tabindex]").focus();
}

document.addEventListener("keydown", (ev) => {
  if (ev.key !== "Escape" || ev.defaultPrevented || $("app").dataset.view !== "main" || !closable.includes(st.pane)) return;
  ev.preventDefault();
  location.hash = $("pane-" + st.pane).querySelector("a.back").getAttribute("href");
});

boot();
