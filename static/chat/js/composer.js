// The message box and what sits around it: the model menu (with its filter when the list
// is long), the settings a model does not take, the touch-keyboard hint, the composer's
// error line, and the queue of messages sent while a reply is being written (Enter, or the
// Send button, which reads "Queue" beside Stop then: on a touch keyboard Return makes a new
// line, so the button is the only way to queue there).

import { AttachmentTray, renderAttachments } from "./attachments.js";
import { fromTemplate, i18n, textDirection } from "./dom.js";
import { removeEmptyState } from "./messages.js";

const MODEL_FILTER_FROM = 12; // options: more than this and the menu gets a filter

export class Composer {
  /**
   * @param {object} options
   * @param {() => void} options.onSend the person asked to send (Enter, or the Send button)
   */
  constructor({ onSend }) {
    this.form = document.getElementById("composer");
    this.input = document.getElementById("message-input");
    this.select = document.getElementById("model-select");
    this.sendButton = document.getElementById("send-button");
    this.sendLabel = this.sendButton.querySelector("[data-send-label]");
    this.stopButton = document.getElementById("stop-button");
    this.error = document.getElementById("composer-error");
    this.temperatureInput = document.getElementById("id_temperature");
    this.fieldSizing = window.CSS?.supports?.("field-sizing", "content");

    // On a touch keyboard there is no Shift: Return makes a new line and Send sends.
    this.touchKeyboard =
      window.matchMedia("(pointer: coarse)").matches && !window.matchMedia("(any-pointer: fine)").matches;
    if (this.touchKeyboard) {
      document.getElementById("app").dataset.touch = "true";
      document.getElementById("composer-hint").textContent = i18n.hintTouch;
    }

    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      onSend();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !this.touchKeyboard) {
        event.preventDefault();
        onSend();
      }
    });
    this.input.addEventListener("input", () => {
      this.autosize();
      if (!this.error.hidden && this.input.value) this.showError("");
    });
    this.select.addEventListener("change", () => this.syncModelSettings());
    // Files for the next message (attachments.js): ready() / ids() to send, release(files)
    // once sent, restore(files) to put them back.
    this.attachments = new AttachmentTray({
      form: this.form,
      input: this.input,
      showError: (message) => this.showError(message),
    });
    this.syncModelSettings();
    this.initModelFilter();
    this.autosize();
  }

  /** {provider, model} chosen in the menu, or null when none is. */
  selectedModel() {
    const value = this.select.value || "";
    const split = value.indexOf("::");
    if (split === -1) return null;
    return { provider: value.slice(0, split), model: value.slice(split + 2) };
  }

  /** The text typed, trimmed. */
  text() {
    return this.input.value.trim();
  }

  /** Empty the box, unless what it holds is no longer `sent` (typed on meanwhile). */
  clear(sent) {
    if (sent === undefined || this.input.value.trim() === sent) this.input.value = "";
    this.autosize();
  }

  /** Put `text` back in the box (before what is typed there now): nothing typed is lost. */
  restore(text) {
    const now = this.input.value.trim();
    this.input.value = now ? `${text}\n\n${now}` : text;
    this.autosize();
  }

  focus() {
    this.input.focus();
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = !message;
  }

  /**
   * While a reply is being written: Stop, and the Send button relabelled "Queue" (titled
   * "Sent when the reply finishes"); it still submits, and the page queues. Otherwise Send.
   */
  setBusy(busy) {
    if (!busy && document.activeElement === this.stopButton) this.input.focus();
    this.stopButton.hidden = !busy;
    const label = busy ? i18n.queue : i18n.send;
    if (label && this.sendLabel && this.sendLabel.textContent !== label) this.sendLabel.textContent = label;
    if (busy && i18n.queueTitle) this.sendButton.title = i18n.queueTitle;
    else this.sendButton.removeAttribute("title");
    this.form.classList.toggle("is-busy", busy);
    if (!busy) this.stopButton.disabled = false;
  }

  autosize() {
    if (this.fieldSizing) return;
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 240)}px`;
  }

  syncModelSettings() {
    // A setting the chosen model does not take is disabled, with the reason.
    const input = this.temperatureInput;
    if (!input) return;
    const reason = this.select.selectedOptions[0]?.dataset.noTemperature || "";
    input.disabled = Boolean(reason);
    let note = document.getElementById("temperature-unsupported");
    if (reason && !note) {
      note = document.createElement("p");
      note.id = "temperature-unsupported";
      note.className = "field-help";
      input.after(note);
      input.setAttribute("aria-describedby", note.id);
    }
    if (note) {
      note.textContent = reason;
      note.hidden = !reason;
    }
  }

  initModelFilter() {
    const filter = document.getElementById("model-filter");
    const select = this.select;
    const options = [...select.querySelectorAll("option[value]")].filter((option) => option.value);
    if (!filter || options.length <= MODEL_FILTER_FROM) return;
    filter.hidden = false;
    filter.addEventListener("input", () => {
      // Every word typed must appear in "Provider · model"; the first match is chosen.
      const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
      let first = null;
      for (const option of options) {
        const match = words.every((word) => option.textContent.toLowerCase().includes(word));
        option.hidden = !match;
        if (match && !first) first = option;
      }
      for (const group of select.querySelectorAll("optgroup")) {
        group.hidden = ![...group.querySelectorAll("option")].some((option) => !option.hidden);
      }
      if (first && select.selectedOptions[0]?.hidden) {
        select.value = first.value;
        select.dispatchEvent(new Event("change"));
      }
    });
    filter.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        select.focus();
      }
    });
  }
}

/**
 * Messages sent while a reply is being written wait here, each shown at the end of the
 * thread with "Queued: it will be sent when the reply finishes" and a Cancel button, and
 * go out one by one as replies end (never silently dropped).
 */
export class MessageQueue {
  /** @param {HTMLElement} thread the element the messages are appended to */
  constructor(thread) {
    this.thread = thread;
    this.items = []; // [{text, files, article}], oldest first
  }

  get size() {
    return this.items.length;
  }

  /** Queue `text` with `files` (attachments' JSON); returns its article (a user message marked as queued). */
  add(text, files = []) {
    removeEmptyState();
    const article = fromTemplate("tpl-user-message");
    article.classList.add("is-queued");
    const content = article.querySelector("[data-content]");
    content.textContent = text;
    content.dir = textDirection(text);
    renderAttachments(article.querySelector("[data-attachments]"), files);
    const note = document.createElement("p");
    note.className = "msg-queued";
    note.dataset.queuedNote = "";
    const label = document.createElement("span");
    label.textContent = i18n.queued;
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "chip";
    cancel.dataset.action = "cancel-queued";
    cancel.textContent = i18n.cancel;
    note.append(label, " ", cancel);
    article.querySelector(".msg-actions").before(note);
    this.thread.append(article);
    this.items.push({ text, files, article });
    return article;
  }

  /** The oldest queued message, taken out of the queue (its article stays, unmarked). */
  next() {
    const item = this.items.shift();
    if (!item) return null;
    item.article.classList.remove("is-queued");
    item.article.querySelector("[data-queued-note]")?.remove();
    return item;
  }

  /** Cancel the queued message shown in `article`; returns its text ("" if not queued). */
  cancel(article) {
    const index = this.items.findIndex((item) => item.article === article);
    if (index === -1) return "";
    const [item] = this.items.splice(index, 1);
    item.article.remove();
    return item.text;
  }

  /** Cancel every queued message; returns their texts, oldest first. */
  clear() {
    const texts = this.items.map((item) => item.text);
    for (const item of this.items) item.article.remove();
    this.items = [];
    return texts;
  }
}
