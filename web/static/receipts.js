// sandi web client: receipts and typing (protocol.md §13.8, §13.9). Each
// of this account's messages in the open chat says whether the others
// hold it ("Delivered") or read it ("Read"); what this browser received
// and showed is acknowledged in bursts; the composer tells the others
// while it holds text, and a line above it says who is typing. The module
// (web/wasm) makes, sends and checks receipts and notices; this file draws
// them; the chat calls its functions at the points it names.
import { $, debounce } from "./util.js";
import { st } from "./state.js";
import { refresh } from "./app.js";
import { onConnectionChange } from "./offline.js";

const TYPING_EVERY = 3000; // ms between two notices while typing (client.TypingEvery)
const TYPING_SHOWN = 6000; // ms a notice is shown without news (client.TypingShown)
const rs = {
  sentAt: 0,         // when this browser last said it is typing
  typingConv: null,  // the conversation it said so in
  shown: new Map(),  // "conv/username" -> {conv, name, until}: notices shown
  timer: 0,
};

// status is the line under one of this account's messages.
function status(m) {
  const c = st.convs.get(m.conversation);
  const group = !!c && (c.members || []).length > 2;
  if (m.readBy && m.readBy.length) return "Read" + (group ? " by " + m.readBy.join(", ") : "");
  if (m.deliveredTo && m.deliveredTo.length) return "Delivered" + (group ? " to " + m.deliveredTo.join(", ") : "");
  return "Sent";
}
const kind = (m) => (m.readBy && m.readBy.length ? "read" : m.deliveredTo && m.deliveredTo.length ? "delivered" : "sent");

// decorate marks a drawn message of this account with its receipts.
export function decorate(li, m) {
  if (!li || !li.classList.contains("own")) return li;
  const s = li.querySelector(".status");
  if (s && !s.querySelector(".retry")) {
    s.textContent = status(m);
    li.dataset.receipt = kind(m);
  }
  return li;
}

// redraw reads the open chat's history again and redraws the receipts
// of its messages.
const redraw = debounce(async (conv) => {
  let h;
  try { h = await sandi.history(conv); } catch { return; }
  if (st.current !== conv) return;
  for (const m of h.messages) {
    if (m.ref) decorate(document.querySelector(`#messages li[data-ref="${CSS.escape(m.ref)}"]`), m);
  }
}, 200);

const recount = debounce(() => refresh(), 300);

// Receipts leave in bursts: one round per conversation for whatever
// came meanwhile.
const waiting = new Set();
const flush = debounce(() => {
  for (const conv of waiting) sandi.sendReceipts(conv).catch(() => {});
  waiting.clear();
}, 800);
const acknowledge = (conv) => { waiting.add(conv); flush(); };
// Whenever the connection comes up (the page opened, or the server is
// back), every conversation is acknowledged: what was read while it was
// down, or in a round that a reload cut short, is told now. The module
// sends only what it has not told yet.
onConnectionChange((state) => { if (state === "online") sandi.sendReceipts().catch(() => {}); });

// ---- typing ----
function typed() {
  const conv = st.current;
  const on = !!conv && $("composer-input").value.trim() !== "";
  const now = Date.now();
  if (rs.typingConv && (!on || rs.typingConv !== conv)) stopTyping();
  if (on && now - rs.sentAt >= TYPING_EVERY) {
    rs.sentAt = now;
    rs.typingConv = conv;
    sandi.typing(conv, true).catch(() => {});
  }
}
function stopTyping() {
  const conv = rs.typingConv;
  rs.typingConv = null;
  rs.sentAt = 0;
  if (conv) sandi.typing(conv, false).catch(() => {});
}
$("composer-input").addEventListener("input", typed);
$("composer").addEventListener("submit", () => setTimeout(typed, 0)); // after composer.js empties the input

function drawTyping() {
  let line = $("typing-line");
  if (!line) {
    line = document.createElement("p");
    line.id = "typing-line";
    line.className = "typing-line";
    line.setAttribute("aria-live", "polite");
    $("composer").before(line);
  }
  const now = Date.now();
  const names = [];
  let next = Infinity;
  for (const [k, v] of rs.shown) {
    if (v.until <= now) { rs.shown.delete(k); continue; }
    next = Math.min(next, v.until);
    if (v.conv === st.current) names.push(v.name);
  }
  names.sort();
  line.textContent = names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…`
    : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]} are typing…`;
  line.hidden = names.length === 0;
  clearTimeout(rs.timer);
  if (next < Infinity) rs.timer = setTimeout(drawTyping, next - now + 10);
}

// The read-receipt setting of this browser, in the devices pane: off,
// it tells the others that their messages arrived, not that they were
// read (protocol.md §13.8).
const setting = document.createElement("div");
setting.className = "card stack";
setting.innerHTML = `<h3>Read receipts</h3>
  <label class="check"><input type="checkbox" id="read-receipts" checked> Tell the others when this browser showed you their messages</label>
  <p>Off, they only see that their messages arrived. Each of your devices keeps its own setting.</p>`;
$("device-list").closest(".card").after(setting);
const box = $("read-receipts");
box.addEventListener("change", () => {
  sandi.readReceipts(box.checked).then((on) => { box.checked = on; box.dataset.saved = String(on); }).catch(() => {});
});
// The pane shows the stored setting once the module is there.
new MutationObserver(() => {
  if (!$("pane-devices").hidden && window.sandi) sandi.readReceipts().then((on) => { box.checked = on; }).catch(() => {});
}).observe($("pane-devices"), { attributes: true, attributeFilter: ["hidden"] });

// onReceipt: a receipt came live; one of this account's (another device
// read) changed the unread counts.
export function onReceipt(r) {
  if (r.conversation === st.current) redraw(r.conversation);
  if (r.own) recount();
}

// onTyping: a typing notice came live.
export function onTyping(t) {
  const key = t.conversation + "/" + t.username;
  if (t.typing) rs.shown.set(key, { conv: t.conversation, name: t.username, until: Date.now() + TYPING_SHOWN });
  else rs.shown.delete(key);
  drawTyping();
}

// onMessage: a message came live: its sender stopped typing, and it is
// acknowledged as delivered (or read, once the chat marks it so).
export function onMessage(m) {
  if (rs.shown.delete(m.conversation + "/" + m.sender)) drawTyping();
  if (!m.own) acknowledge(m.conversation);
}

// afterRead: the chat marked the conversation read.
export const afterRead = (conv) => acknowledge(conv);

// openChat tells of the typing in the chat just opened.
export function openChat() {
  typed();
  drawTyping();
}
