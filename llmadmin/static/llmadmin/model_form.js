// The model form: show only the selected provider's options and general fields, offer the
// identifiers the provider reports, and warn when the context limit differs from its own.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const select = document.getElementById("id_provider");
  if (!select || !select.dataset.providerTypes) return;
  const providers = JSON.parse(select.dataset.providerTypes);
  const generalFields = [
    "max_output_tokens", "temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty",
  ];
  const identifier = document.getElementById("id_identifier");
  const contextLimit = document.getElementById("id_context_limit");
  const datalist = document.createElement("datalist");
  datalist.id = "remote-model-ids";
  const listStatus = document.createElement("div");
  listStatus.className = "help remote-models-status";
  const contextWarning = document.createElement("div");
  contextWarning.className = "help context-warning";
  contextWarning.setAttribute("role", "status");
  let reported = { label: "", limits: new Map() };

  if (identifier) {
    identifier.setAttribute("list", datalist.id);
    identifier.after(datalist, listStatus);
  }
  if (contextLimit) contextLimit.after(contextWarning);

  function showOnlySelectedProvider(provider) {
    document.querySelectorAll("fieldset.provider-options").forEach((fieldset) => {
      const other = !provider || !fieldset.classList.contains(`provider-options-${provider.type}`);
      fieldset.hidden = other;
      // Another type's options are neither checked by the browser nor sent.
      fieldset.disabled = other;
    });
    for (const name of generalFields) {
      const row = document.querySelector(`.form-row.field-${name}`);
      if (!row) continue;
      // A filled-in or refused field stays visible, so its value and error can be seen.
      const input = row.querySelector("input");
      const keep = (input && input.value !== "") || row.querySelector(".errorlist");
      row.hidden = Boolean(provider) && !provider.general.includes(name) && !keep;
    }
  }

  function warnAboutContext() {
    const limit = reported.limits.get(identifier?.value);
    const differs = limit && contextLimit && contextLimit.value !== "" && Number(contextLimit.value) !== limit;
    contextWarning.textContent = differs
      ? `${reported.label} reports a context limit of ${limit} for ${identifier.value}.`
      : "";
  }

  async function loadRemoteModels() {
    datalist.replaceChildren();
    reported = { label: "", limits: new Map() };
    listStatus.textContent = "";
    warnAboutContext();
    if (!identifier || !select.value) return;
    listStatus.textContent = "Loading the provider's models…";
    try {
      const url = `${select.dataset.remoteModelsUrl}?provider=${encodeURIComponent(select.value)}`;
      const response = await fetch(url, { credentials: "same-origin" });
      const data = await response.json();
      if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
      for (const model of data.models) {
        const option = document.createElement("option");
        option.value = model.identifier;
        datalist.append(option);
        if (model.context_limit) reported.limits.set(model.identifier, model.context_limit);
      }
      reported.label = data.provider_label;
      listStatus.textContent = `${data.models.length} models reported by ${data.provider_label}: pick one or type an identifier.`;
      if (!contextLimit.value && reported.limits.has(identifier.value)) {
        contextLimit.value = reported.limits.get(identifier.value);
      }
      warnAboutContext();
    } catch (error) {
      listStatus.textContent = `The provider's model list is not available: ${error.message}`;
    }
  }

  function update() {
    showOnlySelectedProvider(providers[select.value]);
    loadRemoteModels();
  }

  select.addEventListener("change", update);
  identifier?.addEventListener("input", () => {
    if (contextLimit && !contextLimit.value && reported.limits.has(identifier.value)) {
      contextLimit.value = reported.limits.get(identifier.value);
    }
    warnAboutContext();
  });
  contextLimit?.addEventListener("input", warnAboutContext);
  update();
});
