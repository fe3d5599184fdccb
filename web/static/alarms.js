// sandi web client: security alarms. What this device detected the server
// (or a member) doing that a correct server and honest members never do:
// the log is the module's, kept on the device. Alarms are shown in the
// conversation concerned and in the alarms pane; unseen ones are counted
// beside the Alarms link, and a critical one is announced above the panes.
import { $, el, fmtTime } from "./util.js";
import { st, convName } from "./state.js";

const as = {
  alarms: [], // the device's alarm log, oldest first
  seen: 0,    // how many of them the user has seen
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


export async function loadAlarms() {
  let r;
  try {
    r = await sandi.alarms();
  } catch (e) {
    return;
  }
  const changed = r.alarms.length !== as.alarms.length || r.seen !== as.seen;
  as.alarms = r.alarms;
  as.seen = r.seen;
  if (!changed) return;
  drawIndicator();
  if (st.current) drawChatAlarms(st.current);
  if (st.pane === "alarms") drawAlarmsPane();
}

const unseen = () => as.alarms.slice(as.seen);

function drawIndicator() {
  const link = $("alarms-link");
  link.hidden = as.alarms.length === 0;
  const n = unseen().length;
  const badge = $("alarms-count");
  badge.textContent = n > 0 ? String(n) : "";
  if (n > 0) badge.append(el("span", { class: "visually-hidden", text: " new" }));
  badge.classList.toggle("zero", n === 0);
  badge.dataset.count = String(n);
  const crit = unseen().filter((a) => a.severity === "critical");
  $("critical-alarm").hidden = crit.length === 0;
  $("critical-alarm-text").textContent = crit.length ? crit[crit.length - 1].detail : "";
}

function alarmNode(a, withConv) {
  const c = a.conversation && st.convs.get(a.conversation);
  return el("li", { class: "alarm", "data-kind": a.kind, "data-severity": a.severity },
    el("div", { class: "meta" },
      el("strong", { text: (a.severity === "critical" ? "Critical: " : "") + (kindNames[a.kind] || a.kind) }),
      el("time", { datetime: new Date(a.time).toISOString(), text: fmtTime(a.time) })),
    el("div", { class: "alarm-detail", text: a.detail }),
    withConv && a.conversation ? el("a", { href: "#/c/" + a.conversation, class: "small",
      text: "In " + (c ? convName(c) : "conversation " + a.conversation.slice(0, 8)) }) : null);
}

export function drawChatAlarms(id) {
  const box = $("chat-alarms");
  const mine = id ? as.alarms.map((a, i) => ({ a, i })).filter((x) => x.a.conversation === id) : [];
  if (mine.length === 0) {
    box.hidden = true;
    return;
  }
  const fresh = mine.filter((x) => x.i >= as.seen).length;
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

export async function openAlarms() {
  await loadAlarms();
  drawAlarmsPane();
  if (as.seen < as.alarms.length) {
    try {
      await sandi.seeAlarms(as.alarms.length);
      as.seen = as.alarms.length;
    } catch (e) {
      return;
    }
    drawIndicator();
  }
}

function drawAlarmsPane() {
  const global = as.alarms.filter((a) => !a.conversation).reverse();
  const inConv = as.alarms.filter((a) => a.conversation).reverse();
  $("alarms-empty").hidden = as.alarms.length > 0;
  $("alarms-global-heading").hidden = global.length === 0;
  $("alarms-conv-heading").hidden = inConv.length === 0;
  $("alarms-global").textContent = "";
  $("alarms-conv").textContent = "";
  for (const a of global) $("alarms-global").append(alarmNode(a, false));
  for (const a of inConv) $("alarms-conv").append(alarmNode(a, true));
}
