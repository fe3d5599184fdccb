// sandi web client: the devices pane. The account's devices (from its
// signed device list: rename, remove) and the sessions that signed in
// with the password without being linked (sign out); linking a new device
// with the code it shows; changing the password. Backups (backup.js) and
// the read-receipt setting (receipts.js) are cards of this pane too.
import { $, el, errorText, fmtTime, confirmed } from "./util.js";

// openDevices draws the list of devices and sessions. A background
// refresh (quiet) leaves it alone while the user is at work in it (a
// rename form open, the focus on one of its controls): redrawing would
// throw away what they typed.
export async function openDevices(quiet) {
  const ul = $("device-list");
  if (quiet && (ul.querySelector(".rename-device-form") || ul.contains(document.activeElement))) return;
  try {
    const list = await sandi.devices();
    // Sessions that are not devices of the account: signed in with the
    // password, never linked. They read nothing, but they know the
    // password.
    let sessions = [];
    try {
      sessions = await sandi.sessions();
    } catch (e) { /* an older server: devices only */ }
    const known = new Set(list.map((d) => d.id));
    ul.innerHTML = "";
    for (const d of list) {
      let remove = null;
      if (!d.current) {
        remove = el("button", { type: "button", class: "small", text: "Remove", "aria-label": "Remove " + (d.name || d.id.slice(0, 8)) });
        remove.dataset.device = d.id;
        remove.addEventListener("click", () => removeDevice(d, remove));
      }
      ul.append(el("li", { class: d.current ? "current" : "" },
        el("span", { class: "device-name", text: d.name || d.id.slice(0, 8) }),
        el("span", { class: "muted small", text: d.createdAt ? "added " + fmtTime(d.createdAt) : "no keys yet" }),
        d.listed ? null : el("span", { class: "tag", text: "not in the signed list" }),
        d.current ? el("span", { class: "tag", text: "this browser" }) : null,
        renameControl(d, openDevices),
        remove));
    }
    for (const s of sessions) {
      if (known.has(s.device) || s.current) continue;
      let out = null;
      if (s.signOut) {
        out = el("button", { type: "button", class: "small", text: "Sign out", "aria-label": "Sign out " + (s.name || s.device.slice(0, 8)) });
        out.dataset.session = s.device;
        out.addEventListener("click", () => signOutSession(s, out));
      }
      ul.append(el("li", { class: "session" },
        el("span", { class: "device-name", text: s.name || s.device.slice(0, 8) }),
        el("span", { class: "muted small", text: "signed in " + fmtTime(s.createdAt) + (s.lastUsed ? ", last used " + fmtTime(s.lastUsed) : "") }),
        el("span", { class: "tag", text: s.keyless ? "signed in with the password only, not linked" : "not in the signed list" }),
        out));
    }
  } catch (e) {
    ul.innerHTML = "";
    ul.append(el("li", { class: "error", text: errorText(e) }));
  }
}
async function signOutSession(s, btn) {
  btn.disabled = true;
  try {
    await sandi.signOutSession(s.device);
  } catch (e) {
    alert(errorText(e));
  }
  openDevices();
}
$("password-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const status = $("password-status");
  const oldPw = $("password-old").value, newPw = $("password-new").value;
  if (!oldPw || !newPw) return;
  status.textContent = "Changing…";
  try {
    const out = await sandi.changePassword(oldPw, newPw, $("password-others").checked);
    status.textContent = "Password changed." + (out.length ? ` ${out.length} other session(s) signed out.` : "");
    $("password-old").value = "";
    $("password-new").value = "";
    openDevices();
  } catch (e) {
    status.textContent = e && e.code === "bad_credentials" ? "The current password is wrong; nothing changed." : errorText(e);
  }
});
// Removing a device takes it out of the account's signed device list;
// the server revokes it at once.
async function removeDevice(d, btn) {
  if (!confirmed(btn, "Click again: sign it out for good", "Confirm: " + btn.getAttribute("aria-label") + ", signing it out for good")) return;
  btn.disabled = true;
  try {
    await sandi.removeDevice(d.id);
  } catch (e) {
    alert(errorText(e));
  }
  openDevices();
}
$("approve-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const code = $("approve-code").value.trim();
  if (!code) return;
  $("approve-status").textContent = "Linking…";
  try {
    const history = $("approve-history").checked;
    await sandi.approveLink(code, history ? "all" : "none");
    $("approve-status").textContent = "Linked: the new device now has your account's keys" + (history ? " and this browser's history." : ".");
    $("approve-code").value = "";
    openDevices();
  } catch (e) {
    $("approve-status").textContent = errorText(e);
  }
});

// renameControl is the Rename button of a device in the devices view:
// it opens a one-field form; the name is signed by the account's key
// (protocol.md §12.5), so the server cannot change it unnoticed. Escape
// or Cancel closes the form; reload redraws the list after a rename.
function renameControl(d, reload) {
  const label = d.name || d.id.slice(0, 8);
  const button = el("button", { type: "button", class: "small rename-device", text: "Rename", "aria-label": "Rename " + label });
  button.addEventListener("click", () => {
    const input = el("input", { type: "text", maxlength: "64", value: d.name || "", "aria-label": "New name for " + label, class: "rename-device-input" });
    const status = el("span", { class: "error small", role: "alert" });
    const cancel = el("button", { type: "button", class: "small", text: "Cancel" });
    const form = el("form", { class: "rename-device-form" }, input, el("button", { type: "submit", class: "small primary", text: "Save" }), cancel, status);
    const close = () => { form.replaceWith(button); button.focus(); };
    cancel.addEventListener("click", close);
    form.addEventListener("keydown", (ev) => { if (ev.key === "Escape") { ev.stopPropagation(); close(); } });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const name = input.value.trim();
      if (!name) return;
      try {
        await sandi.renameDevice(d.id, name);
        await reload();
      } catch (e) {
        status.textContent = errorText(e);
      }
    });
    button.replaceWith(form);
    input.focus();
    input.select();
  });
  return button;
}
