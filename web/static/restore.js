// Restore from a backup, on the set-up screen of a browser that signed in
// and holds no keys: the recovery key brings back the account's identity,
// conversations and history (protocol.md §14.4). A typo is caught before
// anything is sent; a wrong key or a damaged backup changes nothing.
import { $, el, errorText } from "./util.js";
import { st } from "./state.js";
import { route } from "./app.js";

// The restored backup's date (from inside the encrypted backup): a
// server can serve an older backup of the account, but not change its
// date, so the user is the one who can tell.
function showRestored(made) {
  if (!made || $("restored")) return;
  const note = el("div", { id: "restored", class: "notice", role: "status" },
    el("p", { text: `Restored from the backup made on ${new Date(made).toLocaleString()}. If you used sandi after that, the server gave this browser an older backup than your last one: what came later is missing.` }),
    el("button", { type: "button", text: "Dismiss", onclick: () => note.remove() }));
  $("pane").prepend(note);
}
$("restore-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const btn = $("restore-button");
  btn.disabled = true;
  btn.textContent = "Restoring…";
  $("restore-error").textContent = "";
  try {
    const r = await sandi.restore($("restore-key").value);
    const { backupMade, ...me } = r;
    st.me = me;
    $("restore-key").value = "";
    await route();
    showRestored(backupMade);
  } catch (e) {
    $("restore-error").textContent = errorText(e);
  } finally {
    btn.disabled = false;
    btn.textContent = "Restore";
  }
});
