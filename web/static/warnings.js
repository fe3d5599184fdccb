// sandi web client: the banner above the panes, for identity changes of
// contacts and for new sign-ins to this account, with links to compare
// safety numbers or to the devices view; and the one for what another
// device handed over at this browser's link when its import failed.
import { $, el, errorText } from "./util.js";
import { st } from "./state.js";

// loadWarnings reads the module's warnings and draws the banner.
export async function loadWarnings() {
  let ws;
  try {
    ws = await sandi.warnings();
  } catch (e) {
    return;
  }
  // New sign-ins to this account, one line each.
  st.sessionWarnings = ws.filter((w) => w.kind === "session_added");
  // One line per contact, with its name when the warning lacks one.
  const byUser = new Map();
  for (const w of ws) {
    if (w.kind !== "identity_changed") continue;
    const prev = byUser.get(w.user);
    byUser.set(w.user, { user: w.user, username: w.username || (prev && prev.username) || "" });
  }
  for (const w of byUser.values()) {
    if (!w.username) {
      try {
        w.username = (await sandi.findUser(w.user)).username;
      } catch (e) {
        w.username = "a contact";
      }
    }
  }
  st.warnings = [...byUser.values()];
  drawBanner();
}

function drawBanner() {
  const b = $("banner");
  const sessions = st.sessionWarnings || [];
  if (st.warnings.length === 0 && sessions.length === 0) {
    b.hidden = true;
    return;
  }
  $("banner-text").innerHTML = "";
  if (sessions.length > 0) {
    const ids = sessions.map((w) => (w.device || "").slice(0, 8)).join(", ");
    $("banner-text").append(
      el("strong", { text: `Someone signed in to your account with its password (session ${ids}).` }),
      " If it was not you, sign that session out under Devices and change your password there. ");
  }
  if (st.warnings.length > 0) {
    const names = st.warnings.map((w) => w.username);
    const who = names.join(", ");
    $("banner-text").append(
      el("strong", { text: `The identity key of ${who} changed.` }),
      " This happens when someone resets their account on a new device — or when someone else is trying to pose as them. Compare safety numbers before you trust new messages.");
  }
  const links = $("banner-links");
  links.innerHTML = "";
  if (sessions.length > 0) links.append(el("a", { href: "#/devices", text: "Devices" }), " ");
  for (const w of st.warnings) {
    links.append(el("a", { href: "#/safety/" + encodeURIComponent(w.username), text: "Compare with " + w.username }), " ");
  }
  b.hidden = false;
}
$("banner-dismiss").addEventListener("click", async () => {
  await sandi.dismissWarnings();
  st.warnings = [];
  st.sessionWarnings = [];
  drawBanner();
});

// ---- what another device handed over at the link ----
// A link that hands over history (or, without, the block list and message
// requests) imports it at once; when that fails (the connection, a
// changed archive) the browser is linked all the same and keeps what it
// needs to try again: importTransfer tries when the main view opens and
// when the connection comes back, and the banner's button at will, until
// it is in.
let importing = null;
export function importTransfer() {
  if (!importing) importing = tryImport().finally(() => { importing = null; });
  return importing;
}

async function tryImport() {
  const b = $("transfer-banner");
  $("transfer-retry").disabled = true;
  try {
    if (!(await sandi.pendingTransfer())) {
      b.hidden = true;
      return;
    }
    $("transfer-text").textContent = "Importing the history your other device handed over…";
    b.hidden = false;
    await sandi.resumeTransfer();
    b.hidden = true;
    onImported();
  } catch (e) {
    $("transfer-text").textContent = "The history your other device handed over when you linked this browser " +
      "is not imported yet (" + errorText(e).replace(/\.$/, "") + "). It is kept here; sandi tries again when the connection comes back.";
  } finally {
    $("transfer-retry").disabled = false;
  }
}

// onImported is called after an import (app.js redraws what it brought).
let onImported = () => {};
export function whenImported(f) { onImported = f; }

$("transfer-retry").addEventListener("click", () => importTransfer());
