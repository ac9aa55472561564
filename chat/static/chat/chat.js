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
  const sendStatus = document.getElementById("send-status");
  let conversationId = null;
  let sending = false;

  // Why the server would refuse a message now, read from the usage panel it rendered; "" when
  // it would not. Spending is the server's to count: the page only follows its panel.
  function refusalReason() {
    const usage = document.getElementById("usage");
    if ("budgetSpent" in usage.dataset) {
      return "Sending is off: your monthly budget is spent (see above). It comes back when "
        + "the budget resets or an administrator raises it.";
    }
    if (select.value && usage.dataset.cappedModelIds.split(" ").includes(select.value)) {
      return "Sending to this model is off: your monthly cap for it is spent (see above). "
        + "Choose another model.";
    }
    return "";
  }

  function updateSendState() {
    const reason = refusalReason();
    sendStatus.textContent = reason;
    // A disabled input means there is no model at all (see model_selector.js).
    button.disabled = sending || Boolean(reason) || input.disabled;
  }

  // The panel as the server renders it now: after each turn, each refusal, and when the page
  // comes back into view (an administrator may have raised the budget meanwhile).
  async function refreshUsage() {
    try {
      const response = await fetch(section.dataset.usageUrl, { credentials: "same-origin" });
      const html = response.ok ? await response.text() : "";
      const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("usage");
      // Not the panel (logged out meanwhile: the login page): the old one stays.
      if (fresh) document.getElementById("usage").replaceWith(fresh);
    } catch {
      // Unreachable now: the panel stays as it was until the next refresh.
    }
    updateSendState();
  }

  select.addEventListener("change", updateSendState);
  window.addEventListener("focus", refreshUsage);
  updateSendState();

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
    if (!message || !select.value || button.disabled) return;
    addEntry("user", message);
    const answer = addEntry("assistant", "");
    input.value = "";
    sending = true;
    updateSendState();
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
      sending = false;
      await refreshUsage();
    }
  });
});
