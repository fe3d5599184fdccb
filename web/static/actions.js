// sandi web client: replies, reactions, edits and deletes (protocol.md
// §13.7). Each message of the open chat gets an actions menu (reply, a few
// reactions, edit and delete for one's own), a reply quote, its reactions,
// an "edited" mark or a tombstone. The module (web/wasm) sends the actions
// and applies the rules (only a message's sender edits or deletes it); this
// file draws what its history says; the chat and the composer call its
// functions at the points they name.
import { $, el, errorText, randomHex } from "./util.js";
import { st } from "./state.js";
import { messageNode, queueNode } from "./chat.js";

const emojis = ["👍", "❤️", "😂", "🎉", "😮"];
const as = {
  byRef: new Map(), // ref -> the message drawn for it in the open chat
  mode: null,       // {kind: "reply" | "edit", target: message} while composing one
  menu: null,       // the open menu: {box, button}
  // stale: refs of messages an action changed while their node was not in
  // the chat (waiting for the next frame, or out of the window): drawn()
  // redraws them once chat.js puts them in.
  stale: new Set(),
};

export const isAction = (m) => m.type === "reaction" || m.type === "edit" || m.type === "delete";

function preview(m) {
  if (m.deleted) return "deleted message";
  const t = (m.text || "").replace(/\s+/g, " ").trim();
  return t.length > 60 ? t.slice(0, 60) + "…" : t;
}

// decorate adds to a message's node what its actions made of it.
export function decorate(li, m) {
  if (!m.ref || m.type === "title") return li;
  as.byRef.set(m.ref, m);
  li.dataset.ref = m.ref;
  const text = li.querySelector(".text");
  const meta = li.querySelector(".meta");
  if (m.deleted) {
    li.classList.add("deleted");
    text.textContent = "This message was deleted.";
  }
  if (m.edited && meta) {
    meta.append(el("span", { class: "edited", text: "edited", title: m.editedAt ? "Edited " + new Date(m.editedAt).toLocaleString() : null }));
  }
  if (m.replyTo && text) {
    const t = as.byRef.get(m.replyTo);
    li.insertBefore(el("div", { class: "reply-quote", "data-target": m.replyTo },
      t ? `↳ ${t.senderId === st.me.userId ? "You" : t.sender}: ${preview(t)}` : "↳ a message not on this browser"), text);
  }
  if (m.reactions) {
    const row = el("div", { class: "reactions", "aria-label": "Reactions" });
    for (const emoji of Object.keys(m.reactions).sort()) {
      const names = m.reactions[emoji];
      row.append(el("span", { class: "reaction" + (names.includes(st.me.username) ? " mine" : ""), title: names.join(", "),
        "aria-label": `${emoji} from ${names.join(", ")}` }, `${emoji} ${names.length}`));
    }
    li.append(row);
  }
  const conv = st.convs.get(st.current);
  if (!m.deleted && meta && !(conv && conv.left)) { // no actions where this account is no longer a member
    // Named after its message, so that a screen reader tells them apart.
    const whose = m.own || m.senderId === st.me.userId ? "your message" : m.sender + "’s message";
    const btn = el("button", { type: "button", class: "msg-actions", "aria-label": `Actions on ${whose} “${preview(m)}”`, "aria-haspopup": "menu", "aria-expanded": "false" }, "⋯");
    btn.addEventListener("click", () => (as.menu && as.menu.button === btn ? closeMenu(true) : openMenu(btn, m)));
    meta.append(btn);
  }
  return li;
}

// ---- the actions menu ----
function openMenu(btn, m) {
  closeMenu(false);
  const own = m.own || m.senderId === st.me.userId;
  // An item closes the menu and gives the focus back to its button (a
  // reply or an edit then takes it to the composer).
  const item = (label, f, extra) => el("button", { type: "button", role: "menuitem", tabindex: "-1", ...extra, onclick: () => { closeMenu(true); f(); } }, label);
  const mine = (e) => (m.reactions && m.reactions[e] || []).includes(st.me.username);
  const box = el("div", { class: "msg-menu", role: "menu", "aria-label": "Message actions" },
    item("Reply", () => setMode({ kind: "reply", target: m })),
    el("div", { class: "msg-menu-emoji", role: "group", "aria-label": "React" },
      ...emojis.map((e) => item(e, () => react(m, mine(e) ? "" : e), { "aria-label": (mine(e) ? "Remove reaction " : "React with ") + e, "aria-pressed": String(mine(e)) }))),
    own && m.type !== "title" ? item("Edit", () => setMode({ kind: "edit", target: m })) : null,
    own ? item("Delete for everyone", () => del(m), { class: "danger" }) : null);
  box.addEventListener("keydown", (ev) => {
    const items = [...box.querySelectorAll("[role=menuitem]")];
    const i = items.indexOf(document.activeElement);
    if (ev.key === "Escape") { ev.preventDefault(); closeMenu(true); }
    else if (ev.key === "ArrowDown" || ev.key === "ArrowRight") { ev.preventDefault(); items[(i + 1) % items.length].focus(); }
    else if (ev.key === "ArrowUp" || ev.key === "ArrowLeft") { ev.preventDefault(); items[(i - 1 + items.length) % items.length].focus(); }
    else if (ev.key === "Tab") closeMenu(false);
  });
  btn.setAttribute("aria-expanded", "true");
  btn.closest("li").append(box);
  as.menu = { box, button: btn };
  box.querySelector("[role=menuitem]").focus();
}

function closeMenu(refocus) {
  if (!as.menu) return;
  const { box, button } = as.menu;
  as.menu = null;
  box.remove();
  button.setAttribute("aria-expanded", "false");
  if (refocus && button.isConnected) button.focus();
}

document.addEventListener("click", (ev) => {
  if (as.menu && !as.menu.box.contains(ev.target) && ev.target !== as.menu.button) closeMenu(false);
});

// ---- composing a reply or an edit ----
function contextBar() {
  let bar = $("composer-context");
  if (bar) return bar;
  bar = el("div", { id: "composer-context", class: "composer-context", role: "status", hidden: true },
    el("span", { id: "composer-context-text" }),
    el("button", { type: "button", id: "composer-context-cancel", class: "link-button", "aria-label": "Cancel", onclick: () => setMode(null) }, "✕"));
  $("composer").before(bar);
  return bar;
}

function setMode(mode, error) {
  const bar = contextBar();
  const input = $("composer-input");
  if (as.mode && as.mode.kind === "edit" && (!mode || mode.kind !== "edit")) input.value = "";
  as.mode = mode;
  bar.hidden = !mode;
  bar.classList.toggle("error", !!error);
  if (!mode) return;
  const t = mode.target;
  const who = t.senderId === st.me.userId ? "yourself" : t.sender;
  $("composer-context-text").textContent = error ||
    (mode.kind === "reply" ? `Replying to ${who}: ${preview(t)}` : "Editing your message (Escape cancels)");
  $("composer-context-cancel").setAttribute("aria-label", mode.kind === "reply" ? "Cancel the reply" : "Cancel the edit");
  if (mode.kind === "edit" && !error) input.value = t.text;
  input.focus();
}

$("composer-input").addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && as.mode) { ev.preventDefault(); setMode(null); }
});

// send sends an action with a client message id for the server's
// deduplication: the same action tried again after a failure (whose
// outcome may be unknown: a lost answer) takes the same id, so the
// server stores it once; one that succeeds forgets the ids of its
// target's failed actions.
const retryIds = new Map(); // conv/ref/kind/text -> client id
function send(conv, kind, ref, text) {
  const key = JSON.stringify([conv, ref, kind, text]);
  if (!retryIds.has(key)) {
    retryIds.set(key, randomHex(16));
  }
  return sandi.act(conv, kind, ref, text, retryIds.get(key)).then((m) => {
    const prefix = JSON.stringify([conv, ref]).slice(0, -1) + ",";
    for (const k of retryIds.keys()) if (k.startsWith(prefix)) retryIds.delete(k);
    return m;
  });
}

// submit sends the composer's text as a reply or an edit when one is
// being composed; false leaves it to the composer as a plain message.
export function submit(conv, text) {
  const mode = as.mode;
  if (!mode) return false;
  const kind = mode.kind;
  $("composer-input").value = "";
  setMode(null);
  send(conv, kind, mode.target.ref, text).then((m) => {
    if (kind === "reply" && st.current === conv) queueNode(messageNode(m), m.seq);
    else refresh(conv);
  }, (e) => {
    $("composer-input").value = text;
    setMode(mode, `Not sent: ${errorText(e)}`);
  });
  return true;
}

async function act(m, kind, text) {
  try {
    await send(m.conversation, kind, m.ref, text);
  } catch (e) {
    setMode({ kind: "reply", target: m }, `Not done: ${errorText(e)}`);
    return;
  }
  await refresh(m.conversation);
}
const react = (m, emoji) => act(m, "reaction", emoji);
const del = (m) => act(m, "delete", "");

// refresh redraws the messages of the open chat that an action changed,
// and the replies that quote them, from the module's history.
async function refresh(conv) {
  let h;
  try {
    h = await sandi.history(conv);
  } catch {
    return;
  }
  if (st.current !== conv) return;
  const key = (m) => JSON.stringify([m.text, m.edited, m.deleted, m.reactions || null]);
  const changed = new Set();
  for (const m of h.messages) {
    const old = m.ref && as.byRef.get(m.ref);
    if (old && key(old) !== key(m)) changed.add(m.ref);
  }
  for (const m of h.messages) {
    if (!changed.has(m.ref) && !changed.has(m.replyTo)) continue;
    const li = $("messages").querySelector(`li[data-ref="${CSS.escape(m.ref)}"]`);
    if (!li) {
      as.stale.add(m.ref);
      continue;
    }
    as.stale.delete(m.ref);
    const focused = li.contains(document.activeElement);
    const node = messageNode(m);
    li.replaceWith(node);
    if (focused) (node.querySelector(".msg-actions") || $("messages")).focus(); // a deleted message has no actions
  }
}

// onAction: a reaction, edit or delete came live.
export function onAction(m) {
  if (m.conversation === st.current) refresh(m.conversation);
}

// drawn: chat.js put message nodes into the chat. One that an action
// changed while it was not in it is drawn again from the history.
export function drawn() {
  for (const ref of as.stale) {
    if ($("messages").querySelector(`li[data-ref="${CSS.escape(ref)}"]`)) return refresh(st.current);
  }
}

// sent: one of this browser's messages got its reference.
export function sent(li, m) {
  if (li && !li.dataset.ref) decorate(li, m);
}

// openChat forgets the chat that was open.
export function openChat() {
  as.byRef.clear();
  as.stale.clear();
  closeMenu(false);
  if (as.mode) setMode(null);
}
