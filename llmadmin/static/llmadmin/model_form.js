// On the model form, show only the selected provider's option fieldset and general fields.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const select = document.getElementById("id_provider");
  if (!select || !select.dataset.providerTypes) return;
  const providers = JSON.parse(select.dataset.providerTypes);
  const generalFields = [
    "max_output_tokens", "temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty",
  ];

  function update() {
    const provider = providers[select.value];
    document.querySelectorAll("fieldset.provider-options").forEach((fieldset) => {
      fieldset.hidden = !provider || !fieldset.classList.contains(`provider-options-${provider.type}`);
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

  select.addEventListener("change", update);
  update();
});
