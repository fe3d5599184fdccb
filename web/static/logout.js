// Before logging out: the first click on "Log out" (app.js) shows what
// will be lost, whether the account has a backup, and offers to make one
// (its recovery key shown once) or to keep everything and stay logged in.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const reset = () => {
    const b = $("logout-button");
    delete b.dataset.confirm;
    b.textContent = "Log out";
  };
  window.sandiLogoutInfo = async () => {
    $("logout-panel").hidden = false;
    $("logout-key").hidden = true;
    $("logout-backup").textContent = "Checking for a backup…";
    try {
      const s = await sandi.backupStatus();
      $("logout-backup").textContent = s.enabled
        ? "This account has a backup: with its recovery key, a browser or device that logs in can restore it."
        : "This account has no backup: unless another device of yours is linked, your history is lost and your contacts will see a new key after you log in again.";
      $("logout-backup-button").hidden = s.enabled;
    } catch (e) {
      $("logout-backup").textContent = window.sandiApp.errorText(e);
    }
  };
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
      $("logout-backup").textContent = "No backup was made: " + window.sandiApp.errorText(e);
    } finally {
      btn.disabled = false;
    }
  });
  $("logout-keep").addEventListener("click", () => {
    $("logout-panel").hidden = true;
    reset();
  });
})();
