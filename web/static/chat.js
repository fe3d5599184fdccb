// sandi web client: the open conversation. Its header, its history (a
// window of the latest messages; older and newer ones drawn as the reader
// scrolls), what arrives live (drawn once per frame), and its read state.
// The composer (composer.js), the members panel (members.js) and what
// other modules add to each message (actions.js, timeline.js, receipts.js,
// attach.js) are beside it.
import { $, el, errorText, fmtTime, debounce } from "./util.js";
import { st, timings, mark, convName } from "./state.js";
import { refreshSoon } from "./app.js";
import { loadConversations, drawList, drawListSoon } from "./list.js";
import { pendingNode } from "./composer.js";
import { setMembersOpen, drawMembers } from "./members.js";
import * as actions from "./actions.js";
import * as timeline from "./timeline.js";
import * as receipts from "./receipts.js";
import * as trust from "./trust.js";
import { barRequest } from "./requests.js";
import * as attach from "./attach.js";
import { notifyMessage } from "./notify.js";

// Why a message could not be decrypted, by the SDK's failure class.
const failureReasons = {
  expired: "it came after this browser had erased its key (keys of late messages are kept 7 days): the server held it back.",
  no_session: "this browser was not given the key of the epoch it was sent in (it was not a member device then).",
  bad_signature: "its signature does not verify: it may be forged.",
  too_far_ahead: "too many earlier messages of its sender are missing (more than the 1,000 skipped keys kept).",
  unknown_sender: "its sender was not a member of the conversation when it was sent.",
  server_misbehaved: "the server sent data that does not verify.",
  undecryptable: "the ciphertext does not open with its key: it was damaged or tampered with.",
  bad_content: "it decrypted, but what it holds is not a valid sandi message.",
};

// openChat shows conversation id; fresh: it was not open already, so its
// history is read and drawn anew.
export async function openChat(id, fresh) {
  if (!st.convs.has(id)) await loadConversations();
  if (!st.convs.has(id)) {
    location.hash = "#/";
    return;
  }
  drawChatHeader();
  if (fresh) {
    trust.openChat(id);
    actions.openChat();
    receipts.openChat();
    mark("historyStart");
    setMembersOpen(false);
    const list = $("messages");
    list.innerHTML = "";
    attach.clear();
    st.shown = new Set();
    st.older = [];
    st.newer = [];
    st.incoming = [];
    let h;
    try {
      h = await sandi.history(id);
    } catch (e) {
      list.append(el("li", { class: "system", text: "Cannot read the history: " + errorText(e) }));
      return;
    }
    if (st.current !== id) return;
    const items = [
      ...h.messages.map((m) => ({ seq: m.seq, node: () => messageNode(m) })),
      ...h.failures.map((f) => ({ seq: f.seq, node: () => failureNode(f) })),
      ...timeline.items(h),
    ].sort((a, b) => a.seq - b.seq);
    const pend = (st.pending.get(id) || []).filter((p) => p.status !== "sent");
    st.pending.set(id, pend);
    // Live messages that came while the history was read are queued;
    // the history goes first and they merge after it. Only the latest
    // messages are drawn; older ones are drawn as the reader scrolls up
    // (drawOlder), so a long conversation opens at once.
    const fresh = items.filter((it) => !st.shown.has(it.seq));
    for (const it of fresh) st.shown.add(it.seq);
    st.older = fresh.slice(0, Math.max(0, fresh.length - historyWindow));
    const frag = document.createDocumentFragment();
    for (const it of fresh.slice(st.older.length)) frag.append(it.node());
    for (const p of pend) frag.append(pendingNode(p));
    insert(list, frag, null);
    timeline.afterOpen(list, st.convs.get(id));
    list.scrollTop = list.scrollHeight;
    if (!$("composer-input").disabled && !matchMedia("(pointer: coarse)").matches) $("composer-input").focus();
    mark("historyRendered");
    timings.historyCount = h.messages.length;
  }
  if (!document.hidden && st.convs.has(id)) st.convs.get(id).unread = 0;
  markRead(id);
}

// insert puts node (a message's node, or a fragment of them) into the
// chat list before `before` (null: at its end), then tells the modules
// that act on messages once they are in: a message an action changed
// while its node was out of the chat is drawn again (actions.drawn).
// Every path that draws messages into the chat goes through here, so
// none can leave that out.
function insert(list, node, before) {
  list.insertBefore(node, before);
  actions.drawn();
}

// historyWindow messages are drawn when a conversation opens, and
// olderPage more each time the reader scrolls near the top (near the
// bottom, newer ones); the page holds at most about 3 * historyWindow
// messages, the others wait in st.older and st.newer.
const historyWindow = 300;
const olderPage = 100;
// delivered: the drawn items with a seq, this device's own once sent
// among them (a message not yet sent stays below the window).
const delivered = (list) => [...list.children].filter((li) => li.dataset.seq);
function drawOlder() {
  const list = $("messages");
  if (st.older.length === 0 || list.scrollTop > 600) return;
  const page = st.older.splice(Math.max(0, st.older.length - olderPage));
  const frag = document.createDocumentFragment();
  for (const it of page) frag.append(it.node());
  // The reader stays on what they were reading.
  const top = list.scrollTop, height = list.scrollHeight;
  insert(list, frag, list.firstChild);
  timeline.separators(list);
  list.scrollTop = top + list.scrollHeight - height;
  // The newest drawn go below the window.
  const drawn = delivered(list);
  const gone = drawn.slice(Math.min(drawn.length, 3 * historyWindow));
  for (const li of gone) li.remove();
  st.newer.unshift(...gone.map((li) => ({ seq: Number(li.dataset.seq), node: () => li })));
}
function drawNewer() {
  const list = $("messages");
  if (st.newer.length === 0 || list.scrollHeight - list.scrollTop - list.clientHeight > 600) return;
  const page = st.newer.splice(0, olderPage);
  const frag = document.createDocumentFragment();
  for (const it of page) frag.append(it.node());
  insert(list, frag, list.querySelector("li[data-local]:not([data-seq])"));
  // The oldest drawn go above the window; the reader stays where they are.
  const drawn = delivered(list);
  const gone = drawn.slice(0, Math.max(0, drawn.length - 3 * historyWindow));
  const above = list.scrollTop - list.scrollHeight;
  for (const li of gone) li.remove();
  st.older.push(...gone.map((li) => ({ seq: Number(li.dataset.seq), node: () => li })));
  timeline.separators(list);
  list.scrollTop = list.scrollHeight + above;
}
// showNewest draws what waits below the window, for a reader sent to
// the bottom (a message of their own).
function showNewest(list) {
  if (st.newer.length === 0) return;
  const frag = document.createDocumentFragment();
  for (const it of st.newer.splice(0)) frag.append(it.node());
  insert(list, frag, list.querySelector("li[data-local]:not([data-seq])"));
  trimTop(list);
}
let drawing = false;
$("messages").addEventListener("scroll", () => {
  if ((st.older.length || st.newer.length) && !drawing) {
    drawing = true;
    requestAnimationFrame(() => {
      drawing = false;
      drawOlder();
      drawNewer();
    });
  }
}, { passive: true });

// trimTop keeps a reader at the bottom of a busy conversation to a
// window of nodes: the oldest go back to st.older, drawn again on
// scrolling up. Decorations without a seq (a day separator heads the
// list) are passed over and drawn again; a message not yet sent ends it.
function trimTop(list) {
  const extra = list.children.length - 2 * historyWindow;
  if (extra < olderPage) return;
  const gone = [];
  for (let li = list.firstElementChild; li && gone.length < extra; li = li.nextElementSibling) {
    if (li.dataset.seq) gone.push(li);
    else if (li.dataset.local) break;
  }
  for (const li of gone) li.remove();
  st.older.push(...gone.map((li) => ({ seq: Number(li.dataset.seq), node: () => li })));
  if (gone.length) timeline.separators(list);
}

// drawChatHeader draws the open chat's title, members and state, and
// enables the composer where this account can send.
export function drawChatHeader() {
  const c = st.convs.get(st.current);
  if (!c) return;
  $("chat-title").textContent = convName(c);
  $("chat-members").textContent = (c.members || []).join(", ");
  $("chat-left").hidden = !c.left;
  barRequest(c);
  if (c.left) $("chat-left").textContent = (c.status === "removed" ? "You were removed from this conversation." : "You are no longer a member of this conversation.") + " You can read what was sent while you were a member; nothing new reaches you, and you cannot send.";
  const blocked = !!c.left || trust.blocked(c.id);
  $("composer-input").disabled = blocked;
  $("send-button").disabled = blocked;
  $("attach-button").disabled = blocked;
  $("record-button").disabled = blocked;
  $("members-button").disabled = !!c.left;
  if (c.left) setMembersOpen(false);
  if (st.membersOpen) drawMembers();
}

export function messageNode(m) {
  const own = m.own || m.senderId === st.me.userId;
  // In a request (or a conversation not listed yet) media wait for a click.
  const c = st.convs.get(m.conversation || st.current);
  const hold = !c || !!c.request;
  if (m.type === "title") {
    return el("li", { class: "system", "data-seq": m.seq }, `${m.sender} named the conversation “${m.text}”`);
  }
  const li = el("li", { class: "msg" + (own ? " own" : ""), "data-seq": m.seq },
    el("div", { class: "meta" },
      el("span", { class: "sender", text: own ? "You" : m.sender }),
      el("time", { datetime: new Date(m.sentAt || m.receivedAt).toISOString(), text: fmtTime(m.sentAt || m.receivedAt) })),
    el("div", { class: "text", text: m.text }),
    attach.nodes(m, hold),
    own ? el("div", { class: "status", text: "Sent" }) : null);
  timeline.decorate(li, m);
  if (own) receipts.decorate(li, m);
  return actions.decorate(li, m);
}

function failureNode(f) {
  const what = f.reason === "bad_content" ? "cannot be shown" : "cannot be decrypted";
  return el("li", { class: "failure", "data-seq": f.seq, "data-reason": f.reason },
    el("strong", { text: `Message #${f.seq} ${what}: ` }),
    el("span", { text: failureReasons[f.reason] || f.reason }),
    el("details", {}, el("summary", { text: "Details" }), el("code", { text: `${f.reason}: ${f.detail}` })));
}

// layout, however many messages it holds (a page of history after a
// reconnect brings hundreds). A reader at the bottom stays there; a
// reader scrolled up is not moved.
export function queueNode(node, seq) {
  if (st.shown.has(seq)) return;
  st.shown.add(seq);
  st.incoming.push({ node, seq });
  if (st.incoming.length === 1) {
    if (document.hidden) setTimeout(flushIncoming, 100);
    else requestAnimationFrame(flushIncoming);
  }
}

function flushIncoming() {
  const batch = st.incoming.sort((a, b) => a.seq - b.seq);
  st.incoming = [];
  if (batch.length === 0) return;
  if (st.newer.length > 0) {
    // The reader is above the window's bottom: new messages wait below.
    st.newer.push(...batch.map(({ node, seq }) => ({ seq, node: () => node })));
    st.newer.sort((a, b) => a.seq - b.seq);
    return;
  }
  const list = $("messages");
  const near = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  // Delivered messages sort by seq; this device's pending ones stay last.
  const firstPending = list.querySelector("li[data-local]:not([data-seq])");
  let last = 0;
  for (let li = firstPending ? firstPending.previousElementSibling : list.lastElementChild; li; li = li.previousElementSibling) {
    if (li.dataset.seq) { last = Number(li.dataset.seq); break; }
  }
  const frag = document.createDocumentFragment();
  for (const { node, seq } of batch) {
    if (seq > last) {
      frag.append(node);
      continue;
    }
    // Rare: older than what is drawn (an own message sent meanwhile).
    let before = null;
    for (const li of list.children) {
      if (Number(li.dataset.seq || 0) > seq) { before = li; break; }
    }
    insert(list, node, before);
  }
  insert(list, frag, firstPending);
  timeline.afterIncoming(list, batch.map((b) => b.node), near);
  if (near) {
    trimTop(list);
    list.scrollTop = list.scrollHeight;
  }
  if (!document.hidden) markReadSoon();
}

export function appendToChat(node) {
  const list = $("messages");
  showNewest(list);
  insert(list, node, null);
  list.scrollTop = list.scrollHeight;
}

export function onMessage(m) {
  if (actions.isAction(m)) return actions.onAction(m);
  receipts.onMessage(m);
  timings.messages = (timings.messages || 0) + 1;
  if (!timings.firstMessage) mark("firstMessage");
  mark("lastMessage");
  const c = st.convs.get(m.conversation);
  if (c) {
    c.last = m;
    if (m.conversation !== st.current || document.hidden) c.unread = (c.unread || 0) + 1;
    if (!m.own && m.senderId !== st.me.userId) notifyMessage(m, convName(c), attach.summary(m));
  }
  if (m.conversation === st.current) queueNode(messageNode(m), m.seq);
  if (c) drawListSoon();
  refreshSoon();
}

export function onFailure(f) {
  if (f.conversation === st.current) queueNode(failureNode(f), f.seq);
  refreshSoon();
}

const markRead = (id) => sandi.markRead(id).then(() => receipts.afterRead(id)).catch(() => {});
// readCurrent marks the open conversation read, here at once.
export function readCurrent() {
  const c = st.convs.get(st.current);
  if (c) c.unread = 0;
  drawList();
  markReadSoon();
}
const markReadSoon = debounce(() => { if (st.current) markRead(st.current); }, 500);
