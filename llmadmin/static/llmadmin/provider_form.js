// The provider form: show only the credential fields of the chosen way to authenticate.
// The server reads only those fields too, so a hidden field never blocks a save.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const auth = document.getElementById("id_auth");
  if (!auth) return;
  const fieldsOf = {
    api_key: ["api_key"],
    aws_keys: ["aws_access_key_id", "aws_secret_access_key", "aws_session_token"],
    default_chain: [],
  };
  const allFields = Object.values(fieldsOf).flat();

  function showChosenFields() {
    const shown = fieldsOf[auth.value] || [];
    for (const name of allFields) {
      const row = document.querySelector(`.field-${name}`);
      if (row) row.hidden = !shown.includes(name);
    }
  }
  auth.addEventListener("change", showChosenFields);
  showChosenFields();
});
