// The conversation list's search: the box above the list filters the
// conversations by name as one types and, from two characters on, finds
// the messages of this browser's history (IndexedDB, through the module)
// that contain the text. app.js draws the list and calls init once.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  let query = "";
  let app = null; // {draw(), convName(id)}
  let seq = 0;    // of the latest search, so an older answer is dropped

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
      const a = document.createElement("a");
      a.href = "#/c/" + m.conversation;
      a.className = "hit";
      a.dataset.seq = m.seq;
      const where = document.createElement("span");
      where.className = "hit-where";
      where.textContent = app.convName(m.conversation) + " · " + m.sender;
      const text = document.createElement("span");
      text.className = "hit-text";
      text.textContent = m.text;
      a.append(where, text);
      const li = document.createElement("li");
      li.append(a);
      ul.append(li);
    }
    $("search-none").hidden = ul.children.length > 0;
    box.hidden = false;
  }

  let timer = null;
  function init(a) {
    app = a;
    const input = $("conv-search");
    input.addEventListener("input", () => {
      query = norm(input.value.trim());
      app.draw();
      clearTimeout(timer);
      timer = setTimeout(searchMessages, 150);
    });
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && input.value) {
        ev.stopPropagation();
        input.value = "";
        input.dispatchEvent(new Event("input"));
      }
    });
  }

  window.sandiList = { init, matches };
})();
