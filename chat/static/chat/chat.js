// A minimal chat: the message goes to the server, which calls the provider; the answer
// streams back as server-sent events and is shown as it arrives.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const section = document.getElementById("chat");
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-input");
  const transcript = document.getElementById("transcript");
  const select = document.getElementById("model-select");
  const button = form.querySelector("button");
  let conversationId = null;

  function addEntry(role, text) {
    const entry = document.createElement("li");
    entry.className = `message ${role}`;
    entry.textContent = text;
    transcript.append(entry);
    return entry;
  }

  function handle(name, data, answer) {
    if (name === "conversation") conversationId = data.id;
    else if (name === "delta") answer.textContent += data.text;
    else if (name === "message" && data.notice) addEntry("note", data.notice);
    else if (name === "compacted") addEntry("note", "Older messages were summarised to save context.");
    else if (name === "error") addEntry("error", data.message);
  }

  async function readEvents(response, answer) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const name = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (name && data) handle(name, JSON.parse(data), answer);
      }
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = input.value.trim();
    if (!message || !select.value) return;
    addEntry("user", message);
    const answer = addEntry("assistant", "");
    input.value = "";
    button.disabled = true;
    try {
      const response = await fetch(section.dataset.chatUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value,
        },
        body: JSON.stringify({
          model_id: Number(select.value),
          message,
          ...(conversationId ? { conversation_id: conversationId } : {}),
        }),
      });
      if (!response.ok) {
        // Refused before anything was stored: the message goes back to the box, not lost.
        answer.remove();
        input.value = message;
        const errors = await response.json().catch(() => ({}));
        const text = errors.detail || Object.values(errors).flat().join(" ");
        addEntry("error", text || `HTTP ${response.status}`);
        return;
      }
      await readEvents(response, answer);
    } catch (error) {
      addEntry("error", `The answer could not be received (${error.message}).`);
    } finally {
      button.disabled = false;
    }
  });
});
