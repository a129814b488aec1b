// Share links (the sharing app). On the chat page: the Share button at the top opens the
// Share dialog (sharing/templates/sharing/_share_dialog.html), which asks who can open the
// link, makes it (POST /shared/new/<conversation id>/ -> 201 {"url"} or 400 {"error"}) and
// shows it with a Copy button. The button shows once the chat has a conversation (a new
// chat gets one with its first message: #app's data-conversation-id). On the "Shared
// links" page: the Copy button beside each link. Strings come from data attributes.

import { copyText } from "./copy.js";
import { errorText, postForm, urlFor } from "./dom.js";
import { showTransient } from "./notices.js";

const FLASH_MS = 2000;

/** Make `button` copy the value of `field`, saying "Copied" (or why not) for a moment. */
function wireCopy(button, field, { copied, failed }) {
  const label = button.textContent;
  button.hidden = false;
  button.addEventListener("click", async () => {
    const ok = await copyText(field.value);
    if (!ok) field.select();
    button.textContent = ok ? copied : failed;
    clearTimeout(button.copyTimer);
    button.copyTimer = setTimeout(() => {
      button.textContent = label;
    }, FLASH_MS);
  });
  field.addEventListener("focus", () => field.select());
}

function initShareDialog() {
  const dialog = document.getElementById("share-dialog");
  const opener = document.getElementById("share-button");
  const app = document.getElementById("app");
  if (!dialog || !opener || !app) return;
  const form = dialog.querySelector("[data-share-form]");
  const choice = dialog.querySelector("[data-share-choice]");
  const result = dialog.querySelector("[data-share-result]");
  const field = dialog.querySelector("[data-share-link]");
  const create = dialog.querySelector("[data-share-create]");
  const error = dialog.querySelector("[data-dialog-error]");
  const strings = dialog.dataset;
  const conversationId = () => app.dataset.conversationId || "";

  const syncButton = () => {
    opener.hidden = !conversationId();
  };
  new MutationObserver(syncButton).observe(app, { attributes: true, attributeFilter: ["data-conversation-id"] });
  syncButton();

  wireCopy(dialog.querySelector("[data-share-copy]"), field, {
    copied: strings.copied,
    failed: strings.copyFailed,
  });

  opener.addEventListener("click", () => {
    // Each opening makes a new snapshot: back to the choice.
    choice.hidden = false;
    create.hidden = false;
    create.disabled = false;
    result.hidden = true;
    field.value = "";
    showTransient(error, "");
    dialog.showModal();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = conversationId();
    if (!id) return;
    const audience = form.querySelector("input[name=audience]:checked")?.value ?? "";
    create.disabled = true;
    try {
      const response = await postForm(urlFor(strings.createUrl, id), { audience });
      if (!response.ok) {
        showTransient(error, await errorText(response));
        create.disabled = false;
        return;
      }
      const data = await response.json();
      field.value = data.url;
      choice.hidden = true;
      create.hidden = true;
      result.hidden = false;
      showTransient(error, "");
      field.focus();
    } catch {
      showTransient(error, strings.networkError);
      create.disabled = false;
    }
  });
}

function initLinksPage() {
  for (const button of document.querySelectorAll("[data-copy-link]")) {
    const field = document.getElementById(button.dataset.copyLink);
    if (field) wireCopy(button, field, { copied: button.dataset.copied, failed: button.dataset.copyFailed });
  }
}

initShareDialog();
initLinksPage();
