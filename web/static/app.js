// sandi web client: the page around the WebAssembly module (web/wasm),
// which holds the keys and does every cryptographic operation. This file
// only draws views and calls the module's `sandi` object, whose functions
// return Promises.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const trust = () => window.sandiTrust || {}; // trust.js: identity trust and alarms
  const actions = () => window.sandiActions || {}; // actions.js: replies, reactions, edits, deletes
  const requests = () => window.sandiRequests || {}; // requests.js: message requests and blocks
  const attach = () => window.sandiAttach; // attach.js: files, images and voice notes
  const timeline = () => window.sandiTimeline || {}; // timeline.js: lines, dates, links, timer
  const offline = () => window.sandiOffline || { onChange() {}, connected() {} }; // offline.js: the connection indicator
  const notify = () => window.sandiNotify || { message() {}, title() {} }; // notify.js: notifications, the tab title
  const list = () => window.sandiList || { init() {}, matches: () => true }; // list.js: the list's search
  const receipts = () => window.sandiReceipts || {}; // receipts.js: receipts and typing
  const timings = (window.sandiTimings = {});
  const mark = (name) => { timings[name] = Math.round(performance.now()); };

  // ---- state ----
  const st = {
    me: null,            // {username, userId, deviceId, hasAccount, hasIdentity}
    convs: new Map(),    // id -> conversation from sandi.conversations()
    order: [],           // conversation ids in list order
    current: null,       // open conversation id
    pending: new Map(),  // conversation id -> [{localId, text, status, seq, error}]
    localId: 0,
    picked: [],          // usernames chosen for a new conversation
    warnings: [],
    sessionWarnings: [],  // new sign-ins to this account (session_added)
    membersOpen: false,
    shown: new Set(),    // seqs drawn in the open chat
    incoming: [],        // messages to draw at the next frame
    older: [],           // the open chat's history above what is drawn, oldest first ({seq, node()})
    newer: [],           // the open chat's messages below what is drawn, oldest first ({seq, node()})
    seenAt: new Map(),   // conversation id -> when it first appeared (0: at the start)
    listed: false,       // the list was loaded once
  };

  // ---- helpers ----
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  const errorText = (e) => {
    const byCode = {
      bad_credentials: "Wrong username or password.",
      username_taken: "That username is taken.",
      rate_limited: "Too many attempts. Wait a minute and try again.",
      unauthenticated: "This device was signed out. Log out and log in again.",
    };
    if (e && byCode[e.code]) return byCode[e.code];
    if (e && e.code === "bad_request" && e.detail) return e.detail;
    return (e && e.message) || String(e);
  };

  // Why a message could not be decrypted, by the SDK's failure class.
  const failureReasons = {
    expired: "it came after this browser had erased its key (keys of late messages are kept 7 days): the server held it back.",
    no_session: "this browser was not given the key of the epoch it was sent in (it was not a member device then).",
    bad_signature: "its signature does not verify: it may be forged.",
    too_far_ahead: "too many earlier messages of its sender are missing (more than the 1,000 skipped keys kept).",
    unknown_sender: "its sender was not a member of the conversation when it was sent.",
    server_misbehaved: "the server sent data that does not verify.",
    undecryptable: "the ciphertext does not open with its key: it was damaged or tampered with.",
    bad_content: "it decrypted, but what it holds is not a valid sandi message.",
  };

  const timeFmt = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
  const dateFmt = new Intl.DateTimeFormat([], { dateStyle: "short", timeStyle: "short" });
  const fmtTime = (ms) => {
    if (!ms) return "";
    const d = new Date(ms);
    return d.toDateString() === new Date().toDateString() ? timeFmt.format(d) : dateFmt.format(d);
  };

  const others = (c) => (c.members || []).filter((m) => m !== st.me.username);
  const convName = (c) => c.title || others(c).join(", ") || "Just you";
  const isAdmin = (c) => (c.admins || []).includes(st.me.username);

  function debounce(f, ms) {
    let t = null;
    return () => { clearTimeout(t); t = setTimeout(f, ms); };
  }

  // ---- views ----
  const views = ["loading", "error", "other-tab", "auth", "setup", "main"];
  function show(view) {
    for (const v of views) $("view-" + v).hidden = v !== view;
    $("app").dataset.view = view;
  }
  function fail(msg) {
    $("error-text").textContent = msg;
    show("error");
    document.documentElement.dataset.ready = "error";
  }
  $("error-reload").addEventListener("click", () => location.reload());

  // ---- start: one tab owns the device ----
  async function boot() {
    if (!window.WebAssembly || !window.indexedDB) {
      fail("This browser lacks WebAssembly or IndexedDB, which sandi needs.");
      return;
    }
    if (!navigator.locks) {
      // Without Web Locks (very old browsers) one tab cannot be sure it is
      // alone: refuse rather than risk two tabs writing one ratchet.
      fail("This browser lacks the Web Locks API, which sandi needs to keep two tabs from using one device's keys at once.");
      return;
    }
    const owned = await new Promise((resolve) => {
      navigator.locks.request("sandi-device", { ifAvailable: true }, (lock) => {
        resolve(!!lock);
        if (lock) return new Promise(() => {}); // held until the tab closes
      });
    });
    if (!owned) {
      show("other-tab");
      document.documentElement.dataset.ready = "other-tab";
      // Take over when the other tab goes.
      navigator.locks.request("sandi-device", () => {
        start();
        return new Promise(() => {});
      });
      return;
    }
    start();
  }

  async function start() {
    show("loading");
    try {
      await loadModule();
    } catch (e) {
      fail(e.message);
      return;
    }
    mark("wasmStarted");
    try {
      st.me = await sandi.open(deviceName());
    } catch (e) {
      fail("Cannot open this browser's sandi data: " + errorText(e));
      return;
    }
    mark("opened");
    await route();
  }

  function deviceName() {
    const ua = navigator.userAgent;
    const browser = /Edg\//.test(ua) ? "Edge" : /Chrom/.test(ua) ? "Chromium" : /Firefox\//.test(ua) ? "Firefox" : /Safari\//.test(ua) ? "Safari" : "Browser";
    const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS/.test(ua) ? "macOS" : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "";
    return browser + (os ? " on " + os : "");
  }

  async function loadModule() {
    const loaded = new Promise((resolve) => { window.sandiLoaded = resolve; });
    let resp;
    try {
      resp = await fetch("web/sandi.wasm");
    } catch (e) {
      throw new Error("Cannot reach the server to download sandi.");
    }
    if (resp.status === 404 || typeof Go === "undefined") {
      throw new Error("The sandi web client is not built: run go generate ./web, then restart the server.");
    }
    if (!resp.ok) throw new Error("Downloading sandi failed: HTTP " + resp.status);
    const go = new Go();
    const { instance } = await WebAssembly.instantiateStreaming(resp, go.importObject);
    mark("wasmCompiled");
    // The module's memory, in bytes (it grows and never shrinks): for the
    // tests' figures.
    window.sandiModuleMemory = () => instance.exports.mem.buffer.byteLength;
    go.run(instance).then(() => fail("sandi stopped. Reload the page."));
    await loaded;
  }

  // What to show for the device's state.
  async function route() {
    if (!st.me.hasAccount) return showAuth();
    if (!st.me.hasIdentity) return showSetup();
    return showMain();
  }

  // ---- register / log in ----
  function showAuth() {
    show("auth");
    const notice = sessionStorage.getItem("sandi-notice");
    if (notice) {
      sessionStorage.removeItem("sandi-notice");
      $("auth-error").textContent = notice;
    }
    ready();
    $("auth-username").focus();
    if (window.sandiKept) window.sandiKept(); // history kept at a logout (logout.js)
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
  async function showSetup() {
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

  // ---- the main view ----
  let listening = false;
  async function showMain() {
    show("main");
    $("me").textContent = st.me.username;
    if (!listening) window.addEventListener("hashchange", () => render());
    // Draw what is stored first; the event stream then brings what came
    // while the page was closed (it holds the client while it works).
    await refresh();
    await render();
    ready();
    if (!listening) {
      listening = true;
      list().init({ draw: () => drawList(), convName: (id) => (st.convs.has(id) ? convName(st.convs.get(id)) : "") });
      await loadOutbox();
      // Back online: what did not go out goes now, under its client id.
      offline().onChange((state) => { if (state === "online") retryFailed(); });
      document.addEventListener("visibilitychange", () => { if (!document.hidden && st.current) readCurrent(); });
      sandi.listen((m) => queueMicrotask(() => onMessage(m)), (f) => queueMicrotask(() => onFailure(f)),
        () => queueMicrotask(refreshSoon),
        (r) => queueMicrotask(() => receipts().onReceipt && receipts().onReceipt(r)),
        (t) => queueMicrotask(() => receipts().onTyping && receipts().onTyping(t)),
        (up) => queueMicrotask(() => offline().connected(up)));
      // A safety net: the event stream reports changes as they happen.
      setInterval(() => { if (!document.hidden) refresh(); }, 30000);
      document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
    }
  }

  function ready() {
    if (!timings.ready) mark("ready");
    document.documentElement.dataset.ready = $("app").dataset.view;
  }

  async function refresh() {
    await Promise.all([loadConversations(), loadWarnings(), st.pane === "devices" ? openDevices() : null,
      st.current && timeline().refreshLines ? timeline().refreshLines(st.current) : null]);
    if (st.me && st.me.hasIdentity && trust().refresh) await trust().refresh();
  }
  const refreshSoon = debounce(() => refresh(), 300);

  async function loadConversations() {
    let list;
    try {
      list = await sandi.conversations();
    } catch (e) {
      console.warn("conversations:", e);
      return;
    }
    const seen = new Set();
    for (const c of list) {
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

  function drawList() {
    const ul = $("conv-list");
    // The latest activity first; the search box filters by name.
    // Conversations this account left or was removed from stay listed,
    // marked, with what it could read while a member.
    // Every id in st.order is in st.convs (loadConversations adds to
    // both, and nothing removes); the sort is stable, so conversations of
    // equal activity keep their earlier order.
    st.order.sort((a, b) => activity(b) - activity(a));
    const all = st.order;
    if (requests().draw) requests().draw(all.map((id) => st.convs.get(id)).filter((c) => c.request && !c.left));
    const ids = all.filter((id) => list().matches(convName(st.convs.get(id))));
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
      if (requests().tag) requests().tag(a, c);
      const last = c.last;
      const lastText = !last ? "No messages yet" :
        last.type === "title" ? `${last.sender} named it “${last.text}”` : `${last.sender}: ${attach().summary(last)}`;
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
    notify().title(total);
  }

  // ---- warnings: identity changes ----
  async function loadWarnings() {
    let ws;
    try {
      ws = await sandi.warnings();
    } catch (e) {
      return;
    }
    // New sign-ins to this account, one line each.
    st.sessionWarnings = ws.filter((w) => w.kind === "session_added");
    // One line per contact, with its name when the warning lacks one.
    const byUser = new Map();
    for (const w of ws) {
      if (w.kind !== "identity_changed") continue;
      const prev = byUser.get(w.user);
      byUser.set(w.user, { user: w.user, username: w.username || (prev && prev.username) || "" });
    }
    for (const w of byUser.values()) {
      if (!w.username) {
        try {
          w.username = (await sandi.findUser(w.user)).username;
        } catch (e) {
          w.username = "a contact";
        }
      }
    }
    st.warnings = [...byUser.values()];
    drawBanner();
  }

  function drawBanner() {
    const b = $("banner");
    const sessions = st.sessionWarnings || [];
    if (st.warnings.length === 0 && sessions.length === 0) {
      b.hidden = true;
      return;
    }
    $("banner-text").innerHTML = "";
    if (sessions.length > 0) {
      const ids = sessions.map((w) => (w.device || "").slice(0, 8)).join(", ");
      $("banner-text").append(
        el("strong", { text: `Someone signed in to your account with its password (session ${ids}).` }),
        " If it was not you, sign that session out under Devices and change your password there. ");
    }
    if (st.warnings.length > 0) {
      const names = st.warnings.map((w) => w.username);
      const who = names.join(", ");
      $("banner-text").append(
        el("strong", { text: `The identity key of ${who} changed.` }),
        " This happens when someone resets their account on a new device — or when someone else is trying to pose as them. Compare safety numbers before you trust new messages.");
    }
    const links = $("banner-links");
    links.innerHTML = "";
    if (sessions.length > 0) links.append(el("a", { href: "#/devices", text: "Devices" }), " ");
    for (const w of st.warnings) {
      links.append(el("a", { href: "#/safety/" + encodeURIComponent(w.username), text: "Compare with " + w.username }), " ");
    }
    b.hidden = false;
  }
  $("banner-dismiss").addEventListener("click", async () => {
    await sandi.dismissWarnings();
    st.warnings = [];
    st.sessionWarnings = [];
    drawBanner();
  });

  // ---- routing ----
  async function render() {
    const h = location.hash.replace(/^#\/?/, "");
    const [page, arg] = [h.split("/")[0], decodeURIComponent(h.split("/").slice(1).join("/"))];
    const panes = ["empty", "chat", "new", "devices", "safety", "alarms"];
    let pane = "empty";
    if (page === "c" && arg) pane = "chat";
    else if (page === "new") pane = "new";
    else if (page === "devices") pane = "devices";
    else if (page === "safety" && arg) pane = "safety";
    else if (page === "alarms") pane = "alarms";
    for (const p of panes) $("pane-" + p).hidden = p !== pane;
    st.pane = pane;
    $("app").dataset.pane = pane === "empty" ? "list" : "pane";
    const prev = st.current;
    st.current = pane === "chat" ? arg : null;
    if (pane === "chat" || pane === "empty") st.lastChat = st.current;
    if (prev !== st.current) drawList();
    if (pane === "chat") await openChat(arg, prev !== arg);
    if (pane === "new") openNew();
    if (pane === "devices") await openDevices();
    if (pane === "safety") await openSafety(arg);
    if (pane === "alarms" && trust().openAlarms) await trust().openAlarms();
  }

  // ---- chat ----
  async function openChat(id, fresh) {
    if (!st.convs.has(id)) await loadConversations();
    if (!st.convs.has(id)) {
      location.hash = "#/";
      return;
    }
    drawChatHeader();
    if (fresh && trust().openChat) trust().openChat(id);
    if (fresh && actions().openChat) actions().openChat(id);
    if (fresh && receipts().openChat) receipts().openChat(id);
    if (fresh) {
      mark("historyStart");
      setMembersOpen(false);
      const list = $("messages");
      list.innerHTML = "";
      attach().clear();
      st.shown = new Set();
      st.older = [];
      st.newer = [];
      st.incoming = [];
      let h;
      try {
        h = await sandi.history(id);
      } catch (e) {
        list.append(el("li", { class: "system", text: "Cannot read the history: " + errorText(e) }));
        return;
      }
      if (st.current !== id) return;
      const items = [
        ...h.messages.map((m) => ({ seq: m.seq, node: () => messageNode(m) })),
        ...h.failures.map((f) => ({ seq: f.seq, node: () => failureNode(f) })),
        ...(timeline().items ? timeline().items(h) : []),
      ].sort((a, b) => a.seq - b.seq);
      const pend = (st.pending.get(id) || []).filter((p) => p.status !== "sent");
      st.pending.set(id, pend);
      // Live messages that came while the history was read are queued;
      // the history goes first and they merge after it. Only the latest
      // messages are drawn; older ones are drawn as the reader scrolls up
      // (drawOlder), so a long conversation opens at once.
      const fresh = items.filter((it) => !st.shown.has(it.seq));
      for (const it of fresh) st.shown.add(it.seq);
      st.older = fresh.slice(0, Math.max(0, fresh.length - historyWindow));
      const frag = document.createDocumentFragment();
      for (const it of fresh.slice(st.older.length)) frag.append(it.node());
      for (const p of pend) frag.append(pendingNode(p));
      list.append(frag);
      if (timeline().afterOpen) timeline().afterOpen(list, st.convs.get(id));
      list.scrollTop = list.scrollHeight;
      if (!$("composer-input").disabled && !matchMedia("(pointer: coarse)").matches) $("composer-input").focus();
      mark("historyRendered");
      timings.historyCount = h.messages.length;
    }
    if (!document.hidden && st.convs.has(id)) st.convs.get(id).unread = 0;
    markRead(id);
  }

  // historyWindow messages are drawn when a conversation opens, and
  // olderPage more each time the reader scrolls near the top (near the
  // bottom, newer ones); the page holds at most about 3 * historyWindow
  // messages, the others wait in st.older and st.newer.
  const historyWindow = 300;
  const olderPage = 100;
  // delivered: the drawn items with a seq, this device's own once sent
  // among them (a message not yet sent stays below the window).
  const delivered = (list) => [...list.children].filter((li) => li.dataset.seq);
  function drawOlder() {
    const list = $("messages");
    if (st.older.length === 0 || list.scrollTop > 600) return;
    const page = st.older.splice(Math.max(0, st.older.length - olderPage));
    const frag = document.createDocumentFragment();
    for (const it of page) frag.append(it.node());
    // The reader stays on what they were reading.
    const top = list.scrollTop, height = list.scrollHeight;
    list.insertBefore(frag, list.firstChild);
    if (timeline().separators) timeline().separators(list);
    list.scrollTop = top + list.scrollHeight - height;
    // The newest drawn go below the window.
    const drawn = delivered(list);
    const gone = drawn.slice(Math.min(drawn.length, 3 * historyWindow));
    for (const li of gone) li.remove();
    st.newer.unshift(...gone.map((li) => ({ seq: Number(li.dataset.seq), node: () => li })));
  }
  function drawNewer() {
    const list = $("messages");
    if (st.newer.length === 0 || list.scrollHeight - list.scrollTop - list.clientHeight > 600) return;
    const page = st.newer.splice(0, olderPage);
    const frag = document.createDocumentFragment();
    for (const it of page) frag.append(it.node());
    list.insertBefore(frag, list.querySelector("li[data-local]:not([data-seq])"));
    // The oldest drawn go above the window; the reader stays where they are.
    const drawn = delivered(list);
    const gone = drawn.slice(0, Math.max(0, drawn.length - 3 * historyWindow));
    const above = list.scrollTop - list.scrollHeight;
    for (const li of gone) li.remove();
    st.older.push(...gone.map((li) => ({ seq: Number(li.dataset.seq), node: () => li })));
    if (timeline().separators) timeline().separators(list);
    list.scrollTop = list.scrollHeight + above;
  }
  // showNewest draws what waits below the window, for a reader sent to
  // the bottom (a message of their own).
  function showNewest(list) {
    if (st.newer.length === 0) return;
    const frag = document.createDocumentFragment();
    for (const it of st.newer.splice(0)) frag.append(it.node());
    list.insertBefore(frag, list.querySelector("li[data-local]:not([data-seq])"));
    trimTop(list);
  }
  let drawing = false;
  $("messages").addEventListener("scroll", () => {
    if ((st.older.length || st.newer.length) && !drawing) {
      drawing = true;
      requestAnimationFrame(() => {
        drawing = false;
        drawOlder();
        drawNewer();
      });
    }
  }, { passive: true });

  // trimTop keeps a reader at the bottom of a busy conversation to a
  // window of nodes: the oldest go back to st.older, drawn again on
  // scrolling up. Decorations without a seq (a day separator heads the
  // list) are passed over and drawn again; a message not yet sent ends it.
  function trimTop(list) {
    const extra = list.children.length - 2 * historyWindow;
    if (extra < olderPage) return;
    const gone = [];
    for (let li = list.firstElementChild; li && gone.length < extra; li = li.nextElementSibling) {
      if (li.dataset.seq) gone.push(li);
      else if (li.dataset.local) break;
    }
    for (const li of gone) li.remove();
    st.older.push(...gone.map((li) => ({ seq: Number(li.dataset.seq), node: () => li })));
    if (gone.length && timeline().separators) timeline().separators(list);
  }

  // leftText is what a conversation's row says when this account is no
  // longer a member ("" while it is).
  function leftText(c) {
    if (!c.left) return "";
    return c.status === "removed" ? "You were removed" : "You left";
  }

  function drawChatHeader() {
    const c = st.convs.get(st.current);
    if (!c) return;
    $("chat-title").textContent = convName(c);
    $("chat-members").textContent = (c.members || []).join(", ");
    $("chat-left").hidden = !c.left;
    if (requests().bar) requests().bar(c);
    if (c.left) $("chat-left").textContent = (c.status === "removed" ? "You were removed from this conversation." : "You are no longer a member of this conversation.") + " You can read what was sent while you were a member; nothing new reaches you, and you cannot send.";
    const blocked = !!c.left || !!(trust().blocked && trust().blocked(c.id));
    $("composer-input").disabled = blocked;
    $("send-button").disabled = blocked;
    $("attach-button").disabled = blocked;
    $("record-button").disabled = blocked;
    $("members-button").disabled = !!c.left;
    if (c.left) setMembersOpen(false);
    if (st.membersOpen) drawMembers();
  }

  function messageNode(m) {
    const own = m.own || m.senderId === st.me.userId;
    if (m.type === "title") {
      return el("li", { class: "system", "data-seq": m.seq }, `${m.sender} named the conversation “${m.text}”`);
    }
    const li = el("li", { class: "msg" + (own ? " own" : ""), "data-seq": m.seq },
      el("div", { class: "meta" },
        el("span", { class: "sender", text: own ? "You" : m.sender }),
        el("time", { datetime: new Date(m.sentAt || m.receivedAt).toISOString(), text: fmtTime(m.sentAt || m.receivedAt) })),
      el("div", { class: "text", text: m.text }),
      attach().nodes(m),
      own ? el("div", { class: "status", text: "Sent" }) : null);
    if (timeline().decorate) timeline().decorate(li, m);
    if (own && receipts().decorate) receipts().decorate(li, m);
    return actions().decorate ? actions().decorate(li, m) : li;
  }

  function failureNode(f) {
    const what = f.reason === "bad_content" ? "cannot be shown" : "cannot be decrypted";
    return el("li", { class: "failure", "data-seq": f.seq, "data-reason": f.reason },
      el("strong", { text: `Message #${f.seq} ${what}: ` }),
      el("span", { text: failureReasons[f.reason] || f.reason }),
      el("details", {}, el("summary", { text: "Details" }), el("code", { text: `${f.reason}: ${f.detail}` })));
  }

  function pendingNode(p) {
    const li = el("li", { class: "msg own", "data-local": p.localId },
      el("div", { class: "meta" }, el("span", { class: "sender", text: "You" }), el("time", { text: fmtTime(p.at) })),
      el("div", { class: "text", text: p.text }),
      p.files ? (p.status === "sent" ? attach().sentNodes(p, p.message) : attach().pendingNodes(p)) : null,
      el("div", { class: "status" }));
    drawPendingStatus(li, p);
    return li;
  }

  function drawPendingStatus(li, p) {
    li.dataset.status = p.status;
    if (p.seq) li.dataset.seq = p.seq;
    const s = li.querySelector(".status");
    s.innerHTML = "";
    if (p.status === "sending") s.textContent = "Sending…";
    else if (p.status === "sent") s.textContent = "Sent";
    else {
      s.append(el("span", { class: "error-inline", title: p.error, text: "Not sent." }),
        el("button", { type: "button", class: "retry", text: "Retry", onclick: () => trySend(p) }));
    }
  }

  // Messages that arrive are drawn once per frame: a batch costs one
  // layout, however many messages it holds (a page of history after a
  // reconnect brings hundreds). A reader at the bottom stays there; a
  // reader scrolled up is not moved.
  function queueNode(node, seq) {
    if (st.shown.has(seq)) return;
    st.shown.add(seq);
    st.incoming.push({ node, seq });
    if (st.incoming.length === 1) {
      if (document.hidden) setTimeout(flushIncoming, 100);
      else requestAnimationFrame(flushIncoming);
    }
  }

  function flushIncoming() {
    const batch = st.incoming.sort((a, b) => a.seq - b.seq);
    st.incoming = [];
    if (batch.length === 0) return;
    if (st.newer.length > 0) {
      // The reader is above the window's bottom: new messages wait below.
      st.newer.push(...batch.map(({ node, seq }) => ({ seq, node: () => node })));
      st.newer.sort((a, b) => a.seq - b.seq);
      return;
    }
    const list = $("messages");
    const near = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    // Delivered messages sort by seq; this device's pending ones stay last.
    const firstPending = list.querySelector("li[data-local]:not([data-seq])");
    let last = 0;
    for (let li = firstPending ? firstPending.previousElementSibling : list.lastElementChild; li; li = li.previousElementSibling) {
      if (li.dataset.seq) { last = Number(li.dataset.seq); break; }
    }
    const frag = document.createDocumentFragment();
    for (const { node, seq } of batch) {
      if (seq > last) {
        frag.append(node);
        continue;
      }
      // Rare: older than what is drawn (an own message sent meanwhile).
      let before = null;
      for (const li of list.children) {
        if (Number(li.dataset.seq || 0) > seq) { before = li; break; }
      }
      list.insertBefore(node, before);
    }
    list.insertBefore(frag, firstPending);
    if (timeline().afterIncoming) timeline().afterIncoming(list, batch.map((b) => b.node), near);
    if (near) {
      trimTop(list);
      list.scrollTop = list.scrollHeight;
    }
    if (!document.hidden) markReadSoon();
  }

  function appendToChat(node) {
    const list = $("messages");
    showNewest(list);
    list.append(node);
    list.scrollTop = list.scrollHeight;
  }

  const drawListSoon = debounce(() => drawList(), 100);

  function onMessage(m) {
    if (actions().isAction && actions().isAction(m)) return actions().onAction(m);
    if (receipts().onMessage) receipts().onMessage(m);
    timings.messages = (timings.messages || 0) + 1;
    if (!timings.firstMessage) mark("firstMessage");
    mark("lastMessage");
    const c = st.convs.get(m.conversation);
    if (c) {
      c.last = m;
      if (m.conversation !== st.current || document.hidden) c.unread = (c.unread || 0) + 1;
      if (!m.own && m.senderId !== st.me.userId) notify().message(m, convName(c), attach().summary(m));
    }
    if (m.conversation === st.current) queueNode(messageNode(m), m.seq);
    if (c) drawListSoon();
    refreshSoon();
  }

  function onFailure(f) {
    if (f.conversation === st.current) queueNode(failureNode(f), f.seq);
    refreshSoon();
  }

  const markRead = (id) => sandi.markRead(id).then(() => receipts().afterRead && receipts().afterRead(id)).catch(() => {});
  // readCurrent marks the open conversation read, here at once.
  function readCurrent() {
    const c = st.convs.get(st.current);
    if (c) c.unread = 0;
    drawList();
    markReadSoon();
  }
  const markReadSoon = debounce(() => { if (st.current) markRead(st.current); }, 500);

  // Enter sends; Shift+Enter is a new line.
  $("composer-input").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("composer-input");
    const text = input.value;
    if (!text.trim() || !st.current) return;
    if (actions().submit && actions().submit(st.current, text)) return;
    input.value = "";
    sendPending(st.current, text);
  });

  // sendPending shows a message being sent (with files: attach.js's
  // descriptions of them) and sends it.
  function sendPending(conv, text, files) {
    const p = { localId: ++st.localId, clientId: clientId(), conv, text, files, status: "sending", at: Date.now() };
    if (!st.pending.has(p.conv)) st.pending.set(p.conv, []);
    st.pending.get(p.conv).push(p);
    appendToChat(pendingNode(p));
    // A text message is kept until it is sent: a reload sends it again.
    const kept = files ? Promise.resolve() : sandi.outboxPut(p.clientId, conv, text).catch((e) => console.warn("outbox:", e));
    kept.then(() => trySend(p));
  }

  // loadOutbox puts the messages a reload interrupted back as pending,
  // and sends them.
  async function loadOutbox() {
    let kept;
    try {
      kept = await sandi.outbox();
    } catch (e) {
      console.warn("outbox:", e);
      return;
    }
    // A message sent from this page before the outbox was read is in it
    // too, already pending: it is not sent a second time.
    const pending = new Set([...st.pending.values()].flat().map((p) => p.clientId));
    for (const k of kept) {
      if (pending.has(k.clientId)) continue;
      const p = { localId: ++st.localId, clientId: k.clientId, conv: k.conversation, text: k.text, status: "sending", at: k.at };
      if (!st.pending.has(p.conv)) st.pending.set(p.conv, []);
      st.pending.get(p.conv).push(p);
      if (p.conv === st.current) appendToChat(pendingNode(p));
      trySend(p);
    }
  }

  function retryFailed() {
    for (const list of st.pending.values()) {
      for (const p of list) if (p.status === "failed" && !p.refused && !p.files) trySend(p);
    }
  }

  // clientId is a message's id for the server's deduplication: kept across
  // retries, so a retry of a send whose answer was lost stores nothing twice.
  function clientId() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  async function trySend(p) {
    p.status = "sending";
    redrawPending(p);
    try {
      let handles;
      if (p.files) {
        handles = await attach().uploadAll(p, (f) => f.redraw && f.redraw());
        if (handles.length === 0) return dropPending(p); // every file cancelled
      }
      const m = await sandi.send(p.conv, p.text, p.clientId, handles);
      p.status = "sent";
      p.seq = m.seq;
      p.message = m;
      if (!p.files) sandi.outboxDelete(p.clientId).catch((e) => console.warn("outbox:", e));
      if (p.conv === st.current) st.shown.add(m.seq);
      if (p.conv === st.current && actions().sent) actions().sent($("messages").querySelector(`[data-local="${p.localId}"]`), m);
      const c = st.convs.get(p.conv);
      if (c) c.last = m;
      drawList();
    } catch (e) {
      p.status = "failed";
      p.error = errorText(e);
      // Refused: the server answered no (a lost connection, an unavailable
      // or busy server is tried again when the connection comes back).
      p.refused = !!(e && e.code) && !["unavailable", "internal", "rate_limited"].includes(e.code);
      if (trust().sendFailed) trust().sendFailed(p, e);
    }
    redrawPending(p);
  }

  function redrawPending(p) {
    const li = $("messages").querySelector(`[data-local="${p.localId}"]`);
    if (!li || p.conv !== st.current) return;
    drawPendingStatus(li, p);
    // Sent: the files show as the receivers see them.
    if (p.files && p.status === "sent" && !li.dataset.shown) {
      li.dataset.shown = "1";
      li.querySelector(".atts").replaceWith(attach().sentNodes(p, p.message));
    }
  }

  function dropPending(p) {
    if (!p.files) sandi.outboxDelete(p.clientId).catch((e) => console.warn("outbox:", e));
    if (p.files) sandi.forget(p.files.filter((f) => f.handle).map((f) => f.handle));
    st.pending.set(p.conv, (st.pending.get(p.conv) || []).filter((q) => q !== p));
    const li = $("messages").querySelector(`[data-local="${p.localId}"]`);
    if (li) li.remove();
  }

  // ---- members ----
  function setMembersOpen(open) {
    st.membersOpen = open;
    $("members-panel").hidden = !open;
    $("members-button").setAttribute("aria-expanded", String(open));
    $("app").dataset.members = open ? "open" : "closed";
    if (open) drawMembers();
  }
  $("members-button").addEventListener("click", () => {
    setMembersOpen(!st.membersOpen);
    if (st.membersOpen) $("members-close").focus();
  });
  $("members-close").addEventListener("click", () => { setMembersOpen(false); $("members-button").focus(); });
  // Escape closes the members panel, whatever inside it has the focus.
  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape" || !st.membersOpen || ev.defaultPrevented) return;
    setMembersOpen(false);
    $("members-button").focus();
  });

  function drawMembers() {
    const c = st.convs.get(st.current);
    if (!c) return;
    const admin = isAdmin(c);
    const ul = $("member-list");
    ul.innerHTML = "";
    for (const name of c.members || []) {
      const me = name === st.me.username;
      ul.append(el("li", { "data-user": name },
        el("span", { class: "member-name", text: me ? name + " (you)" : name }),
        (c.admins || []).includes(name) ? el("span", { class: "tag", text: "admin" }) : null,
        me || !trust().memberState ? null : trust().memberState(name),
        me ? null : el("a", { href: "#/safety/" + encodeURIComponent(name), class: "small", "aria-label": "Safety number with " + name, text: "Safety number" }),
        admin && !me ? el("button", { type: "button", class: "remove", "aria-label": "Remove " + name, text: "Remove", onclick: (ev) => removeMember(name, ev.currentTarget) }) : null));
    }
    $("add-member-form").hidden = !admin;
    if (timeline().drawTimer) timeline().drawTimer(c);
    $("leave-button").textContent = "Leave conversation";
    delete $("leave-button").dataset.confirm;
  }

  async function removeMember(name, button) {
    $("members-error").textContent = "";
    if (button && !button.dataset.confirm) {
      button.dataset.confirm = "1";
      button.textContent = "Remove " + name + "?";
      button.setAttribute("aria-label", "Confirm: remove " + name + " from this conversation");
      return;
    }
    try {
      await sandi.removeMember(st.current, name);
      await loadConversations();
    } catch (e) {
      $("members-error").textContent = errorText(e);
    }
  }

  // A form of the members panel: one field, one action on the open
  // conversation, its error shown under the panel's forms.
  function panelForm(form, input, action) {
    $(form).addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const value = $(input).value.trim();
      if (!value) return;
      $("members-error").textContent = "";
      try {
        await action(value);
        $(input).value = "";
        await loadConversations();
      } catch (e) {
        $("members-error").textContent = errorText(e);
      }
    });
  }
  panelForm("add-member-form", "add-member-input", (name) => sandi.addMember(st.current, name));
  panelForm("rename-form", "rename-input", (title) => sandi.rename(st.current, title));

  $("leave-button").addEventListener("click", async () => {
    const b = $("leave-button");
    if (!b.dataset.confirm) {
      b.dataset.confirm = "1";
      b.textContent = "Leave: click again to confirm";
      return;
    }
    try {
      await sandi.leave(st.current);
      setMembersOpen(false);
      await loadConversations();
    } catch (e) {
      $("members-error").textContent = errorText(e);
    }
  });

  // ---- new conversation ----
  function openNew() {
    drawPicked();
    $("new-user").focus();
  }
  function drawPicked() {
    const ul = $("new-picked");
    ul.innerHTML = "";
    for (const name of st.picked) {
      ul.append(el("li", { class: "chip" }, el("span", { text: name }),
        el("button", { type: "button", "aria-label": "Remove " + name, text: "×",
          onclick: () => { st.picked = st.picked.filter((n) => n !== name); drawPicked(); } })));
    }
    $("new-title").closest("form").dataset.group = st.picked.length > 1 ? "1" : "";
  }
  async function addPicked() {
    const name = $("new-user").value.trim();
    const status = $("new-user-status");
    if (!name) return false;
    if (name === st.me.username) {
      status.textContent = "You are always a member.";
      return false;
    }
    if (st.picked.includes(name)) {
      $("new-user").value = "";
      return true;
    }
    status.textContent = "Looking for " + name + "…";
    try {
      const u = await sandi.findUser(name);
      st.picked.push(u.username);
      $("new-user").value = "";
      status.textContent = "Added " + u.username + ".";
      drawPicked();
      return true;
    } catch (e) {
      status.textContent = e.code === "unknown_user" ? `No user is called “${name}”.` : errorText(e);
      return false;
    }
  }
  $("new-user-add").addEventListener("click", () => addPicked());
  $("new-user").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      addPicked();
    }
  });
  $("new-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("new-error").textContent = "";
    if ($("new-user").value.trim() && !(await addPicked())) return;
    if (st.picked.length === 0) {
      $("new-error").textContent = "Add at least one person.";
      return;
    }
    const btn = $("new-create");
    btn.disabled = true;
    try {
      const id = await sandi.create($("new-title").value.trim(), st.picked);
      st.picked = [];
      $("new-title").value = "";
      $("new-user-status").textContent = "";
      await loadConversations();
      location.hash = "#/c/" + id;
    } catch (e) {
      $("new-error").textContent = errorText(e);
    } finally {
      btn.disabled = false;
    }
  });

  // ---- devices ----
  async function openDevices() {
    const ul = $("device-list");
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
          remove = el("button", { type: "button", class: "small", text: "Remove" });
          remove.dataset.device = d.id;
          remove.addEventListener("click", () => removeDevice(d, remove));
        }
        ul.append(el("li", { class: d.current ? "current" : "" },
          el("span", { class: "device-name", text: d.name || d.id.slice(0, 8) }),
          el("span", { class: "muted small", text: d.createdAt ? "added " + fmtTime(d.createdAt) : "no keys yet" }),
          d.listed ? null : el("span", { class: "tag", text: "not in the signed list" }),
          d.current ? el("span", { class: "tag", text: "this browser" }) : null,
          requests().renameControl ? requests().renameControl(d, openDevices) : null,
          remove));
      }
      for (const s of sessions) {
        if (known.has(s.device) || s.current) continue;
        let out = null;
        if (s.signOut) {
          out = el("button", { type: "button", class: "small", text: "Sign out" });
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
    if (!btn.dataset.confirm) {
      btn.dataset.confirm = "1";
      btn.textContent = "Click again: sign it out for good";
      setTimeout(() => { delete btn.dataset.confirm; btn.textContent = "Remove"; }, 8000);
      return;
    }
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

  // ---- safety number ----
  async function openSafety(user) {
    $("safety-peer").textContent = user;
    $("safety-heading").textContent = "Safety number with " + user;
    $("safety-number").textContent = "";
    $("safety-qr").innerHTML = "";
    $("safety-error").textContent = "";
    $("safety-back").href = st.lastChat ? "#/c/" + st.lastChat : "#/";
    try {
      const s = await sandi.safety(user);
      const groups = s.number.split(" ");
      const num = $("safety-number");
      for (const g of groups) num.append(el("span", { text: g }));
      drawQR($("safety-qr"), s.qr);
    } catch (e) {
      $("safety-error").textContent = errorText(e);
    }
    if (trust().openSafety) await trust().openSafety(user);
  }

  // drawQR draws rows of "0"/"1" as one SVG path with a 4-module quiet zone.
  function drawQR(svg, rows) {
    const n = rows.length;
    const q = 4;
    let d = "";
    rows.forEach((row, y) => {
      for (let x = 0; x < n; x++) if (row[x] === "1") d += `M${x + q} ${y + q}h1v1h-1z`;
    });
    svg.setAttribute("viewBox", `0 0 ${n + 2 * q} ${n + 2 * q}`);
    svg.setAttribute("shape-rendering", "crispEdges");
    svg.dataset.modules = String(n);
    const ns = "http://www.w3.org/2000/svg";
    const bg = document.createElementNS(ns, "rect");
    bg.setAttribute("width", "100%");
    bg.setAttribute("height", "100%");
    bg.setAttribute("fill", "#fff");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    path.setAttribute("fill", "#000");
    svg.append(bg, path);
  }

  // ---- log out ----
  $("logout-button").addEventListener("click", () => {
    const b = $("logout-button");
    if (!b.dataset.confirm) {
      b.dataset.confirm = "1";
      b.textContent = "Click again: delete this browser's keys and history";
      if (window.sandiLogoutInfo) window.sandiLogoutInfo();
      setTimeout(() => { delete b.dataset.confirm; b.textContent = "Log out"; }, 8000);
      return;
    }
    logout();
  });

  // logout(keepHistory): keepHistory keeps a read-only copy of the history
  // in this browser (logout.js offers it).
  async function logout(keepHistory) {
    show("loading");
    $("loading-text").textContent = keepHistory ? "Logging out; keeping this browser's history readable…" : "Logging out and deleting this browser's sandi data…";
    try {
      const r = await sandi.logout(!!keepHistory);
      if (r && r.warning) sessionStorage.setItem("sandi-notice", r.warning);
    } catch (e) {
      fail("Logging out failed: " + errorText(e));
      return;
    }
    location.hash = "";
    location.reload();
  }

  // What trust.js borrows.
  window.sandiApp = { st, el, errorText, loadConversations, fmtTime, convName, drawChatHeader, drawMembers, openSafety, refresh, sendPending, dropPending, messageNode, queueNode, route, logout };

  boot();
})();
