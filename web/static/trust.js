// sandi web client: identity trust in conversations. Each member of a
// conversation shows whether its key is verified; a conversation whose
// sending waits for an identity key not accepted says so and offers to
// accept it. The keys and checks are the module's (web/wasm); this file
// only draws. The safety-number view is safety.js, the alarm log alarms.js.
import { $, el, errorText } from "./util.js";
import { st } from "./state.js";
import { drawChatHeader } from "./chat.js";
import { drawMembers } from "./members.js";
import { loadAlarms, drawChatAlarms } from "./alarms.js";

const ts = {
  trust: new Map(), // conversation id -> {members, blocked} from sandi.trust
  notes: new Map(), // conversation id -> a line for the composer (after an accept)
};

// safetyNode draws a safety number as its 12 groups.
function safetyNode(number, label) {
  const p = el("p", { class: "safety-number", "aria-label": label });
  for (const g of (number || "").split(" ")) p.append(el("span", { text: g }));
  return p;
}

// ---- per conversation: members' state and why sending waits ----
async function loadTrust(id) {
  const c = st.convs.get(id);
  if (!c || c.left) {
    ts.trust.delete(id);
    if (st.current === id) drawChat();
    return;
  }
  let t;
  try {
    t = await sandi.trust(id, c.members || []);
  } catch (e) {
    console.warn("trust:", e);
    return;
  }
  const before = JSON.stringify(ts.trust.get(id) || null);
  ts.trust.set(id, t);
  if (st.current !== id) return;
  drawChat();
  if (before !== JSON.stringify(t)) {
    drawChatHeader(); // enables or disables the composer
    if (st.membersOpen) drawMembers();
  }
}

// blocked says whether sending in a conversation waits for the user.
export const blocked = (id) => {
  const t = ts.trust.get(id);
  return !!(t && t.blocked);
};

function memberOf(t, user) {
  return (t.members || []).find((m) => m.user === user);
}

function drawChat() {
  const id = st.current;
  drawBlocked(id);
  drawChatAlarms(id);
}

function drawBlocked(id) {
  const box = $("chat-trust");
  const hint = $("composer-blocked");
  const t = id && ts.trust.get(id);
  const b = t && t.blocked;
  // Redraw only what changed: the notice is an alert, read out when drawn.
  const sig = JSON.stringify([id, b || null, b && memberOf(t, b.user), ts.notes.get(id) || ""]);
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  if (!b) {
    box.hidden = true;
    box.textContent = "";
    const note = id && ts.notes.get(id);
    hint.hidden = !note;
    hint.textContent = note || "";
    return;
  }
  const who = b.username || "a member";
  box.textContent = "";
  box.hidden = false;
  box.dataset.user = b.user;
  box.dataset.kind = b.own ? "own" : b.pending ? "pending" : "other";
  if (b.own) {
    box.classList.add("critical");
    box.append(
      el("p", {}, el("strong", { text: "This conversation names an identity key for your account that is not this browser’s." }),
        " Your account may be compromised: someone may be posing as you. Sending here is refused."),
      el("a", { href: "#/alarms", text: "See the alarms" }));
    hint.textContent = "Sending is refused: this conversation names a key for your account that is not this browser’s.";
    hint.hidden = false;
    return;
  }
  box.classList.remove("critical");
  if (!b.pending) {
    box.append(el("p", {}, el("strong", { text: `This conversation names a key for ${who} other than the one this browser accepted.` }),
      ` Sending here waits until ${who}’s key update arrives in it.`));
    hint.textContent = `Sending is paused: this conversation names a key for ${who} that this browser has not accepted.`;
    hint.hidden = false;
    return;
  }
  const m = memberOf(t, b.user);
  const verified = m && m.verified;
  box.append(
    el("p", {},
      el("strong", { text: `The identity key of ${who} changed.` }),
      verified ? ` You had verified ${who}, so sending here is paused until you accept the new key.` :
        ` Sending here is paused until you accept the new key.`,
      ` This happens when ${who} resets their account — or when someone else is trying to pose as ${who}. Compare the new safety number with ${who} first, in person or over a channel you trust.`),
    el("div", { class: "trust-numbers" },
      el("div", {}, el("p", { class: "small", text: "Old safety number" }), safetyNode(b.oldSafetyNumber, "Old safety number")),
      el("div", {}, el("p", { class: "small", text: "New safety number" }), safetyNode(b.newSafetyNumber, "New safety number"))),
    el("p", { class: "error", role: "status", id: "chat-trust-status" }),
    el("div", { class: "banner-actions" },
      el("button", { type: "button", class: "primary", id: "accept-identity", text: "Accept the new key",
        "aria-label": `Accept the new identity key of ${who}`, onclick: () => accept(b, id) }),
      el("a", { href: "#/safety/" + encodeURIComponent(b.username || b.user), text: `Compare safety numbers with ${who}` })));
  hint.textContent = `Sending is paused: ${who}’s identity key changed. Accept the new key above to send.`;
  hint.hidden = false;
}

async function accept(b, id) {
  const btn = $("accept-identity");
  if (btn) btn.disabled = true;
  try {
    await sandi.acceptIdentity(b.username || b.user);
  } catch (e) {
    if (btn) btn.disabled = false;
    const s = $("chat-trust-status");
    if (s) s.textContent = errorText(e);
    return;
  }
  await loadTrust(id);
  await loadAlarms();
  if (st.current === id && !blocked(id)) {
    ts.notes.set(id, `Accepted the new key of ${b.username || "the contact"}. Their safety number changed: compare it and verify them again.`);
    drawBlocked(id);
    $("composer-input").focus();
  }
}

// memberState is the tag next to a member in the members panel.
export function memberState(name) {
  const t = ts.trust.get(st.current);
  const m = t && (t.members || []).find((x) => x.name === name);
  if (!m) return null;
  const [state, text] = m.pending ? ["changed", "key changed"] : m.verified ? ["verified", "verified"] : ["unverified", "not verified"];
  return el("span", { class: "tag trust-tag", "data-state": state, text });
}

// sendFailed explains a send that an identity key stopped, and shows why.
export function sendFailed(p, e) {
  if (!e || e.code !== "identity_not_accepted") return;
  const who = e.username || "a member";
  p.error = e.own ? "This conversation names a key for your account that is not this browser’s." :
    `${who}’s identity key is not accepted yet: accept it above, then retry.`;
  loadTrust(p.conv);
}

// refreshTrust reloads the alarm log and the open conversation's state.
export const refreshTrust = () => Promise.all([loadAlarms(), st.current ? loadTrust(st.current) : null]);

// openChat draws what is known at once, then asks the module.
export function openChat(id) {
  ts.notes.clear();
  delete $("chat-trust").dataset.sig;
  drawChat();
  return loadTrust(id);
}
