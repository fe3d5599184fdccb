// Restore from a backup, on the set-up screen of a browser that signed in
// and holds no keys: the recovery key brings back the account's identity,
// conversations and history (protocol.md §14.4). A typo is caught before
// anything is sent; a wrong key or a damaged backup changes nothing.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  $("restore-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const app = window.sandiApp;
    const btn = $("restore-button");
    btn.disabled = true;
    btn.textContent = "Restoring…";
    $("restore-error").textContent = "";
    try {
      app.st.me = await sandi.restore($("restore-key").value);
      $("restore-key").value = "";
      await app.route();
    } catch (e) {
      $("restore-error").textContent = app.errorText(e);
    } finally {
      btn.disabled = false;
      btn.textContent = "Restore";
    }
  });
})();
