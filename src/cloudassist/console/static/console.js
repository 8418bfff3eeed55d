// cloudassist console: live progress of an invocation (server-sent events) and files picked for SendFile.
"use strict";

function follow(results) {
  const source = new EventSource(results.dataset.events);
  const section = (id) => results.querySelector(`section.result[data-instance="${CSS.escape(id)}"]`);
  const put = (box, name, text) => {
    const el = box.querySelector(`[data-field="${name}"]`);
    if (el) el.textContent = text;
  };
  const when = (iso) => (iso ? iso.replace("T", " ").replace("Z", "") : "–");
  source.addEventListener("instance", (message) => {
    const data = JSON.parse(message.data);
    const box = section(data.instance);
    if (!box) return;
    const status = box.querySelector('[data-field="status"]');
    status.textContent = data.status;
    status.className = `field status s-${data.status.toLowerCase()}`;
    put(box, "exit_code", data.exit_code === null ? "–" : String(data.exit_code));
    put(box, "error", data.error_info ? `${data.error_code}: ${data.error_info}` : data.error_code);
    put(box, "start", when(data.start));
    put(box, "finish", when(data.finish));
    put(box, "repeats", String(data.repeats));
    put(box, "dropped", String(data.dropped));
    const stopOne = box.querySelector("form.stop-one");
    if (stopOne && ["Success", "Failed", "Invalid", "Aborted", "Error", "Timeout", "Cancelled", "Terminated"].includes(data.status)) stopOne.remove();
    const output = box.querySelector('[data-field="output"]');
    if ("reset" in data) output.textContent = data.reset;
    if ("append" in data) output.textContent += data.append;
  });
  source.addEventListener("task", (message) => {
    const status = JSON.parse(message.data).status;
    const el = document.querySelector("#task-status .status");
    if (el) {
      el.textContent = status;
      el.className = `status s-${status.toLowerCase()}`;
    }
  });
  const done = (message) => {
    source.close();
    results.dataset.state = message.type;
    if (message.type === "end") {
      const stop = document.getElementById("stop");
      if (stop) stop.closest("form").remove();
    }
  };
  source.addEventListener("end", done);
  source.addEventListener("signedout", done);
  results.dataset.state = "live";
}

function pickFile(input) {
  input.addEventListener("change", () => {
    const file = input.files[0];
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => {
      const form = input.closest("form");
      const base64 = String(reader.result).split(",", 2)[1] || "";
      form.elements[input.dataset.into].value = base64;
      form.elements.content_type.value = "Base64";
      if (!form.elements.name.value) form.elements.name.value = file.name;
    };
    reader.readAsDataURL(file);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const results = document.getElementById("results");
  if (results && results.dataset.events) follow(results);
  const picker = document.getElementById("file-pick");
  if (picker) pickFile(picker);
});
