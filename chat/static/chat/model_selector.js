// The developers' model selector: loads the models an admin enabled and pre-selects one:
// the last used (this browser's localStorage) > the admin's default > the first available.
"use strict";
const LAST_USED_KEY = "llmadmin.lastModelId";

// What stands between this developer and a model, in their terms: which provider lacks what
// is the administrators' business (the admin shows it), not theirs.
function messageFor(data) {
  if (data.restricted_model_count > 0) {
    return "No model is open to you: the models here are for some groups and users only. "
      + "Ask an administrator for access.";
  }
  if (data.unavailable_providers.length > 0) {
    return "No model is available right now: the providers of your models are not ready. "
      + "Contact an administrator.";
  }
  return "No models are configured. Contact an administrator.";
}

function disableChat() {
  // Nothing to chat with: the chat box says so by being unusable.
  for (const control of document.querySelectorAll("#chat-form textarea, #chat-form button")) {
    control.disabled = true;
  }
}

function optionFor(model) {
  const option = document.createElement("option");
  option.value = String(model.id);
  option.textContent = model.display_name;
  return option;
}

function preselectedId(models, defaultId) {
  const ids = new Set(models.map((model) => String(model.id)));
  const lastUsed = localStorage.getItem(LAST_USED_KEY);
  if (lastUsed !== null && ids.has(lastUsed)) return lastUsed;
  if (lastUsed !== null) localStorage.removeItem(LAST_USED_KEY);  // no longer available
  if (defaultId !== null && ids.has(String(defaultId))) return String(defaultId);
  return String(models[0].id);
}

function render(select, status, data) {
  const models = data.groups.flatMap((group) => group.models);
  if (models.length === 0) {
    status.textContent = messageFor(data);
    disableChat();
    return;
  }
  if (data.groups.length > 1) {
    for (const group of data.groups) {
      const optgroup = document.createElement("optgroup");
      optgroup.label = group.provider_label;
      group.models.forEach((model) => optgroup.append(optionFor(model)));
      select.append(optgroup);
    }
  } else {
    models.forEach((model) => select.append(optionFor(model)));
  }
  select.value = preselectedId(models, data.default_model_id);
  // The chat hears which model is selected; a preselection is not remembered as a choice.
  select.dispatchEvent(new Event("change"));
  select.addEventListener("change", () => localStorage.setItem(LAST_USED_KEY, select.value));
  select.hidden = false;
  status.textContent = "";
}

document.addEventListener("DOMContentLoaded", async () => {
  const section = document.getElementById("model-selector");
  const select = document.getElementById("model-select");
  const status = document.getElementById("model-status");
  try {
    const response = await fetch(section.dataset.modelsUrl, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(select, status, await response.json());
  } catch (error) {
    status.textContent = `Could not load the models (${error.message}). Reload the page to try again.`;
  }
});
