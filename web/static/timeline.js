// sandi web client: what the open chat's timeline tells besides messages.
// Lines for membership, title, timer and identity changes (the module
// writes them when it verifies a change: client/timeline.go), a separator
// at each new day, the full date on hover, a "new messages" marker and a
// jump-down button when the reader is scrolled up, links that open in a
// new tab with noopener (no preview is ever fetched), a composer that grows
// with its text, the disappearing-message timer in the members panel, and
// the removal of messages whose timer ran out (protocol.md §13.10). The
// chat calls its functions at the points it names.
import { $, el, errorText, fmtTime } from "./util.js";
import { st } from "./state.js";
import { refresh } from "./app.js";

const tl = {
  lines: new Set(), // keys of the lines drawn in the open chat
  expiry: null,     // the timeout that removes the next message to disappear
  unseen: 0,        // messages that arrived below the view while scrolled up
};

// The timer choices of the members panel, in seconds (0: off).
const timers = [0, 30, 300, 3600, 28800, 86400, 604800, 2419200];

// fmtTimer says a timer as client.FormatTimer does.
function fmtTimer(s) {
  if (!s) return "off";
  const parts = [];
  for (const [n, name] of [[604800, "week"], [86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]]) {
    const k = Math.floor(s / n);
    if (k > 0) {
      parts.push(`${k} ${name}${k > 1 ? "s" : ""}`);
      s -= k * n;
    }
  }
  return parts.join(" ");
}

function names(us, more) {
  us = us || [];
  if (more > 0) return us.join(", ") + ` and ${more} others`;
  if (us.length < 2) return us.join("");
  return us.slice(0, -1).join(", ") + " and " + us[us.length - 1];
}

// lineText is a line's sentence, as client.Line.Text writes it.
function lineText(l) {
  const who = l.actor === st.me.username ? "You" : l.actor;
  switch (l.kind) {
    case "added": return `${who} added ${names(l.users, l.more)}`;
    case "removed": return `${who} removed ${names(l.users, l.more)}`;
    case "left": return `${who} left`;
    case "role": return `${who} made ${names(l.users, l.more)} ${l.role}`;
    case "renamed": return `${who} renamed the conversation to “${l.title}”`;
    case "timer": return l.timer ? `${who} set disappearing messages to ${fmtTimer(l.timer)}` : `${who} turned off disappearing messages`;
    case "identity": return `The identity key of ${names(l.users, l.more)} changed: compare safety numbers`;
  }
  return l.kind;
}

const lineKey = (l) => [l.kind, l.time, l.afterSeq, l.actor, (l.users || []).join(","), l.more, l.title, l.timer].join("|");
const fullDate = (ms) => new Date(ms).toLocaleString(undefined, { dateStyle: "full", timeStyle: "medium" });
const dayOf = (ms) => new Date(ms).toDateString();

// lineNode draws a timeline line; its seq sorts it after the messages
// up to afterSeq.
function lineNode(l) {
  tl.lines.add(lineKey(l));
  return el("li", { class: "system line", "data-line": l.kind, "data-seq": String(l.afterSeq + 0.5), "data-at": String(l.time) },
    el("span", { text: lineText(l) }), " ",
    el("time", { datetime: new Date(l.time).toISOString(), title: fullDate(l.time), text: fmtTime(l.time) }));
}

// items are the open chat's lines as history items (see chat.js openChat).
export function items(h) {
  tl.lines = new Set();
  return (h.lines || []).map((l) => ({ seq: l.afterSeq + 0.5, node: () => lineNode(l) }));
}

// linkify fills node with text whose http(s) links are anchors that
// open in a new tab without giving it this page (noopener, noreferrer).
const linkRe = /\bhttps?:\/\/[^\s<>"'`]+[^\s<>"'`.,;:!?)\]}]/g;
function linkify(node, text) {
  node.textContent = "";
  let at = 0;
  for (const m of text.matchAll(linkRe)) {
    node.append(text.slice(at, m.index));
    const a = document.createElement("a");
    a.href = m[0];
    a.textContent = m[0];
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    node.append(a);
    at = m.index + m[0].length;
  }
  node.append(text.slice(at));
}

// decorate adds to a message's node its links, its full date on hover,
// its day and its expiry.
export function decorate(li, m) {
  const at = m.sentAt || m.receivedAt;
  const text = li.querySelector(".text");
  if (text && m.text) linkify(text, m.text);
  const time = li.querySelector("time");
  if (time && at) time.title = fullDate(at);
  if (at) li.dataset.at = String(at);
  if (m.expiresAt) {
    li.dataset.expires = String(m.expiresAt);
    li.classList.add("disappearing");
    if (time) time.title += ` · disappears ${new Date(m.expiresAt).toLocaleString()}`;
  }
  return li;
}

// separators puts a day separator before the first item of each day.
export function separators(list) {
  for (const s of list.querySelectorAll("li.day")) s.remove();
  let day = null;
  for (const li of [...list.children]) {
    const at = Number(li.dataset.at || 0);
    if (!at) continue;
    const d = dayOf(at);
    if (d !== day) {
      day = d;
      const prev = li.previousElementSibling; // the day goes above a new-messages marker
      const at0 = prev && prev.classList.contains("new-marker") ? prev : li;
      list.insertBefore(el("li", { class: "day", role: "separator", text: new Date(at).toLocaleDateString(undefined, { dateStyle: "full" }) }), at0);
    }
  }
}

// scheduleExpiry removes, when it comes, the next message of the open
// chat to disappear, after the module erased it.
function scheduleExpiry() {
  clearTimeout(tl.expiry);
  let next = Infinity;
  for (const li of $("messages").querySelectorAll("li[data-expires]")) next = Math.min(next, Number(li.dataset.expires));
  if (next === Infinity) return;
  tl.expiry = setTimeout(async () => {
    try { await sandi.expire(); } catch (e) { /* the next refresh tries again */ }
    const now = Date.now();
    for (const li of $("messages").querySelectorAll("li[data-expires]")) {
      if (Number(li.dataset.expires) <= now) {
        // Its decrypted files go too: their blob URLs are revoked.
        for (const e of li.querySelectorAll("[src^='blob:'], [href^='blob:']")) URL.revokeObjectURL(e.src || e.href);
        li.remove();
      }
    }
    separators($("messages"));
    scheduleExpiry();
    refresh(); // the list's preview may have shown it
  }, Math.min(Math.max(next - Date.now(), 0) + 50, 2 ** 31 - 1));
}

// afterOpen runs once the history of the open chat is drawn: the marker
// goes before the first of its unread messages (c.unread, the others'
// messages at the end).
export function afterOpen(list, c) {
  tl.unseen = 0;
  drawJump();
  const others = [...list.querySelectorAll("li.msg:not(.own)")];
  const unread = c && c.unread > 0 ? others[Math.max(others.length - c.unread, 0)] : null;
  if (unread) list.insertBefore(marker(), unread);
  separators(list);
  scheduleExpiry();
}

const marker = () => el("li", { class: "new-marker", role: "separator", text: "New messages" });

// afterIncoming runs after live items were drawn: a reader scrolled up
// gets the marker before the first of them and the jump-down button.
export function afterIncoming(list, nodes, near) {
  separators(list);
  scheduleExpiry();
  const msgs = nodes.filter((n) => n.classList && n.classList.contains("msg"));
  if (near || msgs.length === 0) return;
  if (tl.unseen === 0) { // the first the reader has not seen: the marker moves there
    for (const m of list.querySelectorAll("li.new-marker")) m.remove();
    list.insertBefore(marker(), msgs[0]);
  }
  tl.unseen += msgs.length;
  drawJump();
}

function drawJump() {
  const b = $("jump-down");
  b.hidden = tl.unseen === 0;
  b.textContent = tl.unseen ? `↓ ${tl.unseen} new` : "↓";
  b.setAttribute("aria-label", tl.unseen ? `Jump to the ${tl.unseen} new messages` : "Jump to the newest messages");
}

const nearBottom = (list) => list.scrollHeight - list.scrollTop - list.clientHeight < 80;

// refreshLines draws the lines written since the chat was opened (a
// change made elsewhere, which the event stream brought).
export async function refreshLines(id) {
  let lines;
  try { lines = await sandi.lines(id); } catch (e) { return; }
  if (st.current !== id) return;
  const fresh = lines.filter((l) => !tl.lines.has(lineKey(l)));
  if (!fresh.length) return;
  const list = $("messages");
  const near = nearBottom(list);
  for (const l of fresh) {
    const node = lineNode(l);
    let before = null;
    for (const li of list.children) {
      if (li.dataset.seq && Number(li.dataset.seq) > l.afterSeq + 0.5) { before = li; break; }
    }
    list.insertBefore(node, before || list.querySelector("li[data-local]:not([data-seq])"));
  }
  separators(list);
  if (near) list.scrollTop = list.scrollHeight;
}

// drawTimer shows the open conversation's timer in the members panel.
export function drawTimer(c) {
  const sel = $("timer-select");
  const opts = timers.includes(c.timer || 0) ? timers : [...timers, c.timer].sort((a, b) => a - b);
  sel.innerHTML = "";
  for (const s of opts) sel.append(el("option", { value: String(s), text: s ? fmtTimer(s) : "Off" }));
  sel.value = String(c.timer || 0);
  $("timer-form").hidden = !!c.left;
}

// init listens to the chat's scrolling, its jump-down button, the
// composer (which grows) and the members panel's timer form.
function init() {
  const list = $("messages");
  list.addEventListener("scroll", () => {
    if (!nearBottom(list) || !tl.unseen) return;
    tl.unseen = 0;
    drawJump();
  });
  $("jump-down").addEventListener("click", () => {
    list.scrollTop = list.scrollHeight;
    tl.unseen = 0;
    drawJump();
    list.focus();
  });
  // The composer grows with its text, up to a third of the window.
  const input = $("composer-input");
  const grow = () => {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, Math.round(innerHeight / 3)) + "px";
  };
  input.addEventListener("input", grow);
  $("composer").addEventListener("submit", () => setTimeout(grow));
  $("timer-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("members-error").textContent = "";
    try {
      await sandi.setTimer(st.current, Number($("timer-select").value));
      await refresh();
      await refreshLines(st.current);
    } catch (e) {
      $("members-error").textContent = errorText(e);
    }
  });
}

init();
