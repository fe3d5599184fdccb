// sandi web client: the safety-number view. The number (and its QR code)
// the user compares with a contact's, and verifying: the contact is
// marked verified once the user types the number the other side shows;
// a changed key is shown first, to accept or not.
import { $, el, errorText, drawQR } from "./util.js";
import { st } from "./state.js";
import { refresh } from "./app.js";

let safetyUser = null; // the account the view shows

// openSafety shows the safety number with user.
export async function openSafety(user) {
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
  safetyUser = user;
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
  if (safetyUser !== user) return;
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
    for (const g of (ct.pendingSafetyNumber || "").split(" ")) num.append(el("span", { text: g }));
  }
}

$("verify-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const user = safetyUser;
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
    refresh();
  } catch (e) {
    err.textContent = e && e.code === "safety_number_mismatch" ?
      `That is not your safety number with ${user}: ${user} is not marked verified. Check that you typed their number, not yours — if it really differs, someone may be between you.` :
      e && e.code === "identity_not_accepted" ? `${user}’s identity key changed: accept or refuse the new key first.` : errorText(e);
    $("verify-input").focus();
  } finally {
    btn.disabled = false;
  }
});

$("unverify-button").addEventListener("click", async () => {
  const user = safetyUser;
  try {
    await sandi.unverify(user);
  } catch (e) {
    $("verify-error").textContent = errorText(e);
    return;
  }
  await drawVerify(user);
  $("verify-input").focus();
  refresh();
});

$("verify-accept").addEventListener("click", async () => {
  const user = safetyUser;
  try {
    await sandi.acceptIdentity(user);
  } catch (e) {
    $("verify-error").textContent = errorText(e);
    return;
  }
  await openSafety(user); // the number of the key now accepted
  $("verify-input").focus();
  refresh();
});
