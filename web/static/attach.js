// sandi web client: attachments. Files, images, videos and voice notes
// are encrypted, uploaded, downloaded, checked and decrypted in the module
// (web/wasm), the encryption of uploads and the check and decryption of
// downloads in a worker that runs the module too (attachworker.js, started
// here); this file picks files (button, drag and drop, paste),
// records voice notes, makes image thumbnails, shows progress with a
// cancel button, and shows what arrives: images, videos and voice notes
// inline from blob URLs, everything else as a card with a save button.
//
// Names and types come from other users: they are only ever set as text,
// and only the media types listed in INLINE are shown inline (never SVG or
// HTML); everything else is a card, saved as application/octet-stream.
// app.js calls the functions of window.sandiAttach at the points it names
// and lends its helpers through window.sandiApp.

const $ = (id) => document.getElementById(id);
const app = () => window.sandiApp;

// INLINE: the media types shown in the page, by how.
const INLINE = new Map([
  ["image/png", "image"], ["image/jpeg", "image"], ["image/gif", "image"], ["image/webp", "image"],
  ["video/mp4", "video"], ["video/webm", "video"],
  ["audio/webm", "audio"], ["audio/ogg", "audio"], ["audio/mpeg", "audio"], ["audio/mp4", "audio"], ["audio/wav", "audio"],
]);
const baseType = (t) => String(t || "").split(";")[0].trim().toLowerCase();
const kindOf = (t) => INLINE.get(baseType(t)) || "file";

// AUTO: media up to this size load when they come into view; larger ones
// wait for a click.
const AUTO = 16 << 20;
// PER_MESSAGE: the most attachments one message carries (the server's
// limit); more files go in several messages.
const PER_MESSAGE = 32;
// THUMB: a thumbnail's longest side and largest size (protocol: ≤ 8 KiB).
const THUMB_SIDE = 128;
const THUMB_BYTES = 8 << 10;

const sizeFmt = new Intl.NumberFormat([], { maximumFractionDigits: 1 });
function fmtSize(n) {
  if (n < 1000) return n + " B";
  if (n < 1e6) return sizeFmt.format(n / 1e3) + " kB";
  if (n < 1e9) return sizeFmt.format(n / 1e6) + " MB";
  return sizeFmt.format(n / 1e9) + " GB";
}
function fmtDuration(s) {
  if (!(s > 0) || !isFinite(s)) return "";
  s = Math.max(1, Math.floor(s));
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

// safeName is a file name fit to save under: no directories, no control
// or reserved characters, no leading dots, at most 120 characters.
function safeName(name) {
  let n = String(name || "").replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, "");
  n = n.split(/[\\/]/).pop().replace(/[<>:"|?*]/g, "_").replace(/^[.\s]+/, "").trim();
  if (n.length > 120) {
    const dot = n.lastIndexOf(".");
    const ext = dot > 0 && n.length - dot <= 10 ? n.slice(dot) : "";
    n = n.slice(0, 120 - ext.length) + ext;
  }
  return n || "attachment";
}

const errorText = (e) => {
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
  return app().errorText(e);
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

// Downloads of the open chat, by conversation/seq/index: one download
// serves every node that shows the file; dropped with the chat.
let downloads = new Map();
let jobs = 0;
const jobId = () => "job" + ++jobs;

// clear forgets the open chat's files: its blob URLs are revoked, its
// downloads cancelled.
function clear() {
  for (const u of urls) URL.revokeObjectURL(u);
  urls.clear();
  for (const d of downloads.values()) d.abort.abort();
  downloads = new Map();
  if (seen) seen.disconnect();
}

// download fetches, verifies and decrypts attachment i of message m in
// the module, and resolves to a Blob; onProgress(done, total).
function download(m, i, onProgress) {
  const key = `${m.conversation}/${m.seq}/${i}`;
  let d = downloads.get(key);
  if (!d) {
    const id = jobId();
    const abort = new AbortController();
    d = { abort, listeners: new Set(), users: 0 };
    abort.signal.addEventListener("abort", () => sandi.cancel(id));
    d.promise = sandi.download(m.conversation, m.seq, i, id, (done, total) => {
      for (const f of d.listeners) f(done, total);
    }, opener(id));
    d.promise.catch(() => downloads.get(key) === d && downloads.delete(key)); // a later try starts afresh
    downloads.set(key, d);
  }
  d.users++;
  if (onProgress) d.listeners.add(onProgress);
  return {
    promise: d.promise.finally(() => d.listeners.delete(onProgress)),
    // cancel stops the download once no node waits for it.
    cancel: () => { if (--d.users <= 0) { d.abort.abort(); downloads.delete(key); } },
  };
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
// of its Blob: a download, or the sender's own file.
function attNode(a, load) {
  const { el } = app();
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
      if ((a.size || 0) <= AUTO) whenSeen(node, full);
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
    if ((a.size || 0) <= AUTO) whenSeen(node, load1);
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
  const a = app().el("a", { href: u, download: safeName(name), hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(u), 60000);
}

// nodes draws the attachments of a delivered message.
function nodes(m) {
  const list = m.attachments || [];
  if (list.length === 0) return null;
  const box = app().el("div", { class: "atts" });
  list.forEach((a, i) => box.append(attNode(a, (onProgress) => download(m, i, onProgress))));
  return box;
}

// ---- sending ----

// meta describes a file before it is sent: its name and type, and for
// images and videos the dimensions and a small JPEG thumbnail made here
// (the browser decodes; the module never does).
async function describe(file, extra) {
  const meta = { name: sendName(file.name), type: file.type || "application/octet-stream", ...(extra || {}) };
  const kind = kindOf(meta.type);
  try {
    if (kind === "image") {
      const bmp = await createImageBitmap(file);
      meta.width = bmp.width;
      meta.height = bmp.height;
      meta.thumbnail = await thumbnail(bmp, bmp.width, bmp.height);
      bmp.close();
    } else if (kind === "video") {
      Object.assign(meta, await videoFrame(file));
    }
  } catch (e) {
    console.info("no thumbnail for", meta.name, e && e.message); // sent without one
  }
  return meta;
}

// sendName is a file's name as a message may carry it: no directory, no
// control or format characters, at most 255 bytes of UTF-8.
function sendName(name) {
  const chars = [...String(name || "").split(/[\\/]/).pop()]
    .filter((c) => c === "\u200c" || c === "\u200d" || !/[\p{Cc}\p{Cf}\u2028\u2029]/u.test(c));
  const enc = new TextEncoder();
  while (enc.encode(chars.join("")).length > 255) chars.pop();
  const n = chars.join("");
  return n === "" || n === "." || n === ".." ? "attachment" : n;
}

// thumbnail draws src at most THUMB_SIDE px on a side and encodes it as a
// JPEG of at most THUMB_BYTES, lowering the quality, then the size.
async function thumbnail(src, w, h) {
  for (const side of [THUMB_SIDE, 96, 64]) {
    const scale = Math.min(1, side / Math.max(w, h));
    const c = document.createElement("canvas");
    c.width = Math.max(1, Math.round(w * scale));
    c.height = Math.max(1, Math.round(h * scale));
    c.getContext("2d").drawImage(src, 0, 0, c.width, c.height);
    for (const q of [0.7, 0.5, 0.35]) {
      const b = await new Promise((resolve) => c.toBlob(resolve, "image/jpeg", q));
      if (b && b.size <= THUMB_BYTES) return new Uint8Array(await b.arrayBuffer());
    }
  }
  return undefined;
}

// videoFrame reads a video's dimensions and duration and a thumbnail of
// an early frame, giving up after 5 seconds.
function videoFrame(file) {
  return new Promise((resolve, reject) => {
    const v = document.createElement("video");
    const u = URL.createObjectURL(file);
    const done = (f) => { clearTimeout(t); v.removeAttribute("src"); v.load(); URL.revokeObjectURL(u); f(); };
    const t = setTimeout(() => done(() => reject(new Error("the video did not load"))), 5000);
    v.muted = true;
    v.preload = "auto";
    v.onerror = () => done(() => reject(new Error("the browser cannot play this video")));
    v.onloadedmetadata = () => { v.currentTime = Math.min(0.1, v.duration / 2 || 0); };
    v.onseeked = async () => {
      const meta = { width: v.videoWidth, height: v.videoHeight, duration: isFinite(v.duration) ? v.duration : undefined };
      try {
        meta.thumbnail = await thumbnail(v, v.videoWidth, v.videoHeight);
      } catch (e) { /* dimensions only */ }
      done(() => resolve(meta));
    };
    v.src = u;
  });
}

// sendFiles sends files from the open chat, at most PER_MESSAGE per
// message; extra is added to each one's description (a voice note's
// duration).
function sendFiles(files, extra) {
  const A = app();
  const conv = A.st.current;
  if (!conv || files.length === 0 || $("composer-input").disabled) return;
  for (let i = 0; i < files.length; i += PER_MESSAGE) {
    A.sendPending(conv, "", files.slice(i, i + PER_MESSAGE).map((file) => ({ file, extra, status: "waiting", done: 0 })));
  }
}

// ---- the worker that encrypts uploads and decrypts downloads ----
// (attachworker.js) One worker for the page, started at the first
// transfer; its jobs by id.
let worker = null;
let workerBroken = false; // it did not start: the module works on the page's thread
const workerJobs = new Map(); // id → {resolve, reject, fail, size, counter, onPart?, onRead?}
const workerBytes = { sealed: 0, opened: 0 }; // bytes the worker encrypted, decrypted

function startWorker() {
  if (workerBroken) return null;
  if (worker || typeof Worker === "undefined") return worker;
  let w;
  try {
    w = new Worker("web/attachworker.js");
  } catch (e) {
    console.info("no worker for attachments:", e && e.message); // the module works on the page's thread
    return null;
  }
  worker = w;
  w.onmessage = async (ev) => {
    const m = ev.data;
    const j = workerJobs.get(m.id);
    if (!j) {
      if (m.op === "part") w.postMessage({ op: "cancel", id: m.id }); // cancelled meanwhile
      return;
    }
    switch (m.op) {
    case "part":
      try {
        await j.onPart(m.part, m.fingerprint);
      } catch (e) {
        j.fail(e);
        return;
      }
      w.postMessage({ op: "ack", id: m.id });
      break;
    case "read":
      if (j.onRead) j.onRead(m.n);
      break;
    case "done":
      workerJobs.delete(m.id);
      workerBytes[j.counter] += j.size;
      j.resolve(m.result);
      break;
    case "error":
      workerJobs.delete(m.id);
      if (m.code === "worker_unavailable") workerBroken = true; // a retry works without it
      j.reject(Object.assign(new Error(m.message), { code: m.code }));
      break;
    }
  };
  w.onerror = (ev) => {
    ev.preventDefault();
    workerBroken = true; // a retry works without it
    for (const j of workerJobs.values()) j.reject(new Error("The attachments' worker failed: " + (ev.message || "unknown error")));
    workerJobs.clear();
    worker = null;
  };
  return w;
}

// workerJob is a job of the worker for transfer id: start(msg, job)
// posts msg and resolves to the worker's result; cancel() stops it.
function workerJob(id) {
  const w = startWorker();
  if (!w) return undefined;
  const cancel = () => {
    w.postMessage({ op: "cancel", id });
    const j = workerJobs.get(id);
    if (!j) return;
    workerJobs.delete(id);
    j.reject(Object.assign(new Error("canceled"), { code: "canceled" }));
  };
  const start = (msg, job) => new Promise((resolve, reject) => {
    const fail = (e) => { workerJobs.delete(id); w.postMessage({ op: "cancel", id }); reject(e); };
    workerJobs.set(id, { ...job, resolve, reject, fail });
    w.postMessage({ ...msg, id });
  });
  return { start, cancel };
}

// sealer is the module's handle on the worker for upload id of file:
// seal(key, partSize, onPart, onRead) has the worker encrypt it, handing
// each part to onPart (a Promise: the worker waits for it) and resolving
// to the ciphertext's digest.
function sealer(file, id) {
  const j = workerJob(id);
  return j && {
    seal: (key, partSize, onPart, onRead) => j.start({ op: "seal", file, key, partSize }, { onPart, onRead, size: file.size, counter: "sealed" }),
    cancel: j.cancel,
  };
}

// opener is the module's handle on the worker for download id:
// open(ciphertext, key, digest, size, type) has the worker check the
// ciphertext's digest and decrypt it into a Blob of type.
function opener(id) {
  const j = workerJob(id);
  return j && {
    open: (ciphertext, key, digest, size, type) => j.start({ op: "open", ciphertext, key, digest, size, type }, { size, counter: "opened" }),
    cancel: j.cancel,
  };
}

// upload runs the uploads of a pending message that are not done, one at
// a time, and resolves to the module's handles of all its attachments;
// it rejects when one fails. A cancelled upload leaves the message.
async function uploadAll(p, redraw) {
  for (const f of p.files) {
    if (f.status === "done" || f.status === "cancelled") continue;
    f.status = "uploading";
    f.done = 0;
    f.error = "";
    redraw(f);
    const id = jobId();
    const abort = new AbortController();
    abort.signal.addEventListener("abort", () => sandi.cancel(id));
    f.cancel = () => abort.abort();
    try {
      if (!f.meta) f.meta = await describe(f.file, f.extra);
      if (f.status === "cancelled") continue;
      f.handle = await sandi.upload(p.conv, f.file, f.meta, id, (done, total) => {
        f.done = done;
        f.total = total;
        redraw(f);
      }, sealer(f.file, id));
      f.status = "done";
    } catch (e) {
      if (f.status !== "cancelled") {
        f.status = "failed";
        f.error = errorText(e);
        redraw(f);
        throw e;
      }
    } finally {
      f.cancel = null;
    }
    redraw(f);
  }
  return p.files.filter((f) => f.status === "done").map((f) => f.handle);
}

// pendingNodes draws the files of a message being sent, each with its
// upload's progress and a cancel button; once sent, they show as the
// receivers see them, from the local files.
function pendingNodes(p) {
  const { el } = app();
  const box = el("div", { class: "atts" });
  for (const f of p.files) {
    const name = f.file.name || "attachment";
    const bar = el("progress", { max: "1", value: "0", "aria-label": "Uploading " + name });
    const state = el("span", { class: "att-meta" });
    const cancel = el("button", { type: "button", class: "att-cancel", text: "Cancel", "aria-label": "Cancel the upload of " + name });
    cancel.onclick = () => {
      const running = !!f.cancel;
      f.status = "cancelled";
      if (running) f.cancel();
      draw();
      // A message that failed and has nothing left to send goes.
      if (!running && p.status === "failed" && p.files.every((g) => g.status === "cancelled")) app().dropPending(p);
    };
    const node = el("div", { class: "att att-upload", "data-state": f.status },
      el("div", { class: "att-info" }, el("span", { class: "att-name", text: name, title: name }), state),
      el("div", { class: "att-progress" }, bar, cancel));
    const draw = () => {
      node.dataset.state = f.status;
      bar.value = f.total ? f.done / f.total : 0;
      bar.hidden = f.status !== "uploading";
      cancel.hidden = f.status === "done" || f.status === "cancelled" || p.status === "sent";
      cancel.textContent = f.status === "failed" ? "Remove" : "Cancel";
      cancel.setAttribute("aria-label", (f.status === "failed" ? "Remove " : "Cancel the upload of ") + name);
      state.textContent = {
        waiting: "waiting · " + fmtSize(f.file.size),
        uploading: "encrypting and uploading · " + fmtSize(f.done || 0) + " of " + fmtSize(f.file.size),
        done: "uploaded · " + fmtSize(f.file.size),
        failed: f.error || "not uploaded",
        cancelled: "cancelled",
      }[f.status] || "";
    };
    draw();
    f.redraw = draw;
    box.append(node);
  }
  return box;
}

// sentNodes draws the files of a message this page sent, from the files
// themselves (no download).
function sentNodes(p, m) {
  const list = (m && m.attachments) || [];
  const files = p.files.filter((f) => f.status === "done");
  const box = app().el("div", { class: "atts" });
  list.forEach((a, i) => {
    const file = files[i] && files[i].file;
    box.append(attNode(a, () => ({ promise: Promise.resolve(file), cancel: () => {} })));
  });
  return box;
}

// ---- voice notes ----
let rec = null; // {recorder, stream, chunks, start, timer, send, stopping}
let pressAt = 0, pressed = false;

async function startRecording() {
  if (rec || $("composer-input").disabled) return;
  const r = rec = { chunks: [], send: true };
  drawRecording();
  try {
    r.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    rec = null;
    drawRecording("The microphone is not available: " + (e.message || e.name));
    return;
  }
  const type = ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus", "audio/ogg"].find((t) => MediaRecorder.isTypeSupported(t));
  r.recorder = new MediaRecorder(r.stream, type ? { mimeType: type } : undefined);
  r.recorder.ondataavailable = (e) => { if (e.data.size) r.chunks.push(e.data); };
  r.recorder.onstop = () => finishRecording(r);
  r.recorder.start(250);
  r.start = performance.now();
  r.timer = setInterval(() => drawRecording(), 250);
  drawRecording();
  if (r.stopping) r.recorder.stop(); // released before the microphone was there
}

// stopRecording ends the recording; send: whether to send it.
function stopRecording(send) {
  const r = rec;
  if (!r) return;
  r.send = send;
  r.stopping = true;
  if (r.recorder && r.recorder.state !== "inactive") r.recorder.stop();
}

function finishRecording(r) {
  const duration = (performance.now() - r.start) / 1000;
  clearInterval(r.timer);
  for (const t of r.stream.getTracks()) t.stop();
  rec = null;
  drawRecording();
  if (!r.send || r.chunks.length === 0) return;
  const type = baseType(r.recorder.mimeType || r.chunks[0].type) || "audio/webm";
  const ext = type === "audio/ogg" ? "ogg" : "webm";
  const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
  const file = new File(r.chunks, `voice-note-${stamp}.${ext}`, { type });
  sendFiles([file], { duration });
}

function drawRecording(problem) {
  const b = $("record-button");
  const s = $("record-status");
  b.setAttribute("aria-pressed", String(!!rec));
  b.dataset.recording = rec ? "1" : "";
  b.setAttribute("aria-label", rec ? "Stop and send the voice note" : "Record a voice note");
  s.hidden = !rec && !problem;
  s.textContent = problem || (rec && rec.start ? `Recording ${fmtDuration((performance.now() - rec.start) / 1000) || "0:00"}: click stop to send, Esc to discard.` : "Starting the microphone…");
}

// A click toggles recording; holding the button records until it is
// released.
$("record-button").addEventListener("pointerdown", () => {
  if (rec) return;
  pressed = true;
  pressAt = performance.now();
  startRecording();
});
$("record-button").addEventListener("click", () => {
  if (pressed) {
    pressed = false;
    if (performance.now() - pressAt > 600) stopRecording(true); // held
    return; // a short press: recording goes on until the next click
  }
  if (rec) stopRecording(true);
  else startRecording();
});
$("record-button").addEventListener("contextmenu", (ev) => ev.preventDefault()); // a long press on a phone
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && rec) stopRecording(false); });

// ---- picking files: the button, drag and drop, paste ----
$("attach-button").addEventListener("click", () => $("attach-input").click());
$("attach-input").addEventListener("change", () => {
  const files = [...$("attach-input").files];
  $("attach-input").value = "";
  sendFiles(files);
});
const dragsFiles = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes("Files");
let dragDepth = 0;
$("pane-chat").addEventListener("dragenter", (ev) => {
  if (!dragsFiles(ev)) return;
  ev.preventDefault();
  dragDepth++;
  $("pane-chat").dataset.drop = "1";
});
$("pane-chat").addEventListener("dragover", (ev) => {
  if (!dragsFiles(ev)) return;
  ev.preventDefault();
  ev.dataTransfer.dropEffect = $("composer-input").disabled ? "none" : "copy";
});
$("pane-chat").addEventListener("dragleave", () => {
  if (--dragDepth <= 0) {
    dragDepth = 0;
    delete $("pane-chat").dataset.drop;
  }
});
$("pane-chat").addEventListener("drop", (ev) => {
  if (!dragsFiles(ev)) return;
  ev.preventDefault();
  dragDepth = 0;
  delete $("pane-chat").dataset.drop;
  sendFiles([...ev.dataTransfer.files]);
});
$("composer-input").addEventListener("paste", (ev) => {
  const files = [...((ev.clipboardData && ev.clipboardData.files) || [])];
  if (files.length === 0) return;
  ev.preventDefault();
  sendFiles(files);
});

// summary is a message's line in the conversation list.
function summary(m) {
  const list = m.attachments || [];
  if (list.length === 0) return m.text;
  const kind = kindOf(list[0].type);
  const what = list.length > 1 ? `${list.length} files` :
    kind === "audio" && list[0].duration ? "Voice note " + fmtDuration(list[0].duration) :
    ({ image: "Photo", video: "Video", audio: "Audio" }[kind] || "File") + ": " + (list[0].name || "attachment");
  return m.text ? `${what}: ${m.text}` : what;
}

// ---- what app.js calls ----
// workerBytes: how much the worker encrypted and decrypted (the tests ask).
window.sandiAttach = { nodes, pendingNodes, sentNodes, uploadAll, clear, summary, kindOf, safeName, workerBytes: () => ({ ...workerBytes }) };
