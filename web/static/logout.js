// Before logging out: the first click on "Log out" (app.js) shows what
// will be lost, whether the account has a backup, and offers to make one
// (its recovery key shown once), to log out but keep the history readable
// in this browser, or to keep everything and stay logged in.
//
// After such a logout, the sign-in screen shows the kept history, read
// only (no client, no keys: the page reads the copy sandi.kept() returns),
// with an action that deletes it from this browser.
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
        : "This account has no backup: unless another device of yours is linked, your history cannot come back into sandi (keeping it here keeps a copy you can only read) and your contacts will see a new key after you log in again.";
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
  $("logout-keep-history").addEventListener("click", () => window.sandiApp.logout(true));
  $("logout-keep").addEventListener("click", () => {
    $("logout-panel").hidden = true;
    reset();
  });

  // ---- the kept history, on the sign-in screen ----
  const el = (...a) => window.sandiApp.el(...a);
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
          el("time", { datetime: new Date(at).toISOString(), text: window.sandiApp.fmtTime(at) })),
        el("div", { class: "text", text: keptLine(m) }));
    }));
  }
  window.sandiKept = async () => {
    try {
      kept = await sandi.kept();
    } catch (e) {
      $("kept").hidden = false;
      $("kept-status").textContent = window.sandiApp.errorText(e);
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
  };
  $("kept-delete").addEventListener("click", async () => {
    const b = $("kept-delete");
    if (!b.dataset.confirm) {
      b.dataset.confirm = "1";
      b.textContent = "Click again: delete the kept history for good";
      setTimeout(() => { delete b.dataset.confirm; b.textContent = "Delete everything from this browser"; }, 8000);
      return;
    }
    delete b.dataset.confirm;
    b.textContent = "Delete everything from this browser";
    b.disabled = true;
    try {
      await sandi.forgetKept();
      await window.sandiKept();
    } catch (e) {
      $("kept-status").textContent = "Nothing was deleted: " + window.sandiApp.errorText(e);
    } finally {
      b.disabled = false;
    }
  });
})();
