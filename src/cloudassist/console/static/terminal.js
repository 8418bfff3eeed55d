// cloudassist console: a Session Manager shell in xterm.js, speaking the official client's framing to the relay.
//
// A client frame: type uint32 LE, schema "1.01", a length-prefixed session id and instance id (both empty
// here: the URL names them), created ms uint64 LE, sequence int64 LE, payload length uint32 LE, payload.
// Types: 0 input, 1 output, 2 resize (rows, cols int16 LE), 3 close, 5 status (byte 0 the code: 5 closed
// with a reason, 2 a message, 3 nothing or our `exitCode=N`, 7 a pacing rate).
"use strict";

const FRAME = { INPUT: 0, OUTPUT: 1, SET_SIZE: 2, CLOSE: 3, STATUS: 5 };
const MAX_INPUT = 2048; // the relay refuses bigger input frames
const SCHEMA = new TextEncoder().encode("1.01");

function encodeFrame(type, payload, sequence) {
  const buf = new Uint8Array(30 + payload.length);
  const view = new DataView(buf.buffer);
  view.setUint32(0, type, true);
  buf.set(SCHEMA, 4);
  // bytes 8 and 9: empty session id and instance id
  view.setBigUint64(10, BigInt(Date.now()), true);
  view.setBigInt64(18, BigInt(sequence), true);
  view.setUint32(26, payload.length, true);
  buf.set(payload, 30);
  return buf;
}

function decodeFrame(data) {
  const bytes = new Uint8Array(data);
  if (bytes.length < 30) throw new Error(`a frame of ${bytes.length} bytes`);
  const view = new DataView(data);
  const sessionLength = bytes[8];
  const instanceLength = bytes[9 + sessionLength];
  const at = 10 + sessionLength + instanceLength + 20;
  if (bytes.length < at) throw new Error("a frame cut inside its header");
  return { type: view.getUint32(0, true), payload: bytes.subarray(at) };
}

function makeTerminal(box, options) {
  const term = new Terminal({ cursorBlink: true, convertEol: false, scrollback: 5000, fontSize: 14, ...options });
  term.open(box);
  return term;
}

function openShell(box) {
  const state = document.getElementById("terminal-state");
  const say = (name, text) => {
    state.dataset.state = name;
    state.textContent = text;
  };
  const term = makeTerminal(box, {});
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  fit.fit();
  term.focus();
  const decoder = new TextDecoder();
  let socket = null;
  let sequence = 0;
  let exitCode = null;
  let ended = false;
  const send = (type, payload) => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(encodeFrame(type, payload, sequence++));
  };
  const sendSize = () => {
    const size = new Uint8Array(4);
    const view = new DataView(size.buffer);
    view.setInt16(0, term.rows, true);
    view.setInt16(2, term.cols, true);
    send(FRAME.SET_SIZE, size);
  };
  const end = (reason) => {
    if (ended) return;
    ended = true;
    const status = exitCode === null ? "" : ` (exit status ${exitCode})`;
    say("closed", `session closed: ${reason}${status}`);
    term.write(`\r\n\x1b[2m[session closed: ${reason}${status}]\x1b[0m\r\n`);
  };
  const onStatus = (payload) => {
    const code = payload[0];
    const rest = decoder.decode(payload.subarray(1));
    if (code === 5) end(rest || "closed");
    else if (code === 2) term.write(`\r\n${rest}\r\n`);
    else if (code === 3 && rest.startsWith("exitCode=")) exitCode = Number(rest.slice(9));
  };
  term.onData((text) => {
    const bytes = new TextEncoder().encode(text);
    for (let i = 0; i < bytes.length; i += MAX_INPUT) send(FRAME.INPUT, bytes.subarray(i, i + MAX_INPUT));
  });
  term.onResize(sendSize);
  window.addEventListener("resize", () => fit.fit());

  const body = new URLSearchParams({ csrf: box.dataset.csrf, user: box.dataset.user || "" });
  fetch(box.dataset.start, { method: "POST", body, credentials: "same-origin" })
    .then(async (answer) => {
      const text = await answer.text();
      let data;
      try {
        data = JSON.parse(text);
      } catch {
        throw new Error(text.trim() || `HTTP ${answer.status}`);
      }
      if (!answer.ok) throw new Error(`${data.code}: ${data.message}`);
      return data;
    })
    .then((data) => {
      box.dataset.session = data.session;
      say("connecting", `connecting to session ${data.session}…`);
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      socket = new WebSocket(`${scheme}//${location.host}${data.path}`);
      socket.binaryType = "arraybuffer";
      socket.onopen = () => {
        say("open", `session ${data.session}`);
        sendSize();
      };
      socket.onmessage = (message) => {
        let frame;
        try {
          frame = decodeFrame(message.data);
        } catch (error) {
          end(`bad frame from the server (${error.message})`);
          socket.close();
          return;
        }
        if (frame.type === FRAME.OUTPUT) term.write(frame.payload);
        else if (frame.type === FRAME.STATUS && frame.payload.length) onStatus(frame.payload);
      };
      socket.onclose = () => end("connection closed");
      window.addEventListener("pagehide", () => {
        send(FRAME.CLOSE, new Uint8Array(0));
        socket.close();
      });
    })
    .catch((error) => {
      say("failed", `could not start a session: ${error.message}`);
      term.write(`\x1b[31m${error.message}\x1b[0m\r\n`);
    });
}

function replay(box) {
  const term = makeTerminal(box, { cursorBlink: false, disableStdin: true, rows: 32, cols: 120 });
  fetch(box.dataset.src, { credentials: "same-origin" })
    .then((answer) => (answer.ok ? answer.arrayBuffer() : Promise.reject(new Error(`HTTP ${answer.status}`))))
    .then((data) => term.write(new Uint8Array(data), () => (box.dataset.state = "replayed")))
    .catch((error) => term.write(`\x1b[31m${error.message}\x1b[0m\r\n`));
}

document.addEventListener("DOMContentLoaded", () => {
  const shell = document.getElementById("terminal");
  if (shell) openShell(shell);
  const transcript = document.getElementById("replay");
  if (transcript) replay(transcript);
});
