// sandi web client: voice notes. The microphone button records while it
// is held, or from one click (or Enter) to the next; Escape discards the
// recording. The note is sent as an attachment (upload.js) with its
// duration.
import { $ } from "./util.js";
import { baseType, fmtDuration } from "./attach.js";
import { sendFiles } from "./upload.js";

let rec = null; // {recorder, stream, chunks, start, timer, send, stopping}
let pressAt = 0, pressed = false;

async function startRecording() {
  if (rec || $("composer-input").disabled) return;
  const r = rec = { chunks: [], send: true };
  drawRecording();
  try {
    r.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    rec = null;
    drawRecording("The microphone is not available: " + (e.message || e.name));
    return;
  }
  const type = ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus", "audio/ogg"].find((t) => MediaRecorder.isTypeSupported(t));
  r.recorder = new MediaRecorder(r.stream, type ? { mimeType: type } : undefined);
  r.recorder.ondataavailable = (e) => { if (e.data.size) r.chunks.push(e.data); };
  r.recorder.onstop = () => finishRecording(r);
  r.recorder.start(250);
  r.start = performance.now();
  r.timer = setInterval(() => drawRecording(), 250);
  drawRecording();
  if (r.stopping) r.recorder.stop(); // released before the microphone was there
}

// stopRecording ends the recording; send: whether to send it.
function stopRecording(send) {
  const r = rec;
  if (!r) return;
  r.send = send;
  r.stopping = true;
  if (r.recorder && r.recorder.state !== "inactive") r.recorder.stop();
}

function finishRecording(r) {
  const duration = (performance.now() - r.start) / 1000;
  clearInterval(r.timer);
  for (const t of r.stream.getTracks()) t.stop();
  rec = null;
  drawRecording();
  if (!r.send || r.chunks.length === 0) return;
  const type = baseType(r.recorder.mimeType || r.chunks[0].type) || "audio/webm";
  const ext = type === "audio/ogg" ? "ogg" : "webm";
  const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
  const file = new File(r.chunks, `voice-note-${stamp}.${ext}`, { type });
  sendFiles([file], { duration });
}

function drawRecording(problem) {
  const b = $("record-button");
  const s = $("record-status");
  b.setAttribute("aria-pressed", String(!!rec));
  b.dataset.recording = rec ? "1" : "";
  b.setAttribute("aria-label", rec ? "Stop and send the voice note" : "Record a voice note");
  s.hidden = !rec && !problem;
  s.textContent = problem || (rec && rec.start ? `Recording ${fmtDuration((performance.now() - rec.start) / 1000) || "0:00"}: click stop to send, Esc to discard.` : "Starting the microphone…");
}

// A click toggles recording; holding the button records until it is
// released.
$("record-button").addEventListener("pointerdown", () => {
  if (rec) return;
  pressed = true;
  pressAt = performance.now();
  startRecording();
});
$("record-button").addEventListener("click", () => {
  if (pressed) {
    pressed = false;
    if (performance.now() - pressAt > 600) stopRecording(true); // held
    return; // a short press: recording goes on until the next click
  }
  if (rec) stopRecording(true);
  else startRecording();
});
$("record-button").addEventListener("contextmenu", (ev) => ev.preventDefault()); // a long press on a phone
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && rec) stopRecording(false); });
