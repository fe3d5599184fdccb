// sandi web client: the worker that encrypts the files the page uploads,
// and checks and decrypts those it downloads, off the page's thread. It
// runs the page's own module (sandi.wasm, from the browser's cache) in its
// worker mode (web/wasm/worker.go), which offers only sandiWorker.seal,
// .open and .cancel and never opens the device's state. attach.js talks
// to it with messages:
//
//   page → worker  {op: "seal", id, file, key, partSize}  encrypt file under key
//                  {op: "ack", id}                        the last part was taken
//                  {op: "open", id, ciphertext, key, digest, size, type}
//                                                         check and decrypt a Blob
//                  {op: "cancel", id}
//   worker → page  {op: "part", id, part, fingerprint}    part's buffer transferred
//                  {op: "read", id, n}                    bytes of the file read
//                  {op: "done", id, result} | {op: "error", id, message, code}
//                  (result: seal's digest; open's {blob} | {mismatch} | {corrupt})
/* global Go, sandiWorker */
importScripts("./wasm_exec.js"); // the hashed name: the service worker caches it

const ready = (async () => {
  const loaded = new Promise((resolve) => { self.sandiLoaded = resolve; });
  const go = new Go();
  go.argv = ["sandi", "worker"];
  // "/web/sandi.wasm": the server gives the hashed name the page loaded.
  const { instance } = await WebAssembly.instantiateStreaming(fetch("/web/sandi.wasm"), go.importObject);
  go.run(instance);
  await loaded;
})();

// acks: the resolve of the Promise of each job's part on its way.
const acks = new Map();
function settle(id) {
  const a = acks.get(id);
  acks.delete(id);
  if (a) a();
}

self.onmessage = async (ev) => {
  const m = ev.data;
  try {
    await ready;
  } catch (e) {
    if (m.op === "seal" || m.op === "open") self.postMessage({ op: "error", id: m.id, code: "worker_unavailable", message: "The attachments' worker did not start: " + (e.message || e) });
    return;
  }
  switch (m.op) {
  case "ack":
    settle(m.id);
    break;
  case "cancel":
    sandiWorker.cancel(m.id);
    settle(m.id); // a part that will not be taken
    break;
  case "seal":
    try {
      const digest = await sandiWorker.seal(m.id, m.file, m.key, m.partSize,
        (part, fingerprint) => new Promise((resolve) => {
          acks.set(m.id, resolve);
          self.postMessage({ op: "part", id: m.id, part, fingerprint }, [part.buffer]);
        }),
        (n) => self.postMessage({ op: "read", id: m.id, n }));
      self.postMessage({ op: "done", id: m.id, result: digest });
    } catch (e) {
      self.postMessage({ op: "error", id: m.id, message: String((e && e.message) || e), code: e && e.code });
    } finally {
      acks.delete(m.id);
    }
    break;
  case "open":
    try {
      const result = await sandiWorker.open(m.id, m.ciphertext, m.key, m.digest, m.size, m.type);
      self.postMessage({ op: "done", id: m.id, result });
    } catch (e) {
      self.postMessage({ op: "error", id: m.id, message: String((e && e.message) || e), code: e && e.code });
    }
    break;
  }
};
