// Folders, pins and the archive in the conversation list (templates/chat/_folders.html and
// _folder_dialogs.html; chat/folder_views.py on the server):
//   - the folder filter (All conversations, each folder, Archived) shows its choice at once
//     when picked with a pointer; with the keyboard, on Enter or when the focus leaves it;
//   - New folder / Edit folder open the folder dialog (name, instructions and model for
//     new chats; Delete folder from there, with a confirmation);
//   - each conversation's More actions button opens its menu under it: Pin / Unpin,
//     Move to folder…, Archive / Unarchive. Escape closes it and gives the focus back.
// A pinned conversation moves to the "Pinned" group; one that leaves the view shown (moved
// to another folder, archived, back from the archive) leaves the list, and the focus goes
// to its neighbour.
//
// Every request is a POST with the CSRF token asking for JSON (dom.js postForm): the
// server answers {id, folder_id, pinned, archived, notice} for a conversation, {id, name,
// url} for a folder, or {"error": "..."} (400), shown where the person is looking.

import { errorText, i18n, postForm, urlFor } from "./dom.js";
import { notify, showTransient } from "./notices.js";
import { showEmptyList } from "./sidebar.js";

const root = document.getElementById("folders");
if (root) initFolders(root);

function initFolders(root) {
  const urls = root.dataset;
  const nav = document.getElementById("sidebar");
  const mainList = document.getElementById("conversation-list");
  const pinnedList = document.getElementById("pinned-list");
  const menu = document.getElementById("conv-menu");
  const menuHome = menu.parentElement;
  let menuItem = null; // the conversation whose menu is open

  initFilter(document.getElementById("folder-filter"));
  initFolderDialogs(urls);

  // -- The conversation menu ---------------------------------------------------------------

  function moreButton(item) {
    return item?.querySelector("button[data-action=more]") ?? null;
  }

  function openMenu(item) {
    closeMenu(false);
    const pinned = item.dataset.pinned === "true";
    const archived = item.dataset.archived === "true";
    const shown = { pin: !pinned, unpin: pinned, move: true, archive: !archived, unarchive: archived };
    for (const button of menu.querySelectorAll("button[data-conv-action]")) {
      button.hidden = !shown[button.dataset.convAction];
    }
    item.append(menu);
    menu.hidden = false;
    menuItem = item;
    moreButton(item)?.setAttribute("aria-expanded", "true");
    menu.querySelector("button:not([hidden])")?.focus();
  }

  function closeMenu(focusButton = true) {
    if (!menuItem) return;
    const button = moreButton(menuItem);
    button?.setAttribute("aria-expanded", "false");
    menu.hidden = true;
    menuHome.append(menu);
    menuItem = null;
    if (focusButton) button?.focus();
  }

  nav.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action=more]");
    if (!button) return;
    const item = button.closest("li[data-conversation-id]");
    if (menuItem === item) closeMenu();
    else openMenu(item);
  });
  menu.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    event.stopPropagation(); // the list itself stays open on a phone
    closeMenu();
  });
  document.addEventListener("click", (event) => {
    if (menuItem && !menu.contains(event.target) && !moreButton(menuItem)?.contains(event.target)) closeMenu(false);
  });
  nav.addEventListener("focusout", (event) => {
    if (menuItem && event.relatedTarget && !menuItem.contains(event.relatedTarget)) closeMenu(false);
  });
  menu.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-conv-action]");
    if (!button || !menuItem) return;
    const item = menuItem;
    const action = button.dataset.convAction;
    closeMenu();
    if (action === "move") openMove(item);
    else act(item, action);
  });

  async function act(item, action) {
    const id = item.dataset.conversationId;
    let response;
    try {
      response = await postForm(urlFor(urls[`${action}Url`], id));
    } catch {
      notify(i18n.networkError);
      return;
    }
    if (!response.ok) {
      notify(await errorText(response));
      return;
    }
    const data = await response.json();
    place(item, data);
    notify(data.notice);
  }

  // -- Where a conversation goes after a change -------------------------------------------

  function setFlag(item, name, on) {
    if (on) item.dataset[name] = "true";
    else delete item.dataset[name];
  }

  /** Show the change the server made to `item` ({folder_id, pinned, archived}). */
  function place(item, data) {
    setFlag(item, "pinned", data.pinned);
    setFlag(item, "archived", data.archived);
    item.dataset.folderId = data.folder_id ?? "";
    const archivedView = urls.archivedView === "true";
    const leaves =
      archivedView !== Boolean(data.archived) ||
      (urls.currentFolder && String(data.folder_id ?? "") !== urls.currentFolder);
    if (leaves) {
      remove(item);
    } else if (urls.grouped === "true" && pinnedList) {
      const hadFocus = item.contains(document.activeElement);
      if (data.pinned && !pinnedList.contains(item)) pinnedList.prepend(item);
      else if (!data.pinned && pinnedList.contains(item)) insertByDate(mainList, item);
      if (hadFocus) moreButton(item)?.focus();
    }
    refreshGroups();
  }

  function remove(item) {
    if (menuItem === item) closeMenu(false);
    const hadFocus = item.contains(document.activeElement) || document.activeElement === document.body;
    const next = item.nextElementSibling ?? item.previousElementSibling;
    item.remove();
    if (hadFocus) (next?.querySelector(".conv-link") ?? document.getElementById("folder-filter"))?.focus();
  }

  /** Put `item` among the list's conversations by the time of its last message. */
  function insertByDate(list, item) {
    list.querySelector(".conv-empty")?.remove();
    const time = Number(item.dataset.updated || Infinity);
    // Conversations added on this page have no time: they are the newest.
    const after = [...list.querySelectorAll(":scope > li.conv")].find(
      (other) => Number(other.dataset.updated || Infinity) < time,
    );
    list.insertBefore(item, after ?? null);
  }

  function refreshGroups() {
    const section = document.getElementById("pinned-section");
    if (section) section.hidden = !pinnedList.querySelector("li.conv");
    showEmptyList(mainList); // "No archived conversations." when the last one left
  }

  // -- Move to folder… ---------------------------------------------------------------------

  const moveDialog = document.getElementById("move-dialog");
  const moveForm = moveDialog.querySelector("form");
  const moveSelect = moveForm.querySelector("select[name=folder]");
  let moving = null;

  function openMove(item) {
    moving = item;
    const link = item.querySelector(".conv-link");
    moveForm.action = urlFor(urls.moveUrl, item.dataset.conversationId);
    moveDialog.querySelector("[data-dialog-title]").textContent = link.dataset.title || link.textContent.trim();
    moveSelect.value = item.dataset.folderId || "";
    showTransient(moveDialog.querySelector("[data-dialog-error]"), "");
    moveDialog.showModal();
    moveSelect.focus();
  }

  moveForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = moveDialog.querySelector("[data-dialog-error]");
    try {
      const response = await postForm(moveForm.action, { folder: moveSelect.value });
      if (!response.ok) {
        showTransient(error, await errorText(response));
        return;
      }
      const data = await response.json();
      moveDialog.close();
      if (moving) place(moving, data);
      moving = null;
      notify(data.notice);
    } catch {
      showTransient(error, i18n.networkError);
    }
  });
}

/**
 * The folder filter shows its choice at once: picked with the pointer, on the pick; with
 * the keyboard (arrow keys step through the options), on Enter or when the focus leaves
 * it. (Its Show button is in a <noscript>: for pages without this script.)
 */
function initFilter(select) {
  if (!select) return;
  const shown = select.value;
  let keyed = false;
  const apply = () => {
    if (select.value !== shown) select.form.requestSubmit();
  };
  select.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      apply();
    } else {
      keyed = true;
    }
  });
  select.addEventListener("pointerdown", () => {
    keyed = false;
  });
  select.addEventListener("change", () => {
    if (!keyed) apply();
  });
  select.addEventListener("blur", apply);
}

/** New folder, Edit folder, Delete folder. */
function initFolderDialogs(urls) {
  const dialog = document.getElementById("folder-dialog");
  const form = dialog.querySelector("form");
  const heading = dialog.querySelector("h2");
  const error = dialog.querySelector("[data-dialog-error]");
  const name = form.elements.name;
  const prompt = form.elements.system_prompt;
  const model = form.elements.model_choice;
  const deleteOpener = dialog.querySelector("[data-folder-delete]");
  const deleteDialog = document.getElementById("folder-delete-dialog");
  let editing = false;

  function open(values) {
    editing = Boolean(values);
    heading.textContent = editing ? heading.dataset.edit : heading.dataset.new;
    form.action = editing ? urlFor(urls.updateUrl, urls.currentFolder) : urls.createUrl;
    name.value = values?.name ?? "";
    prompt.value = values?.systemPrompt ?? "";
    model.value = values?.modelChoice ?? "";
    if (model.selectedIndex < 0) model.value = ""; // a model no longer in the menu
    if (deleteOpener) deleteOpener.hidden = !editing;
    showTransient(error, "");
    dialog.showModal();
    name.focus();
  }

  document.querySelector("[data-folder-new]")?.addEventListener("click", () => open(null));
  const editButton = document.querySelector("[data-folder-edit]");
  editButton?.addEventListener("click", () => open(editButton.dataset));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const response = await postForm(form.action, {
        name: name.value,
        system_prompt: prompt.value,
        model_choice: model.value,
      });
      if (!response.ok) {
        showTransient(error, await errorText(response));
        name.focus();
        return;
      }
      const data = await response.json();
      // A new folder is shown at once (a new chat there starts with its settings); an
      // edited one is shown again with its new name and settings.
      if (editing) window.location.reload();
      else window.location.assign(data.url);
    } catch {
      showTransient(error, i18n.networkError);
    }
  });

  deleteOpener?.addEventListener("click", () => {
    dialog.close();
    deleteDialog.showModal();
  });
  deleteDialog?.querySelector("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const deleteError = deleteDialog.querySelector("[data-dialog-error]");
    try {
      const response = await postForm(event.target.action);
      if (!response.ok) {
        showTransient(deleteError, await errorText(response));
        return;
      }
      window.location.assign((await response.json()).url);
    } catch {
      showTransient(deleteError, i18n.networkError);
    }
  });
}
