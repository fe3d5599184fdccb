// sandi web client: sending attachments. Files are picked with the
// button, dropped on the chat or pasted; each is described here (name,
// type, and for images and videos the dimensions and a small JPEG
// thumbnail the browser makes), then encrypted and uploaded by the module
// with its progress and a cancel button, at most PER_MESSAGE per message.
import { $, el } from "./util.js";
import { st } from "./state.js";
import { sendPending, dropPending } from "./composer.js";
import { attNode, kindOf, fmtSize, errorText } from "./attach.js";
import { jobId, sealer } from "./transfer.js";
import { keepFiles } from "./outbox.js";

// PER_MESSAGE: the most attachments one message carries (the server's
// limit); more files go in several messages.
const PER_MESSAGE = 32;
// THUMB: a thumbnail's longest side and largest size (protocol: ≤ 8 KiB).
const THUMB_SIDE = 128;
const THUMB_BYTES = 8 << 10;

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
export function sendFiles(files, extra) {
  const conv = st.current;
  if (!conv || files.length === 0 || $("composer-input").disabled) return;
  for (let i = 0; i < files.length; i += PER_MESSAGE) {
    sendPending(conv, "", files.slice(i, i + PER_MESSAGE).map((file) => ({ file, extra, status: "waiting", done: 0 })));
  }
}

export async function uploadAll(p, redraw) {
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
export function pendingNodes(p) {
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
      // A reload does not bring it back.
      if (!p.unkept) keepFiles(p, st.me.deviceId).catch((e) => console.warn("outbox:", e));
      // A message that failed and has nothing left to send goes.
      if (!running && p.status === "failed" && p.files.every((g) => g.status === "cancelled")) dropPending(p);
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
export function sentNodes(p, m) {
  const list = (m && m.attachments) || [];
  const files = p.files.filter((f) => f.status === "done");
  const box = el("div", { class: "atts" });
  list.forEach((a, i) => {
    const file = files[i] && files[i].file;
    box.append(attNode(a, () => ({ promise: Promise.resolve(file), cancel: () => {} })));
  });
  return box;
}


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

