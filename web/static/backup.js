// Backups, in the Devices pane: turn them on (the recovery key is shown
// once, with a copy button, until the user says it is written down), see
// when the last one was made, back up now, turn them off (which deletes the
// server's copy). While the main view is shown and the page is visible, the
// page asks for an automatic backup every minute: sandi.maybeBackup()
// makes one only when the last is older than the SDK's rule (hourly), as
// the CLI does after each command.
import { $, errorText, confirmed } from "./util.js";

const main = () => $("app").dataset.view === "main";

// status draws the backup settings. Calls overlap (opening the pane, a
// button's end, an automatic backup): only the latest draws, so an older
// answer that comes last does not put back a stale date.
let statusCalls = 0;
export async function backupStatus() {
  if (!main()) return;
  const call = ++statusCalls;
  let s;
  try {
    s = await sandi.backupStatus();
  } catch (e) {
    if (call === statusCalls) $("backup-error").textContent = errorText(e);
    return;
  }
  if (call !== statusCalls) return;
  $("backup-status").dataset.last = String(s.last || 0);
  $("backup-status").dataset.enabled = s.enabled ? "1" : "";
  $("backup-status").textContent = !s.enabled
    ? "Backups are off: if you lose every device of yours, your history is lost and your contacts see a new key."
    : s.last ? `Backups are on. Last backup: ${new Date(s.last).toLocaleString()}.` : "Backups are on. No backup has been made yet.";
  $("backup-enable").hidden = s.enabled;
  $("backup-now").hidden = !s.enabled;
  $("backup-disable").hidden = !s.enabled;
}

// busy runs f with the button disabled, clearing and then setting the
// error line.
async function busy(btn, f) {
  btn.disabled = true;
  $("backup-error").textContent = "";
  try {
    await f();
  } catch (e) {
    $("backup-error").textContent = errorText(e);
  } finally {
    btn.disabled = false;
    await backupStatus();
  }
}

$("backup-enable").addEventListener("click", () => busy($("backup-enable"), async () => {
  const key = await sandi.enableBackup();
  $("backup-key").textContent = key;
  $("backup-written").checked = false;
  $("backup-new-key").hidden = false;
}));
$("backup-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("backup-key").textContent);
    $("backup-copy").textContent = "Copied";
  } catch (e) {
    $("backup-error").textContent = "Could not copy: select the key and copy it by hand.";
  }
});
$("backup-written").addEventListener("change", () => {
  if (!$("backup-written").checked) return;
  $("backup-new-key").hidden = true;
  $("backup-key").textContent = "";
  $("backup-copy").textContent = "Copy";
});
$("backup-now").addEventListener("click", () => busy($("backup-now"), () => sandi.backupNow()));
$("backup-disable").addEventListener("click", () => {
  const b = $("backup-disable");
  if (!confirmed(b, "Click again: turn off backups and delete the server's copy")) return;
  busy(b, async () => {
    await sandi.disableBackup();
    $("backup-new-key").hidden = true;
  });
});

// Automatic backups.
let running = false;
async function tick() {
  if (running || !main() || document.hidden) return;
  running = true;
  try {
    if (await sandi.maybeBackup()) await backupStatus();
  } catch (e) {
    $("backup-error").textContent = "The last automatic backup failed (it is tried again later): " + errorText(e);
  } finally {
    running = false;
  }
}
setInterval(tick, 60000);
document.addEventListener("visibilitychange", tick);
new MutationObserver(() => { if (main()) { tick(); backupStatus(); } })
  .observe($("app"), { attributes: true, attributeFilter: ["data-view"] });
// Opening the devices pane draws the card first (app.js, render).
