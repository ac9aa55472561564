// A minimal chat: the message goes to the server, which calls the provider; the answer
// streams back as server-sent events and is shown as it arrives. The page's address names
// its conversation, which a reload reads back from the server.
"use strict";
const SUMMARISED = "Older messages were summarised to save context.";

document.addEventListener("DOMContentLoaded", () => {
  const section = document.getElementById("chat");
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-input");
  const transcript = document.getElementById("transcript");
  const select = document.getElementById("model-select");
  const button = form.querySelector("button");
  const sendStatus = document.getElementById("send-status");
  let conversationId = null;
  // Sending a message, or reading back the conversation: Send waits.
  let busy = false;

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
    // A disabled input means there is no model at all (see model_selector.js); none selected
    // yet, the list is still loading: a message sent now would go nowhere.
    button.disabled = busy || Boolean(reason) || input.disabled || !select.value;
  }

  // The panel as the server renders it now: after each turn, each refusal, and when the page
  // comes back into view (an administrator may have raised the budget meanwhile).
  // Refreshes may overlap (a turn ends as the window regains focus): only the latest asked
  // replaces the panel, so an older answer never undoes a newer one.
  let usageAsked = 0;
  async function refreshUsage() {
    const asked = ++usageAsked;
    try {
      const response = await fetch(section.dataset.usageUrl, { credentials: "same-origin" });
      const html = response.ok ? await response.text() : "";
      const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("usage");
      // Not the panel (logged out meanwhile: the login page): the old one stays.
      if (fresh && asked === usageAsked) document.getElementById("usage").replaceWith(fresh);
    } catch {
      // Unreachable now: the panel stays as it was until the next refresh.
    }
    updateSendState();
  }

  function hidden(text) {
    const span = document.createElement("span");
    span.className = "visually-hidden";
    span.textContent = text;
    return span;
  }

  // An entry of the transcript; its text element. Each says who speaks: "You said" for screen
  // readers, and on every answer the model that wrote it, as the model may change between
  // messages.
  function addEntry(role, text, model) {
    const entry = document.createElement("li");
    entry.className = `message ${role}`;
    if (role === "user") entry.append(hidden("You said: "));
    if (role === "assistant") {
      const speaker = document.createElement("span");
      speaker.className = "speaker";
      speaker.append(model || "The model", hidden(" answered: "));
      entry.append(speaker);
    }
    const body = document.createElement("div");
    body.className = "text";
    body.textContent = text;
    entry.append(body);
    transcript.append(entry);
    return body;
  }

  function handle(name, data, answer) {
    if (name === "conversation") {
      conversationId = data.id;
      history.replaceState(null, "", `?conversation=${data.id}`);
    } else if (name === "delta") answer.textContent += data.text;
    else if (name === "message" && data.notice) addEntry("note", data.notice);
    else if (name === "compacted") addEntry("note", SUMMARISED);
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

  // The conversation this address names, as the server stored it.
  async function restore(url) {
    busy = true;
    updateSendState();
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const conversation = await response.json();
      conversationId = conversation.id;
      for (const message of conversation.messages) {
        if (message.role === "summary") addEntry("note", SUMMARISED);
        else addEntry(message.role, message.content, message.model);
        if (message.notice) addEntry(message.error ? "error" : "note", message.notice);
      }
    } catch (error) {
      history.replaceState(null, "", location.pathname);
      addEntry(
        "error",
        `The conversation could not be loaded (${error.message}): your next message starts a new one.`,
      );
    } finally {
      busy = false;
      updateSendState();
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    // Focus stays in the box, for the next message (a clicked Send is disabled meanwhile).
    input.focus();
    const message = input.value.trim();
    if (!message || !select.value || button.disabled) return;
    const question = addEntry("user", message).parentElement;
    const answer = addEntry("assistant", "", select.selectedOptions[0].textContent);
    input.value = "";
    busy = true;
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
        question.remove();
        answer.parentElement.remove();
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
      busy = false;
      await refreshUsage();
    }
  });

  // Enter sends, Shift+Enter starts a new line; not while an input method composes a word.
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    form.requestSubmit();
  });
  select.addEventListener("change", updateSendState);
  window.addEventListener("focus", refreshUsage);
  updateSendState();
  if (section.dataset.conversationUrl) restore(section.dataset.conversationUrl);
});
