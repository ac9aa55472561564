// The model form: show only the selected provider's options and general fields, offer the
// identifiers the provider reports and the catalog lists, show what the catalog knows of the
// chosen one and fill in its limits and prices, and warn when the context limit differs from
// the provider's own.
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
  let catalog = {};
  // Each provider change asks again; an answer to an earlier change (it may come last) is
  // dropped, so one provider's list is never shown under another.
  let asked = 0;
  const catalogFacts = document.createElement("div");
  catalogFacts.className = "help catalog-facts";
  catalogFacts.setAttribute("role", "status");
  const priceFields = ["input", "output", "cache_read", "cache_write"];
  const field = (name) => document.getElementById(`id_${name}`);

  if (identifier) {
    identifier.setAttribute("list", datalist.id);
    identifier.after(datalist, listStatus, catalogFacts);
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

  async function loadRemoteModels(round) {
    reported = { label: "", limits: new Map() };
    listStatus.textContent = "";
    warnAboutContext();
    if (!identifier || !select.value) return;
    listStatus.textContent = "Loading the provider's models…";
    try {
      const url = `${select.dataset.remoteModelsUrl}?provider=${encodeURIComponent(select.value)}`;
      const response = await fetch(url, { credentials: "same-origin" });
      const data = await response.json();
      if (round !== asked) return;
      if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
      if (data.unavailable) {
        listStatus.textContent = `The provider's model list is not available: ${data.unavailable}`;
        return;
      }
      for (const model of data.models) {
        addOption(model.identifier);
        if (model.context_limit) reported.limits.set(model.identifier, model.context_limit);
      }
      reported.label = data.provider_label;
      const leftOut = data.left_out
        ? ` ${data.left_out} listed ids were left out: they are not model ids we can show.`
        : "";
      listStatus.textContent = `${data.models.length} models reported by ${data.provider_label}: pick one or type an identifier.${leftOut}`;
      fillReportedContext();
      warnAboutContext();
    } catch (error) {
      if (round !== asked) return;
      listStatus.textContent = `The provider's model list is not available: ${error.message}`;
    }
  }

  function addOption(id) {
    if (datalist.querySelector(`option[value="${CSS.escape(id)}"]`)) return;
    const option = document.createElement("option");
    option.value = id;
    datalist.append(option);
  }

  // Whether this round's catalog is the one loaded (no later change asked since).
  async function loadCatalog(round) {
    catalog = {};
    if (!select.value || !select.dataset.catalogUrl) return true;
    let models = {};
    try {
      const url = `${select.dataset.catalogUrl}?provider=${encodeURIComponent(select.value)}`;
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.ok) models = (await response.json()).models;
    } catch (error) {
      models = {};
    }
    if (round !== asked) return false;
    catalog = models;
    Object.keys(catalog).forEach(addOption);
    return true;
  }

  function describe(facts) {
    const yesNo = (value) => (value === null ? "unknown" : value ? "yes" : "no");
    const usd = (value) => (value === null ? "unpriced" : `$${value}`);
    const listed = (tier) => priceFields.map((name) => `${name.replace("_", " ")} ${usd(tier[name])}`);
    const longContext = Object.values(facts.long_context_prices).some((value) => value !== null)
      ? `; long context: ${listed(facts.long_context_prices).join(", ")}`
      : "";
    return [
      `Catalog: ${facts.name}${facts.deprecated ? " (deprecated)" : ""}`,
      `context ${facts.context_limit ?? "unknown"}, max output ${facts.output_limit ?? "unknown"} tokens`,
      `reasoning ${yesNo(facts.reasoning)}, temperature ${yesNo(facts.temperature)}, tool calls ${yesNo(facts.tool_call)}`,
      `input ${facts.input_modalities.join(", ")}; knowledge ${facts.knowledge ?? "unknown"}; released ${facts.release_date}`,
      `per 1M tokens: ${listed(facts.prices).join(", ")}${longContext}`,
    ].join(" · ");
  }

  // Values this script put in, by field: replaced when another identifier is chosen (typing
  // "gpt-4.1" passes through "gpt-4"), unlike anything the admin typed.
  const filled = new Map();
  const untouched = (input) => input.value === "" || filled.get(input) === input.value;

  function fill(input, value) {
    if (!input || !untouched(input)) return;
    input.value = value === null || value === undefined ? "" : String(value);
    filled.set(input, input.value);
  }

  // The provider's own context limit, for a model the catalog doesn't know.
  function fillReportedContext() {
    if (identifier && !catalog[identifier.value] && reported.limits.has(identifier.value)) {
      fill(contextLimit, reported.limits.get(identifier.value));
    }
  }

  // The catalog's facts for the identifier, filling in only what the admin left empty.
  function applyCatalog(changed) {
    const facts = (identifier && catalog[identifier.value]) || null;
    if (changed) {
      const known = identifier && identifier.value && select.value;
      catalogFacts.textContent = facts
        ? describe(facts)
        : known
          ? "Not in the catalog: only the provider type's own rules check this model."
          : "";
    }
    fill(field("display_name"), facts?.name);
    fill(contextLimit, facts?.context_limit);
    fill(field("max_output_tokens"), facts?.output_limit);
    // Prices only when none was typed: a partly priced model is the admin's choice.
    // Each tier on its own, as the admin may have typed one and not the other.
    for (const [prefix, tier] of [["", "prices"], ["long_context_", "long_context_prices"]]) {
      const prices = priceFields.map((name) => field(`${prefix}${name}_price`));
      if (prices.every((input) => input && untouched(input))) {
        prices.forEach((input, index) => fill(input, facts?.[tier][priceFields[index]]));
      }
    }
  }

  // On the page's first load nothing is filled in: empty fields there are the admin's choice.
  async function update(chosen) {
    showOnlySelectedProvider(providers[select.value]);
    datalist.replaceChildren();
    const round = ++asked;
    loadRemoteModels(round);
    const current = await loadCatalog(round);
    if (chosen && current) applyCatalog(true);
  }

  select.addEventListener("change", () => update(true));
  identifier?.addEventListener("input", () => {
    applyCatalog(true);
    fillReportedContext();
    warnAboutContext();
  });
  contextLimit?.addEventListener("input", warnAboutContext);
  update(false);
});
