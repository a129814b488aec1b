// The API keys page (templates/accounts/keys.html): the Copy button beside a new key.
// Without this module the key is still there to select and copy by hand.

import { copyText } from "../chat/js/copy.js";

const FLASH_MS = 2000;

for (const button of document.querySelectorAll("[data-copy-key]")) {
  const field = document.getElementById(button.dataset.copyKey);
  if (!field) continue;
  const label = button.textContent;
  button.hidden = false;
  button.addEventListener("click", async () => {
    const ok = await copyText(field.value);
    if (!ok) field.select();
    button.textContent = ok ? button.dataset.copied : button.dataset.copyFailed;
    clearTimeout(button.copyTimer);
    button.copyTimer = setTimeout(() => {
      button.textContent = label;
    }, FLASH_MS);
  });
  // Selected at once: Ctrl+C / Cmd+C copies it too.
  field.addEventListener("focus", () => field.select());
  field.focus();
}
