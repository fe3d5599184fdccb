// sandi web client: the composer and the messages this browser sends.
// Enter sends (Shift+Enter: a new line); a message shows as pending until
// the server has it, is kept in an outbox (IndexedDB: the module's for a
// text, outbox.js's for a message with files) so that a reload sends it
// again, and is retried when the connection comes back or when the user
// asks (Retry).
import { $, el, errorText, fmtTime, randomHex } from "./util.js";
import { st } from "./state.js";
import { drawList } from "./list.js";
import { appendToChat } from "./chat.js";
import * as actions from "./actions.js";
import * as trust from "./trust.js";
import { uploadAll, pendingNodes, sentNodes } from "./upload.js";
import { keepFiles, forgetFiles, keptFiles } from "./outbox.js";

// Enter sends; Shift+Enter is a new line.
$("composer-input").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    $("composer").requestSubmit();
  }
});
$("composer").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = $("composer-input");
  const text = input.value;
  if (!text.trim() || !st.current) return;
  if (actions.submit(st.current, text)) return;
  input.value = "";
  sendPending(st.current, text);
});

// sendPending shows a message being sent (with files: upload.js's
// descriptions of them) and sends it. Its clientId is its id for the
// server's deduplication: kept across retries, so a retry of a send whose
// answer was lost stores nothing twice.
export function sendPending(conv, text, files) {
  const p = { localId: ++st.localId, clientId: randomHex(16), conv, text, files, status: "sending", at: Date.now() };
  if (!st.pending.has(p.conv)) st.pending.set(p.conv, []);
  st.pending.get(p.conv).push(p);
  appendToChat(pendingNode(p));
  // A message is kept until it is sent: a reload sends it again. A
  // browser that refuses to keep it (its quota) sends it all the same,
  // and the message says it would not survive a reload.
  const kept = files ? keepFiles(p, st.me.deviceId) : sandi.outboxPut(p.clientId, conv, text);
  kept.catch((e) => {
    console.warn("outbox:", e);
    p.unkept = true;
  }).then(() => trySend(p));
}

// unkeep forgets p in its outbox: it is sent or given up.
function unkeep(p) {
  (p.files ? forgetFiles(p.clientId) : sandi.outboxDelete(p.clientId)).catch((e) => console.warn("outbox:", e));
}

// loadOutbox puts the messages a reload interrupted back as pending,
// and sends them.
export async function loadOutbox() {
  let kept = [];
  try {
    kept = await sandi.outbox();
  } catch (e) {
    console.warn("outbox:", e);
  }
  // Messages with files, in the page's own outbox.
  try {
    kept = [...kept, ...await keptFiles(st.me.deviceId)].sort((a, b) => a.at - b.at);
  } catch (e) {
    console.warn("outbox:", e);
  }
  // A message sent from this page before the outbox was read is in it
  // too, already pending: it is not sent a second time.
  const pending = new Set([...st.pending.values()].flat().map((p) => p.clientId));
  for (const k of kept) {
    if (pending.has(k.clientId)) continue;
    const p = { localId: ++st.localId, clientId: k.clientId, conv: k.conversation, text: k.text, status: "sending", at: k.at };
    if (k.files) p.files = k.files.map((f) => ({ file: f.file, extra: f.extra, status: "waiting", done: 0 }));
    if (!st.pending.has(p.conv)) st.pending.set(p.conv, []);
    st.pending.get(p.conv).push(p);
    if (p.conv === st.current) appendToChat(pendingNode(p));
    trySend(p);
  }
}

export function retryFailed() {
  for (const list of st.pending.values()) {
    for (const p of list) if (p.status === "failed" && !p.refused) trySend(p);
  }
}


async function trySend(p) {
  p.status = "sending";
  redrawPending(p);
  try {
    let handles;
    if (p.files) {
      handles = await uploadAll(p, (f) => f.redraw && f.redraw());
      if (handles.length === 0) return dropPending(p); // every file cancelled
    }
    const m = await sandi.send(p.conv, p.text, p.clientId, handles);
    p.status = "sent";
    p.seq = m.seq;
    p.message = m;
    unkeep(p);
    if (p.conv === st.current) st.shown.add(m.seq);
    if (p.conv === st.current) actions.sent($("messages").querySelector(`[data-local="${p.localId}"]`), m);
    const c = st.convs.get(p.conv);
    if (c) c.last = m;
    drawList();
  } catch (e) {
    if (e && e.code === "idempotency_conflict") {
      // The server holds a message of this device under the client id
      // with another envelope: this one, sent before a reload made it
      // again from the outbox. It shows from the history.
      return dropPending(p);
    }
    p.status = "failed";
    p.error = errorText(e);
    // Refused: the server answered no (a lost connection, an unavailable
    // or busy server is tried again when the connection comes back).
    p.refused = !!(e && e.code) && !["unavailable", "internal", "rate_limited"].includes(e.code);
    trust.sendFailed(p, e);
  }
  redrawPending(p);
}

function redrawPending(p) {
  const li = $("messages").querySelector(`[data-local="${p.localId}"]`);
  if (!li || p.conv !== st.current) return;
  drawPendingStatus(li, p);
  // Sent: the files show as the receivers see them.
  if (p.files && p.status === "sent" && !li.dataset.shown) {
    li.dataset.shown = "1";
    li.querySelector(".atts").replaceWith(sentNodes(p, p.message));
  }
}

export function dropPending(p) {
  unkeep(p);
  if (p.files) sandi.forget(p.files.filter((f) => f.handle).map((f) => f.handle));
  st.pending.set(p.conv, (st.pending.get(p.conv) || []).filter((q) => q !== p));
  const li = $("messages").querySelector(`[data-local="${p.localId}"]`);
  if (li) li.remove();
}

export function pendingNode(p) {
  const li = el("li", { class: "msg own", "data-local": p.localId },
    el("div", { class: "meta" }, el("span", { class: "sender", text: "You" }), el("time", { text: fmtTime(p.at) })),
    el("div", { class: "text", text: p.text }),
    p.files ? (p.status === "sent" ? sentNodes(p, p.message) : pendingNodes(p)) : null,
    el("div", { class: "status" }),
    el("p", { class: "unkept", hidden: true, text: "This browser did not let sandi keep this message: it is lost if the page closes before it is sent." }));
  drawPendingStatus(li, p);
  return li;
}

function drawPendingStatus(li, p) {
  li.dataset.status = p.status;
  if (p.seq) li.dataset.seq = p.seq;
  const s = li.querySelector(".status");
  s.innerHTML = "";
  if (p.status === "sending") s.textContent = "Sending…";
  else if (p.status === "sent") s.textContent = "Sent";
  else {
    s.append(el("span", { class: "error-inline", title: p.error, text: "Not sent." }),
      el("button", { type: "button", class: "retry", text: "Retry", onclick: () => trySend(p) }));
  }
  li.querySelector(".unkept").hidden = !p.unkept || p.status === "sent";
}

// Messages that arrive are drawn once per frame: a batch costs one
