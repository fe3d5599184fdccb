// Notifications: a desktop notification for a message that arrives while
// the tab is hidden (with the browser's permission; what it shows is a
// setting of this browser: sender and text, sender only, or no details),
// and the unread count in the tab's title. The chat calls notifyMessage for
// each message from someone else, the list title when the counts change.
import { $ } from "./util.js";

const KEY = "sandi-notify";
const supported = () => typeof window.Notification === "function";
const setting = () => localStorage.getItem(KEY) || "off";

function drawSetting() {
  const sel = $("notify-setting");
  sel.hidden = !supported();
  sel.value = supported() && Notification.permission === "granted" ? setting() : "off";
}

drawSetting();
$("notify-setting").addEventListener("change", async (ev) => {
  const sel = ev.currentTarget;
  const want = sel.value;
  if (want !== "off" && Notification.permission !== "granted") {
    const got = await Notification.requestPermission();
    if (got !== "granted") {
      localStorage.setItem(KEY, "off");
      sel.value = "off";
      sel.title = "The browser does not allow notifications for this site: allow them in its site settings.";
      return;
    }
  }
  localStorage.setItem(KEY, want);
});

// notifyMessage shows m (from conversation name conv; text is what the list
// would show of it) if the tab is hidden and notifications are on.
export function notifyMessage(m, conv, text) {
  const how = setting();
  if (how === "off" || !document.hidden || !supported() || Notification.permission !== "granted") return;
  let title = "sandi";
  let body = "New message";
  if (how === "full" || how === "sender") {
    title = m.sender + (conv && conv !== m.sender ? " in " + conv : "");
    if (how === "full") body = text;
  }
  try {
    const n = new Notification(title, { body, tag: "sandi-" + m.conversation });
    n.onclick = () => {
      window.focus();
      location.hash = "#/c/" + m.conversation;
      n.close();
    };
  } catch (e) {
    console.warn("notification:", e);
  }
}

// title shows the number of unread messages in the tab's title.
export function title(unread) {
  document.title = unread > 0 ? `(${unread}) sandi` : "sandi";
}

