// The chat page's keyboard shortcuts, and the dialog that lists them ("Keyboard
// shortcuts" in the conversation list, or Ctrl+/ or ?). The list and the keys live in
// templates/chat/_shortcuts_dialog.html; each shortcut does what a button of the page
// does, by pressing that button (or calling the function it calls), and says so when there
// is nothing to do. The keys, chosen not to take over the browser's or a screen reader's
// (Ctrl stands for Cmd on macOS):
//   Ctrl+Shift+O  new chat (as in ChatGPT);
//   Ctrl+K or /   search conversations (Ctrl+K as in most web apps, / as in GitHub);
//   Esc           stop the reply being written (not in a dialog, a menu or a text field
//                 other than the message box, where Esc has its own meaning);
//   Ctrl+Shift+E  regenerate the last reply (Ctrl+Shift+R would reload the page);
//   Ctrl+Shift+;  copy the last reply (Ctrl+Shift+C opens the browser's developer tools;
//                 ChatGPT copies from its last reply with Ctrl+Shift+; too);
//   Ctrl+/ or ?   this list.
// Single keys (/ and ?) never fire while typing in a text field. Combinations are matched
// by the character typed, else by the key's place on a US keyboard, so that they work in
// other layouts (Cyrillic, for one) too.

import { copyText } from "./copy.js";
import { i18n } from "./dom.js";
import { replySource } from "./messages.js";
import { notify } from "./notices.js";

const IS_MAC = /Mac|iPhone|iPad|iPod/.test(navigator.userAgentData?.platform || navigator.platform || "");
/** How each key is written in the list; a letter is written in upper case. */
const KEY_LABELS = { Mod: IS_MAC ? "Cmd" : "Ctrl", Escape: "Esc" };
/** The names aria-keyshortcuts uses (WAI-ARIA 1.2: the UI Events "key" values). */
const ARIA_NAMES = { Mod: IS_MAC ? "Meta" : "Control" };
/** Keys by their place on the keyboard (KeyboardEvent.code) for the combinations. */
const CODE_KEYS = { Semicolon: ";", Slash: "/" };
const TEXT_FIELDS = "input, textarea, select, [contenteditable]:not([contenteditable=false])";

/** "Mod+Shift+O" as {mod, shift, key: "o"} ("Escape" and other named keys keep their name). */
function parseCombo(text) {
  const parts = text.split("+");
  const key = parts.pop();
  return { mod: parts.includes("Mod"), shift: parts.includes("Shift"), key: key.length === 1 ? key.toLowerCase() : key };
}

/** The key an event is for: the character typed, or (`byPlace`) the key's US-layout character. */
function eventKey(event, byPlace) {
  if (!byPlace) return event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (/^Key[A-Z]$/.test(event.code)) return event.code.slice(3).toLowerCase();
  return CODE_KEYS[event.code] ?? "";
}

function comboMatches(combo, event, byPlace) {
  const mod = IS_MAC ? event.metaKey : event.ctrlKey;
  const otherMod = IS_MAC ? event.ctrlKey : event.metaKey;
  if (event.altKey || otherMod || mod !== combo.mod) return false;
  // A single character (/ or ?) is whatever it takes to type it, Shift included.
  if (combo.mod && event.shiftKey !== combo.shift) return false;
  if (byPlace && !combo.mod) return false;
  return eventKey(event, byPlace) === combo.key;
}

export class Shortcuts {
  /** @param {HTMLDialogElement} dialog the list (#shortcuts-dialog), whose rows say the keys */
  constructor(dialog) {
    this.dialog = dialog;
    this.strings = dialog.dataset;
    this.bindings = [...dialog.querySelectorAll("tr[data-shortcut]")].map((row) => {
      const combos = row.dataset.keys.split(" ").filter(Boolean);
      return { action: row.dataset.shortcut, combos, parsed: combos.map(parseCombo), row };
    });
    this.actions = {
      "new-chat": () => this.newChat(),
      search: () => this.search(),
      stop: () => this.stop(),
      regenerate: () => this.regenerate(),
      "copy-reply": () => this.copyReply(),
      help: () => this.dialog.showModal(),
    };
  }

  /** Write the keys into the list, name them on the page's controls, and listen. */
  start() {
    for (const { combos, row } of this.bindings) this.renderKeys(row.querySelector("[data-keys-cell]"), combos);
    this.describeControls();
    document.addEventListener("keydown", (event) => this.onKeydown(event));
  }

  renderKeys(cell, combos) {
    cell.replaceChildren();
    combos.forEach((combo, i) => {
      if (i) cell.append(` ${this.strings.or} `);
      combo.split("+").forEach((part, j) => {
        if (j) cell.append("+");
        const kbd = document.createElement("kbd");
        kbd.textContent = KEY_LABELS[part] ?? (part.length === 1 ? part.toUpperCase() : part);
        cell.append(kbd);
      });
    });
  }

  /** aria-keyshortcuts on the controls the shortcuts stand for (read out by screen readers). */
  describeControls() {
    const controls = {
      "new-chat": document.querySelector("a.new-chat"),
      search: document.getElementById("search-input"),
      stop: document.getElementById("stop-button"),
      help: document.querySelector("[data-open-dialog=shortcuts-dialog]"),
    };
    for (const { action, combos } of this.bindings) {
      const names = combos.map((combo) =>
        combo
          .split("+")
          .map((part) => ARIA_NAMES[part] ?? part)
          .join("+"),
      );
      controls[action]?.setAttribute("aria-keyshortcuts", names.join(" "));
    }
  }

  /** The shortcut `event` is, as {action, combo}, or null: by character first, then by place. */
  shortcutFor(event) {
    for (const byPlace of [false, true]) {
      for (const { action, parsed } of this.bindings) {
        const combo = parsed.find((candidate) => comboMatches(candidate, event, byPlace));
        if (combo) return { action, combo };
      }
    }
    return null;
  }

  onKeydown(event) {
    if (event.isComposing || event.defaultPrevented || event.repeat) return;
    const shortcut = this.shortcutFor(event);
    if (!shortcut) return;
    const { action, combo } = shortcut;
    const openDialog = document.querySelector("dialog[open]");
    if (openDialog) {
      // A dialog has the keyboard (Esc closes it); the shortcut for this list closes it too.
      if (action === "help" && openDialog === this.dialog) {
        event.preventDefault();
        this.dialog.close();
      }
      return;
    }
    const typing = event.target instanceof Element && event.target.closest(TEXT_FIELDS);
    if (action === "stop") {
      // Esc in a search field empties it, in a menu closes it; on a phone it closes the
      // conversation list first (sidebar.js); in an edited message it cancels the edit.
      if (typing && event.target.id !== "message-input") return;
      if (document.getElementById("app")?.classList.contains("sidebar-open")) return;
    } else if (!combo.mod && typing) {
      return; // "/" and "?" are text in a text field
    }
    event.preventDefault();
    this.actions[action]();
  }

  // -- The actions: each through the page's own control -------------------------------------

  newChat() {
    const link = document.querySelector("a.new-chat");
    if (link) link.click();
    else window.location.href = document.getElementById("app").dataset.indexUrl;
  }

  search() {
    const input = document.getElementById("search-input");
    if (!input) return;
    // On a narrow screen the conversation list is closed: open it as its button does.
    const sidebar = document.getElementById("sidebar");
    if (sidebar && getComputedStyle(sidebar).visibility === "hidden") {
      document.querySelector("[data-sidebar-toggle]")?.click();
    }
    input.focus();
    input.select();
  }

  /** True while a reply is being written (the composer's Stop button is shown). */
  busy() {
    const stop = document.getElementById("stop-button");
    return Boolean(stop && !stop.hidden);
  }

  stop() {
    if (this.busy()) document.getElementById("stop-button").click();
    else notify(this.strings.nothingToStop);
  }

  /** The last reply of the thread shown (of the branch on screen), or null. */
  lastReply() {
    const replies = document.querySelectorAll("#thread-inner article.msg-reply");
    return replies[replies.length - 1] ?? null;
  }

  regenerate() {
    if (this.busy()) {
      notify(this.strings.waitForReply);
      return;
    }
    const button = this.lastReply()?.querySelector("[data-action=regenerate]");
    if (button && !button.hidden) button.click();
    else notify(this.strings.nothingToRegenerate);
  }

  async copyReply() {
    const reply = this.lastReply();
    if (reply?.dataset.status === "streaming") {
      notify(this.strings.waitForReply);
      return;
    }
    const text = reply ? replySource(reply).trim() : "";
    if (!text) {
      notify(this.strings.nothingToCopy);
      return;
    }
    notify((await copyText(text)) ? this.strings.replyCopied : i18n.copyFailed);
  }
}

const dialog = document.getElementById("shortcuts-dialog");
if (dialog && document.getElementById("app")) new Shortcuts(dialog).start();
