// sandi web client: the page's state, and which of its views it shows
// (loading, error, another tab, sign-in, set-up, main).
import { $ } from "./util.js";

// timings: when the page reached each step, in ms since it started (the
// browser tests read them: window.sandiTimings).
export const timings = {};
export const mark = (name) => { timings[name] = Math.round(performance.now()); };

export const st = {
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

const others = (c) => (c.members || []).filter((m) => m !== st.me.username);
export const convName = (c) => c.title || others(c).join(", ") || "Just you";
export const isAdmin = (c) => (c.admins || []).includes(st.me.username);

const views = ["loading", "error", "other-tab", "auth", "setup", "main"];
export function show(view) {
  for (const v of views) $("view-" + v).hidden = v !== view;
  $("app").dataset.view = view;
}
export function fail(msg) {
  $("error-text").textContent = msg;
  show("error");
  document.documentElement.dataset.ready = "error";
}

// ready tells the tests (and the first-paint figure) that a view is drawn.
export function ready() {
  if (!timings.ready) mark("ready");
  document.documentElement.dataset.ready = $("app").dataset.view;
}
$("error-reload").addEventListener("click", () => location.reload());
