// Logging out. The first click on "Log out" asks for a second and shows what
// will be lost, whether the account has a backup, and offers to make one
// (its recovery key shown once), to log out but keep the history readable
// in this browser, or to keep everything and stay logged in.
//
// After such a logout, the sign-in screen shows the kept history, read
// only (no client, no keys: the page reads the copy sandi.kept() returns),
// with an action that deletes it from this browser.
import { $, el, errorText, fmtTime, confirmed, disarm } from "./util.js";
import { show, fail } from "./state.js";
import { deleteOutbox } from "./outbox.js";

const reset = () => disarm($("logout-button"));
async function logoutInfo() {
  $("logout-panel").hidden = false;
  $("logout-key").hidden = true;
  $("logout-backup").textContent = "Checking for a backup…";
  try {
    const s = await sandi.backupStatus();
    $("logout-backup").textContent = s.enabled
      ? "This account has a backup: with its recovery key, a browser or device that logs in can restore it."
      : "This account has no backup: unless another device of yours is linked, your history cannot come back into sandi (keeping it here keeps a copy you can only read) and your contacts will see a new key after you log in again.";
    $("logout-backup-button").hidden = s.enabled;
  } catch (e) {
    $("logout-backup").textContent = errorText(e);
  }
}
$("logout-backup-button").addEventListener("click", async () => {
  const btn = $("logout-backup-button");
  btn.disabled = true;
  try {
    const key = await sandi.enableBackup();
    $("logout-backup").textContent = "Backup made. Write down this recovery key now: it is shown only once, and restores your account on the set-up screen after you log in.";
    $("logout-key").textContent = key;
    $("logout-key").hidden = false;
    btn.hidden = true;
  } catch (e) {
    $("logout-backup").textContent = "No backup was made: " + errorText(e);
  } finally {
    btn.disabled = false;
  }
});
$("logout-keep-history").addEventListener("click", () => logout(true));
// Keeping everything closes the panel, as Escape does.
function keep() {
  $("logout-panel").hidden = true;
  reset();
  $("logout-button").focus();
}
$("logout-keep").addEventListener("click", keep);
for (const id of ["logout-panel", "logout-button"]) {
  $(id).addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape" || $("logout-panel").hidden) return;
    ev.preventDefault();
    keep();
  });
}

$("logout-button").addEventListener("click", () => {
  if (!confirmed($("logout-button"), "Click again: delete this browser's keys and history")) {
    logoutInfo();
    return;
  }
  logout();
});

// logout(keepHistory): keepHistory keeps a read-only copy of the history
// in this browser (the logout panel offers it).
export async function logout(keepHistory) {
  show("loading");
  $("loading-text").textContent = keepHistory ? "Logging out; keeping this browser's history readable…" : "Logging out and deleting this browser's sandi data…";
  try {
    const r = await sandi.logout(!!keepHistory);
    if (r && r.warning) sessionStorage.setItem("sandi-notice", r.warning);
    // The files of messages not sent go too (outbox.js).
    await deleteOutbox().catch((e) => sessionStorage.setItem("sandi-notice", "Files of messages not sent could not be deleted from this browser: " + errorText(e)));
  } catch (e) {
    fail("Logging out failed: " + errorText(e));
    return;
  }
  location.hash = "";
  location.reload();
}

// ---- the kept history, on the sign-in screen ----
let kept = [];
const keptName = (k, c) => c.title || [...new Set(c.messages.filter((m) => m.sender !== k.username).map((m) => m.sender))].join(", ") || "Just you";
const keptLine = (m) => m.type === "title" ? `${m.sender} named the conversation “${m.text}”`
  : m.deleted ? "(deleted)"
  : [m.text, ...(m.attachments || []).map((a) => `[${a.name}]`)].filter(Boolean).join(" ");
function openKept(k, c) {
  $("kept-view").hidden = false;
  $("kept-title").textContent = `${keptName(k, c)} (${k.username})`;
  const ol = $("kept-messages");
  ol.replaceChildren(...c.messages.map((m) => {
    const at = m.sentAt || m.receivedAt;
    return el("li", { class: "msg" + (m.own || m.sender === k.username ? " own" : "") },
      el("div", { class: "meta" },
        el("span", { class: "sender", text: m.sender }),
        el("time", { datetime: new Date(at).toISOString(), text: fmtTime(at) })),
      el("div", { class: "text", text: keptLine(m) }));
  }));
}
// showKept lists the history kept at a logout, on the sign-in view.
export async function showKept() {
  try {
    kept = await sandi.kept();
  } catch (e) {
    $("kept").hidden = false;
    $("kept-status").textContent = errorText(e);
    return;
  }
  $("kept").hidden = kept.length === 0;
  $("kept-view").hidden = true;
  const ul = $("kept-list");
  ul.replaceChildren();
  for (const k of kept) {
    for (const c of k.conversations) {
      const last = c.messages[c.messages.length - 1];
      const b = el("button", { type: "button", class: "conv link-button", "data-id": c.id },
        el("span", { class: "conv-name", text: keptName(k, c) }),
        el("span", { class: "conv-last", text: `${k.username} · ${last ? last.sender + ": " + keptLine(last) : "No messages"}` }));
      b.addEventListener("click", () => openKept(k, c));
      ul.append(el("li", {}, b));
    }
  }
}
$("kept-delete").addEventListener("click", async () => {
  const b = $("kept-delete");
  if (!confirmed(b, "Click again: delete the kept history for good")) return;
  b.disabled = true;
  try {
    await sandi.forgetKept();
    await showKept();
  } catch (e) {
    $("kept-status").textContent = "Nothing was deleted: " + errorText(e);
  } finally {
    b.disabled = false;
  }
});
