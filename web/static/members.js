// sandi web client: the members panel of the open conversation. Its
// members with their trust state and safety-number links, rename, the
// disappearing-message timer (timeline.js), add and remove (asking for a
// confirmation), and leave. Escape or × closes it and gives the focus back
// to the Members button.
import { $, el, errorText, confirmed, disarm } from "./util.js";
import { st, isAdmin } from "./state.js";
import { loadConversations } from "./list.js";
import { memberState } from "./trust.js";
import { drawTimer } from "./timeline.js";

// setMembersOpen opens or closes the panel.
export function setMembersOpen(open) {
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
  ev.preventDefault();
  setMembersOpen(false);
  $("members-button").focus();
});

export function drawMembers() {
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
      me ? null : memberState(name),
      me ? null : el("a", { href: "#/safety/" + encodeURIComponent(name), class: "small", "aria-label": "Safety number with " + name, text: "Safety number" }),
      admin && !me ? el("button", { type: "button", class: "remove", "aria-label": "Remove " + name, text: "Remove", onclick: (ev) => removeMember(name, ev.currentTarget) }) : null));
  }
  $("add-member-form").hidden = !admin;
  drawTimer(c);
  disarm($("leave-button"));
}

async function removeMember(name, button) {
  $("members-error").textContent = "";
  if (button && !confirmed(button, "Remove " + name + "?", "Confirm: remove " + name + " from this conversation")) return;
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
  if (!confirmed($("leave-button"), "Leave: click again to confirm")) return;
  try {
    await sandi.leave(st.current);
    setMembersOpen(false);
    await loadConversations();
  } catch (e) {
    $("members-error").textContent = errorText(e);
  }
});
