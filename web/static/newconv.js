// sandi web client: the new-conversation pane. People are found by
// username (Enter adds the one typed), listed as chips that can be taken
// out again, and the conversation created with an optional title.
import { $, el, errorText } from "./util.js";
import { st } from "./state.js";
import { loadConversations } from "./list.js";

// openNew shows the pane, its field focused.
export function openNew() {
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
