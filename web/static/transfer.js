// sandi web client: moving attachments' bytes. The downloads of the open
// chat (one download serves every node that shows a file), and the worker
// that encrypts uploads and checks and decrypts downloads off the page's
// thread (attachworker.js, started at the first transfer), which the
// module is handed as a sealer or an opener.

let jobs = 0;
// jobId names a transfer for the module and the worker.
export const jobId = () => "job" + ++jobs;

// Downloads of the open chat, by conversation/seq/index: one download
// serves every node that shows the file; dropped with the chat.
let downloads = new Map();

// cancelDownloads cancels the open chat's downloads.
export function cancelDownloads() {
  for (const d of downloads.values()) d.abort.abort();
  downloads = new Map();
}

// download fetches, verifies and decrypts attachment i of message m in
// the module, and resolves to a Blob; onProgress(done, total).
export function download(m, i, onProgress) {
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

// ---- the worker ----
// One worker for the page, started at the first transfer; its jobs by id.
let worker = null;
let workerBroken = false; // it did not start: the module works on the page's thread
const workerJobs = new Map(); // id → {resolve, reject, fail, size, counter, onPart?, onRead?}
const bytes = { sealed: 0, opened: 0 }; // bytes the worker encrypted, decrypted

// workerBytes says how much the worker encrypted and decrypted.
export const workerBytes = () => ({ ...bytes });

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
      bytes[j.counter] += j.size;
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
export function sealer(file, id) {
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
