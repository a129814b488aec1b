// Compare: one message answered by 2 to 4 models side by side. The composer's "Compare"
// button opens a dialog to pick up to 3 more models beside the one in the model menu; while
// some are picked, Send sends to all of them (POST with repeated `compare` fields, answered
// with JSON naming each reply), and the page follows each reply in its own column.

import { format, i18n } from "./dom.js";

const MAX_EXTRA = 3; // the model menu's model plus three: four side by side at most

export class CompareChoice {
  /** @param {{select: HTMLSelectElement}} composer the composer, for its model menu */
  constructor(composer) {
    this.composer = composer;
    this.button = document.getElementById("compare-button");
    this.dialog = document.getElementById("compare-dialog");
    this.list = document.getElementById("compare-models");
    this.note = document.getElementById("compare-note");
    this.error = document.getElementById("compare-error");
    this.picked = [];
    if (!this.button || !this.dialog) return;
    this.button.addEventListener("click", () => this.open());
    this.dialog.querySelector("form").addEventListener("submit", (event) => {
      event.preventDefault();
      if (event.submitter?.value === "off") this.picked = [];
      else {
        const chosen = [...this.list.querySelectorAll("input:checked")].map((box) => box.value);
        if (chosen.length > MAX_EXTRA) {
          this.error.textContent = format(i18n.compareTooMany, { max: MAX_EXTRA });
          this.error.hidden = false;
          return;
        }
        this.picked = chosen;
      }
      this.dialog.close();
      this.refresh();
    });
    this.dialog.querySelector("[data-close]")?.addEventListener("click", () => this.dialog.close());
    this.composer.select.addEventListener("change", () => this.refresh());
  }

  /** The dialog, with a checkbox for every usable model but the one in the menu. */
  open() {
    const current = this.composer.select.value;
    this.list.replaceChildren();
    this.error.hidden = true;
    const off = this.dialog.querySelector('button[value="off"]');
    if (off) off.hidden = !this.active;
    for (const option of this.composer.select.querySelectorAll("option")) {
      if (!option.value || option.disabled || option.value === current) continue;
      const label = document.createElement("label");
      label.className = "compare-option";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = option.value;
      box.checked = this.picked.includes(option.value);
      label.append(box, " ", option.textContent);
      this.list.append(label);
    }
    this.dialog.showModal();
    this.list.querySelector("input")?.focus();
  }

  /** The models that answer beside the menu's model ([] when not comparing). */
  extra() {
    const current = this.composer.select.value;
    return this.picked.filter((value) => value !== current);
  }

  get active() {
    return this.extra().length > 0;
  }

  /** Every model that answers, as "provider/model" (the menu's first). */
  fields() {
    return [this.composer.select.value, ...this.extra()].map((value) => value.replace("::", "/"));
  }

  refresh() {
    if (!this.button) return;
    const count = this.extra().length;
    this.button.setAttribute("aria-pressed", count ? "true" : "false");
    this.note.hidden = !count;
    this.note.textContent = count ? format(i18n.compareOn, { count: count + 1 }) : "";
  }
}

/** A "Continue with this one" button for a compared reply (the server renders the same). */
export function pickButton(messageId, model) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "chip chip-primary";
  button.dataset.action = "pick";
  button.dataset.target = messageId;
  button.textContent = i18n.comparePick;
  button.setAttribute("aria-label", format(i18n.comparePickNamed, { model }));
  return button;
}

/** A "Stop" button for one compared reply while it is written (the others go on). */
export function stopOneButton(model) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "chip";
  button.dataset.action = "stop-one";
  button.textContent = i18n.stop;
  button.setAttribute("aria-label", format(i18n.stopNamed, { model }));
  return button;
}
