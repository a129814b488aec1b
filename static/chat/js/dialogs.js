// The dialogs of the chat page: rename and delete a conversation (opened from its entry in
// the list), the conversation's settings; any [data-open-dialog] opener, any
// [data-close-dialog] closer, and a click on the backdrop. Rename and settings are saved
// without leaving the page; a refusal shows inside the dialog, which stays open.

import { errorText, i18n, postForm, urlFor } from "./dom.js";
import { notify, showTransient } from "./notices.js";

function dialogError(dialog, message) {
  showTransient(dialog.querySelector("[data-dialog-error]"), message);
}

/** Fields of a form as an object, without the CSRF token (postForm sends it as a header). */
function formFields(form) {
  return Object.fromEntries([...new FormData(form).entries()].filter(([name]) => name !== "csrfmiddlewaretoken"));
}

// The reasoning settings, each disabled (with the provider's reason beside it) for a model
// that does not take it: the model menu's <option> says so in data-no-reasoning-effort /
// data-no-thinking-budget, as data-no-temperature does for the temperature (composer.js).
const REASONING_SETTINGS = [
  { id: "id_reasoning_effort", reason: "noReasoningEffort" },
  { id: "id_thinking_budget", reason: "noThinkingBudget" },
];

/** Disable each reasoning setting the model chosen in `select` does not take, saying why. */
function syncReasoningSettings(select) {
  const option = select?.selectedOptions[0];
  for (const { id, reason: key } of REASONING_SETTINGS) {
    const input = document.getElementById(id);
    if (!input) continue;
    const reason = option?.dataset[key] || "";
    input.disabled = Boolean(reason);
    const noteId = `${id}_unsupported`;
    let note = document.getElementById(noteId);
    if (reason && !note) {
      note = document.createElement("p");
      note.id = noteId;
      note.className = "field-help field-unsupported";
      input.after(note);
      const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
      input.setAttribute("aria-describedby", [noteId, ...described].join(" "));
    }
    if (note) {
      note.textContent = reason;
      note.hidden = !reason;
    }
  }
}

/**
 * @param {object} options
 * @param {DOMStringMap} options.urls the #app data attributes (renameUrl, deleteUrl)
 * @param {import("./sidebar.js").Sidebar} options.sidebar
 * @param {(id: string, title: string) => void} options.onRenamed a conversation was renamed
 * @param {() => boolean} options.isNewChat true while the open chat has no conversation yet
 * @param {(fields: object) => void} options.onPendingSettings settings chosen on a new chat
 */
export function initDialogs({ urls, sidebar, onRenamed, isNewChat, onPendingSettings }) {
  const renameDialog = document.getElementById("rename-dialog");
  const deleteDialog = document.getElementById("delete-dialog");
  const settingsDialog = document.getElementById("settings-dialog");
  const temperatureInput = document.getElementById("id_temperature");
  const modelSelect = document.getElementById("model-select");
  modelSelect?.addEventListener("change", () => syncReasoningSettings(modelSelect));
  syncReasoningSettings(modelSelect);

  sidebar.list?.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const item = button.closest("li[data-conversation-id]");
    const id = item.dataset.conversationId;
    const link = item.querySelector(".conv-link");
    const title = link.dataset.title || link.textContent.trim();
    if (button.dataset.action === "rename") {
      renameDialog.querySelector("form").action = urlFor(urls.renameUrl, id);
      const field = renameDialog.querySelector("input[name=title]");
      field.value = link.dataset.title || "";
      dialogError(renameDialog, "");
      renameDialog.showModal();
      field.select();
    } else if (button.dataset.action === "delete") {
      deleteDialog.querySelector("form").action = urlFor(urls.deleteUrl, id);
      deleteDialog.querySelector("[data-dialog-title]").textContent = title;
      deleteDialog.showModal();
    }
  });

  renameDialog.querySelector("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const title = form.querySelector("input[name=title]");
    if (!title.value.trim()) {
      dialogError(renameDialog, i18n.titleEmpty);
      title.focus();
      return;
    }
    try {
      const response = await postForm(form.action, { title: title.value });
      if (!response.ok) {
        dialogError(renameDialog, await errorText(response));
        title.focus();
        return;
      }
      const data = await response.json();
      const id = form.action.match(/\/c\/(\d+)\//)?.[1];
      if (id) onRenamed(id, data.title);
      dialogError(renameDialog, "");
      renameDialog.close();
      notify(i18n.saved);
    } catch {
      dialogError(renameDialog, i18n.networkError);
    }
  });

  settingsDialog.querySelector("form").addEventListener("submit", async (event) => {
    // On a new chat the settings wait for its first message; otherwise they are saved now.
    event.preventDefault();
    const form = event.target;
    if (!form.reportValidity()) return;
    const fields = formFields(form);
    // Kept while disabled for a model that takes none: another model may use it.
    if (temperatureInput?.disabled) fields.temperature = temperatureInput.value;
    for (const { id } of REASONING_SETTINGS) {
      const input = document.getElementById(id);
      if (input?.disabled) fields[input.name] = input.value;
    }
    if (isNewChat()) {
      onPendingSettings(fields);
      dialogError(settingsDialog, "");
      settingsDialog.close();
      return;
    }
    try {
      const response = await postForm(form.action, fields);
      if (!response.ok) {
        dialogError(settingsDialog, await errorText(response));
        return;
      }
      dialogError(settingsDialog, "");
      settingsDialog.close();
      notify(i18n.saved);
    } catch {
      dialogError(settingsDialog, i18n.networkError);
    }
  });

  for (const opener of document.querySelectorAll("[data-open-dialog]")) {
    opener.addEventListener("click", () => document.getElementById(opener.dataset.openDialog)?.showModal());
  }
  document.addEventListener("click", (event) => {
    const closer = event.target.closest("[data-close-dialog]");
    if (closer) closer.closest("dialog")?.close();
    // A click on the backdrop (the dialog element itself, outside its form) closes it.
    if (event.target instanceof HTMLDialogElement && event.target.open) {
      const box = event.target.getBoundingClientRect();
      const inside =
        event.clientX >= box.left && event.clientX <= box.right && event.clientY >= box.top && event.clientY <= box.bottom;
      if (!inside) event.target.close();
    }
  });
}
