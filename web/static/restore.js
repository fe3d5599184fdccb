// Restore from a backup, on the set-up screen of a browser that signed in
// and holds no keys: the recovery key brings back the account's identity,
// conversations and history (protocol.md §14.4). A typo is caught before
// anything is sent; a wrong key or a damaged backup changes nothing.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  // The restored backup's date (from inside the encrypted backup): a
  // server can serve an older backup of the account, but not change its
  // date, so the user is the one who can tell.
  function showRestored(made) {
    if (!made || $("restored")) return;
    const app = window.sandiApp;
    const note = app.el("div", { id: "restored", class: "notice", role: "status" },
      app.el("p", { text: `Restored from the backup made on ${new Date(made).toLocaleString()}. If you used sandi after that, the server gave this browser an older backup than your last one: what came later is missing.` }),
      app.el("button", { type: "button", text: "Dismiss", onclick: () => note.remove() }));
    $("pane").prepend(note);
  }
  $("restore-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const app = window.sandiApp;
    const btn = $("restore-button");
    btn.disabled = true;
    btn.textContent = "Restoring…";
    $("restore-error").textContent = "";
    try {
      const r = await sandi.restore($("restore-key").value);
      const { backupMade, ...me } = r;
      app.st.me = me;
      $("restore-key").value = "";
      await app.route();
      showRestored(backupMade);
    } catch (e) {
      $("restore-error").textContent = app.errorText(e);
    } finally {
      btn.disabled = false;
      btn.textContent = "Restore";
    }
  });
})();
