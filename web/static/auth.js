// sandi web client: the views before the main one. Sign-in and
// registration (with the history kept at a logout below them: logout.js),
// and the set-up of a browser that signed in without the account's keys:
// link it from another device, restore a backup (restore.js) or reset the
// identity.
import { $, errorText, drawQR } from "./util.js";
import { st, show, ready } from "./state.js";
import { route } from "./app.js";
import { logout, showKept } from "./logout.js";

// ---- register / log in ----
export function showAuth() {
  show("auth");
  const notice = sessionStorage.getItem("sandi-notice");
  if (notice) {
    sessionStorage.removeItem("sandi-notice");
    $("auth-error").textContent = notice;
  }
  ready();
  $("auth-username").focus();
  showKept();
}
const authMode = () => document.querySelector('input[name="auth-mode"]:checked').value;
for (const r of document.querySelectorAll('input[name="auth-mode"]')) {
  r.addEventListener("change", () => {
    const reg = authMode() === "register";
    $("auth-submit").textContent = reg ? "Create account" : "Log in";
    $("auth-password").autocomplete = reg ? "new-password" : "current-password";
    $("auth-error").textContent = "";
  });
}
$("auth-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const user = $("auth-username").value.trim();
  const pass = $("auth-password").value;
  if (!user || !pass) {
    $("auth-error").textContent = "Enter a username and a password.";
    return;
  }
  const btn = $("auth-submit");
  btn.disabled = true;
  $("auth-error").textContent = "";
  const label = btn.textContent;
  btn.textContent = authMode() === "register" ? "Creating keys…" : "Logging in…";
  try {
    st.me = authMode() === "register" ? await sandi.register(user, pass) : await sandi.login(user, pass);
    $("auth-password").value = "";
    await route();
  } catch (e) {
    $("auth-error").textContent = errorText(e);
  } finally {
    btn.disabled = false;
    btn.textContent = label;
  }
});

// ---- a new browser: link or reset ----
export async function showSetup() {
  show("setup");
  ready();
  $("setup-user").textContent = st.me.username;
  $("link-qr").innerHTML = "";
  try {
    const link = await sandi.startLink();
    const lc = $("link-code"); // may wrap between groups, never inside one
    lc.textContent = "";
    link.code.split("-").forEach((g, i) => { if (i) lc.append("-", document.createElement("wbr")); lc.append(g); });
    drawQR($("link-qr"), link.qr);
    $("link-status").textContent = "Waiting for your other device to confirm this code (it works for 10 minutes)…";
  } catch (e) {
    $("link-status").textContent = "Cannot start linking: " + errorText(e);
    return;
  }
  try {
    st.me = await sandi.waitLink();
    $("link-status").textContent = "Linked.";
    await route();
  } catch (e) {
    if ($("app").dataset.view !== "setup") return;
    if (e && e.code === "link_expired") return showSetup(); // a new code
    $("link-status").textContent = "Linking stopped: " + errorText(e);
  }
}
$("reset-confirm").addEventListener("change", () => { $("reset-button").disabled = !$("reset-confirm").checked; });
$("reset-button").addEventListener("click", async () => {
  const btn = $("reset-button");
  btn.disabled = true;
  btn.textContent = "Resetting…";
  $("reset-error").textContent = "";
  try {
    st.me = await sandi.resetIdentity();
    await route();
  } catch (e) {
    $("reset-error").textContent = errorText(e);
    btn.disabled = false;
  } finally {
    btn.textContent = "Reset my identity";
  }
});
$("setup-logout").addEventListener("click", () => logout());
