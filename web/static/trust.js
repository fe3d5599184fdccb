// sandi web client: identity trust and alarms. Each member of a
// conversation shows whether its key is verified; the safety-number view
// verifies a contact once the user types the other side's number; a
// conversation whose sending waits for an identity key not accepted says
// so and offers to accept it; the device's alarm log is shown in the
// conversation concerned, and globally for the rest. The keys and checks
// are the module's (web/wasm); this file only draws. app.js calls the
// functions of window.sandiTrust at the points it names, and lends its
// helpers through window.sandiApp.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const app = () => window.sandiApp;

  const ts = {
    trust: new Map(), // conversation id -> {members, blocked} from sandi.trust
    alarms: [],       // the device's alarm log, oldest first
    seen: 0,          // how many of them the user has seen
    safetyUser: null, // the account the safety view shows
    notes: new Map(), // conversation id -> a line for the composer (after an accept)
  };

  // What each alarm kind means, in a few words (the alarm's detail says
  // the rest).
  const kindNames = {
    identity_changed: "Identity key changed",
    identity_blocked: "Verified contact's key changed",
    own_rekey: "Your account's identity changed",
    stale_epoch: "Stale encryption key",
    equivocation: "Conflicting encryption keys",
    chain_fork: "Forked member list",
    chain_rollback: "Member list rolled back",
    bad_signature: "Bad signature",
    device_list: "Bad device list",
    server_data: "Invalid server data",
    blob_digest: "File changed by the server",
  };

  // safetyNode draws a safety number as its 12 groups.
  function safetyNode(number, label) {
    const p = app().el("p", { class: "safety-number", "aria-label": label });
    for (const g of (number || "").split(" ")) p.append(app().el("span", { text: g }));
    return p;
  }

  // ---- per conversation: members' state and why sending waits ----
  async function loadTrust(id) {
    const A = app();
    const c = A.st.convs.get(id);
    if (!c || c.left) {
      ts.trust.delete(id);
      if (A.st.current === id) drawChat();
      return;
    }
    let t;
    try {
      t = await sandi.trust(id, c.members || []);
    } catch (e) {
      console.warn("trust:", e);
      return;
    }
    const before = JSON.stringify(ts.trust.get(id) || null);
    ts.trust.set(id, t);
    if (A.st.current !== id) return;
    drawChat();
    if (before !== JSON.stringify(t)) {
      A.drawChatHeader(); // enables or disables the composer
      if (A.st.membersOpen) A.drawMembers();
    }
  }

  // blocked says whether sending in a conversation waits for the user.
  const blocked = (id) => {
    const t = ts.trust.get(id);
    return !!(t && t.blocked);
  };

  function memberOf(t, user) {
    return (t.members || []).find((m) => m.user === user);
  }

  function drawChat() {
    const id = app().st.current;
    drawBlocked(id);
    drawChatAlarms(id);
  }

  function drawBlocked(id) {
    const el = app().el;
    const box = $("chat-trust");
    const hint = $("composer-blocked");
    const t = id && ts.trust.get(id);
    const b = t && t.blocked;
    // Redraw only what changed: the notice is an alert, read out when drawn.
    const sig = JSON.stringify([id, b || null, b && memberOf(t, b.user), ts.notes.get(id) || ""]);
    if (box.dataset.sig === sig) return;
    box.dataset.sig = sig;
    if (!b) {
      box.hidden = true;
      box.textContent = "";
      const note = id && ts.notes.get(id);
      hint.hidden = !note;
      hint.textContent = note || "";
      return;
    }
    const who = b.username || "a member";
    box.textContent = "";
    box.hidden = false;
    box.dataset.user = b.user;
    box.dataset.kind = b.own ? "own" : b.pending ? "pending" : "other";
    if (b.own) {
      box.classList.add("critical");
      box.append(
        el("p", {}, el("strong", { text: "This conversation names an identity key for your account that is not this browser’s." }),
          " Your account may be compromised: someone may be posing as you. Sending here is refused."),
        el("a", { href: "#/alarms", text: "See the alarms" }));
      hint.textContent = "Sending is refused: this conversation names a key for your account that is not this browser’s.";
      hint.hidden = false;
      return;
    }
    box.classList.remove("critical");
    if (!b.pending) {
      box.append(el("p", {}, el("strong", { text: `This conversation names a key for ${who} other than the one this browser accepted.` }),
        ` Sending here waits until ${who}’s key update arrives in it.`));
      hint.textContent = `Sending is paused: this conversation names a key for ${who} that this browser has not accepted.`;
      hint.hidden = false;
      return;
    }
    const m = memberOf(t, b.user);
    const verified = m && m.verified;
    box.append(
      el("p", {},
        el("strong", { text: `The identity key of ${who} changed.` }),
        verified ? ` You had verified ${who}, so sending here is paused until you accept the new key.` :
          ` Sending here is paused until you accept the new key.`,
        ` This happens when ${who} resets their account — or when someone else is trying to pose as ${who}. Compare the new safety number with ${who} first, in person or over a channel you trust.`),
      el("div", { class: "trust-numbers" },
        el("div", {}, el("p", { class: "small", text: "Old safety number" }), safetyNode(b.oldSafetyNumber, "Old safety number")),
        el("div", {}, el("p", { class: "small", text: "New safety number" }), safetyNode(b.newSafetyNumber, "New safety number"))),
      el("p", { class: "error", role: "status", id: "chat-trust-status" }),
      el("div", { class: "banner-actions" },
        el("button", { type: "button", class: "primary", id: "accept-identity", text: "Accept the new key",
          "aria-label": `Accept the new identity key of ${who}`, onclick: () => accept(b, id) }),
        el("a", { href: "#/safety/" + encodeURIComponent(b.username || b.user), text: `Compare safety numbers with ${who}` })));
    hint.textContent = `Sending is paused: ${who}’s identity key changed. Accept the new key above to send.`;
    hint.hidden = false;
  }

  async function accept(b, id) {
    const btn = $("accept-identity");
    if (btn) btn.disabled = true;
    try {
      await sandi.acceptIdentity(b.username || b.user);
    } catch (e) {
      if (btn) btn.disabled = false;
      const s = $("chat-trust-status");
      if (s) s.textContent = app().errorText(e);
      return;
    }
    await loadTrust(id);
    await loadAlarms();
    if (app().st.current === id && !blocked(id)) {
      ts.notes.set(id, `Accepted the new key of ${b.username || "the contact"}. Their safety number changed: compare it and verify them again.`);
      drawBlocked(id);
      $("composer-input").focus();
    }
  }

  // memberState is the tag next to a member in the members panel.
  function memberState(name) {
    const t = ts.trust.get(app().st.current);
    const m = t && (t.members || []).find((x) => x.name === name);
    if (!m) return null;
    const [state, text] = m.pending ? ["changed", "key changed"] : m.verified ? ["verified", "verified"] : ["unverified", "not verified"];
    return app().el("span", { class: "tag trust-tag", "data-state": state, text });
  }

  // sendFailed explains a send that an identity key stopped, and shows why.
  function sendFailed(p, e) {
    if (!e || e.code !== "identity_not_accepted") return;
    const who = e.username || "a member";
    p.error = e.own ? "This conversation names a key for your account that is not this browser’s." :
      `${who}’s identity key is not accepted yet: accept it above, then retry.`;
    loadTrust(p.conv);
  }

  // ---- verifying on the safety-number view ----
  async function openSafety(user) {
    ts.safetyUser = user;
    $("verify-peer").textContent = user;
    $("verify-heading").textContent = "Verify " + user;
    $("verify-error").textContent = "";
    $("verify-input").value = "";
    await drawVerify(user);
  }

  async function drawVerify(user) {
    let ct;
    try {
      ct = await sandi.contact(user);
    } catch (e) {
      $("verify-card").hidden = true;
      return;
    }
    if (ts.safetyUser !== user) return;
    const card = $("verify-card");
    card.hidden = false;
    // A pending change comes first: the number drawn below it is the old one.
    const pane = $("pane-safety");
    const numberCard = $("safety-number").closest(".card");
    if (ct.pending) pane.insertBefore(card, numberCard);
    else pane.append(card);
    card.dataset.state = ct.pending ? "changed" : ct.verified ? "verified" : "unverified";
    const state = $("verify-state");
    state.textContent = ct.pending ? `${user}’s identity key changed. The number below belongs to the key accepted before.` :
      ct.verified ? `${user} is verified: you compared this number. If ${user}’s key changes, sending to them pauses until you accept the new key.` :
        `${user} is not verified yet.`;
    $("verify-pending").hidden = !ct.pending;
    $("verify-form").hidden = !!ct.pending || ct.verified;
    $("unverify-button").hidden = !ct.verified || !!ct.pending;
    const num = $("verify-pending-number");
    num.textContent = "";
    if (ct.pending) {
      $("verify-pending-text").textContent = `Compare the new safety number with ${user}. Accept the new key only if it matches: then verify ${user} again.`;
      for (const g of (ct.pendingSafetyNumber || "").split(" ")) num.append(app().el("span", { text: g }));
    }
  }

  $("verify-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const user = ts.safetyUser;
    const typed = $("verify-input").value.trim();
    const err = $("verify-error");
    err.textContent = "";
    if (!typed) {
      err.textContent = "Type or paste the number first.";
      $("verify-input").focus();
      return;
    }
    const btn = $("verify-button");
    btn.disabled = true;
    try {
      await sandi.verify(user, typed);
      $("verify-input").value = "";
      await drawVerify(user);
      app().refresh();
    } catch (e) {
      err.textContent = e && e.code === "safety_number_mismatch" ?
        `That is not your safety number with ${user}: ${user} is not marked verified. Check that you typed their number, not yours — if it really differs, someone may be between you.` :
        e && e.code === "identity_not_accepted" ? `${user}’s identity key changed: accept or refuse the new key first.` : app().errorText(e);
      $("verify-input").focus();
    } finally {
      btn.disabled = false;
    }
  });

  $("unverify-button").addEventListener("click", async () => {
    const user = ts.safetyUser;
    try {
      await sandi.unverify(user);
    } catch (e) {
      $("verify-error").textContent = app().errorText(e);
      return;
    }
    await drawVerify(user);
    $("verify-input").focus();
    app().refresh();
  });

  $("verify-accept").addEventListener("click", async () => {
    const user = ts.safetyUser;
    try {
      await sandi.acceptIdentity(user);
    } catch (e) {
      $("verify-error").textContent = app().errorText(e);
      return;
    }
    await app().openSafety(user); // the number of the key now accepted
    $("verify-input").focus();
    app().refresh();
  });

  // ---- alarms ----
  async function loadAlarms() {
    let r;
    try {
      r = await sandi.alarms();
    } catch (e) {
      return;
    }
    const changed = r.alarms.length !== ts.alarms.length || r.seen !== ts.seen;
    ts.alarms = r.alarms;
    ts.seen = r.seen;
    if (!changed) return;
    drawIndicator();
    if (app().st.current) drawChatAlarms(app().st.current);
    if (app().st.pane === "alarms") drawAlarmsPane();
  }

  const unseen = () => ts.alarms.slice(ts.seen);

  function drawIndicator() {
    const link = $("alarms-link");
    link.hidden = ts.alarms.length === 0;
    const n = unseen().length;
    const badge = $("alarms-count");
    badge.textContent = n > 0 ? String(n) : "";
    if (n > 0) badge.append(app().el("span", { class: "visually-hidden", text: " new" }));
    badge.classList.toggle("zero", n === 0);
    badge.dataset.count = String(n);
    const crit = unseen().filter((a) => a.severity === "critical");
    $("critical-alarm").hidden = crit.length === 0;
    $("critical-alarm-text").textContent = crit.length ? crit[crit.length - 1].detail : "";
  }

  function alarmNode(a, withConv) {
    const el = app().el;
    const c = a.conversation && app().st.convs.get(a.conversation);
    return el("li", { class: "alarm", "data-kind": a.kind, "data-severity": a.severity },
      el("div", { class: "meta" },
        el("strong", { text: (a.severity === "critical" ? "Critical: " : "") + (kindNames[a.kind] || a.kind) }),
        el("time", { datetime: new Date(a.time).toISOString(), text: app().fmtTime(a.time) })),
      el("div", { class: "alarm-detail", text: a.detail }),
      withConv && a.conversation ? el("a", { href: "#/c/" + a.conversation, class: "small",
        text: "In " + (c ? app().convName(c) : "conversation " + a.conversation.slice(0, 8)) }) : null);
  }

  function drawChatAlarms(id) {
    const box = $("chat-alarms");
    const mine = id ? ts.alarms.map((a, i) => ({ a, i })).filter((x) => x.a.conversation === id) : [];
    if (mine.length === 0) {
      box.hidden = true;
      return;
    }
    const fresh = mine.filter((x) => x.i >= ts.seen).length;
    const crit = mine.some((x) => x.a.severity === "critical");
    box.hidden = false;
    box.classList.toggle("critical", crit);
    const n = mine.length;
    $("chat-alarms-summary").textContent = `${n} security alarm${n === 1 ? "" : "s"} in this conversation` + (fresh ? ` (${fresh} new)` : "") +
      " — latest: " + (kindNames[mine[n - 1].a.kind] || mine[n - 1].a.kind);
    const ul = $("chat-alarm-list");
    ul.textContent = "";
    for (const { a } of mine.slice().reverse()) ul.append(alarmNode(a, false));
    // New alarms open the list, except on a narrow screen, where the
    // summary line says it and the messages keep the room.
    if (fresh && box.dataset.conv !== id) box.open = !matchMedia("(max-width: 720px)").matches;
    box.dataset.conv = id;
  }

  async function openAlarms() {
    await loadAlarms();
    drawAlarmsPane();
    if (ts.seen < ts.alarms.length) {
      try {
        await sandi.seeAlarms(ts.alarms.length);
        ts.seen = ts.alarms.length;
      } catch (e) {
        return;
      }
      drawIndicator();
    }
  }

  function drawAlarmsPane() {
    const global = ts.alarms.filter((a) => !a.conversation).reverse();
    const inConv = ts.alarms.filter((a) => a.conversation).reverse();
    $("alarms-empty").hidden = ts.alarms.length > 0;
    $("alarms-global-heading").hidden = global.length === 0;
    $("alarms-conv-heading").hidden = inConv.length === 0;
    $("alarms-global").textContent = "";
    $("alarms-conv").textContent = "";
    for (const a of global) $("alarms-global").append(alarmNode(a, false));
    for (const a of inConv) $("alarms-conv").append(alarmNode(a, true));
  }

  // ---- what app.js calls ----
  window.sandiTrust = {
    // refresh reloads the alarm log and the open conversation's state.
    refresh: () => Promise.all([loadAlarms(), app().st.current ? loadTrust(app().st.current) : null]),
    // openChat draws what is known at once, then asks the module.
    openChat: (id) => { ts.notes.clear(); delete $("chat-trust").dataset.sig; drawChat(); return loadTrust(id); },
    blocked,
    memberState,
    sendFailed,
    openSafety,
    openAlarms,
  };
})();
