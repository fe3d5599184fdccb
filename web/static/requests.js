// sandi web client: message requests and blocks (protocol.md §16). A
// conversation started by someone this browser shares no other conversation
// with is a request: the list marks it ("Request"), a line above the list
// counts them, and its chat shows a bar with Accept, Delete (leave it and
// erase it here) and Block (block its sender, then delete). The module
// (web/wasm) decides what is a request and keeps its messages unread until
// it is accepted or answered, so the sender learns nothing. app.js calls
// window.sandiRequests at the points it names and lends its helpers through
// window.sandiApp. The devices view's Rename (signed device names) is here
// too.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const app = () => window.sandiApp;

  // draw counts the requests among the listed conversations.
  function draw(list) {
    const p = $("requests-count");
    p.hidden = list.length === 0;
    p.textContent = list.length === 1 ? "1 message request: open it to accept, delete or block it." :
      `${list.length} message requests: open one to accept, delete or block it.`;
  }

  // tag marks a row of the list when its conversation is a request.
  function tag(a, c) {
    let t = a.querySelector(".request-tag");
    if (c.request && !t) {
      t = app().el("span", { class: "tag request-tag", text: "Request" });
      a.querySelector(".conv-name").after(t);
    } else if (!c.request && t) t.remove();
  }

  // bar shows the request bar in the chat of c, if c is a request.
  function bar(c) {
    const box = $("chat-request");
    box.hidden = !c.request || !!c.left;
    if (box.hidden) return;
    const from = c.from || "someone";
    $("chat-request-text").textContent = `${from} started this conversation. You share no other conversation with ${from}. ` +
      `Nothing is marked read until you accept; answering accepts too.`;
    $("request-accept").setAttribute("aria-label", "Accept the request from " + from);
    $("request-delete").setAttribute("aria-label", "Delete the request from " + from + " (you leave the conversation)");
    $("request-block").setAttribute("aria-label", "Block " + from + " and delete the request");
  }

  function act(id, call, away) {
    $(id).addEventListener("click", async (ev) => {
      const { st, errorText, loadConversations } = app();
      const b = ev.currentTarget;
      const conv = st.current;
      $("request-error").textContent = "";
      b.disabled = true;
      try {
        await call(conv);
        if (away) location.hash = "#/";
        await loadConversations();
      } catch (e) {
        $("request-error").textContent = errorText(e);
      } finally {
        b.disabled = false;
      }
    });
  }
  act("request-accept", (c) => sandi.acceptRequest(c), false);
  act("request-delete", (c) => sandi.deleteRequest(c), true);
  act("request-block", (c) => sandi.blockRequest(c), true);

  // renameControl is the Rename button of a device in the devices view:
  // it opens a one-field form; the name is signed by the account's key
  // (protocol.md §12.5), so the server cannot change it unnoticed. Escape
  // or Cancel closes the form; reload redraws the list after a rename.
  function renameControl(d, reload) {
    const { el, errorText } = app();
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

  window.sandiRequests = { draw, tag, bar, renameControl };
})();
