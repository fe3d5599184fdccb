// sandi web client: attachments as they show in a chat. Files, images,
// videos and voice notes are encrypted, uploaded, downloaded, checked and
// decrypted in the module (web/wasm), the encryption of uploads and the
// check and decryption of downloads in a worker that runs the module too
// (transfer.js); sending them is upload.js, recording voice notes voice.js.
// This file shows what arrives: images, videos and voice notes inline from
// blob URLs, everything else as a card with a save button, each with its
// download's progress and a cancel button.
//
// Names and types come from other users: they are only ever set as text,
// and only the media types listed in INLINE are shown inline (never SVG or
// HTML); everything else is a card, saved as application/octet-stream.
import { el, errorText as appErrorText } from "./util.js";
import { download, cancelDownloads } from "./transfer.js";

// INLINE: the media types shown in the page, by how.
const INLINE = new Map([
  ["image/png", "image"], ["image/jpeg", "image"], ["image/gif", "image"], ["image/webp", "image"],
  ["video/mp4", "video"], ["video/webm", "video"],
  ["audio/webm", "audio"], ["audio/ogg", "audio"], ["audio/mpeg", "audio"], ["audio/mp4", "audio"], ["audio/wav", "audio"],
]);
export const baseType = (t) => String(t || "").split(";")[0].trim().toLowerCase();
export const kindOf = (t) => INLINE.get(baseType(t)) || "file";

// AUTO: media up to this size load when they come into view; larger ones
// wait for a click.
const AUTO = 16 << 20;

const sizeFmt = new Intl.NumberFormat([], { maximumFractionDigits: 1 });
export function fmtSize(n) {
  if (n < 1000) return n + " B";
  if (n < 1e6) return sizeFmt.format(n / 1e3) + " kB";
  if (n < 1e9) return sizeFmt.format(n / 1e6) + " MB";
  return sizeFmt.format(n / 1e9) + " GB";
}
export function fmtDuration(s) {
  if (!(s > 0) || !isFinite(s)) return "";
  s = Math.max(1, Math.floor(s));
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

// safeName is a file name fit to save under: no directories, no control
// or reserved characters, no leading dots, at most 120 characters.
export function safeName(name) {
  let n = String(name || "").replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, "");
  n = n.split(/[\\/]/).pop().replace(/[<>:"|?*]/g, "_").replace(/^[.\s]+/, "").trim();
  if (n.length > 120) {
    const dot = n.lastIndexOf(".");
    const ext = dot > 0 && n.length - dot <= 10 ? n.slice(dot) : "";
    n = n.slice(0, 120 - ext.length) + ext;
  }
  return n || "attachment";
}

export const errorText = (e) => {
  const byCode = {
    server_misbehaved: "The server changed this file: it does not match what the sender encrypted. It is not shown.",
    blob_too_large: "This file is larger than the server accepts.",
    quota_exceeded: "Your account has used up its storage for files on the server.",
    not_found: "The server no longer has this file.",
    attachment_gone: "The server no longer has this file.",
    attachment_corrupt: "This file does not decrypt with its key: the sender's device sent it broken.",
    canceled: "Cancelled.",
  };
  if (e && byCode[e.code]) return byCode[e.code];
  return appErrorText(e);
};

// ---- blob URLs: revoked when the chat that shows them closes ----
const urls = new Set();
function objectURL(blob) {
  const u = URL.createObjectURL(blob);
  urls.add(u);
  return u;
}
function revoke(u) {
  if (u && urls.delete(u)) URL.revokeObjectURL(u);
}

// clear forgets the open chat's files: its blob URLs are revoked, its
// downloads cancelled.
export function clear() {
  for (const u of urls) URL.revokeObjectURL(u);
  urls.clear();
  cancelDownloads();
  if (seen) seen.disconnect();
}

// ---- showing an attachment ----

// seen loads media when they come into view.
let seen = null;
function whenSeen(node, f) {
  if (!("IntersectionObserver" in window)) return f();
  if (!seen) {
    seen = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        seen.unobserve(e.target);
        const g = e.target.__whenSeen;
        delete e.target.__whenSeen;
        if (g) g();
      }
    }, { rootMargin: "200px" });
  }
  node.__whenSeen = f;
  seen.observe(node);
}

// thumbURL makes a blob URL of a thumbnail, if it is a JPEG.
function thumbURL(t) {
  if (!t) return null;
  let b;
  try {
    const s = atob(t.replace(/-/g, "+").replace(/_/g, "/"));
    b = Uint8Array.from(s, (c) => c.charCodeAt(0));
  } catch (e) {
    return null;
  }
  if (b.length < 3 || b[0] !== 0xff || b[1] !== 0xd8 || b[2] !== 0xff) return null;
  return objectURL(new Blob([b], { type: "image/jpeg" }));
}

// dims gives the box to reserve for media: the sender's dimensions,
// clamped (they are another user's numbers), or 4:3.
function dims(a) {
  const w = Math.round(Number(a.width)), h = Math.round(Number(a.height));
  if (w > 0 && h > 0 && w <= 20000 && h <= 20000 && w / h < 20 && h / w < 20) return [w, h];
  return [320, 240];
}

// attNode draws one attachment. load(onProgress) returns {promise, cancel}
// of its Blob: a download, or the sender's own file. With hold, media wait
// for a click whatever their size (a message request: a download tells
// the server, and a sender colluding with it, that the request was seen).
export function attNode(a, load, hold = false) {
  const kind = kindOf(a.type);
  const name = a.name || "attachment";
  const node = el("div", { class: "att att-" + kind, "data-kind": kind, "data-state": "idle" });
  const bar = el("progress", { max: "1", value: "0", "aria-label": "Downloading " + name });
  const cancelBtn = el("button", { type: "button", class: "att-cancel", text: "Cancel", "aria-label": "Cancel the download of " + name });
  const progress = el("div", { class: "att-progress", hidden: true }, bar, cancelBtn);
  const error = el("p", { class: "att-error", role: "alert", hidden: true });
  const info = el("div", { class: "att-info" },
    el("span", { class: "att-name", text: name, title: name }),
    el("span", { class: "att-meta", text: [kind === "file" ? baseType(a.type) || "file" : "", fmtDuration(a.duration), fmtSize(a.size || 0)].filter(Boolean).join(" · ") }));

  let job = null;
  const setState = (s) => { node.dataset.state = s; };
  // fetchBlob runs load with the progress bar and cancel button.
  function fetchBlob() {
    if (job) return job.promise;
    error.hidden = true;
    progress.hidden = false;
    bar.value = 0;
    setState("loading");
    job = load((done, total) => { if (total > 0) bar.value = done / total; });
    const mine = job;
    cancelBtn.onclick = () => { mine.cancel(); };
    return job.promise.then((blob) => {
      progress.hidden = true;
      return blob;
    }, (e) => {
      progress.hidden = true;
      job = null;
      setState(e && e.code === "canceled" ? "idle" : "error");
      if (!(e && e.code === "canceled")) {
        error.textContent = errorText(e);
        error.hidden = false;
      }
      throw e;
    });
  }
  const quiet = (f) => (...args) => f(...args).catch(() => {}); // shown in the node already
  // offer puts a button that runs f in box.
  const offer = (box, label, f) => {
    box.append(el("button", { type: "button", class: "att-show", text: label, onclick: (ev) => { ev.target.remove(); f(); } }));
  };
  // again offers f once more after a load was cancelled or failed.
  const again = (box, label, f) => {
    const s = node.dataset.state;
    if ((s === "idle" || s === "error") && !box.querySelector(".att-show")) offer(box, s === "error" ? "Try again" : label, f);
  };

  if (kind === "image" || kind === "video") {
    const [w, h] = dims(a);
    const img = el("img", { alt: name, width: String(w), height: String(h), class: "att-preview" });
    const thumb = thumbURL(a.thumbnail);
    if (thumb) img.src = thumb;
    const box = el("div", { class: "att-box" }, img);
    box.style.aspectRatio = `${w} / ${h}`;
    node.append(box, progress, error, info);
    if (kind === "image") {
      const full = quiet(async () => {
        const blob = await fetchBlob().finally(() => again(box, "Show image (" + fmtSize(a.size || 0) + ")", full));
        const u = objectURL(blob);
        img.src = u;
        try {
          await img.decode();
        } catch (e) {
          revoke(u);
          img.src = thumb || "";
          setState("error");
          error.textContent = "This image cannot be shown (it is not a valid " + baseType(a.type) + ").";
          error.hidden = false;
          return;
        }
        revoke(thumb);
        setState("full");
      });
      if (!hold && (a.size || 0) <= AUTO) whenSeen(node, full);
      else offer(box, "Show image (" + fmtSize(a.size) + ")", full);
    } else {
      const play = el("button", { type: "button", class: "att-show att-play", text: "▶", title: "Play (" + fmtSize(a.size || 0) + ")", "aria-label": "Play the video " + name + " (" + fmtSize(a.size || 0) + ")" });
      play.onclick = quiet(async () => {
        play.hidden = true;
        let blob;
        try {
          blob = await fetchBlob();
        } finally {
          play.hidden = node.dataset.state !== "idle" && node.dataset.state !== "error";
        }
        const v = el("video", { controls: true, playsinline: true, preload: "metadata", class: "att-preview", width: String(w), height: String(h) });
        v.src = objectURL(blob);
        img.replaceWith(v);
        revoke(thumb);
        setState("full");
        play.remove();
      });
      box.append(play);
    }
    return node;
  }

  if (kind === "audio") {
    const audio = el("audio", { controls: true, preload: "metadata", class: "att-audio" });
    const load1 = quiet(async () => {
      const blob = await fetchBlob().finally(() => again(node, "Load voice note (" + fmtSize(a.size || 0) + ")", load1));
      audio.src = objectURL(blob);
      knownDuration(audio);
      setState("full");
    });
    node.append(audio, progress, error, info);
    if (!hold && (a.size || 0) <= AUTO) whenSeen(node, load1);
    else offer(node, "Load voice note (" + fmtSize(a.size) + ")", load1);
    return node;
  }

  const save = el("button", { type: "button", class: "att-save", text: "Save", "aria-label": "Save " + name });
  save.onclick = quiet(async () => {
    save.disabled = true;
    try {
      const blob = await fetchBlob();
      job = null; // the next click saves again
      setState("saved");
      saveAs(blob, name);
    } finally {
      save.disabled = false;
    }
  });
  node.append(el("div", { class: "att-card" }, fileIcon(), info, save), progress, error);
  return node;
}

// fileIcon draws a sheet of paper.
function fileIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon att-icon");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M6 2.5h8l4.5 4.5v14.5H6zM14 2.5V7h4.5");
  svg.append(path);
  return svg;
}

// knownDuration makes a recorded WebM's duration known: MediaRecorder
// writes none, so the player reports Infinity until it has seen the end.
function knownDuration(audio) {
  audio.addEventListener("loadedmetadata", () => {
    if (audio.duration !== Infinity) return;
    const back = () => {
      if (audio.duration === Infinity) return;
      audio.removeEventListener("durationchange", back);
      audio.currentTime = 0;
    };
    audio.addEventListener("durationchange", back);
    audio.currentTime = 1e9;
  }, { once: true });
}

// saveAs hands blob to the browser's downloads under a sanitised name.
function saveAs(blob, name) {
  const u = URL.createObjectURL(new Blob([blob], { type: "application/octet-stream" }));
  const a = el("a", { href: u, download: safeName(name), hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(u), 60000);
}

// nodes draws the attachments of a delivered message; with hold (a
// message request), media load only when clicked.
export function nodes(m, hold = false) {
  const list = m.attachments || [];
  if (list.length === 0) return null;
  const box = el("div", { class: "atts" });
  list.forEach((a, i) => box.append(attNode(a, (onProgress) => download(m, i, onProgress), hold)));
  return box;
}

// summary is a message's line in the conversation list.
export function summary(m) {
  const list = m.attachments || [];
  if (list.length === 0) return m.text;
  const kind = kindOf(list[0].type);
  const what = list.length > 1 ? `${list.length} files` :
    kind === "audio" && list[0].duration ? "Voice note " + fmtDuration(list[0].duration) :
    ({ image: "Photo", video: "Video", audio: "Audio" }[kind] || "File") + ": " + (list[0].name || "attachment");
  return m.text ? `${what}: ${m.text}` : what;
}

