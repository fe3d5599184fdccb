// sandi web client: message requests and blocks (protocol.md §16). A
// conversation started by someone this browser shares no other conversation
// with is a request: the list marks it ("Request"), a line above the list
// counts them, and its chat shows a bar with Accept, Delete (leave it and
// erase it here) and Block (block its sender, then delete). The module
// (web/wasm) decides what is a request and keeps its messages unread until
// it is accepted or answered, so the sender learns nothing.
import { $, el, errorText } from "./util.js";
import { st } from "./state.js";
import { loadConversations } from "./list.js";
import { openChat } from "./chat.js";

// drawRequests counts the requests among the listed conversations.
export function drawRequests(list) {
  const p = $("requests-count");
  p.hidden = list.length === 0;
  p.textContent = list.length === 1 ? "1 message request: open it to accept, delete or block it." :
    `${list.length} message requests: open one to accept, delete or block it.`;
}

// tagRequest marks a row of the list when its conversation is a request.
export function tagRequest(a, c) {
  let t = a.querySelector(".request-tag");
  if (c.request && !t) {
    t = el("span", { class: "tag request-tag", text: "Request" });
    a.querySelector(".conv-name").after(t);
  } else if (!c.request && t) t.remove();
}

// barRequest shows the request bar in the chat of c, if c is a request.
export function barRequest(c) {
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
    const b = ev.currentTarget;
    const conv = st.current;
    $("request-error").textContent = "";
    b.disabled = true;
    try {
      await call(conv);
      if (away) location.hash = "#/";
      await loadConversations();
      // Accepted: drawn again, so that its media load as in any chat.
      if (!away && st.current === conv) await openChat(conv, true);
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

