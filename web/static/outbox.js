// sandi web client: the outbox of messages with files. The module keeps
// the text of a message not yet sent (sandi.outboxPut: its storage holds
// JSON); a message with files is kept here instead, in a database of the
// page: its conversation, text, time and the files themselves (File
// objects, which IndexedDB stores by structured clone), under its client
// id, until the server has it. A reload puts it back as pending and sends
// it again under the same client id (the server stores it once).
//
// What is kept is plaintext the user chose to send, on the user's own
// device, as the module's outbox keeps texts; it goes when the message is
// sent or dropped, and logging out deletes the database. Each record names
// the device that kept it: a record of another device (a logout whose
// deletion failed, then a new login) is deleted, never sent.

const DB = "sandi-outbox";
const STORE = "messages";

let opened = null;
function open() {
  if (!opened) {
    opened = new Promise((resolve, reject) => {
      const r = indexedDB.open(DB, 1);
      r.onupgradeneeded = () => r.result.createObjectStore(STORE, { keyPath: "clientId" });
      r.onsuccess = () => {
        const db = r.result;
        // A deletion (deleteOutbox) waits for no open connection.
        db.onversionchange = () => { db.close(); opened = null; };
        resolve(db);
      };
      r.onerror = () => reject(r.error);
    });
    opened.catch(() => { opened = null; }); // the next call tries again
  }
  return opened;
}

// tx runs f(store) in a transaction and resolves, once it is committed
// to disk, to the result of the request f returns.
async function tx(mode, f) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode, { durability: "strict" });
    const req = f(t.objectStore(STORE));
    t.oncomplete = () => resolve(req && req.result);
    // A full disk or a refused quota aborts the transaction
    // (QuotaExceededError).
    t.onabort = () => reject(t.error || new Error("IndexedDB refused to store the message"));
  });
}

// keepFiles keeps pending message p ({clientId, conv, text, at, files})
// with its files that are not cancelled, for device; with none left, it
// forgets it. It rejects when the browser refuses to store it.
export function keepFiles(p, device) {
  const files = p.files.filter((f) => f.status !== "cancelled").map((f) => ({ file: f.file, extra: f.extra }));
  if (files.length === 0) return forgetFiles(p.clientId);
  return tx("readwrite", (s) => s.put({ clientId: p.clientId, device, conversation: p.conv, text: p.text, at: p.at, files }));
}

// forgetFiles forgets the message kept under clientId.
export const forgetFiles = (clientId) => tx("readwrite", (s) => s.delete(clientId));

// keptFiles lists the kept messages of device (each {clientId,
// conversation, text, at, files: [{file, extra}]}) and deletes those of
// any other.
export async function keptFiles(device) {
  const all = await tx("readonly", (s) => s.getAll());
  const mine = all.filter((k) => k.device === device);
  if (mine.length < all.length) {
    await tx("readwrite", (s) => { for (const k of all) if (k.device !== device) s.delete(k.clientId); });
  }
  return mine;
}

// deleteOutbox deletes the database, with every file kept in it.
export function deleteOutbox() {
  if (opened) opened.then((db) => db.close(), () => {});
  opened = null;
  return new Promise((resolve, reject) => {
    const r = indexedDB.deleteDatabase(DB);
    r.onsuccess = () => resolve();
    r.onerror = () => reject(r.error);
  });
}

// For the browser tests: what is kept (of every device), and keeping.
window.sandiOutbox = { list: () => tx("readonly", (s) => s.getAll()), keep: keepFiles };
