// sandi web client: the conversation list. Conversations sorted by their
// latest activity, live, with unread counts and the last message; the
// search box above filters them by name as one types and, from two
// characters on, finds the messages of this browser's history (IndexedDB,
// through the module) that contain the text.
import { $, el, debounce } from "./util.js";
import { st, convName } from "./state.js";
import { drawChatHeader } from "./chat.js";
import { drawRequests, tagRequest } from "./requests.js";
import { summary } from "./attach.js";
import { title } from "./notify.js";

export async function loadConversations() {
  let convs;
  try {
    convs = await sandi.conversations();
  } catch (e) {
    console.warn("conversations:", e);
    return;
  }
  const seen = new Set();
  for (const c of convs) {
    if (c.status) c.left = true; // left or removed: kept read-only by the SDK
    seen.add(c.id);
    if (!st.convs.has(c.id)) {
      st.order.unshift(c.id);
      // A conversation without messages sorts by when it appeared: at
      // the top when it came live, below the others at the start.
      st.seenAt.set(c.id, st.listed ? Date.now() : 0);
    }
    st.convs.set(c.id, c);
  }
  // A conversation this account left stays readable while it is open.
  for (const id of [...st.order]) {
    if (!seen.has(id)) {
      const c = st.convs.get(id);
      if (c) c.left = true;
    }
  }
  st.listed = true;
  drawList();
  if (st.current) drawChatHeader();
}

// activity is when a conversation last changed, for the list's order.
const activity = (id) => {
  const last = st.convs.get(id).last;
  return Math.max(last ? last.receivedAt || last.sentAt || 0 : 0, st.seenAt.get(id) || 0);
};

export function drawList() {
  const ul = $("conv-list");
  // The latest activity first; the search box filters by name.
  // Conversations this account left or was removed from stay listed,
  // marked, with what it could read while a member.
  // Every id in st.order is in st.convs (loadConversations adds to
  // both, and nothing removes); the sort is stable, so conversations of
  // equal activity keep their earlier order.
  st.order.sort((a, b) => activity(b) - activity(a));
  const all = st.order;
  drawRequests(all.map((id) => st.convs.get(id)).filter((c) => c.request && !c.left));
  const ids = all.filter((id) => matches(convName(st.convs.get(id))));
  $("conv-empty").hidden = all.length > 0;
  // Rows are updated in place and moved only when their place changes.
  const rows = new Map([...ul.children].map((li) => [li.dataset.id, li]));
  for (const [i, id] of ids.entries()) {
    const c = st.convs.get(id);
    let li = rows.get(id);
    if (!li) {
      li = el("li", { "data-id": id },
        el("a", { href: "#/c/" + id, class: "conv" },
          el("span", { class: "conv-name" }),
          el("span", { class: "badge" }),
          el("span", { class: "conv-last" })));
    }
    if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
    rows.delete(id);
    const a = li.firstChild;
    a.querySelector(".conv-name").textContent = convName(c);
    tagRequest(a, c);
    const last = c.last;
    const lastText = !last ? "No messages yet" :
      last.type === "title" ? `${last.sender} named it “${last.text}”` : `${last.sender}: ${summary(last)}`;
    const former = leftText(c);
    a.querySelector(".conv-last").textContent = former ? former + " · " + lastText : lastText;
    if (c.left) li.dataset.status = c.status || "left";
    else delete li.dataset.status;
    const badge = a.querySelector(".badge");
    const unread = id === st.current ? 0 : c.unread || 0;
    badge.dataset.count = String(unread);
    badge.textContent = unread > 0 ? String(unread) : "";
    if (unread > 0) badge.append(el("span", { class: "visually-hidden", text: " unread" }));
    badge.classList.toggle("zero", unread === 0);
    if (id === st.current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  for (const li of rows.values()) li.remove();
  // The tab's title counts the open conversation too while the tab is
  // hidden, as nothing is read then.
  let total = 0;
  for (const id of all) if (id !== st.current || document.hidden) total += st.convs.get(id).unread || 0;
  title(total);
}

// leftText is what a conversation's row says when this account is no
// longer a member ("" while it is).
function leftText(c) {
  if (!c.left) return "";
  return c.status === "removed" ? "You were removed" : "You left";
}

export const drawListSoon = debounce(() => drawList(), 100);

// ---- the search ----
let query = "";
let seq = 0; // of the latest search, so an older answer is dropped

const norm = (s) => String(s || "").toLocaleLowerCase();

// matches reports whether a conversation named name passes the filter.
const matches = (name) => query === "" || norm(name).includes(query);

async function searchMessages() {
  const mine = ++seq;
  const box = $("search-results");
  const ul = $("search-hits");
  if (query.length < 2) {
    box.hidden = true;
    ul.innerHTML = "";
    return;
  }
  let hits;
  try {
    hits = await sandi.search(query);
  } catch (e) {
    console.warn("search:", e);
    return;
  }
  if (mine !== seq) return;
  ul.innerHTML = "";
  // The newest first (the module gives the latest 50).
  for (const m of hits) {
    const c = st.convs.get(m.conversation);
    ul.append(el("li", {}, el("a", { href: "#/c/" + m.conversation, class: "hit", "data-seq": m.seq },
      el("span", { class: "hit-where", text: (c ? convName(c) : "") + " · " + m.sender }),
      el("span", { class: "hit-text", text: m.text }))));
  }
  $("search-none").hidden = ul.children.length > 0;
  box.hidden = false;
}

const searchSoon = debounce(searchMessages, 150);

// initList listens to the search box, once the main view is there.
export function initList() {
  const input = $("conv-search");
  input.addEventListener("input", () => {
    query = norm(input.value.trim());
    drawList();
    searchSoon();
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && input.value) {
      ev.stopPropagation();
      input.value = "";
      input.dispatchEvent(new Event("input"));
    }
  });
}
