// A reload must not send the create form again (a second token); it shows the list, without
// the secret: the page's history entry becomes a plain GET of its address.
history.replaceState(null, "", location.href);

for (const button of document.querySelectorAll("[data-copies]")) {
  button.addEventListener("click", async () => {
    const status = document.getElementById("copy-status");
    try {
      await navigator.clipboard.writeText(document.getElementById(button.dataset.copies).textContent);
      status.textContent = "Copied.";
    } catch {
      status.textContent = "Copying failed: select the lines and copy them.";
    }
  });
}
