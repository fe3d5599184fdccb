// sandi web client: small helpers every view uses (building nodes,
// saying errors and times, drawing a QR code).

export const $ = (id) => document.getElementById(id);

// el makes an element: attrs sets its class, text, "on…" listeners and
// other attributes (null, undefined and false are left out).
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

export const errorText = (e) => {
  const byCode = {
    bad_credentials: "Wrong username or password.",
    username_taken: "That username is taken.",
    rate_limited: "Too many attempts. Wait a minute and try again.",
    unauthenticated: "This device was signed out. Log out and log in again.",
  };
  if (e && byCode[e.code]) return byCode[e.code];
  if (e && (e.code === "bad_request" || e.code === "too_many_devices") && e.detail) return e.detail;
  return (e && e.message) || String(e);
};


const timeFmt = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
const dateFmt = new Intl.DateTimeFormat([], { dateStyle: "short", timeStyle: "short" });
export const fmtTime = (ms) => {
  if (!ms) return "";
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString() ? timeFmt.format(d) : dateFmt.format(d);
};


// debounce calls f once calls to the function it returns stop for ms,
// with the arguments of the last.
export function debounce(f, ms) {
  let t = null;
  return (...a) => { clearTimeout(t); t = setTimeout(() => f(...a), ms); };
}


// confirmed asks for a second click before an action that cannot be
// undone: the first click on b arms it (its text, and its label for
// screen readers when one is given, say what the second click does) for
// 8 s, then b is as before; it returns true at the second click, which
// also puts b back as it was.
export function confirmed(b, text, label) {
  if (b.dataset.confirm) {
    disarm(b);
    return true;
  }
  b.dataset.confirm = "1";
  armed.set(b, { text: b.textContent, label: b.getAttribute("aria-label"), timer: setTimeout(() => disarm(b), 8000) });
  b.textContent = text;
  if (label) b.setAttribute("aria-label", label);
  return false;
}

// disarm puts a button armed by confirmed back as it was.
export function disarm(b) {
  const was = armed.get(b);
  delete b.dataset.confirm;
  if (!was) return;
  armed.delete(b);
  clearTimeout(was.timer);
  b.textContent = was.text;
  if (was.label === null) b.removeAttribute("aria-label");
  else b.setAttribute("aria-label", was.label);
}
const armed = new WeakMap();

// randomHex is n random bytes in hex: a message's client id for the
// server's deduplication.
export function randomHex(n) {
  const b = crypto.getRandomValues(new Uint8Array(n));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// drawQR draws rows of "0"/"1" as one SVG path with a 4-module quiet zone.
export function drawQR(svg, rows) {
  const n = rows.length;
  const q = 4;
  let d = "";
  rows.forEach((row, y) => {
    for (let x = 0; x < n; x++) if (row[x] === "1") d += `M${x + q} ${y + q}h1v1h-1z`;
  });
  svg.setAttribute("viewBox", `0 0 ${n + 2 * q} ${n + 2 * q}`);
  svg.setAttribute("shape-rendering", "crispEdges");
  svg.dataset.modules = String(n);
  const ns = "http://www.w3.org/2000/svg";
  const bg = document.createElementNS(ns, "rect");
  bg.setAttribute("width", "100%");
  bg.setAttribute("height", "100%");
  bg.setAttribute("fill", "#fff");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "#000");
  svg.append(bg, path);
}
