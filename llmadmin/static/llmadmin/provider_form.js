// The provider form: show only the credential fields of the chosen way to authenticate.
// The server reads only those fields too, so a hidden field never blocks a save.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  testWhatIsTyped();
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
    // The key status speaks of the stored way; another way chosen has nothing stored yet,
    // and the server's own credentials have nothing to remove.
    const keyStatus = document.querySelector(".field-key_status");
    if (keyStatus) keyStatus.hidden = auth.value !== auth.dataset.stored;
    const remove = document.querySelector(".field-remove_api_key");
    if (remove) remove.hidden = auth.value === "default_chain";
  }
  auth.addEventListener("change", showChosenFields);
  showChosenFields();
});

// "Test connection" tests what the page holds, typed or stored, and stays on the page, so
// nothing typed is lost. Without a script the button posts and the stored key is tested.
function testWhatIsTyped() {
  const button = document.querySelector("button[formaction*='test-connection']");
  if (!button) return;
  const lastTest = document.querySelector(".last-test");
  const result = document.createElement("p");
  result.className = "test-result";
  result.setAttribute("role", "status");
  button.after(result);
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    result.textContent = "Testing…";
    try {
      const response = await fetch(button.formAction, {
        method: "POST",
        body: new FormData(button.form),
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      const answer = await response.json();
      result.textContent = answer.message;
      result.dataset.level = answer.level;
      if (answer.last_test && lastTest) lastTest.textContent = answer.last_test;
    } catch (error) {
      result.textContent = "The test could not run: reload the page and try again.";
    }
  });
}
